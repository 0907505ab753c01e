"""Passive liveness on the sample live and attack images; the active challenge on face_landmark."""

from pathlib import Path

import numpy as np
import pytest
from atm_host.vision.challenge import Challenge, ChallengeState, ChallengeTracker
from atm_host.vision.config import ChallengeConfig
from atm_host.vision.liveness import Verdict
from atm_host.vision.pipeline import FacePipeline

from .conftest import read


@pytest.fixture(scope="module")
def samples(shared: Path) -> Path:
    return shared / "models" / "minifasnet"


def test_live_sample_passes(photo_pipe: FacePipeline, samples: Path) -> None:
    img = read(samples / "image_T1.jpg")
    res = photo_pipe.check_liveness(img, photo_pipe.find_customer(img))
    assert res.verdict is Verdict.LIVE and res.p_real >= 0.9


@pytest.mark.parametrize("name", ["image_F1.jpg", "image_F2.jpg"])
def test_attack_samples_are_never_accepted_passively(
    photo_pipe: FacePipeline, samples: Path, name: str
) -> None:
    img = read(samples / name)
    res = photo_pipe.check_liveness(img, photo_pipe.find_customer(img))
    assert res.verdict is not Verdict.LIVE
    assert res.p_real < 0.5
    assert min(res.per_model) < 0.1  # at least one model is sure it is an attack


def test_face_mesh_measures_open_eyes_and_yaw_direction(photo_pipe: FacePipeline, samples: Path) -> None:
    img = read(samples / "image_T1.jpg")
    mesh = photo_pipe.mesh(img, photo_pipe.find_customer(img))
    assert mesh.presence > 0.9
    assert 0.2 < mesh.eye_openness() < 0.6
    flipped = np.ascontiguousarray(img[:, ::-1])
    mirror = photo_pipe.mesh(flipped, photo_pipe.find_customer(flipped))
    assert np.sign(mirror.yaw_deg()) == -np.sign(mesh.yaw_deg())
    assert abs(mirror.yaw_deg() + mesh.yaw_deg()) < 10.0


def test_mesh_follows_a_head_turn(photo_pipe: FacePipeline, samples: Path) -> None:
    # The live sample turned further by shifting the nose region: compare frames cropped off-centre is
    # not a turn, so use the two mirror images as the extreme positions of a turn sequence instead.
    img = read(samples / "image_T1.jpg")
    flipped = np.ascontiguousarray(img[:, ::-1])
    yaws = [photo_pipe.mesh(f, photo_pipe.find_customer(f)).yaw_deg() for f in (img, flipped)]
    want = Challenge.TURN_LEFT if yaws[1] > yaws[0] else Challenge.TURN_RIGHT
    other = Challenge.TURN_RIGHT if want is Challenge.TURN_LEFT else Challenge.TURN_LEFT
    tracker = ChallengeTracker(want, ChallengeConfig())  # by the mesh's yaw alone it is a turn...
    assert [tracker.update(0.3, y) for y in (yaws[0],) * 3 + (yaws[1],)][-1] is ChallengeState.PASSED
    # ...but a picture flipped in 2-D is no head turning: the face jumps, its texture does not follow
    out = photo_pipe.run_challenge([img, img, img, flipped], want)
    assert out.state is ChallengeState.FAILED and ("texture" in out.reason or "jumped" in out.reason)
    assert photo_pipe.run_challenge([img, img, img, flipped], other).state is ChallengeState.FAILED
    assert (
        photo_pipe.run_challenge([img] * 6, Challenge.BLINK).state is ChallengeState.FAILED
    )  # a still photo


def test_blink_needs_close_then_open() -> None:
    cfg = ChallengeConfig()
    tracker = ChallengeTracker(Challenge.BLINK, cfg)
    for v in (0.34, 0.35, 0.33, 0.34, 0.30):
        assert tracker.update(v, 0.0) is ChallengeState.PENDING
    assert tracker.update(0.12, 0.0) is ChallengeState.PENDING  # closed
    assert tracker.update(0.33, 0.0) is ChallengeState.PASSED  # reopened


def test_random_challenge_covers_every_action() -> None:
    from atm_host.vision.challenge import random_challenge

    assert {random_challenge(tuple(Challenge)) for _ in range(200)} == set(Challenge)


def test_a_still_photo_fails_the_challenge() -> None:
    cfg = ChallengeConfig(max_frames=20)
    for kind in Challenge:
        tracker = ChallengeTracker(kind, cfg)
        states = [tracker.update(0.34 + 0.01 * (i % 2), 2.0 * (i % 3)) for i in range(25)]
        assert states[-1] is ChallengeState.FAILED
