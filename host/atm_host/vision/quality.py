"""Quality gate: distance, pose, sharpness, exposure and framing, each failure with an actionable message."""

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .config import QualityConfig
from .detector import Detection
from .errors import QualityError
from .frame import Frame

COME_CLOSER = "come closer"
STEP_BACK = "step back a little"
LOOK_AT_CAMERA = "look straight at the camera"
HEAD_STRAIGHT = "keep your head straight"
HOLD_STILL = "hold still"
TOO_DARK = "the light is too dim: move into the light"
TOO_BRIGHT = "too much light on your face: step out of the glare"
CENTRE = "move to the centre of the screen"

_FRONTAL_NOSE = 0.49  # nose between eye line (0) and mouth (1) on the ArcFace template


@dataclass(frozen=True)
class QualityReport:
    """Measured quality of one face; `reasons` is empty when it passes; `score` is 0..1."""

    distance_cm: float
    yaw_deg: float
    pitch_offset: float
    roll_deg: float
    sharpness: float
    brightness: float
    clipped: float
    score: float
    reasons: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        """True when the face passed every check."""
        return not self.reasons


def focal_px(frame_width: int, hfov_deg: float) -> float:
    """Focal length in pixels of a camera with horizontal field of view `hfov_deg`."""
    return (frame_width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def head_pose(face: Detection) -> tuple[float, float, float]:
    """Rough (yaw degrees, pitch offset, roll degrees) from the 6 BlazeFace keypoints."""
    kp = face.keypoints
    r_eye, l_eye, nose, mouth, r_ear, l_ear = kp[0], kp[1], kp[2], kp[3], kp[4], kp[5]
    span = float(l_ear[0] - r_ear[0])
    ratio = float(nose[0] - r_ear[0]) / span if abs(span) > 1e-6 else 0.5
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * ratio - 1.0))))
    eye_mid = (r_eye + l_eye) / 2.0
    vertical = float(mouth[1] - eye_mid[1])
    pitch = float(nose[1] - eye_mid[1]) / vertical - _FRONTAL_NOSE if abs(vertical) > 1e-6 else 1.0
    roll = math.degrees(math.atan2(float(l_eye[1] - r_eye[1]), float(l_eye[0] - r_eye[0])))
    return yaw, pitch, roll


def assess(frame: Frame, face: Detection, aligned: Frame, cfg: QualityConfig) -> QualityReport:
    """Measure `face` (with its aligned crop) against the limits in `cfg`."""
    h, w = frame.shape[:2]
    reasons: list[str] = []
    yaw, pitch, roll = head_pose(face)
    eye_px = face.eye_distance / max(math.cos(math.radians(min(abs(yaw), 60.0))), 0.5)
    distance = focal_px(w, cfg.camera_hfov_deg) * cfg.interocular_cm / max(eye_px, 1e-6)
    if cfg.check_distance:
        if distance > cfg.max_distance_cm:
            reasons.append(COME_CLOSER)
        elif distance < cfg.min_distance_cm:
            reasons.append(STEP_BACK)
    x, y, bw, bh = face.box
    mx, my = cfg.edge_margin * w, cfg.edge_margin * h
    if x < mx or y < my or x + bw > w - mx or y + bh > h - my:
        reasons.append(CENTRE)
    if abs(yaw) > cfg.max_yaw_deg or abs(pitch) > cfg.max_pitch_offset:
        reasons.append(LOOK_AT_CAMERA)
    if abs(roll) > cfg.max_roll_deg:
        reasons.append(HEAD_STRAIGHT)
    grey = np.asarray(cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    inner = grey[24:104, 20:92]
    sharp = float(np.asarray(cv2.Laplacian(inner, cv2.CV_64F), dtype=np.float64).var())
    bright = float(inner.mean())
    clipped = float((inner >= 250).mean())
    if sharp < cfg.min_sharpness:
        reasons.append(HOLD_STILL)
    if bright < cfg.min_brightness:
        reasons.append(TOO_DARK)
    elif bright > cfg.max_brightness or clipped > cfg.max_clipped_fraction:
        reasons.append(TOO_BRIGHT)
    parts = [
        min(1.0, sharp / (4.0 * max(cfg.min_sharpness, 1e-6))),
        1.0 - min(1.0, abs(yaw) / 90.0),
        1.0 - min(1.0, abs(bright - 128.0) / 128.0),
        1.0 - min(1.0, clipped * 4.0),
        face.score,
    ]
    score = float(np.prod(np.asarray(parts, dtype=np.float64)) ** (1.0 / len(parts)))
    return QualityReport(distance, yaw, pitch, roll, sharp, bright, clipped, score, reasons)


def require(report: QualityReport) -> QualityReport:
    """`report` if it passed, else QualityError carrying the customer-facing reasons."""
    if report.reasons:
        raise QualityError(list(dict.fromkeys(report.reasons)))
    return report
