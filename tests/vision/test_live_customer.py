"""The simulated live customer: rendered as a person, follows the active challenge; a photo cannot.

Real models throughout (BlazeFace, face_landmark, iris_landmark, MiniFASNet, SFace). The demo's customer
chooser is run on a folder holding only people other than the dev set's demo customer, to show the demo
does not depend on one lucky photo.
"""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from atm_host.journey import messages as msg
from atm_host.journey.cameras import (
    LiveCustomer,
    ScriptedCamera,
    action_pose,
    challenge_on_screen,
    sitter_from_photo,
)
from atm_host.journey.states import Snapshot, State
from atm_host.vision.challenge import Challenge, ChallengeState, ChallengeTracker
from atm_host.vision.config import ChallengeConfig
from atm_host.vision.errors import VisionError
from atm_host.vision.frame import Frame
from atm_host.vision.liveness import Verdict
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.scene import Optics, Pose, Sitter, render_faces, render_person
from atm_tools.demo import choose_customer, face_path, faces_root

from .conftest import read

OPTICS = Optics(1280, 720, seed=3)  # the demo camera's
ACT_FRAMES = 40  # the live customer answers within ~15 frames; 40 without a pass: no pass is coming


def _sitters(
    pipe: FacePipeline, unaligned: dict[str, list[Path]], per_person: int
) -> list[tuple[str, Sitter]]:
    out: list[tuple[str, Sitter]] = []
    for person, paths in unaligned.items():
        picks = [paths[0], paths[-1]][:per_person]
        out += [(f"{person}/{p.name}", sitter_from_photo(pipe, read(p))) for p in picks]
    return out


@pytest.fixture(scope="module")
def sitters(pipe: FacePipeline, unaligned: dict[str, list[Path]]) -> list[tuple[str, Sitter]]:
    """Two photos of every unaligned150 person, measured for rendering."""
    return _sitters(pipe, unaligned, 2)


def _frames(camera: ScriptedCamera, n: int) -> Iterator[Frame]:
    for _ in range(n):
        yield camera.read()


def _camera() -> ScriptedCamera:
    return ScriptedCamera(fps=1000.0)  # the person acts per delivered frame: no need to wait in tests


def test_person_render_passes_the_quality_gate_at_50_cm(
    pipe: FacePipeline, sitters: list[tuple[str, Sitter]]
) -> None:
    for name, sitter in sitters:
        sample = pipe.sample(render_person(sitter, OPTICS))  # QualityError would say why
        assert 45.0 <= sample.quality.distance_cm <= 55.0, name


def test_rendered_turns_are_measured_as_turns(pipe: FacePipeline, sitters: list[tuple[str, Sitter]]) -> None:
    need = pipe.config.challenge.turn_yaw_deg
    for name, sitter in sitters:

        def yaw(pose: Pose, sitter: Sitter = sitter) -> float:
            frame = render_person(sitter, OPTICS, pose=pose)
            return pipe.mesh(frame, pipe.find_customer(frame)).yaw_deg()

        straight = yaw(Pose())
        left = yaw(action_pose(Challenge.TURN_LEFT, 100)) - straight
        right = yaw(action_pose(Challenge.TURN_RIGHT, 100)) - straight
        assert left >= need + 5.0, (name, left)  # positive: the customer's left (challenge.py's sign)
        assert right <= -(need + 5.0), (name, right)


@dataclass(frozen=True)
class EyeReading:
    """One photo rendered with the eyes open and shut: the face mesh's and the blink challenge's measures."""

    name: str
    mesh_open: float
    mesh_shut: float
    open: float  # the blink challenge's measure (iris_landmark)
    shut: float
    shape_change: float  # |height ratio shut / open - 1|


@pytest.fixture(scope="module")
def eye_openness(pipe: FacePipeline, sitters: list[tuple[str, Sitter]]) -> list[EyeReading]:
    """Eye openness with the eyes open and shut, measured on renders of every sitter."""
    out: list[EyeReading] = []
    for name, sitter in sitters:
        frames = [render_person(sitter, OPTICS, pose=Pose(eyes_closed=c)) for c in (0.0, 1.0)]
        meshes = [pipe.mesh(f, pipe.find_customer(f)) for f in frames]
        opened, shut = (pipe.eye_openness(f, m) for f, m in zip(frames, meshes, strict=True))
        shape = abs(meshes[1].height_ratio() / meshes[0].height_ratio() - 1.0)
        out.append(EyeReading(name, meshes[0].eye_openness(), meshes[1].eye_openness(), opened, shut, shape))
    return out


