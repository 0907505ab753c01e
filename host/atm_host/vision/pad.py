"""Presentation-attack test set made in code from face photos, and its APCER / BPCER (ISO/IEC 30107-3).

Every presentation is a short camera clip: 3 frames the journey takes as the probe before the challenge,
then the frames that answer the challenge (the action starts `REACTION` frames in). Nothing is written to
disk: the set is rebuilt from the photos each run (the development photos are not the project's to
commit). Attack types (`ATTACKS`), each answering the challenge the way that attack can:

- `photo`: the project's own photo-attack scene (`scene.render_faces`: the photo as a soft oval in the
  room, no border) shaken by a hand; it cannot act.
- `print`: the photo printed with a white paper margin, paper grain and duller ink, held by a trembling
  hand at 50 cm; asked to turn, the paper is turned (perspective); asked to blink it cannot.
- `screen`: the photo on a phone/tablet: black bezel, moire, a colder and more saturated gamut, glare;
  asked to turn it shows the photo warped in 2-D (cylinder), asked to blink it swaps to the same photo
  with the eyes closed for 4 frames.
- `warp2d`: the held photo warped in 2-D to fake a turn: a cylinder warp, a shift of the face's middle
  (nose) and a perspective turn, each to 35 degrees over 5 frames.
- `flap`: skin-coloured patches over the eyes of the held photo, put on and taken off (still) or slid
  down over the eyes from above the brows and back (moving).
- `swap`: the held photo swapped for an eyes-closed one (the same photo with the eyes shut, or another
  photo of the same person with the eyes shut) for 4 frames.
- `cutout`: the photo with the eyes cut out and the attacker's own eyes behind the holes, blinking; asked
  to turn, the paper is turned.
- `impostor`: the victim's photo (printed) for the probe frames, then the attacker's own live face steps
  in and does the challenge; or the victim's photo on a screen into the challenge, the attacker stepping in
  mid-challenge, just before acting.

Bona fide: `live`, the same photos rendered as a live person (`scene.render_person`) who does the asked
challenge (`journey.cameras.action_pose`). A live render is itself made from one photo: its blink is a
drawn lid and its turn a depth-aware warp from face_landmark's own depth, so a render is told from an
attack by cues (parallax from the mesh's depth, a lash line, no swap) that a real camera would show for
reasons of physics instead; see docs/vision.md ("PAD").
"""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from .challenge import DEFAULT_CHALLENGES, Challenge, ChallengeState, ChallengeTracker
from .errors import VisionError
from .frame import FloatArray, Frame
from .liveness import Verdict
from .pipeline import FacePipeline
from .scene import Optics, Pose, Sitter, background, close_eyes, render_faces, render_person, turn_head

PRE = 3  # probe frames before the challenge (the journey's face_frames)
REACTION = 9  # frames before the person (or attacker) acts
CLIP = 34  # challenge frames per presentation (the live customer answers within ~15)
DISTANCE_CM = 50.0
ATTACKS = ("photo", "print", "screen", "warp2d", "flap", "swap", "cutout", "impostor")


@dataclass(frozen=True)
class Presentation:
    """One clip: what it is, the challenge asked, and its frames (PRE probe frames, then the answer)."""

    kind: str  # "live" or an attack type
    variant: str
    subject: str
    challenge: Challenge
    frames: list[Frame]


@dataclass(frozen=True)
class Result:
    """How the ATM decided one presentation: passive verdict, challenge outcome, accepted or not."""

    presentation: Presentation
    passive: Verdict
    state: ChallengeState
    reason: str
    accepted: bool
    accepted_before: bool | None  # what the code before the PAD work decided (passive LIVE or tracker)


