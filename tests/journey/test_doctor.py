"""The on-site check command against a simulated board, a real broker, the models and a fake clock."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from atm_host import doctor
from atm_host.vision.config import VisionConfig
from atm_host.vision.paths import MANIFEST_PATH
from atm_sim.board import SimBoard
from atm_tools.mosquitto import Mosquitto, find_mosquitto, free_port


def test_unprovisioned_then_provisioned_board(tmp_path: Path) -> None:
    from atm_host.link import DispenserClient

    with SimBoard(workdir=tmp_path / "board") as board:
        checks = {c.name: c for c in doctor.check_dispenser(board.port)}
        assert checks["serial port"].level == "OK"
        assert checks["mcu firmware"].level == "OK" and "device" in checks["mcu firmware"].detail
        assert checks["mcu key"].level == "FAIL" and "PROVISION" in checks["mcu key"].detail
        with DispenserClient.connect(board.port, timeout=10) as client:
            client.provision(bytes(range(32)))
        assert {c.name: c for c in doctor.check_dispenser(board.port)}["mcu key"].level == "OK"


def test_missing_serial_port() -> None:
    (c,) = doctor.check_dispenser("/dev/ttyDOESNOTEXIST")
    assert c.level == "FAIL" and "does not exist" in c.detail


def test_broker_reachable_and_not(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto not installed (apt-get install mosquitto)")
    with Mosquitto(tmp_path / "broker") as broker:
        assert doctor.check_broker("127.0.0.1", broker.port, None).level == "OK"
    assert doctor.check_broker("127.0.0.1", free_port(), None, timeout_s=1).level == "FAIL"


def test_models_verified_and_a_tampered_one_caught(tmp_path: Path) -> None:
    checks = doctor.check_models(VisionConfig())
    assert checks and all(c.level == "OK" for c in checks), checks
    manifest = json.loads(MANIFEST_PATH.read_text())
    manifest["models"]["sface"]["sha256"] = "0" * 64
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(manifest))
    checks = {c.name: c for c in doctor.check_models(VisionConfig(manifest=bad))}
    assert checks["model sface"].level == "FAIL" and "MISMATCH" in checks["model sface"].detail
    assert checks["model blazeface_short_range"].level == "OK"


def test_clock_never_set_fails() -> None:
    assert doctor.check_clock(lambda: 86400.0).level == "FAIL"
    assert doctor.check_clock().level in ("OK", "WARN", "FAIL")


def test_camera_from_a_folder_and_main_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((720, 1280, 3), np.uint8))
    assert doctor.check_camera(f"folder:{folder}").level == "OK"
    assert doctor.check_camera(f"folder:{tmp_path / 'none'}").level == "FAIL"
    argv = ["--camera", "none", "--port", "/dev/ttyDOESNOTEXIST", "--broker-port", str(free_port())]
    rc = doctor.main(argv)
    out = capsys.readouterr().out
    assert rc == 1 and "serial port" in out and "check(s) failed" in out