def test_rendered_blink_closes_the_eyes_for_the_face_mesh(eye_openness: list[EyeReading]) -> None:
    """The mesh sees every rendered blink as the eyes narrowing, but too little for a rule (0.53-0.95)."""
    for r in eye_openness:
        assert r.mesh_shut < 0.97 * r.mesh_open, r.name
    assert float(np.median([r.mesh_shut / r.mesh_open for r in eye_openness])) < 0.85


def test_rendered_blink_meets_the_blink_rule(pipe: FacePipeline, eye_openness: list[EyeReading]) -> None:
    """iris_landmark sees every rendered blink (shut 0.10-0.58 of open, docs/vision.md) and the face keeps
    its shape through it, so the closure counts."""
    cfg = pipe.config.challenge
    assert cfg.eye_model == "iris_landmark"
    for r in eye_openness:
        assert r.shut < cfg.blink_close_ratio * r.open, r.name
        assert r.shape_change <= cfg.blink_max_shape_change, r.name
    assert float(np.median([r.shut / r.open for r in eye_openness])) < 0.5


@pytest.fixture(scope="module")
def people(pipe: FacePipeline, unaligned: dict[str, list[Path]]) -> list[tuple[str, LiveCustomer]]:
    """One live customer per unaligned150 person, with the demo camera's optics."""
    return [(name, LiveCustomer(s, OPTICS)) for name, s in _sitters(pipe, unaligned, 1)]


@pytest.mark.parametrize("challenge", [Challenge.TURN_LEFT, Challenge.TURN_RIGHT])
def test_scripted_live_customer_passes_a_turn_challenge(
    pipe: FacePipeline, people: list[tuple[str, LiveCustomer]], challenge: Challenge
) -> None:
    other = Challenge.TURN_RIGHT if challenge is Challenge.TURN_LEFT else Challenge.TURN_LEFT
    for name, person in people:
        camera = _camera()
        camera.show_customer(person)
        camera.perform(challenge)
        assert pipe.run_challenge(_frames(camera, ACT_FRAMES), challenge).state is ChallengeState.PASSED, name
    name, person = people[0]
    camera = _camera()
    camera.show_customer(person)
    camera.perform(other)  # turning the other way does not answer the challenge
    assert pipe.run_challenge(_frames(camera, ACT_FRAMES), challenge).state is ChallengeState.FAILED, name


def test_scripted_live_customer_passes_a_blink_challenge(
    pipe: FacePipeline, people: list[tuple[str, LiveCustomer]]
) -> None:
    for name, person in people:
        camera = _camera()
        camera.show_customer(person)
        camera.perform(Challenge.BLINK)
        frames = _frames(camera, ACT_FRAMES)
        assert pipe.run_challenge(frames, Challenge.BLINK).state is ChallengeState.PASSED, name


def test_a_photo_at_the_camera_fails_every_challenge(
    pipe: FacePipeline, shared: Path, unaligned: dict[str, list[Path]]
) -> None:
    camera = _camera()
    attack = read(shared / "models" / "minifasnet" / "image_F2.jpg")
    dev = read(next(iter(unaligned.values()))[0])
    for photo in (attack, dev):
        frame = camera.render_face(photo, pipe.source_eye_px(photo))  # the photo held up: it cannot act
        for challenge in Challenge:
            camera.show_frame(frame, "face")
            camera.perform(challenge)
            frames = _frames(camera, ACT_FRAMES)
            assert pipe.run_challenge(frames, challenge).state is ChallengeState.FAILED, challenge


def _held_up(still: Frame, k: int, squash: float = 1.0) -> Frame:
    """Frame `k` of a photo held up by a hand (`still`: its noise-free frame, `render_faces`): sensor
    noise (new each frame), a tremor of up to 1.5 px, 1 degree and 2% in size, a little defocus and light
    flicker; `squash` < 1 tilts it back (the face narrows to that fraction of its height about the eye
    line, as a photo turned by acos(squash))."""
    rng = np.random.default_rng(100 + k)
    h, w = still.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h * 0.45), float(rng.uniform(-1, 1)), float(rng.uniform(0.98, 1.02)))
    m[:, 2] += rng.uniform(-1.5, 1.5, 2)
    m[1] = m[1] * squash + np.asarray([0.0, 0.0, (1.0 - squash) * h * 0.45])
    out = np.asarray(cv2.warpAffine(still, m, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.float32)
    out = np.asarray(cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 0.8))), dtype=np.float32)
    noise = rng.standard_normal(out.shape, dtype=np.float32) * float(rng.uniform(1.5, 4.0))
    out = out * float(rng.uniform(0.95, 1.05)) + noise
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


