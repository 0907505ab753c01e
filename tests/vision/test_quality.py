"""Quality gate on generated camera frames: each failure gives the customer something to do."""

from pathlib import Path

import pytest
from atm_host.vision.errors import QualityError
from atm_host.vision.frame import Frame
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.quality import COME_CLOSER, HOLD_STILL, STEP_BACK, TOO_BRIGHT, TOO_DARK
from atm_host.vision.scene import Optics, render_faces

from .conftest import read


@pytest.fixture(scope="module")
def face(unaligned: dict[str, list[Path]]) -> Frame:
    return read(next(iter(unaligned.values()))[2])


@pytest.fixture(scope="module")
def eye_px(pipe: FacePipeline, face: Frame) -> float:
    return pipe.source_eye_px(face)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720)])
@pytest.mark.parametrize("distance", [45.0, 55.0, 65.0])
def test_distance_is_estimated_and_accepted(
    *, pipe: FacePipeline, face: Frame, eye_px: float, width: int, height: int, distance: float
) -> None:
    frame = render_faces([(face, eye_px, distance, 0.0)], Optics(width, height, seed=5))
    sample = pipe.sample(frame)
    assert abs(sample.quality.distance_cm - distance) < 0.1 * distance
    assert sample.quality.ok


@pytest.mark.parametrize(
    ("distance", "gain", "blur", "reason"),
    [
        (76.0, 1.0, 0.0, COME_CLOSER),
        (30.0, 1.0, 0.0, STEP_BACK),
        (50.0, 0.25, 0.0, TOO_DARK),
        (50.0, 3.0, 0.0, TOO_BRIGHT),
        (50.0, 1.0, 4.0, HOLD_STILL),
    ],
)
def test_rejections_carry_an_actionable_reason(
    *, pipe: FacePipeline, face: Frame, eye_px: float, distance: float, gain: float, blur: float, reason: str
) -> None:
    opt = Optics(640, 480, gain=gain, blur_sigma=blur, noise_sigma=1.0, seed=7)
    frame = render_faces([(face, eye_px, distance, 0.0)], opt)
    with pytest.raises(QualityError) as info:
        pipe.sample(frame)
    assert reason in info.value.reasons
