"""atm_host.cli end to end against the in-test device: output, exit codes, signed report check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from atm_host import cli
from fake_device import KEY, FakeDevice


@pytest.fixture
def device() -> Iterator[FakeDevice]:
    dev = FakeDevice()
    yield dev
    dev.close()


def test_dispense_prints_a_verified_report(device: FakeDevice, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--port", device.url, "dispense", "--notes", "2,1,0,0", "--key-hex", KEY.hex()])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "items_taken" in out and "MAC" in out and "VALID" in out and "INVALID" not in out


def test_wrong_key_exits_nonzero(device: FakeDevice, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--port", device.url, "dispense", "--notes", "1,0,0,0", "--key-hex", "00" * 32])
    assert code == cli.EXIT_DEVICE
    assert "invalidTokenHMAC" in capsys.readouterr().err


def test_status_and_unreachable_port(device: FakeDevice, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--port", device.url, "status"]) == 0
    assert "idle" in capsys.readouterr().out
    assert cli.main(["--port", "/nonexistent/tty", "status"]) == cli.EXIT_LINK
    assert "PortError" in capsys.readouterr().err


def test_bad_notes_is_a_usage_error(device: FakeDevice) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--port", device.url, "dispense", "--notes", "1,2", "--key-hex", KEY.hex()])
