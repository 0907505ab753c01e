"""IDLE: read frames until a phone's withdrawal QR appears."""

from atm_host.vision.qr import decode

from .core import QR_PREFIX, SAME_TOKEN_IGNORE_S, JourneyCore
from .states import State


class IdleMixin(JourneyCore):
    """Waits in IDLE for a new withdrawal QR."""

    def _idle_scan(self) -> tuple[str, float, float] | None:
        """Read frames for up to idle_check_s; a withdrawal QR -> (text, seen at, decoded at)."""
        self._cancel.clear()
        with self._cond:
            self._inputs.clear()
        self._enter(State.IDLE, causes=(), causes_text=())
        end = self.clock() + self.cfg.timeouts.idle_check_s
        while self.clock() < end and not self._stop.is_set():
            frame, seen = self._read_frame()
            result = decode(frame)
            now = self.clock()
            for code in result.codes:
                text = code.text.strip()
                if not text.startswith(QR_PREFIX):
                    continue
                if now - self._recent_tokens.get(text, -1e9) < SAME_TOKEN_IGNORE_S:
                    continue
                self._recent_tokens = {t: s for t, s in self._recent_tokens.items() if now - s < 600}
                self._recent_tokens[text] = now
                return text, seen, now
        return None
