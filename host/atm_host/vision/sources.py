"""Frame sources behind one small interface: picamera2, cv2.VideoCapture, image folder, scene generator."""

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, cast

import cv2
import numpy as np

from .errors import FrameError
from .frame import Frame, check_frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class FrameSource(Protocol):
    """Anything that hands out BGR uint8 frames."""

    def read(self) -> Frame:
        """The next frame (FrameError when none can be had)."""
        ...

    def close(self) -> None:
        """Release the device or files."""
        ...


class _Closing:
    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PiCameraSource(_Closing):
    """Raspberry Pi camera via picamera2 (from Raspberry Pi OS: python3-picamera2, venv with
    --system-site-packages). Imported only when this source is opened."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise FrameError(
                "picamera2 is not importable: on Raspberry Pi OS `apt install python3-picamera2` and create "
                "the venv with --system-site-packages"
            ) from exc
        cam = cast(Any, Picamera2)()
        cam.configure(cam.create_video_configuration(main={"size": (width, height), "format": "RGB888"}))
        cam.start()
        self._cam = cam

    def read(self) -> Frame:
        """One frame; picamera2's RGB888 is laid out as BGR in memory, as OpenCV expects."""
        return check_frame(np.asarray(self._cam.capture_array("main"), dtype=np.uint8)[:, :, :3].copy())

    def close(self) -> None:
        """Stop the camera."""
        self._cam.stop()
        self._cam.close()


class VideoCaptureSource(_Closing):
    """A USB webcam (index) or a video file (path) through cv2.VideoCapture."""

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None) -> None:
        self._cap = cv2.VideoCapture(device)
        if not self._cap.isOpened():
            raise FrameError(f"cannot open video source {device!r}")
        if width and height:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._device = device

    def read(self) -> Frame:
        """The next frame; FrameError at the end of a file or on a camera fault."""
        ok, frame = self._cap.read()
        if not ok:
            raise FrameError(f"no frame from {self._device!r} (end of video or camera fault)")
        return check_frame(np.asarray(frame, dtype=np.uint8))

    def close(self) -> None:
        """Release the capture device."""
        self._cap.release()


class FolderSource(_Closing):
    """Images of a folder in name order, optionally looping."""

    def __init__(self, folder: Path, loop: bool = False) -> None:
        self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise FrameError(f"no images in {folder}")
        self._iter: Iterator[Path] = itertools.cycle(self._paths) if loop else iter(self._paths)

    def read(self) -> Frame:
        """The next image; FrameError when the folder is exhausted or an image is unreadable."""
        path = next(self._iter, None)
        if path is None:
            raise FrameError("image folder exhausted")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FrameError(f"cannot read {path}")
        return check_frame(np.asarray(img, dtype=np.uint8))


class SceneSource(_Closing):
    """Generated frames: `make(i)` renders frame i (see scene.py), so runs are reproducible."""

    def __init__(self, make: Callable[[int], Frame]) -> None:
        self._make = make
        self._i = 0

    def read(self) -> Frame:
        """The next generated frame."""
        frame = self._make(self._i)
        self._i += 1
        return check_frame(frame)


def open_source(spec: str) -> PiCameraSource | VideoCaptureSource | FolderSource:
    """Open a camera from a spec: 'picamera2', 'cv2:0' (webcam index), 'cv2:clip.mp4', 'folder:path'."""
    kind, _, arg = spec.partition(":")
    if kind == "picamera2":
        return PiCameraSource()
    if kind == "cv2":
        return VideoCaptureSource(int(arg) if arg.isdigit() else arg)
    if kind == "folder":
        return FolderSource(Path(arg))
    raise FrameError(f"unknown frame source {spec!r}: use picamera2, cv2:<index|file> or folder:<path>")
