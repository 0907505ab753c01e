"""One customer's face through the active challenge: tracked, re-identified and checked on every frame.

`FaceSession` takes the embeddings of the frames seen before the challenge (the reference) and then,
frame by frame until the challenge is met or fails:
- **continuity**: exactly one face in every frame (no frame without it, no second face), its box moving
  at most `max_jump` of its width per frame, its embedding (SFace, every frame) at least
  `min_similarity` to the reference and `min_step_similarity` to the previous frame, and the whole face
  (the aligned crop without the eye band) correlated with the previous frame (a photo swapped in breaks
  it);
- **turn**: face_landmark's yaw changes by `ChallengeConfig.turn_yaw_deg` the asked way AND the face's
  pixels show the parallax of a 3-D head: points tracked by optical flow from the first frame move, after
  the smooth part of their motion is taken off, in proportion to the face's relief (nose tip in front of
  the cheeks). A flat photo shifted, scaled or warped in 2-D has no such parallax (`parallax_deg`);
- **blink**: the eye openness (iris_landmark) falls below `blink_close_ratio` of the baseline with the
  face keeping its shape and rises again, AND it moves like a lid: a frame part-way between open and shut
  next to the closure (a photo swapped for an eyes-closed one jumps), a dark lash line where the lids
  meet (a skin-coloured flap has none) and the skin around the eye (brow, under the eye) unchanged.
The probe for verification is built from the challenge's own frames that pass the quality gate, so the
face that did the challenge is the face that is verified.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from .align import align_face
from .challenge import Challenge, ChallengeState, ChallengeTracker
from .detector import Detection
from .frame import FloatArray, Frame, check_frame
from .iris import SIZE as EYE_SIZE
from .iris import EyeCrop, eye_crop
from .landmarks import FaceMesh
from .quality import assess

if TYPE_CHECKING:
    from .pipeline import FacePipeline

BoolArray = npt.NDArray[np.bool_]
# face_landmark points tracked for the parallax (every second point of the mesh).
_TRACK = np.arange(0, 468, 2)
_EYE_CORNERS = ((33, 133, False), (263, 362, True))  # (outer, inner, mirrored) as iris.py crops them
_EYE_BAND = (36, 66)  # rows of the aligned 112x112 face holding the eyes (left out of the face check)


class SessionConfig(BaseModel):
    """Limits of the challenge's continuity and presentation-attack checks (docs/vision.md, "PAD")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_similarity: float = Field(
        default=0.30,
        ge=-1.0,
        le=1.0,
        description="Each challenge frame's embedding against the reference (mean of the frames before), "
        "turned frames: a real head turned 35 degrees loses more similarity than a render does.",
    )
    min_frontal_similarity: float = Field(
        default=0.60,
        ge=-1.0,
        le=1.0,
        description="The same for frames facing the camera (yaw within probe_max_yaw_deg of the start): "
        "the same person scored >= 0.79 on every challenge frame of the dev renders, other dev people "
        "at most 0.21 (the verification threshold itself is ~0.58).",
    )
    min_step_similarity: float = Field(
        default=0.45, ge=-1.0, le=1.0, description="Embedding against the previous frame's."
    )
    max_jump: float = Field(
        default=0.35, gt=0.0, description="Largest move of the face box's centre per frame, in box widths."
    )
    max_size_step: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Largest change of the box width per frame (fraction)."
    )
    second_face_ratio: float = Field(
        default=0.4,
        gt=0.0,
        le=1.0,
        description="Any other face at least this fraction of the customer's width fails the challenge.",
    )
    min_face_ncc: float = Field(
        default=0.80,
        ge=-1.0,
        le=1.0,
        description="Blink: correlation of the aligned face (eye band left out) with the previous frame's "
        "(the head stays still; a turn is followed by optical flow instead).",
    )
    parallax_deg: float = Field(
        default=10.0,
        gt=0.0,
        description="Turn: the rotation the pixel parallax shows, the asked way (asin of the flow's "
        "slope on the face's relief; 3-D renders turned 35 degrees: 14-35 at 720p, 7-31 at 640x480; "
        "2-D warps and screens: -5 to 9.5).",
    )
    parallax_corr: float = Field(
        default=0.35,
        ge=0.0,
        le=1.0,
        description="Turn: correlation of the flow with the face's relief, the asked way (3-D renders "
        "0.64-0.92 at 720p, 0.40-0.76 at 640x480; 2-D warps at most 0.46, and then under 8 degrees).",
    )
    min_flow_kept: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="Turn: fraction of the tracked points that must survive each frame (a swap loses them).",
    )
    min_tracked: int = Field(default=60, ge=10, description="Turn: points the optical flow must keep.")
    min_lash_contrast: float = Field(
        default=0.12,
        ge=0.0,
        description="Blink: darkness of the line where the lids meet against the lid skin, shut eyes.",
    )
    min_ring_ncc: float = Field(
        default=0.6,
        ge=-1.0,
        le=1.0,
        description="Blink: correlation of the skin around each eye (brow, under the eye) with the "
        "open-eye baseline while the eyes are shut (a flap over the eyes covers it).",
    )
    lid_band: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.5,
        description="Blink: a part-closed frame lies at least this fraction of the way from open to "
        "shut and from shut to open; one is needed next to the closure (lid motion, not a swap).",
    )
    probe_max_yaw_deg: float = Field(
        default=12.0,
        gt=0.0,
        description="Challenge frames used for the probe: at most this yaw off the baseline.",
    )