# ----- pictures -------------------------------------------------------------------------------------------
def _skin(img: Frame, sitter: Sitter) -> tuple[float, float, float]:
    """Median colour of the cheeks under the eyes (what a skin-coloured flap is painted with)."""
    ex, ey = sitter.eye_centre
    d = sitter.eye_px
    y0, y1 = round(ey + 0.45 * d), round(ey + 0.75 * d)
    x0, x1 = round(ex - 0.6 * d), round(ex + 0.6 * d)
    patch = img[max(0, y0) : y1, max(0, x0) : x1].reshape(-1, 3)
    med = np.median(patch, axis=0)
    return float(med[0]), float(med[1]), float(med[2])


def _eye_mask(img: Frame, sitter: Sitter, grow: float, lift: float = 0.0) -> FloatArray:
    """Ellipses over both eyes (`grow` x the eye's size), raised by `lift` eye distances; feathered."""
    if sitter.eyes is None:
        raise VisionError("eye contours needed (Sitter.eyes)")
    m = np.zeros(img.shape[:2], np.float32)
    for contour in sitter.eyes:
        c = np.asarray(contour, dtype=np.float32)
        cx, cy = (c[0] + c[8]) / 2.0
        half_w = float(np.linalg.norm(c[0] - c[8])) / 2.0 * grow
        half_h = max(float(np.ptp(c[:, 1])) / 2.0 * grow * 1.6, 0.45 * half_w)
        cy = cy - lift * sitter.eye_px
        cv2.ellipse(m, (round(cx), round(cy)), (round(half_w), round(half_h)), 0, 0, 360, 1.0, -1)
    return np.asarray(cv2.GaussianBlur(m, (0, 0), 0.6), dtype=np.float32)


def flap(img: Frame, sitter: Sitter, lift: float = 0.0) -> Frame:
    """Skin-coloured patches over both eyes (a little grain so they are not perfectly flat)."""
    mask = _eye_mask(img, sitter, 1.35, lift)[:, :, None]
    rng = np.random.default_rng(5)
    paint = np.asarray(_skin(img, sitter), np.float32) + rng.normal(0, 3.0, img.shape).astype(np.float32)
    out = img.astype(np.float32) * (1 - mask) + paint * mask
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def as_print(img: Frame) -> Frame:
    """The photo printed: white paper margin, duller and warmer ink, paper grain."""
    h, w = img.shape[:2]
    m = max(4, round(0.08 * max(h, w)))
    ink = img.astype(np.float32) * 0.82 + 28.0
    ink[:, :, 0] *= 0.93  # warmer
    paper = np.full((h + 2 * m, w + 2 * m, 3), (236.0, 240.0, 242.0), np.float32)
    paper[m : m + h, m : m + w] = ink
    grain = np.random.default_rng(11).normal(0.0, 4.0, paper.shape[:2]).astype(np.float32)
    paper += np.asarray(cv2.GaussianBlur(grain, (0, 0), 0.7), np.float32)[:, :, None]
    return np.asarray(np.clip(paper, 0, 255), dtype=np.uint8)


