"""QR token decoding with zxing-cpp: payload bytes, where each code is, whether it was inverted, timing."""

import time
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import zxingcpp

from .frame import Frame, check_frame

Point = tuple[int, int]


@dataclass(frozen=True)
class QrCode:
    """One decoded code: raw payload, its text, corners (top-left, top-right, bottom-right, bottom-left)."""

    payload: bytes
    text: str
    corners: tuple[Point, Point, Point, Point]
    version: int
    inverted: bool


@dataclass(frozen=True)
class QrResult:
    """All codes found in a frame and the decode time in milliseconds (grey conversion included)."""

    codes: list[QrCode]
    ms: float


def _grey(frame: Frame) -> Frame:
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def _inverted(grey: Frame, corners: tuple[Point, ...], version: int) -> bool:
    """True if the finder pattern is lighter than the quiet zone just outside it (dark-mode code)."""
    if version <= 0:
        return False
    n = 17 + 4 * version
    tl, tr, _, bl = (np.asarray(c, dtype=np.float64) for c in corners)
    ex, ey = (tr - tl) / n, (bl - tl) / n
    centre = tl + 3.5 * ex + 3.5 * ey
    outside = tl - 1.0 * ex - 1.0 * ey
    h, w = grey.shape[:2]

    def at(p: np.ndarray) -> float:
        x, y = int(np.clip(p[0], 0, w - 1)), int(np.clip(p[1], 0, h - 1))
        return float(grey[y, x])

    return at(centre) > at(outside)


def decode(frame: Frame) -> QrResult:
    """Every QR code in a BGR frame (normal and dark-mode), with positions."""
    frame = check_frame(frame)
    t0 = time.perf_counter()
    grey = _grey(frame)
    found = zxingcpp.read_barcodes(
        grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode), try_invert=True
    )
    ms = (time.perf_counter() - t0) * 1000.0
    codes: list[QrCode] = []
    for b in found:
        if not b.valid:
            continue
        pos = b.position
        corners = tuple(
            (int(p.x), int(p.y)) for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
        )
        extra = cast(dict[str, object], b.extra)  # pyright: ignore[reportUnknownMemberType]
        raw_version = extra.get("Version", 0)
        version = (
            int(raw_version) if isinstance(raw_version, (int, str)) and str(raw_version).isdigit() else 0
        )
        quad = (corners[0], corners[1], corners[2], corners[3])
        codes.append(QrCode(bytes(b.bytes), b.text, quad, version, _inverted(grey, quad, version)))
    return QrResult(codes, ms)
