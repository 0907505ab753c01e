"""iris_landmark on both eyes (crops at the face mesh's eye corners) and the eye openness it measures."""

from dataclasses import dataclass

import cv2
import numpy as np

from .frame import FloatArray, Frame
from .landmarks import FaceMesh
from .runtime import TfliteModel

SIZE = 64  # the model's input side
CROP_SCALE = 2.3  # crop side over the eye's corner-to-corner width (MediaPipe's iris graph uses 2.3)
# Face mesh (outer corner, inner corner) of the subject's right eye (image left) and left eye (image right).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)
# The model's 71 points start with the lid margins: 0-8 the lower lid from the outer corner (0) to the
# inner corner (8), 9-15 the upper lid from outer to inner; the rest are rings around the eye and the brow.
N_POINTS = 71
OUTER, INNER = 0, 8
LOWER_LID = slice(0, 9)
UPPER_LID = slice(9, 16)
GAP_AT = (0.3, 0.5, 0.7)  # where the lid gap is measured, as fractions of the way from outer to inner corner


@dataclass(frozen=True)
class EyeCrop:
    """The similarity map from a frame to one eye's 64x64 model input, and back.

    In the crop the eye line is horizontal, the outer corner on the left and the upper lid at the top; the
    model is trained on one eye (the subject's right, as the camera sees it), so the subject's left eye is
    mirrored: its crop axes (`axis`, `down`) form a left-handed frame.
    """

    centre: tuple[float, float]
    axis: tuple[float, float]  # unit vector from the outer to the inner corner, frame coordinates
    scale: float  # crop pixels per frame pixel
    mirrored: bool

    @property
    def down(self) -> tuple[float, float]:
        """Unit vector of the crop's +y (down the face) in frame coordinates."""
        ux, uy = self.axis
        return (uy, -ux) if self.mirrored else (-uy, ux)

    def matrix(self) -> FloatArray:
        """2x3 affine matrix from frame pixels to crop pixels (for cv2.warpAffine)."""
        (ux, uy), (vx, vy), (cx, cy), s = self.axis, self.down, self.centre, self.scale
        half = SIZE / 2.0
        return np.asarray(
            [
                [s * ux, s * uy, half - s * (ux * cx + uy * cy)],
                [s * vx, s * vy, half - s * (vx * cx + vy * cy)],
            ],
            dtype=np.float32,
        )

    def to_frame(self, points: FloatArray) -> FloatArray:
        """Crop pixel coordinates (n, 2) mapped back to frame pixels."""
        rel = (np.asarray(points, dtype=np.float64)[:, :2] - SIZE / 2.0) / self.scale
        axes = np.asarray([self.axis, self.down], dtype=np.float64)
        return np.asarray(rel @ axes + np.asarray(self.centre), dtype=np.float32)


def eye_crop(outer: FloatArray, inner: FloatArray, mirrored: bool) -> EyeCrop:
    """The crop around an eye given its two corners in frame pixels (side CROP_SCALE x their distance)."""
    o = np.asarray(outer, dtype=np.float64)[:2]
    i = np.asarray(inner, dtype=np.float64)[:2]
    width = max(float(np.linalg.norm(i - o)), 1e-3)
    u = (i - o) / width
    c = (o + i) / 2.0
    return EyeCrop(
        (float(c[0]), float(c[1])), (float(u[0]), float(u[1])), SIZE / (CROP_SCALE * width), mirrored
    )


def lid_gap(contour: FloatArray) -> float:
    """One eye's openness from its 71 points in crop coordinates: the lid gap over the corner distance.

    The gap is the distance between the upper and the lower lid across the line between the model's two
    corners, averaged at GAP_AT along it; 0 when the lids meet (never negative). Open eyes read about
    0.2-0.35, shut eyes under 0.1 (docs/vision.md).
    """
    pts = np.asarray(contour, dtype=np.float64)[:, :2]
    o, i = pts[OUTER], pts[INNER]
    width = float(np.linalg.norm(i - o))
    if width < 1e-6:
        return 0.0
    u = (i - o) / width
    n = np.asarray([-u[1], u[0]])  # towards the lower lid in the (upright) crop
    rel = pts - o

    def lid(idx: slice, with_corners: bool) -> tuple[FloatArray, FloatArray]:
        chain = rel[idx]
        if with_corners:
            chain = np.concatenate([rel[OUTER : OUTER + 1], chain, rel[INNER : INNER + 1]])
        t, d = chain @ u, chain @ n
        order = np.argsort(t)
        return np.asarray(t[order], np.float32), np.asarray(d[order], np.float32)

    lo_t, lo_d = lid(LOWER_LID, False)
    up_t, up_d = lid(UPPER_LID, True)
    at = np.asarray(GAP_AT, dtype=np.float64) * width
    gaps = np.interp(at, lo_t, lo_d) - np.interp(at, up_t, up_d)
    return max(0.0, float(np.mean(gaps)) / width)


@dataclass(frozen=True)
class EyeContours:
    """iris_landmark's 71 points of each eye in frame pixels, and each eye's openness (`lid_gap`)."""

    right: FloatArray
    left: FloatArray
    right_openness: float
    left_openness: float

    def openness(self) -> float:
        """Mean of both eyes: a blink closes both; one eye measured badly moves it only half as much."""
        return (self.right_openness + self.left_openness) / 2.0


class IrisLandmarker:
    """Runs iris_landmark on the two eye crops of a face mesh (RGB, [0, 1], 64x64)."""

    def __init__(self, model: TfliteModel) -> None:
        self._model = model
        self._input = np.zeros((1, SIZE, SIZE, 3), dtype=np.float32)

    def crops(self, mesh: FaceMesh) -> tuple[EyeCrop, EyeCrop]:
        """The right and the left eye's crops (the left mirrored) from the mesh's eye corners."""
        p = mesh.points
        right = eye_crop(p[RIGHT_EYE_CORNERS[0]], p[RIGHT_EYE_CORNERS[1]], mirrored=False)
        left = eye_crop(p[LEFT_EYE_CORNERS[0]], p[LEFT_EYE_CORNERS[1]], mirrored=True)
        return right, left

    def contour(self, frame: Frame, crop: EyeCrop) -> FloatArray:
        """The 71 eye points of one crop, in crop pixels (the outer corner on the left, upright)."""
        patch = cv2.warpAffine(
            frame, crop.matrix(), (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        self._input[0] = np.asarray(patch, dtype=np.uint8)[:, :, ::-1].astype(np.float32) / 255.0
        points, _iris = self._model.run(self._input)
        return np.asarray(points.reshape(N_POINTS, 3)[:, :2], dtype=np.float32)

    def eyes(self, frame: Frame, mesh: FaceMesh) -> EyeContours:
        """Both eyes' contours (frame pixels) and openness for the face `mesh` found in `frame`."""
        out: list[tuple[FloatArray, float]] = []
        for crop in self.crops(mesh):
            pts = self.contour(frame, crop)
            out.append((crop.to_frame(pts), lid_gap(pts)))
        (right, r_open), (left, l_open) = out
        return EyeContours(right, left, r_open, l_open)
