"""iris_landmark eye contours: crop geometry, the mirrored eye, the lid gap, the real model, its hash."""

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from atm_host.journey.cameras import sitter_from_photo
from atm_host.vision.challenge import Challenge, ChallengeState, ChallengeTracker
from atm_host.vision.config import ChallengeConfig, VisionConfig
from atm_host.vision.errors import ModelIntegrityError
from atm_host.vision.frame import FloatArray
from atm_host.vision.iris import (
    CROP_SCALE,
    INNER,
    LEFT_EYE_CORNERS,
    OUTER,
    RIGHT_EYE_CORNERS,
    SIZE,
    eye_crop,
    lid_gap,
)
from atm_host.vision.manifest import load_manifest
from atm_host.vision.paths import CACHE_DIR, MANIFEST_PATH, default_liveness_dir
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.runtime import load_model
from atm_host.vision.scene import Optics, Pose, render_person
from pydantic import ValidationError

from .conftest import read


def _pt(x: float, y: float) -> FloatArray:
    return np.asarray([x, y], dtype=np.float32)


def _apply(matrix: FloatArray, x: float, y: float) -> tuple[float, float]:
    u, v = matrix @ np.asarray([x, y, 1.0], dtype=np.float32)
    return float(u), float(v)


def test_crop_puts_the_corners_on_a_horizontal_line_outer_left() -> None:
    half_eye = SIZE / CROP_SCALE / 2.0  # the corners land this far either side of the crop centre
    for roll in (0.0, 15.0, -25.0):
        a = math.radians(roll)
        outer, inner = _pt(100, 200), _pt(100 + 40 * math.cos(a), 200 + 40 * math.sin(a))
        crop = eye_crop(outer, inner, mirrored=False)
        assert crop.scale == pytest.approx(SIZE / (CROP_SCALE * 40.0))
        m = crop.matrix()
        assert _apply(m, *outer) == pytest.approx((SIZE / 2 - half_eye, SIZE / 2), abs=1e-3)
        assert _apply(m, *inner) == pytest.approx((SIZE / 2 + half_eye, SIZE / 2), abs=1e-3)
        # below the eye in the face stays below in the crop
        below = (outer + inner) / 2 + 10 * np.asarray([-math.sin(a), math.cos(a)], np.float32)
        assert _apply(m, *below)[1] > SIZE / 2
        # and crop coordinates map back onto the frame
        pts = np.asarray([[0, 0], [SIZE, 0], [13.5, 40.25]], dtype=np.float32)
        back = crop.to_frame(pts)
        again = np.asarray([_apply(m, *p) for p in back], dtype=np.float32)
        assert np.allclose(again, pts, atol=1e-3)


def test_left_eye_is_mirrored_so_its_outer_corner_is_on_the_left() -> None:
    outer, inner = _pt(300, 200), _pt(260, 200)  # the subject's left eye: outer corner on the image right
    m = eye_crop(outer, inner, mirrored=True).matrix()
    assert _apply(m, *outer)[0] < SIZE / 2 < _apply(m, *inner)[0]
    assert _apply(m, 280, 210)[1] > SIZE / 2  # still upright: below the eye stays below
    assert np.linalg.det(m[:, :2]) < 0  # a reflection, not a rotation by 180 degrees
    # the mirrored crop of the left eye is the plain crop of the same eye in the flipped frame
    rng = np.random.default_rng(0)
    frame = np.asarray(cv2.GaussianBlur(rng.integers(0, 255, (400, 400, 3), np.uint8), (0, 0), 2.0), np.uint8)
    flipped = np.ascontiguousarray(frame[:, ::-1])
    w = frame.shape[1] - 1

    def warp(img: np.ndarray, mat: FloatArray) -> np.ndarray:
        return np.asarray(cv2.warpAffine(img, mat, (SIZE, SIZE), flags=cv2.INTER_LINEAR), np.float32)

    a = warp(frame, m)
    b = warp(flipped, eye_crop(_pt(w - 300, 200), _pt(w - 260, 200), mirrored=False).matrix())
    assert float(np.abs(a - b).mean()) < 1.0


def _contour(gap: float, width: float = 30.0) -> FloatArray:
    """71 crop points with lids as arcs `gap` apart at the middle (outer corner left), the rest padding."""
    pts = np.zeros((71, 2), np.float32)
    x0 = 17.0
    lower_t = np.linspace(0.0, 1.0, 9)
    upper_t = np.linspace(0.1, 0.9, 7)
    pts[0:9, 0] = x0 + width * lower_t
    pts[0:9, 1] = 32 + (gap / 2) * np.sin(np.pi * lower_t)
    pts[9:16, 0] = x0 + width * upper_t
    pts[9:16, 1] = 32 - (gap / 2) * np.sin(np.pi * upper_t)
    return pts