def as_screen(img: Frame) -> Frame:
    """The photo on a screen: bezel, colder and more saturated gamut, moire stripes, a glare spot."""
    h, w = img.shape[:2]
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * 1.25, 0, 255)
    shown = cv2.cvtColor(np.asarray(hsv, np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    shown[:, :, 0] += 12.0  # blue cast of an LCD white point
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shown *= (1.0 + 0.06 * np.sin(2 * math.pi * (0.21 * xx + 0.05 * yy)))[:, :, None]
    glare = np.exp(-((xx - 0.7 * w) ** 2 + (yy - 0.25 * h) ** 2) / (2 * (0.12 * w) ** 2))
    shown += (70.0 * glare)[:, :, None]
    b = max(4, round(0.06 * max(h, w)))
    out = np.full((h + 2 * b, w + 2 * b, 3), 18.0, np.float32)
    out[b : b + h, b : b + w] = shown
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def nose_shift(img: Frame, sitter: Sitter, yaw_deg: float) -> Frame:
    """A 2-D warp that moves the middle of the face sideways (as far as a turn moves the nose)."""
    if yaw_deg == 0.0:
        return img
    h, w = img.shape[:2]
    ex, ey = sitter.eye_centre
    d = sitter.eye_px
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    amp = 1.1 * d * math.sin(math.radians(yaw_deg))
    bump = np.exp(-(((xx - ex) / (0.9 * d)) ** 2 + ((yy - ey - 0.5 * d) / (1.2 * d)) ** 2) / 2.0)
    out = cv2.remap(img, xx - amp * bump, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


# ----- the camera's view of a held picture ------------------------------------------------------------
@dataclass(frozen=True)
class Held:
    """A picture (print, screen) held `DISTANCE_CM` from the camera: where its eyes are in the picture."""

    picture: Frame
    eye_px: float
    eye_centre: tuple[float, float]


_ROOMS: dict[Optics, Frame] = {}


def _room(opt: Optics) -> Frame:
    """The generated room behind the picture (made once per camera)."""
    if opt not in _ROOMS:
        _ROOMS[opt] = np.asarray(background(opt), dtype=np.uint8)
    return _ROOMS[opt]


def held_frame(held: Held, opt: Optics, k: int, turn_deg: float = 0.0) -> Frame:
    """Frame `k` of the picture held up by a trembling hand (turned by `turn_deg` about its vertical axis).

    The picture is a flat rectangle: scaled so its eyes are 6.3 cm apart at 50 cm, its eyes at the
    frame's eye height, a tremor of up to 1.5 px / 1 degree / 2% per frame, sensor noise, a little defocus.
    """
    rng = np.random.default_rng(1000 + k)
    f = opt.focal_px
    h, w = held.picture.shape[:2]
    ex, ey = held.eye_centre
    # picture corners in cm relative to its eye midpoint, then turned, then projected
    cm = 6.3 / held.eye_px
    corners = np.asarray([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    rel = (corners - [ex, ey]) * cm
    a = math.radians(turn_deg + float(rng.uniform(-1.0, 1.0)))
    x3 = rel[:, 0] * math.cos(a)
    z3 = DISTANCE_CM + rel[:, 0] * math.sin(a)
    cx, cy = (
        opt.width / 2.0 + float(rng.uniform(-1.5, 1.5)),
        opt.height * 0.42 + float(rng.uniform(-1.5, 1.5)),
    )
    zoom = float(rng.uniform(0.98, 1.02))
    dst = np.stack([cx + zoom * f * x3 / z3, cy + zoom * f * rel[:, 1] / z3], axis=1).astype(np.float32)
    hom = cv2.getPerspectiveTransform(corners.astype(np.float32), dst)
    frame = _room(opt).copy()
    cv2.warpPerspective(
        held.picture, hom, (opt.width, opt.height), dst=frame, flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_TRANSPARENT,
    )  # fmt: skip
    frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), float(rng.uniform(0.3, 0.8))), dtype=np.uint8)
    noise = _noise(frame.shape, float(rng.uniform(1.5, 3.5)), rng)
    lit = cv2.convertScaleAbs(frame, alpha=float(rng.uniform(0.97, 1.03))).astype(np.int16) + noise
    return np.asarray(np.clip(lit, 0, 255), dtype=np.uint8)


def _noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """Sensor noise in grey levels (whole numbers, to add to a uint8 frame as int16)."""
    return np.asarray(np.rint(rng.standard_normal(shape, dtype=np.float32) * sigma), dtype=np.int16)


def jitter(still: Frame, k: int) -> Frame:
    """Frame `k` of a still frame shaken by a hand: up to 1.5 px, 1 degree and 2% in size, defocus, noise."""
    rng = np.random.default_rng(2000 + k)
    h, w = still.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h * 0.45), float(rng.uniform(-1, 1)), float(rng.uniform(0.98, 1.02)))
    m[:, 2] += rng.uniform(-1.5, 1.5, 2)
    out = np.asarray(cv2.warpAffine(still, m, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)
    out = np.asarray(cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 0.8))), dtype=np.uint8)
    noise = _noise(out.shape, float(rng.uniform(1.5, 3.5)), rng)
    return np.asarray(np.clip(out.astype(np.int16) + noise, 0, 255), dtype=np.uint8)


