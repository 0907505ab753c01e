"""face_landmark (468-point mesh) on a detected face, and the eye-openness and yaw measured from it."""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Detection
from .frame import FloatArray, Frame
from .runtime import TfliteModel

_SIZE = 192
_ROI_SCALE = 1.5  # the mesh model expects the face box grown by half around its centre
# Mesh indices: (upper lid, lower lid, outer corner, inner corner) of each eye; cheeks; nose tip.
_EYES = ((159, 145, 33, 133), (386, 374, 263, 362))
_CHEEK_R, _CHEEK_L, _NOSE = 234, 454, 1
_UPPER_LIP = 0  # top of the upper lip (moves with the skull, not the jaw)


@dataclass(frozen=True)
class FaceMesh:
    """468 landmarks in frame pixels (x, y, z) and the presence probability."""

    points: FloatArray
    presence: float

    def eye_openness(self) -> float:
        """Mean eye aspect ratio (lid gap / eye width) of both eyes.

        Open eyes measured 0.3-0.45 here; a blink drops it by half or more.
        """
        ratios: list[float] = []
        for up, low, outer, inner in _EYES:
            gap = float(np.linalg.norm(self.points[up, :2] - self.points[low, :2]))
            width = float(np.linalg.norm(self.points[outer, :2] - self.points[inner, :2]))
            ratios.append(gap / max(width, 1e-6))
        return sum(ratios) / len(ratios)

    def height_ratio(self) -> float:
        """The face's height over its width: eye line (mean of the 4 eye corners) to the upper lip over
        cheek to cheek. Constant through a blink (within 6% on renders); a photo tilted back shrinks it."""
        corners = [i for eye in _EYES for i in eye[2:]]
        eye_line = self.points[corners, :2].mean(axis=0)
        height = float(np.linalg.norm(self.points[_UPPER_LIP, :2] - eye_line))
        width = float(np.linalg.norm(self.points[_CHEEK_L, :2] - self.points[_CHEEK_R, :2]))
        return height / max(width, 1e-6)

    def yaw_deg(self) -> float:
        """Head turn from the nose position between the cheeks: 0 frontal, sign = turn direction in image."""
        xr, xl, xn = (float(self.points[i, 0]) for i in (_CHEEK_R, _CHEEK_L, _NOSE))
        span = xl - xr
        ratio = (xn - xr) / span if abs(span) > 1e-6 else 0.5
        return math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * ratio - 1.0))))


class FaceLandmarker:
    """Runs face_landmark on a square crop around a detection (RGB, [0, 1], 192x192)."""

    def __init__(self, model: TfliteModel) -> None:
        self._model = model
        self._input = np.zeros((1, _SIZE, _SIZE, 3), dtype=np.float32)

    def mesh(self, frame: Frame, face: Detection) -> FaceMesh:
        """The face mesh of `face` in frame coordinates."""
        x, y, w, h = face.box
        side = max(w, h) * _ROI_SCALE
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        s = _SIZE / side
        matrix = np.asarray([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], dtype=np.float32)
        crop = np.asarray(
            cv2.warpAffine(
                frame, matrix, (_SIZE, _SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            ),
            dtype=np.uint8,
        )
        self._input[0] = crop[:, :, ::-1].astype(np.float32) / 255.0
        coords, flag = self._model.run(self._input)
        pts = coords.reshape(468, 3).copy()
        pts[:, 0] = pts[:, 0] / s + x0
        pts[:, 1] = pts[:, 1] / s + y0
        pts[:, 2] = pts[:, 2] / s
        presence = 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, float(flag.reshape(-1)[0])))))
        return FaceMesh(pts.astype(np.float32), presence)
