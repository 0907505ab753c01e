"""Scene generator: camera frames with a phone showing a QR code, or faces at ATM distance, plus optics.

A pinhole camera (horizontal field of view `hfov_deg`) looks at a phone held `distance_cm` away and
turned by yaw/pitch/roll; the phone's screen shows the QR code `qr_side_cm` wide. Faces are scaled so
the eyes are 6.3 cm apart at `distance_cm`. Lighting gain, glare on the screen, blur and sensor noise
are applied last. Everything is seeded: the same parameters give the same frame.
"""

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
import segno

from .errors import VisionError
from .frame import FloatArray, Frame

PHONE_W_CM, PHONE_H_CM = 7.2, 15.0
SCREEN_W_CM, SCREEN_H_CM = 6.6, 14.0
INTEROCULAR_CM = 6.3


@dataclass(frozen=True)
class Optics:
    """Camera and capture conditions."""

    width: int = 640
    height: int = 480
    hfov_deg: float = 62.0
    gain: float = 1.0  # overall lighting: < 1 darker, > 1 brighter
    blur_sigma: float = 0.0  # Gaussian blur in pixels (defocus or motion)
    noise_sigma: float = 2.0  # sensor noise, grey levels
    seed: int = 0

    @property
    def focal_px(self) -> float:
        """Focal length in pixels."""
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)


@dataclass(frozen=True)
class PhoneScene:
    """A phone with a QR code on its screen."""

    payload: bytes | str
    qr_side_cm: float = 4.0
    distance_cm: float = 30.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    offset_cm: tuple[float, float] = (0.0, 0.0)  # phone centre relative to the optical axis
    dark_mode: bool = False
    error: str = "m"
    glare: float = 0.0  # 0..1: a specular highlight on the screen
    glare_pos: tuple[float, float] = (0.3, -0.2)  # in QR half-widths from the QR centre
    extra_codes: tuple[bytes | str, ...] = field(default_factory=tuple[bytes | str, ...])


def qr_modules(payload: bytes | str, error: str = "m") -> npt.NDArray[np.bool_]:
    """The QR module matrix (True = dark) without quiet zone."""
    code = segno.make_qr(payload, error=error)
    return np.asarray([list(row) for row in code.matrix], dtype=np.bool_)


def qr_version(payload: bytes | str, error: str = "m") -> int:
    """The QR version segno picks for `payload` at error level `error`."""
    version = segno.make_qr(payload, error=error).version
    return int(version) if isinstance(version, int) else 0


def background(opt: Optics) -> Frame:
    """A plausible, seeded, cluttered indoor background."""
    rng = np.random.default_rng(opt.seed)
    h, w = opt.height, opt.width
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    top = rng.uniform(60, 200, 3).astype(np.float32)
    bottom = rng.uniform(40, 160, 3).astype(np.float32)
    img = np.broadcast_to(top * (1 - ys) + bottom * ys, (h, w, 3)).copy()
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(float(c) for c in rng.uniform(30, 230, 3))
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
    return np.asarray(np.clip(cv2.GaussianBlur(img, (0, 0), 3.0), 0, 255), dtype=np.uint8)


def _screen_texture(
    scene: PhoneScene, px_per_cm: float
) -> tuple[Frame, npt.NDArray[np.float32], tuple[float, float, float]]:
    """The phone front as an image, its corners in cm, and the QR box (centre x, centre y, side) in px."""
    tw, th = round(PHONE_W_CM * px_per_cm), round(PHONE_H_CM * px_per_cm)
    img = np.full((th, tw, 3), 25, dtype=np.uint8)  # bezel
    sx0 = round((PHONE_W_CM - SCREEN_W_CM) / 2 * px_per_cm)
    sy0 = round((PHONE_H_CM - SCREEN_H_CM) / 2 * px_per_cm)
    light, dark = (245, 245, 245), (18, 18, 18)
    paper, ink = (dark, light) if scene.dark_mode else (light, dark)
    img[sy0 : th - sy0, sx0 : tw - sx0] = paper
    codes = (scene.payload, *scene.extra_codes)
    side = scene.qr_side_cm * px_per_cm
    gap = side * 1.1
    cx = tw / 2.0
    cy0 = th / 2.0 - gap * (len(codes) - 1) / 2.0
    for k, payload in enumerate(codes):
        mods = qr_modules(payload, scene.error)
        n = mods.shape[0]
        cell = side / n
        tile = np.where(mods[:, :, None], np.asarray(ink, np.uint8), np.asarray(paper, np.uint8))
        tile_img = np.asarray(
            cv2.resize(tile.astype(np.uint8), (round(side), round(side)), interpolation=cv2.INTER_NEAREST),
            dtype=np.uint8,
        )
        x0, y0 = round(cx - side / 2), round(cy0 + k * gap - side / 2)
        if cell <= 0 or y0 < sy0 or y0 + tile_img.shape[0] > th - sy0:
            raise VisionError("QR codes do not fit on the phone screen")
        img[y0 : y0 + tile_img.shape[0], x0 : x0 + tile_img.shape[1]] = tile_img
    corners = np.asarray([[0, 0], [tw, 0], [tw, th], [0, th]], dtype=np.float32)
    return img, corners, (cx, cy0, side)


