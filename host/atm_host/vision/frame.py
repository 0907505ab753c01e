"""Frame type and validation: frames are BGR uint8 arrays of shape (height, width, 3)."""

from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .errors import FrameError

Frame = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


def check_frame(frame: object) -> Frame:
    """Return `frame` if it is a non-empty BGR uint8 image, else raise FrameError saying what is wrong."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    arr = cast(npt.NDArray[Any], frame)
    if arr.size == 0:
        raise FrameError("empty frame (no pixels): is the camera connected?")
    if arr.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise FrameError(f"frame must be HxWx3 BGR, got shape {arr.shape}")
    if arr.shape[0] < 32 or arr.shape[1] < 32:
        raise FrameError(f"frame too small: {arr.shape[1]}x{arr.shape[0]}")
    return arr
