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


def test_only_the_real_board_skips_are_allowed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(ROOT_CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    sim_only: x\n    rp2040: x\n")
    pytester.makepyfile(
        test_board="""
        import pytest

        @pytest.mark.sim_only
        @pytest.mark.skip(reason="HIL_PORT is a real board")
        def test_sim_only():
            pass

        @pytest.mark.skip(reason="no broker")
        def test_other():
            pass
        """
    )
    monkeypatch.setenv("HIL_PORT", "/dev/ttyACM0")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1, errors=1)  # a marker skip: setup
    monkeypatch.delenv("HIL_PORT")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(errors=2)