@pytest.fixture(scope="module")
def held_photos(pipe: FacePipeline, shared: Path, unaligned: dict[str, list[Path]]) -> list[Frame]:
    """Noise-free frames of the demo's attack sample and of one photo of each dev person held up at 50 cm."""
    photos = [read(shared / "models" / "minifasnet" / "image_F2.jpg")]
    photos += [read(paths[0]) for paths in unaligned.values()]
    opt = Optics(1280, 720, seed=3, noise_sigma=0.0)
    return [render_faces([(p, pipe.source_eye_px(p), 50.0, 0.0)], opt) for p in photos]


def test_a_photos_noise_and_jitter_never_read_as_a_blink(
    pipe: FacePipeline, held_photos: list[Frame]
) -> None:
    """A still photo varies by at most ~5% frame to frame (docs/vision.md: >= 0.95 of its baseline on 57
    photos x 20 frames); the blink needs < 0.75."""
    cfg = pipe.config.challenge
    for i, still in enumerate(held_photos):
        frames = [_held_up(still, k) for k in range(12)]
        tracker = ChallengeTracker(Challenge.BLINK, cfg.model_copy(update={"max_frames": len(frames)}))
        readings: list[float] = []
        states: list[ChallengeState] = []
        for f in frames:  # what run_challenge does per frame
            mesh = pipe.mesh(f, pipe.find_customer(f))
            readings.append(pipe.eye_openness(f, mesh))
            states.append(tracker.update(readings[-1], mesh.yaw_deg(), mesh.height_ratio()))
        assert states[-1] is ChallengeState.FAILED, i
        base = float(np.mean(readings[: cfg.baseline_frames]))
        assert min(readings) > 0.88 * base, i  # far from the 0.75 of a closure
        if i == 0:
            assert pipe.run_challenge(frames, Challenge.BLINK).state is ChallengeState.FAILED


def test_a_photo_tilted_back_does_not_pass_as_a_blink(pipe: FacePipeline, held_photos: list[Frame]) -> None:
    """Tilting a photo back narrows its eyes (to 0.58-0.86 of open at 0.7 of the height) and the whole face
    with them: the face-shape check refuses the closure; without it the tilt would pass."""
    squash = (1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0)
    frames = [_held_up(held_photos[0], k, s) for k, s in enumerate(squash)]
    assert pipe.run_challenge(frames, Challenge.BLINK).state is ChallengeState.FAILED
    loose = ChallengeTracker(Challenge.BLINK, ChallengeConfig(blink_max_shape_change=0.9))
    states: list[ChallengeState] = []
    for f in frames:
        mesh = pipe.mesh(f, pipe.find_customer(f))
        states.append(loose.update(pipe.eye_openness(f, mesh), mesh.yaw_deg(), mesh.height_ratio()))
    assert states[-1] is ChallengeState.PASSED  # the eyes alone would have been fooled


def test_the_demos_attack_photo_is_not_passively_live(pipe: FacePipeline, shared: Path) -> None:
    camera = _camera()
    attack = read(shared / "models" / "minifasnet" / "image_F2.jpg")
    frame = camera.render_face(attack, pipe.source_eye_px(attack))
    assert pipe.check_liveness(frame, pipe.find_customer(frame)).verdict is not Verdict.LIVE


