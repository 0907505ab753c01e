"""Active liveness challenge: a blink or a head turn, decided from per-frame eye, yaw and face measures."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from .config import ChallengeConfig


class Challenge(Enum):
    """What the customer is asked to do."""

    BLINK = "blink"
    TURN_LEFT = "turn your head to the left"
    TURN_RIGHT = "turn your head to the right"


# What the ATM asks by default: a head turn, left or right at random. The turn is checked for the parallax
# of a 3-D head (session.py), which every flat attack in the PAD set fails; the blink is checked for lid
# motion, a lash line and a swap, but a print with the eyes cut out and the attacker's own eyes behind it
# passes it (docs/vision.md, "PAD"), so it is not asked unless configured.
DEFAULT_CHALLENGES = (Challenge.TURN_LEFT, Challenge.TURN_RIGHT)


def random_challenge(choices: tuple[Challenge, ...] = DEFAULT_CHALLENGES) -> Challenge:
    """A challenge the customer cannot predict (a replayed video has to contain the right action)."""
    return secrets.choice(choices)


class ChallengeState(Enum):
    """Progress of a challenge."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


@dataclass
class ChallengeTracker:
    """Feeds per-frame (eye openness, yaw, face height ratio) measures and decides when the challenge is met.

    Measures are relative to a baseline taken on the first frames, so a face that is not quite frontal
    or has narrow eyes is judged against itself. A blink is the openness falling below
    `blink_close_ratio` of the baseline while the face keeps its shape (height ratio within
    `blink_max_shape_change`: a photo tilted back narrows the eyes and the face alike), then rising above
    `blink_open_ratio`. Yaw sign: positive when the nose moves to the image's right, i.e. the customer
    turns to their left (the camera sees a mirror of them).
    """

    challenge: Challenge
    config: ChallengeConfig
    _openness: list[float] = field(default_factory=list[float])
    _yaw: list[float] = field(default_factory=list[float])
    _shape: list[float] = field(default_factory=list[float])
    _closed: bool = False
    state: ChallengeState = ChallengeState.PENDING

    def update(self, openness: float, yaw_deg: float, height_ratio: float = 1.0) -> ChallengeState:
        """Add one frame's measures (`height_ratio`: FaceMesh.height_ratio); returns the state after it."""
        if self.state is not ChallengeState.PENDING:
            return self.state
        self._openness.append(openness)
        self._yaw.append(yaw_deg)
        self._shape.append(height_ratio)
        n = self.config.baseline_frames
        if len(self._openness) > n:
            if self._met(n, openness, yaw_deg, height_ratio):
                self.state = ChallengeState.PASSED
            elif len(self._openness) >= self.config.max_frames:
                self.state = ChallengeState.FAILED
        return self.state

    def _met(self, n: int, openness: float, yaw: float, shape: float) -> bool:
        cfg = self.config
        if self.challenge is Challenge.BLINK:
            ref = _mean(self._openness[:n])
            steady = abs(shape / max(_mean(self._shape[:n]), 1e-9) - 1.0) <= cfg.blink_max_shape_change
            if steady and openness < cfg.blink_close_ratio * ref:
                self._closed = True
            return self._closed and openness > cfg.blink_open_ratio * ref
        delta = yaw - _mean(self._yaw[:n])
        want = 1.0 if self.challenge is Challenge.TURN_LEFT else -1.0
        return delta * want >= cfg.turn_yaw_deg


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
