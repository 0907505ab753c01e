"""Five-point alignment of a face to the 112x112 ArcFace template (similarity transform)."""

import cv2
import numpy as np

from .detector import Detection
from .frame import FloatArray, Frame

# ArcFace 112x112 template: right eye, left eye (as seen: image left, image right), nose tip, mouth
# centre (mean of the two mouth corners of the 5-point template).
TEMPLATE_112 = np.asarray(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [56.1396, 92.2848]], dtype=np.float32
)


def similarity_transform(src: FloatArray, dst: FloatArray) -> FloatArray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src points onto dst (2x3)."""
    src64 = src.astype(np.float64)
    dst64 = dst.astype(np.float64)
    mu_s, mu_d = src64.mean(axis=0), dst64.mean(axis=0)
    s, d = src64 - mu_s, dst64 - mu_d
    cov = d.T @ s / len(src64)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    var_s = (s**2).sum() / len(src64)
    scale = float(np.trace(np.diag(sig) @ sign) / var_s)
    t = mu_d - scale * rot @ mu_s
    out = np.zeros((2, 3), dtype=np.float32)
    out[:, :2] = scale * rot
    out[:, 2] = t
    return out


def align_face(frame: Frame, face: Detection) -> Frame:
    """The face warped onto the 112x112 template using its eyes, nose tip and mouth centre."""
    matrix = similarity_transform(face.keypoints[:4], TEMPLATE_112)
    warped = cv2.warpAffine(
        frame, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(warped, dtype=np.uint8)