def test_the_customer_reads_the_challenge_off_the_screen(
    pipe: FacePipeline, people: list[tuple[str, LiveCustomer]]
) -> None:
    cases = {Challenge.BLINK: "blink", Challenge.TURN_LEFT: "turn_left", Challenge.TURN_RIGHT: "turn_right"}
    for challenge, key in cases.items():
        snap = Snapshot(seq=1, state=State.CHALLENGE, prompt=msg.GUIDANCE[key].as_dict())
        assert challenge_on_screen(snap) is challenge
    face = Snapshot(seq=1, state=State.FACE, prompt=msg.PROMPTS["face"].as_dict())
    assert challenge_on_screen(face) is None
    # follow(): the camera polls what the screen shows and the person acts on it
    shown: list[Challenge | None] = [None]
    camera = _camera()
    camera.follow(lambda: shown[0])
    name, person = people[0][0], camera.live_customer(people[0][1].sitter)
    camera.show_frame(person.frame, "face")  # the live customer's frame brings the person
    assert all(camera.read() is person.frame for _ in range(5)), name  # nothing asked: looks at the camera
    shown[0] = Challenge.TURN_LEFT
    ok = pipe.run_challenge(_frames(camera, ACT_FRAMES), Challenge.TURN_LEFT)
    assert ok.state is ChallengeState.PASSED
    assert camera.performed == [Challenge.TURN_LEFT]
    shown[0] = None
    assert camera.read() is person.frame  # the prompt is gone: back to looking at the camera


def test_face_path_reports_what_the_screen_asked() -> None:
    def snap(state: State, prompt: msg.Text) -> Snapshot:
        return Snapshot(seq=1, state=state, prompt=prompt.as_dict())

    face = snap(State.FACE, msg.PROMPTS["face"])
    second = snap(State.SECOND_CHECK, msg.PROMPTS["second_check"])
    turn = snap(State.CHALLENGE, msg.GUIDANCE["turn_right"])
    end = snap(State.END, msg.PROMPTS["end"])
    assert face_path([face, second]) == "passive live"
    assert face_path([face, turn, second]) == "challenge 'turn your head to the right' passed"
    assert face_path([face, turn, end]) == "challenge 'turn your head to the right' not passed"
    assert face_path([face, end]) == "refused at the face step"


@pytest.fixture(scope="module")
def other_faces(
    pipe: FacePipeline, unaligned: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A faces folder with the last two dev people only: neither is the dev set's demo customer."""
    dev_pick = choose_customer(pipe, OPTICS, faces_root()).person
    others = [p for p in sorted(unaligned) if p != dev_pick][-2:]
    root = tmp_path_factory.mktemp("faces")
    for person in others:
        shutil.copytree(unaligned[person][0].parent, root / person)
    return root


def test_demo_customer_is_chosen_from_whatever_faces_exist(
    pipe: FacePipeline, other_faces: Path, unaligned: dict[str, list[Path]]
) -> None:
    pick = choose_customer(pipe, OPTICS, other_faces)
    assert pick.person == sorted(p.name for p in other_faces.iterdir())[0]
    assert pick.enrol_photo != pick.atm_photo
    assert pick.enrol_photo.parent == pick.atm_photo.parent == other_faces / pick.person
    assert pick.score >= pipe.threshold
    # and that customer gets through the ATM's face step: passively live, or by doing the challenge
    person = LiveCustomer(pick.sitter, OPTICS)
    frame = person.frame
    sample = pipe.sample(frame)
    live = pipe.check_liveness(frame, sample.detection)
    assert live.verdict is not Verdict.ATTACK
    if live.verdict is Verdict.UNCERTAIN:
        camera = _camera()
        camera.show_customer(person)
        camera.perform(Challenge.TURN_LEFT)
        frames = _frames(camera, ACT_FRAMES)
        assert pipe.run_challenge(frames, Challenge.TURN_LEFT).state is ChallengeState.PASSED


def test_demo_customer_needs_two_usable_photos(
    pipe: FacePipeline, tmp_path: Path, unaligned: dict[str, list[Path]]
) -> None:
    for person, paths in unaligned.items():
        (tmp_path / person).mkdir()
        shutil.copy(paths[0], tmp_path / person / paths[0].name)  # one photo each: nobody to pick
    (tmp_path / "Nobody").mkdir()
    (tmp_path / "Nobody" / "blank.png").write_bytes(b"not an image")
    with pytest.raises(FileNotFoundError, match="two usable photos"):
        choose_customer(pipe, OPTICS, tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        choose_customer(pipe, OPTICS, tmp_path / "absent")


def test_closing_the_eyes_needs_the_eye_contours(unaligned: dict[str, list[Path]]) -> None:
    photo = read(next(iter(unaligned.values()))[0])
    bare = Sitter(photo, 0.37 * photo.shape[1], (photo.shape[1] / 2, photo.shape[0] * 0.4))
    render_person(bare, OPTICS, pose=Pose(yaw_deg=20.0))  # a turn needs no contours
    with pytest.raises(VisionError, match="eye contours"):
        render_person(bare, OPTICS, pose=Pose(eyes_closed=1.0))