def _framed(kind: str, img: Frame, sitter: Sitter) -> Held:
    """The picture in its medium (print or screen) with the eye geometry moved along."""
    pic = as_print(img) if kind == "print" else as_screen(img) if kind == "screen" else img
    pad = (pic.shape[1] - img.shape[1]) // 2
    ex, ey = sitter.eye_centre
    return Held(pic, sitter.eye_px, (ex + pad, ey + pad))


# ----- presentations -------------------------------------------------------------------------------------
def _turn_sign(ch: Challenge) -> float:
    return 1.0 if ch is Challenge.TURN_LEFT else -1.0


def _ramp(t: int, full: float, steps: int = 5) -> float:
    """0 before the reaction, then up to `full` over `steps` frames, then held."""
    return 0.0 if t < REACTION else full * min(1.0, (t - REACTION + 1) / steps)


def _clip(make: Callable[[int], Frame]) -> list[Frame]:
    """PRE probe frames (t < 0: still) then CLIP challenge frames."""
    return [make(-PRE + i) for i in range(PRE + CLIP)]


def live_clip(sitter: Sitter, opt: Optics, ch: Challenge) -> list[Frame]:
    """The sitter rendered as a live person doing `ch` (the journey's simulated customer)."""
    from atm_host.journey.cameras import action_pose  # the same acting as the demo customer's

    cache: dict[Pose, Frame] = {}

    def make(t: int) -> Frame:
        pose = action_pose(ch, t) if t >= 0 else Pose()
        if pose not in cache:
            cache[pose] = render_person(sitter, opt, DISTANCE_CM, pose=pose)
        return cache[pose]

    return _clip(make)