def test_lid_gap_is_the_gap_over_the_width_and_never_negative() -> None:
    open_eye = lid_gap(_contour(9.0))
    expected = 9.0 * float(np.mean(np.sin(np.pi * np.asarray([0.3, 0.5, 0.7])))) / 30.0
    assert open_eye == pytest.approx(expected, rel=0.03)
    assert lid_gap(_contour(4.5)) == pytest.approx(open_eye / 2, rel=0.03)
    assert lid_gap(_contour(0.0)) == pytest.approx(0.0, abs=1e-6)
    assert lid_gap(_contour(-3.0)) == 0.0  # lids crossed by a poor fit: shut, not negative
    # a similarity transform (roll, scale, shift) does not change it
    a = math.radians(20)
    rot = 1.7 * np.asarray([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    moved = np.asarray(_contour(9.0) @ rot.T + np.asarray([5.0, -3.0], np.float32), np.float32)
    assert lid_gap(moved) == pytest.approx(open_eye, rel=1e-4)


@pytest.fixture(scope="module")
def person(pipe: FacePipeline, unaligned: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray]:
    """The first dev person rendered at 50 cm (720p) with the eyes open and shut."""
    sitter = sitter_from_photo(pipe, read(next(iter(unaligned.values()))[0]))
    opt = Optics(1280, 720, seed=3)
    return render_person(sitter, opt), render_person(sitter, opt, pose=Pose(eyes_closed=1.0))


def test_openness_falls_when_the_eyes_close(
    pipe: FacePipeline, person: tuple[np.ndarray, np.ndarray]
) -> None:
    opened, shut = (pipe.eyes(f, pipe.mesh(f, pipe.find_customer(f))) for f in person)
    assert 0.15 < opened.right_openness < 0.45 and 0.15 < opened.left_openness < 0.45
    assert shut.right_openness < 0.6 * opened.right_openness
    assert shut.left_openness < 0.6 * opened.left_openness
    assert shut.openness() < 0.6 * opened.openness()
    assert pipe.timings["eyes"] < 50.0  # ~2.5 ms on a 2-core Xeon; generous for a loaded machine


def test_contours_are_mapped_back_onto_each_eye(
    pipe: FacePipeline, person: tuple[np.ndarray, np.ndarray]
) -> None:
    frame = person[0]
    mesh = pipe.mesh(frame, pipe.find_customer(frame))
    eyes = pipe.eyes(frame, mesh)
    for contour, (outer, inner) in ((eyes.right, RIGHT_EYE_CORNERS), (eyes.left, LEFT_EYE_CORNERS)):
        width = float(np.linalg.norm(mesh.points[outer, :2] - mesh.points[inner, :2]))
        assert contour.shape == (71, 2)
        assert float(np.linalg.norm(contour[OUTER] - mesh.points[outer, :2])) < 0.25 * width
        assert float(np.linalg.norm(contour[INNER] - mesh.points[inner, :2])) < 0.25 * width
        upper, lower = contour[9:16, 1].mean(), contour[1:8, 1].mean()
        assert upper < lower  # the upper lid is above the lower one in the frame (y down)


def test_a_mirrored_face_swaps_the_eyes(pipe: FacePipeline, person: tuple[np.ndarray, np.ndarray]) -> None:
    frame = person[0]
    flipped = np.ascontiguousarray(frame[:, ::-1])
    a, b = (pipe.eyes(f, pipe.mesh(f, pipe.find_customer(f))) for f in (frame, flipped))
    assert b.right_openness == pytest.approx(a.left_openness, rel=0.1)
    assert b.left_openness == pytest.approx(a.right_openness, rel=0.1)


def test_iris_model_in_the_manifest_is_verified_on_load(models_ready: None, tmp_path: Path) -> None:
    entry = load_manifest(MANIFEST_PATH).entry("iris_landmark")
    assert entry.source.package == "mediapipe" and entry.source.version == "0.10.21"
    assert entry.source.member == "mediapipe/modules/iris_landmark/iris_landmark.tflite"
    assert entry.location == "model_dir" and entry.license == "Apache-2.0"
    assert (MANIFEST_PATH.parent / entry.card).is_file()
    model = load_model("iris_landmark", entry, CACHE_DIR, default_liveness_dir(), 1)
    assert model.input_shapes == [tuple(entry.inputs[0].shape)] == [(1, SIZE, SIZE, 3)]
    points, iris = model.run(np.zeros((1, SIZE, SIZE, 3), np.float32))
    assert [points.shape, iris.shape] == [tuple(o.shape) for o in entry.outputs] == [(1, 213), (1, 15)]
    bad = tmp_path / entry.file
    shutil.copy(CACHE_DIR / entry.file, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 3] ^= 0x10  # one flipped bit
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model("iris_landmark", entry, tmp_path, default_liveness_dir(), 1)


def test_eye_model_is_configured_and_checked() -> None:
    assert ChallengeConfig().eye_model == "iris_landmark"
    assert ChallengeConfig(eye_model="face_landmark").eye_model == "face_landmark"
    with pytest.raises(ValidationError):
        ChallengeConfig(eye_model="eyeball")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ChallengeConfig(blink_model="iris_landmark")  # type: ignore[call-arg]


def test_face_landmark_can_still_measure_the_eyes(
    models_ready: None, person: tuple[np.ndarray, np.ndarray]
) -> None:
    pipe = FacePipeline(VisionConfig(threads=1, challenge=ChallengeConfig(eye_model="face_landmark")))
    frame = person[0]
    mesh = pipe.mesh(frame, pipe.find_customer(frame))
    assert pipe.eye_openness(frame, mesh) == mesh.eye_openness()


def test_a_closure_counts_only_while_the_face_keeps_its_shape() -> None:
    cfg = ChallengeConfig()
    squashed = 1.0 - 2 * cfg.blink_max_shape_change  # a photo tilted back: eyes and face narrow together
    tracker = ChallengeTracker(Challenge.BLINK, cfg)
    for openness, shape in ((0.3, 0.5), (0.3, 0.5), (0.3, 0.5), (0.15, 0.5 * squashed), (0.3, 0.5)):
        state = tracker.update(openness, 0.0, shape)
    assert state is ChallengeState.PENDING
    for openness, shape in ((0.15, 0.49), (0.3, 0.5)):  # the eyes alone close: a blink
        state = tracker.update(openness, 0.0, shape)
    assert state is ChallengeState.PASSED
