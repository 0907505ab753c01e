"""The deployment files an engineer copies stay valid: the host config example, the systemd units."""

import json
import os
from pathlib import Path

import pytest
from atm_host.journey.__main__ import HostConfig, load
from atm_host.journey.errors import JourneyConfigError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE = DEPLOY / "systemd" / "host.example.json"


def test_host_example_is_refused_until_the_command_key_is_filled_in(tmp_path: Path) -> None:
    with pytest.raises(JourneyConfigError, match="command_keys"):
        load(EXAMPLE)
    data = json.loads(EXAMPLE.read_text())
    data["bank"]["command_keys"] = [os.urandom(32).hex()]
    filled = tmp_path / "host.json"
    filled.write_text(json.dumps(data))
    cfg = load(filled)
    assert isinstance(cfg, HostConfig) and cfg.bank.atm_id == "ATM0001"


def test_an_unknown_option_is_refused_by_name(tmp_path: Path) -> None:
    data = json.loads(EXAMPLE.read_text())
    data["bank"]["command_keys"] = [os.urandom(32).hex()]
    data["serial_prot"] = "/dev/ttyAMA0"
    bad = tmp_path / "host.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(JourneyConfigError, match="serial_prot"):
        load(bad)


def test_host_unit_starts_even_when_the_doctor_finds_a_problem() -> None:
    unit = (DEPLOY / "systemd" / "atm-host.service").read_text()
    pre = [line for line in unit.splitlines() if line.startswith("ExecStartPre=")]
    assert pre and all(line.startswith("ExecStartPre=-") for line in pre)
    assert "WatchdogSec=" in unit and "Type=notify" in unit
