"""The suite-wide rule in conftest.py: a skip (missing broker, database, browser) fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT_CONFTEST = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()


def test_a_skip_in_a_test_a_fixture_or_a_marker_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ROOT_CONFTEST)
    pytester.makepyfile(
        test_parts="""
        import pytest

        @pytest.fixture
        def broker():
            pytest.skip("mosquitto not installed")

        def test_in_body():
            pytest.skip("no /usr/bin/chromium")

        def test_in_fixture(broker):
            pass

        @pytest.mark.skipif(True, reason="PostgreSQL binaries not found")
        def test_marker():
            pass

        def test_passes():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=2)  # a skip in setup reports as a setup error
    result.stdout.fnmatch_lines(["*SKIPPED TESTS FAIL THE SUITE*mosquitto not installed*"])
    assert result.ret != 0


def test_a_module_level_importorskip_fails_the_collection(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ROOT_CONFTEST)
    pytester.makepyfile(test_module="import pytest\npytest.importorskip('no_such_module_for_the_atm')\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert result.ret != 0
