"""The command line: qr, enroll/verify and eval with its plots."""

from pathlib import Path

import cv2
import pytest
from atm_host.vision.cli import main
from atm_host.vision.scene import Optics, PhoneScene, render_faces, render_phone

from .conftest import read


def test_qr_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "phone.png"
    cv2.imwrite(str(img), render_phone(PhoneScene("hello-atm", distance_cm=25), Optics(1280, 720))[0])
    assert main(["qr", str(img)]) == 0
    assert "hello-atm" in capsys.readouterr().out


def test_enroll_and_verify_commands(
    models_ready: None, tmp_path: Path, unaligned: dict[str, list[Path]]
) -> None:
    person = next(iter(unaligned.values()))
    for i in range(2):
        frame = render_faces([(read(person[i]), 0.37 * 150, 50.0, 0.0)], Optics(1280, 720, seed=i))
        cv2.imwrite(str(tmp_path / f"{i}.png"), frame)
    tpl = tmp_path / "t.json"
    assert main(["enroll", str(tmp_path / "0.png"), "--out", str(tpl)]) == 0
    assert main(["verify", str(tmp_path / "1.png"), "--template", str(tpl)]) == 0
    assert main(["verify", str(tmp_path / "missing.png"), "--template", str(tpl)]) == 2


def test_eval_command_prints_metrics_and_writes_plots(
    models_ready: None, shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared / "data" / "faces" / "unaligned150"
    assert main(["eval", str(folder), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "AUC" in out and "EER" in out and "TAR@FAR1e-4" in out and "operating threshold" in out
    assert (tmp_path / "sface" / "heldout_roc.png").stat().st_size > 10_000
    assert "CANNOT support" in out  # 5 people, 1,210 impostor pairs: too few for 1e-4
    assert (tmp_path / "sface" / "unaligned150_hist.png").is_file()
