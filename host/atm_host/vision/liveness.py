"""Passive liveness with the two MiniFASNet models: crop at 2.7x and 4.0x, mean softmax P(real)."""

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from .config import LivenessConfig
from .detector import Detection
from .frame import Frame
from .runtime import TfliteModel


class Verdict(Enum):
    """Passive liveness outcome; UNCERTAIN asks for the active challenge."""

    LIVE = "live"
    ATTACK = "attack"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class PassiveResult:
    """Mean P(real) of the ensemble, each model's P(real), and the verdict."""

    p_real: float
    per_model: tuple[float, ...]
    verdict: Verdict


def crop_scaled(frame: Frame, box: tuple[float, float, float, float], scale: float, size: int = 80) -> Frame:
    """The box grown by `scale` around its centre (limited to the frame, shifted inside it), resized."""
    h, w = frame.shape[:2]
    bx, by, bw, bh = box
    bw, bh = max(bw, 1.0), max(bh, 1.0)
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = bx + bw / 2, by + bh / 2
    x1, y1 = cx - nw / 2, cy - nh / 2
    x2, y2 = cx + nw / 2, cy + nh / 2
    if x1 < 0:
        x2, x1 = x2 - x1, 0.0
    if y1 < 0:
        y2, y1 = y2 - y1, 0.0
    if x2 > w - 1:
        x1, x2 = x1 - (x2 - w + 1), float(w - 1)
    if y2 > h - 1:
        y1, y2 = y1 - (y2 - h + 1), float(h - 1)
    crop = frame[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1]
    return np.asarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


class PassiveLiveness:
    """MiniFASNetV2 (crop 2.7) + MiniFASNetV1SE (crop 4.0); input BGR float 0..255, 80x80."""

    def __init__(self, models: list[tuple[TfliteModel, float]], config: LivenessConfig) -> None:
        self._models = models
        self._config = config

    def check(self, frame: Frame, face: Detection) -> PassiveResult:
        """Score `face`: LIVE above `accept`, ATTACK below `reject`, UNCERTAIN between."""
        probs: list[float] = []
        for model, scale in self._models:
            crop = crop_scaled(frame, face.box, scale).astype(np.float32)[None]
            (logits,) = model.run(crop)
            z = logits[0].astype(np.float64) - float(logits[0].max())
            soft = np.exp(z) / np.exp(z).sum()
            probs.append(float(soft[1]))
        p = sum(probs) / len(probs)
        if p >= self._config.accept:
            verdict = Verdict.LIVE
        elif p < self._config.reject:
            verdict = Verdict.ATTACK
        else:
            verdict = Verdict.UNCERTAIN
        return PassiveResult(p, tuple(probs), verdict)
