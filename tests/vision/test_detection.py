"""Detection, customer choice and bad inputs on real frames."""

from pathlib import Path

import numpy as np
import pytest
from atm_host.vision.errors import FrameError, MultipleFacesError, NoFaceError
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.scene import Optics, background, render_faces

from .conftest import read


def test_one_face_with_ordered_keypoints_in_every_unaligned_image(
    pipe: FacePipeline, unaligned: dict[str, list[Path]]
) -> None:
    paths = [p for ps in unaligned.values() for p in ps]
    assert len(paths) == 55
    for path in paths:
        img = read(path)
        faces = pipe.detector.detect(img)
        assert len(faces) == 1, path
        face = faces[0]
        kp = face.keypoints
        assert kp[0, 0] < kp[2, 0] < kp[1, 0], path  # right eye, nose, left eye from left to right
        assert kp[0, 1] < kp[3, 1] and kp[2, 1] < kp[3, 1], path  # eyes and nose above the mouth
        assert 0.25 * img.shape[1] < face.eye_distance < 0.6 * img.shape[1], path


def test_empty_and_malformed_frames_are_clear_errors(pipe: FacePipeline) -> None:
    with pytest.raises(FrameError, match="empty"):
        pipe.sample(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(FrameError, match="uint8"):
        pipe.sample(np.zeros((480, 640, 3), np.float32))  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="HxWx3"):
        pipe.sample(np.zeros((480, 640), np.uint8))


def test_no_face(pipe: FacePipeline) -> None:
    with pytest.raises(NoFaceError, match="look at the camera"):
        pipe.sample(background(Optics(seed=3)))


def test_two_faces_side_by_side_are_refused(pipe: FacePipeline, unaligned: dict[str, list[Path]]) -> None:
    a, b = (read(ps[0]) for ps in list(unaligned.values())[:2])
    frame = render_faces([(a, 0.37 * 150, 55.0, -14.0), (b, 0.37 * 150, 55.0, 14.0)], Optics(1280, 720))
    assert len(pipe.detector.detect(frame)) == 2
    with pytest.raises(MultipleFacesError, match="one person"):
        pipe.sample(frame)


def test_small_face_in_the_background_is_ignored(
    pipe: FacePipeline, unaligned: dict[str, list[Path]]
) -> None:
    people = list(unaligned.values())
    near, far = read(people[0][0]), read(people[1][0])
    frame = render_faces([(far, 0.37 * 150, 150.0, 35.0), (near, 0.37 * 150, 50.0, -5.0)], Optics(1280, 720))
    sample = pipe.sample(frame)
    assert sample.detection.box[0] < 640  # the near face, left of centre
