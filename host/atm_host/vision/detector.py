"""BlazeFace short-range face detector: letterbox, run, decode the 896 anchors, weighted NMS."""

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .config import DetectorConfig
from .errors import MultipleFacesError, NoFaceError
from .frame import FloatArray, Frame, check_frame
from .runtime import TfliteModel

_SIZE = 128


@dataclass(frozen=True)
class Detection:
    """A face in frame pixels: box (x, y, w, h), 6 keypoints, and the face probability.

    Keypoints in BlazeFace order: subject's right eye, left eye, nose tip, mouth centre, right ear,
    left ear (the subject's right eye appears on the image's left).
    """

    box: tuple[float, float, float, float]
    keypoints: FloatArray
    score: float

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2]

    @property
    def eye_distance(self) -> float:
        """Distance between the eye centres in pixels."""
        return float(np.linalg.norm(self.keypoints[1] - self.keypoints[0]))


def make_anchors() -> FloatArray:
    """The 896 anchor centres (x, y) in [0, 1]: 16x16 cells x 2 at stride 8, then 8x8 cells x 6."""
    centres: list[tuple[float, float]] = []
    for cells, per_cell in ((16, 2), (8, 6)):
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.asarray(centres, dtype=np.float32)


def _iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return (inter / np.maximum(area + areas - inter, 1e-9)).astype(np.float32)


class BlazeFace:
    """Detects faces in a BGR frame with the BlazeFace short-range model."""

    def __init__(self, model: TfliteModel, config: DetectorConfig) -> None:
        self._model = model
        self._config = config
        self._anchors = make_anchors()
        self._canvas = np.zeros((1, _SIZE, _SIZE, 3), dtype=np.float32)

    def detect(self, frame: Frame) -> list[Detection]:
        """All faces in `frame`, most probable first."""
        return self._detect(check_frame(frame))

    def refine(self, frame: Frame, face: Detection, context: float = 2.0) -> Detection:
        """`face` detected again on a square crop `context` times its size around it.

        On a 1280x720 frame a face at 60 cm is only about 25 px wide in the 128 px letterbox, which
        makes keypoints coarse and biases their spacing; the crop gives the detector the face at full
        size, so alignment and the distance estimate use accurate keypoints. Returns `face` unchanged if
        the crop finds nothing.
        """
        x, y, w, h = face.box
        side = max(w, h) * context
        x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
        n = max(16, round(side))
        fh, fw = frame.shape[:2]
        crop = np.zeros((n, n, 3), dtype=np.uint8)
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(fw, x0 + n), min(fh, y0 + n)
        if xb <= xa or yb <= ya:
            return face
        crop[ya - y0 : yb - y0, xa - x0 : xb - x0] = frame[ya:yb, xa:xb]
        found = self._detect(crop)
        if not found:
            return face
        centre = np.asarray([n / 2, n / 2], dtype=np.float32)
        best = min(found, key=lambda f: float(np.linalg.norm(f.keypoints[:4].mean(axis=0) - centre)))
        bx, by, bw, bh = best.box
        shift = np.asarray([x0, y0], dtype=np.float32)
        return Detection((bx + x0, by + y0, bw, bh), (best.keypoints + shift).astype(np.float32), best.score)

    def detect_centre(self, frame: Frame, fraction: float = 0.6) -> list[Detection]:
        """Faces in the central square `fraction` of the frame's height (the customer's place).

        A second look for a customer standing too far away: the short-range model loses faces under
        about 10 px of eye distance in its 128 px input, i.e. beyond about 70 cm at 640x480.
        """
        h, w = frame.shape[:2]
        side = max(32, round(min(h, w) * fraction))
        x0, y0 = (w - side) // 2, (h - side) // 2
        found = self._detect(np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side]))
        shift = np.asarray([x0, y0], dtype=np.float32)
        return [
            Detection(
                (f.box[0] + x0, f.box[1] + y0, f.box[2], f.box[3]),
                (f.keypoints + shift).astype(np.float32),
                f.score,
            )
            for f in found
        ]

    def _detect(self, frame: Frame) -> list[Detection]:
        h, w = frame.shape[:2]
        scale = _SIZE / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        ox, oy = (_SIZE - nw) // 2, (_SIZE - nh) // 2
        small = np.asarray(cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        rgb = small[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
        self._canvas.fill(0.0)
        self._canvas[0, oy : oy + nh, ox : ox + nw] = rgb
        regressors, logits = self._model.run(self._canvas)
        return self._decode(regressors[0], logits[0, :, 0], scale, ox, oy)

    def _decode(self, reg: FloatArray, logits: FloatArray, scale: float, ox: int, oy: int) -> list[Detection]:
        scores: FloatArray = (1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))).astype(np.float32)
        keep: npt.NDArray[np.intp] = np.flatnonzero(scores >= self._config.score_threshold)
        if keep.size == 0:
            return []
        anchors = self._anchors[keep]
        r = reg[keep] / _SIZE
        cx = r[:, 0] + anchors[:, 0]
        cy = r[:, 1] + anchors[:, 1]
        bw, bh = r[:, 2], r[:, 3]
        boxes: FloatArray = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(
            np.float32
        )
        kps: FloatArray = (r[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]).astype(np.float32)
        s = scores[keep]
        order: list[int] = [int(i) for i in np.argsort(-s)]
        out: list[Detection] = []
        while order:
            idx = np.asarray(order)
            overlap = _iou(boxes[idx[0]], boxes[idx])
            group = idx[overlap >= self._config.nms_iou]
            weights = s[group][:, None]
            box: FloatArray = ((boxes[group] * weights).sum(axis=0) / weights.sum()).astype(np.float32)
            kp: FloatArray = ((kps[group] * weights[:, :, None]).sum(axis=0) / weights.sum()).astype(
                np.float32
            )
            out.append(self._to_frame(box, kp, float(s[idx[0]]), scale, (ox, oy)))
            grouped = {int(i) for i in group}
            order = [i for i in order if i not in grouped]
        return out

    @staticmethod
    def _to_frame(
        box: FloatArray, kp: FloatArray, score: float, scale: float, offset: tuple[int, int]
    ) -> Detection:
        ox, oy = offset
        x1 = (box[0] * _SIZE - ox) / scale
        y1 = (box[1] * _SIZE - oy) / scale
        x2 = (box[2] * _SIZE - ox) / scale
        y2 = (box[3] * _SIZE - oy) / scale
        pts = np.empty_like(kp)
        pts[:, 0] = (kp[:, 0] * _SIZE - ox) / scale
        pts[:, 1] = (kp[:, 1] * _SIZE - oy) / scale
        return Detection(
            (float(x1), float(y1), float(x2 - x1), float(y2 - y1)), pts.astype(np.float32), score
        )


def pick_customer(
    faces: list[Detection], frame_shape: tuple[int, ...], second_face_ratio: float
) -> Detection:
    """The customer's face: the widest one; a second face nearly as wide means two people at the ATM.

    Raises NoFaceError or MultipleFacesError.
    """
    if not faces:
        raise NoFaceError("no face found: please come closer and look at the camera")
    ranked = sorted(faces, key=lambda f: f.width, reverse=True)
    if len(ranked) > 1 and ranked[1].width >= second_face_ratio * ranked[0].width:
        raise MultipleFacesError(f"{len(ranked)} faces in view: one person at a time, please")
    return ranked[0]