def attack_clips(
    kind: str, sitter: Sitter, opt: Optics, ch: Challenge, other: Sitter | None, attacker: Sitter | None
) -> Iterator[tuple[str, list[Frame]]]:
    """The clips of attack `kind` on the victim `sitter` answering `ch` (variant name, frames).

    `other`: another photo of the same person (for a swap); `attacker`: a different person (impostor,
    cut-out eyes).
    """
    img = sitter.image
    sign = _turn_sign(ch)
    turn = ch is not Challenge.BLINK

    def still(held: Held, turning: bool) -> Callable[[int], Frame]:
        return lambda t: held_frame(held, opt, t, sign * _ramp(t, 40.0) if turning else 0.0)

    def content(fn: Callable[[int], Frame], medium: str) -> Callable[[int], Frame]:
        return lambda t: held_frame(_framed(medium, fn(t), sitter), opt, t)

    if kind == "photo":
        still_frame = render_faces([(img, sitter.eye_px, DISTANCE_CM, 0.0)], replace(opt, noise_sigma=0.0))
        yield "held still", _clip(lambda t: jitter(still_frame, t))
    elif kind == "print":
        yield "turned paper" if turn else "held still", _clip(still(_framed("print", img, sitter), turn))
    elif kind == "screen":
        if turn:
            radius = 0.95 * abs(sitter.face_x[1] - sitter.face_x[0]) / 2 if sitter.face_x else sitter.eye_px
            cx = (sitter.face_x[0] + sitter.face_x[1]) / 2 if sitter.face_x else sitter.eye_centre[0]
            yield (
                "2-D turn on screen",
                _clip(content(lambda t: turn_head(img, cx, radius, sign * _ramp(t, 35.0)), "screen")),
            )
        else:
            shut = close_eyes(img, _eyes(sitter), 1.0)
            yield (
                "eyes-closed swap on screen",
                _clip(content(lambda t: shut if 12 <= t < 16 else img, "screen")),
            )
    elif kind == "warp2d":
        if not turn:
            return
        radius = 0.95 * abs(sitter.face_x[1] - sitter.face_x[0]) / 2 if sitter.face_x else sitter.eye_px
        cx = (sitter.face_x[0] + sitter.face_x[1]) / 2 if sitter.face_x else sitter.eye_centre[0]
        yield "cylinder", _clip(content(lambda t: turn_head(img, cx, radius, sign * _ramp(t, 35.0)), "none"))
        yield "nose shift", _clip(content(lambda t: nose_shift(img, sitter, sign * _ramp(t, 35.0)), "none"))
        yield "perspective", _clip(still(_framed("none", img, sitter), True))
    elif kind == "flap":
        if turn:
            return
        on = flap(img, sitter)
        yield "still flap", _clip(content(lambda t: on if 12 <= t < 16 else img, "none"))
        lifts = {12: 1.2, 13: 0.6, 14: 0.0, 15: 0.0, 16: 0.0, 17: 0.6, 18: 1.2}
        slid = {t: flap(img, sitter, lift) for t, lift in lifts.items()}
        yield "moving flap", _clip(content(lambda t: slid.get(t, img), "none"))
    elif kind == "swap":
        if turn:
            return
        shut = close_eyes(img, _eyes(sitter), 1.0)
        yield "same photo, eyes shut", _clip(content(lambda t: shut if 12 <= t < 16 else img, "none"))
        if other is not None:
            o_shut = _aligned_to(close_eyes(other.image, _eyes(other), 1.0), other, sitter)
            yield "other photo, eyes shut", _clip(content(lambda t: o_shut if 12 <= t < 16 else img, "none"))
    elif kind == "cutout":
        if attacker is None:
            return
        if turn:
            yield "turned paper", _clip(still(_framed("print", img, sitter), True))
            return
        yield "attacker's eyes blink", _clip(_cutout(sitter, attacker, opt))
    elif kind == "impostor":
        if attacker is None:
            return
        victim = _framed("print", img, sitter)
        live = live_clip(attacker, opt, ch)
        yield (
            "victim's print, then attacker",
            [held_frame(victim, opt, i - PRE) if i < PRE else live[i] for i in range(PRE + CLIP)],
        )
        replay = _framed("screen", img, sitter)
        cut = PRE + REACTION - 2  # the attacker steps in just before acting
        yield (
            "victim's replay, attacker mid-challenge",
            [held_frame(replay, opt, i - PRE) if i < cut else live[i] for i in range(PRE + CLIP)],
        )


def _eyes(s: Sitter) -> tuple[FloatArray, FloatArray]:
    if s.eyes is None:
        raise VisionError("eye contours needed (Sitter.eyes)")
    return s.eyes