@dataclass(frozen=True)
class ChallengeOutcome:
    """How a challenge ended: state, why it failed, and the probe frames it yields (embedding, quality)."""

    state: ChallengeState
    reason: str = ""
    probe: tuple[tuple[FloatArray, float], ...] = ()
    frames: int = 0
    min_similarity: float = 1.0
    parallax_deg: float = 0.0

    @property
    def passed(self) -> bool:
        """The challenge was met by the same face throughout."""
        return self.state is ChallengeState.PASSED


def _ncc(a: FloatArray, b: FloatArray) -> float:
    x = a.astype(np.float64).ravel() - float(a.mean())
    y = b.astype(np.float64).ravel() - float(b.mean())
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 1e-9 else 0.0


F64 = npt.NDArray[np.float64]


def _poly(x: "F64", y: "F64", deg: int = 3) -> "F64":
    cols = [x**i * y**j for i in range(deg + 1) for j in range(deg + 1 - i)]
    return np.asarray(np.stack(cols, axis=1), dtype=np.float64)


def _detrend(a: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`v` less its least-squares fit on the columns of `a`."""
    coef = np.asarray(np.linalg.lstsq(a, v, rcond=None)[0], dtype=np.float64)
    return np.asarray(v - a @ coef, dtype=np.float64)


def parallax(points0: FloatArray, tracked: FloatArray, ok: BoolArray) -> tuple[float, float]:
    """The rotation (degrees, sign = image direction) the tracked points' parallax shows, and how
    consistently they show it (correlation of motion with depth, same sign as the angle).

    `points0`: (n, 3) mesh points (x, y, z) of the first frame; `tracked`: (n, 2) where optical flow
    found them now; `ok`: which were tracked. The x motion and the depth, both in face widths, each have
    their smooth part (a cubic in x, y) taken off; the slope of motion on depth is sin(yaw) for a rigid
    3-D head and about 0 for any smooth 2-D warp of a flat picture.
    """
    p = np.asarray(points0, dtype=np.float64)[ok]
    q = np.asarray(tracked, dtype=np.float64)[ok]
    if len(p) < 20:
        return 0.0, 0.0
    width = max(float(np.ptp(p[:, 0])), 1e-6)
    c = p[:, :2].mean(axis=0)
    x, y = (p[:, 0] - c[0]) / width, (p[:, 1] - c[1]) / width
    a = _poly(np.asarray(x, np.float64), np.asarray(y, np.float64))
    zr = _detrend(a, np.asarray(-p[:, 2] / width, np.float64))
    er = _detrend(a, np.asarray((q[:, 0] - p[:, 0]) / width, np.float64))
    zz, ee = float(zr @ zr), float(er @ er)
    if zz < 1e-12 or ee < 1e-12:
        return 0.0, 0.0
    slope = float(zr @ er) / zz
    corr = float(zr @ er) / math.sqrt(zz * ee)
    return math.degrees(math.asin(max(-1.0, min(1.0, slope)))), corr


def parallax_deg(points0: FloatArray, tracked: FloatArray, ok: BoolArray) -> float:
    """`parallax`'s angle alone."""
    return parallax(points0, tracked, ok)[0]


def _eye_patch(frame: Frame, crop: EyeCrop) -> FloatArray:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    patch = cv2.warpAffine(
        grey, crop.matrix(), (EYE_SIZE, EYE_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(patch, dtype=np.float32)


def eye_patches(frame: Frame, mesh: FaceMesh) -> list[FloatArray]:
    """Both eyes' 64x64 grey crops as iris.py makes them (eye line horizontal at row 32, upright)."""
    p = mesh.points
    return [_eye_patch(frame, eye_crop(p[o], p[i], mirrored=m)) for o, i, m in _EYE_CORNERS]


# In an eye patch the corners sit at 32 +- 64 / 2.3 / 2 px: the eye is ~28 px wide.
_EYE_HALF = EYE_SIZE / 2.3 / 2.0
_LINE = EYE_SIZE // 2


def lash_contrast(patch: FloatArray) -> float:
    """How dark the darkest line across the middle of the eye is against the skin above it (0: none).

    Columns over the middle 60% of the eye; in each, the darkest pixel within +-0.3 eye widths of the eye
    line against the median of the lid skin 0.3-0.55 eye widths above the line. Shut eyes show the lash
    line; a skin-coloured patch is flat.
    """
    w = 2.0 * _EYE_HALF
    x0, x1 = round(_LINE - 0.3 * w), round(_LINE + 0.3 * w)
    y0, y1 = round(_LINE - 0.3 * w), round(_LINE + 0.3 * w)
    s0, s1 = round(_LINE - 0.55 * w), round(_LINE - 0.3 * w)
    cols = patch[:, x0:x1]
    dark = float(np.median(cols[y0:y1].min(axis=0)))
    skin = float(np.median(cols[s0:s1]))
    return max(0.0, (skin - dark) / max(skin, 1.0))


def ring(patch: FloatArray) -> FloatArray:
    """The skin around the eye in its patch: the brow rows and the rows under the lower lid."""
    w = 2.0 * _EYE_HALF
    top, bottom = round(_LINE - 0.7 * w), round(_LINE + 0.45 * w)
    return np.concatenate([patch[:top].ravel(), patch[bottom:].ravel()])


@dataclass
class _Blink:
    """Per-frame blink evidence."""

    openness: list[float] = field(default_factory=list[float])
    lash: list[float] = field(default_factory=list[float])
    ring_ncc: list[float] = field(default_factory=list[float])
    base_rings: list[FloatArray] | None = None


class FaceSession:
    """Runs one challenge over frames with the continuity and PAD checks; `outcome` says how it ended.

    `pipe` is a FacePipeline (detector, mesh, eyes, embedder); `reference`: the embeddings of the frames
    taken before the challenge (their mean is the identity every frame must keep; empty: the first
    frames of the challenge set it); `box`: the last face box seen before, for the first jump check.
    """

    def __init__(
        self,
        pipe: "FacePipeline",
        challenge: Challenge,
        reference: Sequence[FloatArray] = (),
        box: tuple[float, float, float, float] | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        self.pipe = pipe
        self.challenge = challenge
        self.cfg = config or SessionConfig()
        self.tracker = ChallengeTracker(challenge, pipe.config.challenge)
        self._ref: FloatArray | None = _unit_mean(reference) if reference else None
        self._box = box
        self._prev_emb: FloatArray | None = None
        self._prev_face: FloatArray | None = None
        self._grey: Frame | None = None
        self._pts0: FloatArray | None = None
        self._pts: FloatArray | None = None
        self._ok: BoolArray | None = None
        self._yaw0: list[float] = []
        self._blink = _Blink()
        self._first: list[FloatArray] = []
        self._flat = False
        self._probe: list[tuple[FloatArray, float]] = []
        self._n = 0
        self._min_sim = 1.0
        self._parallax = 0.0
        self.state = ChallengeState.PENDING
        self.reason = ""

    # ----- public -------------------------------------------------------------------------------------
    def run(self, frames: Iterable[Frame]) -> ChallengeOutcome:
        """Feed frames until the challenge is decided; running out of frames fails it."""
        for frame in frames:
            if self.update(frame) is not ChallengeState.PENDING:
                break
        if self.state is ChallengeState.PENDING:
            self._fail("the challenge was not completed")
        return self.outcome()

    def outcome(self) -> ChallengeOutcome:
        """The result so far (PENDING while undecided)."""
        probe = tuple(self._probe) if self.state is ChallengeState.PASSED else ()
        return ChallengeOutcome(self.state, self.reason, probe, self._n, self._min_sim, self._parallax)

    def update(self, frame: Frame) -> ChallengeState:
        """One frame: continuity, then the challenge's measures."""
        if self.state is not ChallengeState.PENDING:
            return self.state
        frame = check_frame(frame)
        self._n += 1
        face = self._one_face(frame)
        if face is None:
            return self.state
        mesh = self.pipe.mesh(frame, face)
        if not self._same_person(frame, face, mesh):
            return self.state
        if self.challenge is Challenge.BLINK:
            return self._blink_step(frame, mesh)
        return self._turn_step(frame, mesh)

    # ----- continuity ---------------------------------------------------------------------------------
    def _fail(self, reason: str) -> ChallengeState:
        self.state = ChallengeState.FAILED
        self.reason = reason
        return self.state

    def _one_face(self, frame: Frame) -> Detection | None:
        det = self.pipe.detector
        faces = det.detect(frame) or det.detect_centre(frame)
        if not faces:
            self._fail("the face left the camera's view during the challenge")
            return None
        ranked = sorted(faces, key=lambda f: f.width, reverse=True)
        if len(ranked) > 1 and ranked[1].width >= self.cfg.second_face_ratio * ranked[0].width:
            self._fail("a second face appeared during the challenge")
            return None
        face = det.refine(frame, ranked[0])
        if self._box is not None:
            bx, by, bw, bh = self._box
            x, y, w, h = face.box
            jump = math.hypot(x + w / 2 - bx - bw / 2, y + h / 2 - by - bh / 2) / max(bw, 1.0)
            if jump > self.cfg.max_jump or abs(w / max(bw, 1.0) - 1.0) > self.cfg.max_size_step:
                self._fail(f"the face jumped ({jump:.2f} of its width in one frame)")
                return None
        self._box = face.box
        return face

    def _same_person(self, frame: Frame, face: Detection, mesh: FaceMesh) -> bool:
        aligned = align_face(frame, face)
        emb = self.pipe.embedder.embed(aligned)
        grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY).astype(np.float32)
        outside = np.concatenate([grey[: _EYE_BAND[0]].ravel(), grey[_EYE_BAND[1] :].ravel()])
        cfg = self.cfg
        still = self.challenge is Challenge.BLINK  # a turning face changes its aligned crop by itself
        if still and self._prev_face is not None and _ncc(outside, self._prev_face) < cfg.min_face_ncc:
            self._fail("the face changed abruptly (a picture swapped?)")
            return False
        if self._prev_emb is not None and float(emb @ self._prev_emb) < cfg.min_step_similarity:
            self._fail("the face changed identity between frames")
            return False
        if self._ref is None:
            self._first.append(emb)
            if len(self._first) >= self.pipe.config.challenge.baseline_frames:
                self._ref = _unit_mean(self._first)
        yaw = mesh.yaw_deg()
        n = self.pipe.config.challenge.baseline_frames
        base = sum(self._yaw0) / len(self._yaw0) if self._yaw0 else yaw
        frontal = abs(yaw - base) <= cfg.probe_max_yaw_deg
        if self._ref is not None:
            sim = float(emb @ self._ref)
            self._min_sim = min(self._min_sim, sim)
            need = cfg.min_frontal_similarity if frontal else cfg.min_similarity
            if sim < need:
                self._fail(f"another face than the one verified did the challenge (similarity {sim:.2f})")
                return False
        self._prev_emb, self._prev_face = emb, outside
        if len(self._yaw0) < n:
            self._yaw0.append(yaw)
        if frontal:
            report = assess(frame, face, aligned, self.pipe.config.quality)
            floor = self.pipe.min_embedding_norm  # the verification gate: a face SFace cannot read
            if report.ok and (floor is None or self.pipe.embedder.last_norm >= floor):
                self._probe.append((emb, report.score))
        return True

    # ----- turn ---------------------------------------------------------------------------------------
    def _turn_step(self, frame: Frame, mesh: FaceMesh) -> ChallengeState:
        grey = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        if self._pts0 is None or self._grey is None or self._pts is None or self._ok is None:
            pts0 = np.asarray(mesh.points[_TRACK], dtype=np.float32)
            pts, ok = pts0[:, :2].copy(), np.ones(len(_TRACK), dtype=np.bool_)
        else:
            pts0 = self._pts0
            kept = int(self._ok.sum())
            pts, ok = _flow(self._grey, grey, self._pts, self._ok)
            if int(ok.sum()) < self.cfg.min_flow_kept * kept:
                return self._fail("the face's texture broke off between frames (a picture swapped?)")
        self._grey, self._pts0, self._pts, self._ok = grey, pts0, pts, ok
        state = self.tracker.update(mesh.eye_openness(), mesh.yaw_deg(), mesh.height_ratio())
        if state is ChallengeState.FAILED:
            if self._flat:
                return self._fail(
                    f"the turn shows no depth (parallax {self._parallax:.1f} degrees): a picture?"
                )
            return self._fail("the head did not turn the asked way in time")
        if state is ChallengeState.PASSED:
            if int(ok.sum()) < self.cfg.min_tracked:
                return self._fail("the face's texture could not be followed through the turn")
            par, corr = parallax(pts0, pts, ok)
            self._parallax = par
            want = 1.0 if self.challenge is Challenge.TURN_LEFT else -1.0
            if par * want < self.cfg.parallax_deg or corr * want < self.cfg.parallax_corr:
                self._flat = True  # turned in 2-D only so far: keep watching until time runs out
                self.tracker.state = ChallengeState.PENDING
                return self.state
            self.state = ChallengeState.PASSED
        return self.state

    # ----- blink --------------------------------------------------------------------------------------
    def _blink_step(self, frame: Frame, mesh: FaceMesh) -> ChallengeState:
        b = self._blink
        openness = self.pipe.eye_openness(frame, mesh)
        patches = eye_patches(frame, mesh)
        rings = [ring(p) for p in patches]
        n = self.pipe.config.challenge.baseline_frames
        if b.base_rings is None:
            b.base_rings = rings
        b.openness.append(openness)
        b.lash.append(min(lash_contrast(p) for p in patches))
        b.ring_ncc.append(min(_ncc(r, r0) for r, r0 in zip(rings, b.base_rings, strict=True)))
        state = self.tracker.update(openness, mesh.yaw_deg(), mesh.height_ratio())
        if state is ChallengeState.FAILED:
            return self._fail("no blink was seen in time")
        if state is ChallengeState.PASSED:
            why = self._lid_motion(n)
            if why:
                return self._fail(why)
            self.state = ChallengeState.PASSED
        return self.state

    def _lid_motion(self, n: int) -> str:
        """Why the closure just seen is not a lid moving ('' if it is)."""
        cc = self.pipe.config.challenge
        b = self._blink
        ref = sum(b.openness[:n]) / n
        shut = [i for i in range(n, len(b.openness)) if b.openness[i] < cc.blink_close_ratio * ref]
        if not shut:
            return "no closure"
        first, last = shut[0], shut[-1]
        low = min(b.openness[first : last + 1])
        span = max(ref - low, 1e-6)
        lo, hi = low + self.cfg.lid_band * span, ref - self.cfg.lid_band * span
        if not any(lo <= v <= hi for v in b.openness[max(n, first - 3) :]):
            return "the eyes went from open to shut with nothing between: a picture swapped, not a lid"
        deepest = min(range(first, last + 1), key=lambda i: b.openness[i])
        if b.lash[deepest] < self.cfg.min_lash_contrast:
            return f"no lash line on the shut eyes (contrast {b.lash[deepest]:.2f}): something covers them"
        if min(b.ring_ncc[first : last + 1]) < self.cfg.min_ring_ncc:
            return "the skin around the eyes changed during the blink: something covers them"
        return ""


def _unit_mean(embeddings: Iterable[FloatArray]) -> FloatArray:
    m = np.mean(np.stack(list(embeddings)), axis=0)
    return np.asarray(m / max(float(np.linalg.norm(m)), 1e-9), dtype=np.float32)


def _flow(prev: Frame, cur: Frame, pts: FloatArray, ok: BoolArray) -> tuple[FloatArray, BoolArray]:
    """Pyramidal Lucas-Kanade from `prev` to `cur`, kept only where the backward track comes home."""
    p = pts.reshape(-1, 1, 2).astype(np.float32)
    win, lv = (21, 21), 3
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p, np.empty(0), winSize=win, maxLevel=lv)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, np.empty(0), winSize=win, maxLevel=lv)
    fb = np.linalg.norm((np.asarray(back) - p).reshape(-1, 2), axis=1)
    good = ok & (np.asarray(st).ravel() == 1) & (np.asarray(st2).ravel() == 1) & (fb < 1.0)
    return np.asarray(nxt, dtype=np.float32).reshape(-1, 2), np.asarray(good, dtype=np.bool_)
