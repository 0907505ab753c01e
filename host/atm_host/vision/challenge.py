"""Active liveness challenge: a blink or a head turn, measured on face_landmark meshes across frames."""

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


def random_challenge() -> Challenge:
    """A challenge the customer cannot predict (a replayed video has to contain the right action)."""
    return secrets.choice(list(Challenge))


class ChallengeState(Enum):
    """Progress of a challenge."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


@dataclass
class ChallengeTracker:
    """Feeds per-frame (eye openness, yaw) measurements and decides when the challenge is met.

    Measures are relative to a baseline taken on the first frames, so a face that is not quite frontal
    or has narrow eyes is judged against itself. Yaw sign: positive when the nose moves to the image's
    right, i.e. the customer turns to their left (the camera sees a mirror of them).
    """

    challenge: Challenge
    config: ChallengeConfig
    _openness: list[float] = field(default_factory=list[float])
    _yaw: list[float] = field(default_factory=list[float])
    _closed: bool = False
    state: ChallengeState = ChallengeState.PENDING

    def update(self, openness: float, yaw_deg: float) -> ChallengeState:
        """Add one frame's measures; returns the state after it."""
        if self.state is not ChallengeState.PENDING:
            return self.state
        self._openness.append(openness)
        self._yaw.append(yaw_deg)
        n = self.config.baseline_frames
        if len(self._openness) > n:
            if self._met(self._openness[:n], self._yaw[:n], openness, yaw_deg):
                self.state = ChallengeState.PASSED
            elif len(self._openness) >= self.config.max_frames:
                self.state = ChallengeState.FAILED
        return self.state

    def _met(
        self, base_open: Sequence[float], base_yaw: Sequence[float], openness: float, yaw: float
    ) -> bool:
        if self.challenge is Challenge.BLINK:
            ref = sum(base_open) / len(base_open)
            if openness < self.config.blink_close_ratio * ref:
                self._closed = True
            return self._closed and openness > self.config.blink_open_ratio * ref
        delta = yaw - sum(base_yaw) / len(base_yaw)
        want = 1.0 if self.challenge is Challenge.TURN_LEFT else -1.0
        return delta * want >= self.config.turn_yaw_deg
