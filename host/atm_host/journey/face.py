"""FACE and CHALLENGE: good, live frames of one face into the probe the bank compares."""

from collections.abc import Iterator

import numpy as np
from atm_msg.schemas import FaceProbe

from atm_host.vision.challenge import Challenge, ChallengeState, random_challenge
from atm_host.vision.errors import MultipleFacesError, NoFaceError, QualityError, VisionError
from atm_host.vision.frame import Frame
from atm_host.vision.liveness import PassiveResult, Verdict
from atm_host.vision.pipeline import FaceSample

from . import messages as msg
from .core import TEMPLATE_VERSION, JourneyCore, log
from .errors import Refused, StepTimeout
from .records import Ctx
from .states import State

Probe = tuple[np.ndarray, float, float]  # embedding, p_real, quality of one frame


class FaceMixin(JourneyCore):
    """Captures the probe face, with the active challenge when passive liveness cannot vouch."""

    def _face(self, ctx: Ctx) -> FaceProbe:
        """Good, live frames of one face -> the averaged probe; guidance on screen until then."""
        self._enter(State.FACE)
        good: list[tuple[np.ndarray, float, float]] = []  # embedding, p_real, quality
        unsure: list[tuple[np.ndarray, float, float]] = []
        attacks = 0
        first_seen = 0.0
        box: tuple[float, float, float, float] | None = None
        while True:
            self._check_deadline()
            frame, t = self._read_frame()
            seen = self._sample(frame, good, unsure)
            if seen is None:
                continue
            sample, live = seen
            if not good and not unsure:
                first_seen = t
            entry = (sample.embedding, live.p_real, sample.quality.score)
            if live.verdict is Verdict.ATTACK:
                attacks += 1
                good.clear()
                if attacks >= self.cfg.attack_frames:
                    self.counters["attacks"] += 1
                    self._attack_event(ctx, live.p_real)
                    raise Refused("attack", f"presentation attack suspected (p_real {live.p_real:.3f})")
                continue
            box = sample.detection.box
            if live.verdict is Verdict.UNCERTAIN or not self.pipe.config.liveness.passive_skips_challenge:
                unsure.append(entry)  # passive liveness alone cannot vouch (docs/vision.md, "PAD")
                if len(unsure) >= self.cfg.face_frames:
                    return self._challenge(ctx, unsure, first_seen, box)
                continue
            good.append(entry)
            if len(good) >= self.cfg.face_frames:
                ctx.timings.mark("face_seen", first_seen)
                ctx.timings.mark("face_ok", self.clock())
                return self._probe(good, None)

    def _sample(
        self, frame: Frame, good: list[Probe], unsure: list[Probe]
    ) -> tuple[FaceSample, PassiveResult] | None:
        """One frame's face and passive liveness; None (guidance shown) when it has no usable face."""
        try:
            sample = self.pipe.sample(frame)
            return sample, self.pipe.check_liveness(frame, sample.detection)
        except NoFaceError:
            self._guide(["no_face"])
        except MultipleFacesError:
            self._guide(["many_faces"])
        except QualityError as exc:
            self._guide(exc.reasons)
        except VisionError as exc:
            log.warning("face frame failed: %s", exc)
            return None
        good.clear()
        unsure.clear()  # the probe frames must be one face in view without a break
        return None

    def _probe(self, frames: list[tuple[np.ndarray, float, float]], liveness: float | None) -> FaceProbe:
        emb = np.mean(np.stack([e for e, _, _ in frames]), axis=0)
        emb = emb / max(float(np.linalg.norm(emb)), 1e-9)
        return FaceProbe(
            model_id=self.pipe.config.embedder,
            template_version=TEMPLATE_VERSION,
            embedding=[float(x) for x in emb],
            liveness=min(p for _, p, _ in frames) if liveness is None else liveness,
            quality=min(q for _, _, q in frames),
        )

    def _guide(self, reasons: list[str]) -> None:
        self._update(guidance=msg.guidance(reasons).as_dict())

    def _attack_event(self, ctx: Ctx, p_real: float) -> None:
        tok = ctx.token
        detail: dict[str, str | int] = {"p_real_milli": int(p_real * 1000)}
        if tok is not None:
            detail.update(customer=tok.customer_id, account=tok.account_id)
        self.bank.send_event("presentation_attack", "alarm", detail)

    def _challenge(
        self,
        ctx: Ctx,
        unsure: list[tuple[np.ndarray, float, float]],
        first: float,
        box: tuple[float, float, float, float] | None = None,
    ) -> FaceProbe:
        """Passive liveness is unsure: ask for a blink or a head turn (face mesh and eyes across frames)."""
        challenge = random_challenge()
        key = {Challenge.BLINK: "blink", Challenge.TURN_LEFT: "turn_left", Challenge.TURN_RIGHT: "turn_right"}
        text = msg.GUIDANCE[key.get(challenge, "blink")]
        self._enter(State.CHALLENGE, prompt=text.as_dict())

        def frames() -> Iterator[Frame]:
            while True:
                self._check_deadline()
                yield self._read_frame()[0]

        try:  # the same face must do the challenge: tracked and re-identified on every frame
            out = self.pipe.run_challenge(frames(), challenge, [e for e, _, _ in unsure], box)
            state, why = out.state, out.reason
        except StepTimeout:
            out, state, why = None, ChallengeState.FAILED, "not done in time"
        if state is not ChallengeState.PASSED or out is None:
            self.counters["attacks"] += 1
            self._attack_event(ctx, min(p for _, p, _ in unsure))
            raise Refused("attack", f"active liveness challenge not passed: {why}")
        ctx.timings.mark("face_seen", first)
        ctx.timings.mark("face_ok", self.clock())
        # A passed challenge vouches for liveness at the acceptance level (documented in docs/journey.md).
        accept = self.pipe.config.liveness.accept
        during = [(e, accept, q) for e, q in out.probe]  # the verified face is the one that did it
        return self._probe(unsure + during, max(accept, min(p for _, p, _ in unsure)))