def _aligned_to(img: Frame, src: Sitter, dst: Sitter) -> Frame:
    """`img` (a photo of `src`) moved and scaled so its eyes sit where `dst`'s are."""
    s = dst.eye_px / src.eye_px
    (sx, sy), (dx, dy) = src.eye_centre, dst.eye_centre
    m = np.asarray([[s, 0.0, dx - s * sx], [0.0, s, dy - s * sy]], np.float32)
    out = cv2.warpAffine(img, m, (dst.image.shape[1], dst.image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def _cutout(victim: Sitter, attacker: Sitter, opt: Optics) -> Callable[[int], Frame]:
    """The victim's print with the eyes cut out; behind it the attacker, eyes at the holes, blinking."""
    from atm_host.journey.cameras import action_pose

    held = _framed("print", victim.image, victim)
    pad = (held.picture.shape[1] - victim.image.shape[1]) // 2
    holes = _eye_mask(victim.image, victim, 1.15)
    holes = np.asarray(cv2.copyMakeBorder(holes, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.0))
    hole_held = Held(
        np.repeat((holes * 255).astype(np.uint8)[:, :, None], 3, axis=2), held.eye_px, held.eye_centre
    )

    people: dict[Pose, Frame] = {}

    def make(t: int) -> Frame:
        pose = action_pose(Challenge.BLINK, t) if t >= 0 else Pose()
        if pose not in people:
            people[pose] = render_person(attacker, opt, DISTANCE_CM, pose=pose)
        person = people[pose]
        paper = held_frame(held, opt, t)
        m = held_frame(hole_held, replace(opt, noise_sigma=0.0), t).astype(np.float32)[:, :, :1] / 255.0
        out = paper.astype(np.float32) * (1 - m) + person.astype(np.float32) * m
        return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)

    return make


# ----- deciding ------------------------------------------------------------------------------------------
def decide(pipe: FacePipeline, p: Presentation, before: bool = False) -> Result:
    """What the ATM does with `p`: passive check on the probe frames (ATTACK refuses), then the challenge
    with continuity (FaceSession) from the probe frames on. With `before`, also the pre-PAD decision:
    passive LIVE on the probe frames skipped the challenge, else the per-frame tracker alone decided."""
    refs: list[FloatArray] = []
    verdicts: list[Verdict] = []
    box: tuple[float, float, float, float] | None = None
    for frame in p.frames[:PRE]:
        s = pipe.sample(frame, gate=False)
        refs.append(s.embedding)
        box = s.detection.box
        verdicts.append(pipe.check_liveness(frame, s.detection).verdict)
    attack = sum(v is Verdict.ATTACK for v in verdicts) * 2 > len(verdicts)
    passive = (
        Verdict.ATTACK
        if attack
        else Verdict.LIVE
        if all(v is Verdict.LIVE for v in verdicts)
        else Verdict.UNCERTAIN
    )
    if attack:
        out_state, reason, accepted = ChallengeState.FAILED, "passive: attack", False
    else:
        out = pipe.run_challenge(p.frames[PRE:], p.challenge, refs, box)
        out_state, reason, accepted = out.state, out.reason, out.passed
    old: bool | None = None
    if before:
        old = passive is Verdict.LIVE or (not attack and _tracker_only(pipe, p) is ChallengeState.PASSED)
    return Result(p, passive, out_state, reason, accepted, old)


def _tracker_only(pipe: FacePipeline, p: Presentation) -> ChallengeState:
    """The challenge as decided before this work: per-frame detections, mesh yaw and eye openness only."""
    tracker = ChallengeTracker(p.challenge, pipe.config.challenge)
    for frame in p.frames[PRE:]:
        try:
            face = pipe.find_customer(frame)
        except VisionError:
            continue
        mesh = pipe.mesh(frame, face)
        blink = p.challenge is Challenge.BLINK
        openness = pipe.eye_openness(frame, mesh) if blink else mesh.eye_openness()
        state = tracker.update(openness, mesh.yaw_deg(), mesh.height_ratio())
        if state is not ChallengeState.PENDING:
            return state
    return ChallengeState.FAILED


def build_set(
    pipe: FacePipeline, photos: dict[str, list[Path]], opt: Optics, per_person: int, kinds: tuple[str, ...]
) -> Iterator[Presentation]:
    """Presentations for `per_person` photos of each person (`photos`: person -> image paths)."""
    from atm_host.journey.cameras import sitter_from_photo

    people = sorted(photos)
    sitters: dict[str, list[Sitter]] = {}
    for person in people:
        paths = photos[person]
        picks = [paths[round(i * (len(paths) - 1) / max(per_person, 1))] for i in range(per_person + 1)]
        sitters[person] = [sitter_from_photo(pipe, _read(p)) for p in dict.fromkeys(picks)]
    for n, person in enumerate(people):
        attacker = sitters[people[(n + 1) % len(people)]][0] if len(people) > 1 else None
        for i, sitter in enumerate(sitters[person][:per_person]):
            others = sitters[person][i + 1 :] or sitters[person][:i]
            other = others[0] if others else None
            for ch in Challenge:
                subject = f"{person}#{i}"
                if "live" in kinds:
                    yield Presentation("live", "rendered person", subject, ch, live_clip(sitter, opt, ch))
                for kind in kinds:
                    if kind == "live":
                        continue
                    for variant, frames in attack_clips(kind, sitter, opt, ch, other, attacker):
                        yield Presentation(kind, variant, subject, ch, frames)


def _read(path: Path) -> Frame:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VisionError(f"cannot read {path}")
    return np.asarray(img, dtype=np.uint8)


def table(results: list[Result]) -> list[str]:
    """APCER per attack type (and variant) and BPCER on the live renders, with counts."""
    lines = [f"{'presentations':<40} {'n':>4} {'accepted':>8} {'rate':>8} {'before':>8}"]

    def row(label: str, rs: list[Result], metric: str) -> str:
        acc = sum(r.accepted for r in rs)
        if metric == "BPCER":
            acc = len(rs) - acc
        rate = acc / len(rs) if rs else 0.0
        olds = [r.accepted_before for r in rs if r.accepted_before is not None]
        old = ""
        if olds:
            o = sum(olds) if metric == "APCER" else len(olds) - sum(olds)
            old = f"{o}/{len(olds)}"
        return f"{label:<40} {len(rs):>4} {acc:>8} {100 * rate:>7.1f}% {old:>8}"

    kinds = list(dict.fromkeys(r.presentation.kind for r in results))
    asked = [r for r in results if r.presentation.challenge in DEFAULT_CHALLENGES]
    if len(asked) < len(results):
        names = " / ".join(c.name.lower() for c in DEFAULT_CHALLENGES)
        lines.append(f"-- with the challenges the ATM asks ({names}):")
        for kind in kinds:
            rs = [r for r in asked if r.presentation.kind == kind]
            if rs:
                label = "BPCER live (rejected)" if kind == "live" else f"APCER {kind}"
                lines.append(row(label, rs, "BPCER" if kind == "live" else "APCER"))
        lines.append("-- every challenge, by attack and variant:")
    for kind in kinds:
        rs = [r for r in results if r.presentation.kind == kind]
        if kind == "live":
            lines.append(row("BPCER live (rejected)", rs, "BPCER"))
            continue
        lines.append(row(f"APCER {kind}", rs, "APCER"))
        for variant in dict.fromkeys(r.presentation.variant for r in rs):
            lines.append(row(f"  {variant}", [r for r in rs if r.presentation.variant == variant], "APCER"))
    return lines


def run_pad_eval(
    pipe: FacePipeline,
    folder: Path,
    per_person: int,
    kinds: tuple[str, ...],
    before: bool,
    optics: Optics,
    people: int = 0,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Build the set from `folder` (<person>/<image>), decide every presentation, print the table."""
    photos = {
        p.name: sorted(p.glob("*.jpg")) + sorted(p.glob("*.png"))
        for p in sorted(folder.iterdir())
        if p.is_dir()
    }
    photos = {k: v for k, v in photos.items() if len(v) >= 2}
    if people:
        photos = dict(list(photos.items())[:people])
    if not photos:
        raise VisionError(f"no <person>/<image> folders with two photos under {folder}")
    results: list[Result] = []
    for p in build_set(pipe, photos, optics, per_person, kinds):
        try:
            r = decide(pipe, p, before)
        except VisionError as exc:  # the probe frames had no usable face: the ATM never gets this far
            r = Result(
                p,
                Verdict.UNCERTAIN,
                ChallengeState.FAILED,
                f"no probe: {exc}",
                False,
                None if not before else False,
            )
        results.append(r)
        if r.accepted != (p.kind == "live"):
            log(
                f"  {'accepted' if r.accepted else 'rejected'}: {p.kind}/{p.variant} {p.subject} "
                f"{p.challenge.name} ({r.reason})"
            )
    return results
