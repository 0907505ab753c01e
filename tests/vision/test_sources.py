"""Frame sources: folder, video file through cv2.VideoCapture, scene, picamera2 off the Pi."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from atm_host.vision.errors import FrameError
from atm_host.vision.scene import Optics, background
from atm_host.vision.sources import FolderSource, PiCameraSource, SceneSource, VideoCaptureSource, open_source


def test_folder_source_reads_in_order_then_ends(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 50, 3), i * 50, np.uint8))
    with open_source(f"folder:{tmp_path}") as src:
        assert [int(src.read()[0, 0, 0]) for _ in range(3)] == [0, 50, 100]
        with pytest.raises(FrameError, match="exhausted"):
            src.read()
    assert int(FolderSource(tmp_path, loop=True).read()[0, 0, 0]) == 0


def test_video_file_through_videocapture(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    with VideoCaptureSource(str(path)) as src:
        frames = [src.read() for _ in range(4)]
        assert frames[0].shape == (48, 64, 3)
        with pytest.raises(FrameError, match="no frame"):
            src.read()


def test_scene_source_is_reproducible() -> None:
    a = SceneSource(lambda i: background(Optics(seed=i)))
    b = SceneSource(lambda i: background(Optics(seed=i)))
    assert np.array_equal(a.read(), b.read()) and not np.array_equal(a.read(), background(Optics(seed=0)))


def test_bad_specs_and_missing_devices() -> None:
    with pytest.raises(FrameError, match="unknown frame source"):
        open_source("usb:0")
    with pytest.raises(FrameError, match="cannot open"):
        VideoCaptureSource("/nonexistent/clip.avi")
    with pytest.raises(FrameError, match="picamera2"):
        PiCameraSource()