def _rotation(yaw: float, pitch: float, roll: float) -> npt.NDArray[np.float64]:
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.asarray([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.asarray([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.asarray([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _project_plane(
    opt: Optics,
    *,
    w_cm: float,
    h_cm: float,
    distance: float,
    angles: tuple[float, float, float],
    offset: tuple[float, float],
) -> npt.NDArray[np.float32]:
    """Image positions of the 4 corners of a w x h cm plane, centred `distance` cm in front, rotated."""
    local = np.asarray(
        [
            [-w_cm / 2, -h_cm / 2, 0],
            [w_cm / 2, -h_cm / 2, 0],
            [w_cm / 2, h_cm / 2, 0],
            [-w_cm / 2, h_cm / 2, 0],
        ]
    )
    pts = local @ _rotation(*angles).T + np.asarray([offset[0], offset[1], distance])
    f = opt.focal_px
    u = f * pts[:, 0] / pts[:, 2] + opt.width / 2.0
    v = f * pts[:, 1] / pts[:, 2] + opt.height / 2.0
    return np.stack([u, v], axis=1).astype(np.float32)


def _finish(img: FloatArray, opt: Optics) -> Frame:
    rng = np.random.default_rng(opt.seed + 1)
    out = img * opt.gain
    if opt.blur_sigma > 0:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), opt.blur_sigma), dtype=np.float32)
    if opt.noise_sigma > 0:
        out = out + rng.normal(0.0, opt.noise_sigma, out.shape).astype(np.float32)
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def render_phone(scene: PhoneScene, opt: Optics) -> tuple[Frame, npt.NDArray[np.float32]]:
    """A frame with the phone; returns it and the image corners of the (first) QR code."""
    frame = background(opt).astype(np.float32)
    px_per_cm = max(4.0, 2.0 * opt.focal_px / scene.distance_cm)  # about 2x oversampled
    tex, tex_corners, (qcx, qcy, side) = _screen_texture(scene, px_per_cm)
    angles = (scene.yaw_deg, scene.pitch_deg, scene.roll_deg)
    dst = _project_plane(
        opt,
        w_cm=PHONE_W_CM,
        h_cm=PHONE_H_CM,
        distance=scene.distance_cm,
        angles=angles,
        offset=scene.offset_cm,
    )
    hom = np.asarray(cv2.getPerspectiveTransform(tex_corners, dst), dtype=np.float64)
    size = (opt.width, opt.height)
    warped = np.asarray(cv2.warpPerspective(tex, hom, size, flags=cv2.INTER_AREA), dtype=np.float32)
    mask = np.asarray(
        cv2.warpPerspective(np.ones(tex.shape[:2], np.float32), hom, size, flags=cv2.INTER_LINEAR),
        dtype=np.float32,
    )[:, :, None]
    frame = (frame * (1 - mask) + warped * mask).astype(np.float32)
    q = np.asarray(
        [
            [qcx - side / 2, qcy - side / 2],
            [qcx + side / 2, qcy - side / 2],
            [qcx + side / 2, qcy + side / 2],
            [qcx - side / 2, qcy + side / 2],
        ],
        dtype=np.float32,
    )
    qr_corners = np.asarray(cv2.perspectiveTransform(q[None], hom), dtype=np.float32)[0]
    if scene.glare > 0:
        centre = qr_corners.mean(axis=0)
        half = float(np.linalg.norm(qr_corners[1] - qr_corners[0])) / 2.0
        gx = centre[0] + scene.glare_pos[0] * half
        gy = centre[1] + scene.glare_pos[1] * half
        yy, xx = np.mgrid[0 : opt.height, 0 : opt.width].astype(np.float32)
        radius = max(half * 0.5, 2.0)
        blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2)) * mask[:, :, 0]
        frame = (frame + (255.0 * scene.glare * blob)[:, :, None]).astype(np.float32)
    return _finish(frame, opt), qr_corners


def render_faces(faces: list[tuple[Frame, float, float, float]], opt: Optics) -> Frame:
    """A frame with faces pasted in: each (image, its eye distance in px, distance cm, x offset cm).

    The image is scaled so its eyes are 6.3 cm apart at the given distance, blended in with a soft
    elliptical mask, and centred vertically a little above the optical axis (the ATM looks up).
    """
    frame = background(opt).astype(np.float32)
    f = opt.focal_px
    for img, eye_px, distance, x_cm in faces:
        s = (f * INTEROCULAR_CM / distance) / eye_px
        fw, fh = max(8, round(img.shape[1] * s)), max(8, round(img.shape[0] * s))
        face = np.asarray(cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA), dtype=np.float32)
        mask = np.zeros((fh, fw), np.float32)
        cv2.ellipse(mask, (fw // 2, fh // 2), (int(fw * 0.47), int(fh * 0.49)), 0, 0, 360, 1.0, -1)
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), max(1.0, fw * 0.03)), dtype=np.float32)[:, :, None]
        cx = opt.width / 2.0 + f * x_cm / distance
        cy = opt.height * 0.45
        x0, y0 = round(cx - fw / 2), round(cy - fh / 2)
        xa, ya = max(0, x0), max(0, y0)
        xb, yb = min(opt.width, x0 + fw), min(opt.height, y0 + fh)
        if xb <= xa or yb <= ya:
            raise VisionError("face is outside the frame")
        sub_f = face[ya - y0 : yb - y0, xa - x0 : xb - x0]
        sub_m = mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
        frame[ya:yb, xa:xb] = frame[ya:yb, xa:xb] * (1 - sub_m) + sub_f * sub_m
    return _finish(frame, opt)
