"""Scene generator: camera frames with a phone showing a QR code, or faces at ATM distance, plus optics.

A pinhole camera (horizontal field of view `hfov_deg`) looks at a phone held `distance_cm` away and
turned by yaw/pitch/roll; the phone's screen shows the QR code `qr_side_cm` wide. Faces are scaled so
the eyes are 6.3 cm apart at `distance_cm`. Lighting gain, glare on the screen, blur and sensor noise
are applied last. Everything is seeded: the same parameters give the same frame.

Two ways to put a face photo in front of the camera:
- `render_faces`: the photo itself held up (a soft oval cut of it over the room): what a photo attack
  looks like, and the quick way to place several faces;
- `render_person`: a live customer. At 50 cm a person's head, neck and shoulders fill most of the view
  (the frame is ~60 x 34 cm there), so the photo is continued beyond its edges (its own hair, collar and
  background, smoothed the further out) inside a head-and-shoulders outline and only the room around
  the outline is the generated background. The person can turn their head (`Pose.yaw_deg`, a cylinder
  warp of the photo) and close their eyes (`Pose.eyes_closed`, the upper lid drawn down over the eye
  along the face-mesh eye contours). See docs/vision.md for what this changes in passive liveness.
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
# Head-and-shoulders outline of a person, in cm from the midpoint between the eyes (y down): head
# ellipse (half-width, half-height, centre below the eyes), neck half-width, shoulders ellipse
# (half-width, half-height, top below the eyes). Adult averages; the outline is feathered.
HEAD_CM = (8.5, 12.0, 0.5)
NECK_HALF_CM = 6.0
SHOULDERS_CM = (23.0, 28.0, 19.5)
OUTLINE_FEATHER_CM = 0.6
EYES_Y = 0.42  # the customer's eyes are a little above the middle of the frame (the ATM looks up)
# Head-turn cylinder radius: 0.95 of the face's half-width (cheek to cheek in the face mesh), or, when
# that is not known, 1.05 eye distances (a face is ~2.2 eye distances wide).
TURN_RADIUS_FACE = 0.95
TURN_RADIUS_EYES = 1.05


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


# ----- a live person ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pose:
    """What the person does: turn the head and close the eyes.

    `yaw_deg` > 0: the customer turns to their left, i.e. the nose moves to the image's right (the
    camera sees a mirror of them; the challenge's sign). `eyes_closed`: 0 open, 1 shut.
    """

    yaw_deg: float = 0.0
    eyes_closed: float = 0.0


@dataclass(frozen=True)
class Sitter:
    """A face photo of a person and what is known about it, in the photo's pixels.

    `eyes` are the two eye contours (16 points each, face-mesh order: outer corner, lower lid to the
    inner corner at index 8, upper lid back towards the outer corner); needed only to close the eyes.
    `face_x` is the x of the face's two sides (the mesh's cheek points): the axis and radius of a head
    turn; without it the turn is centred on the eyes. `mesh` (face_landmark's points with their depth)
    gives the turn the face's relief (the nose in front of the cheeks moves further: parallax); without
    it the head turns as a plain cylinder, which is a 2D warp of the photo.
    """

    image: Frame
    eye_px: float
    eye_centre: tuple[float, float]
    eyes: tuple[FloatArray, FloatArray] | None = None
    face_x: tuple[float, float] | None = None
    mesh: FloatArray | None = None  # face_landmark's 468 (x, y, z) in photo px: the face's depth relief


def _continued(img: Frame, pad: int) -> FloatArray:
    """The photo with its edges continued `pad` px outward, smoothed more the further from the photo."""
    h, w = img.shape[:2]
    big = np.asarray(cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE), dtype=np.float32)
    if pad <= 0:
        return big
    side = float(max(h, w))
    soft = np.asarray(cv2.GaussianBlur(big, (0, 0), 0.06 * side), dtype=np.float32)
    ys = np.arange(big.shape[0], dtype=np.float32)
    xs = np.arange(big.shape[1], dtype=np.float32)
    dy = np.maximum(0.0, np.maximum(pad - ys, ys - (pad + h - 1)))[:, None]
    dx = np.maximum(0.0, np.maximum(pad - xs, xs - (pad + w - 1)))[None, :]
    t = np.clip(np.sqrt(dx * dx + dy * dy) / (0.15 * side), 0.0, 1.0)[:, :, None]
    return np.asarray(big * (1.0 - t) + soft * t, dtype=np.float32)


def _outline(shape: tuple[int, int], eyes_xy: tuple[float, float], px_per_cm: float) -> FloatArray:
    """Soft head-and-shoulders mask (1 on the person) around the eye midpoint `eyes_xy`."""
    h, w = shape
    m = np.zeros((h, w), np.float32)
    ex, ey = eyes_xy
    u = px_per_cm
    hw, hh, hdy = HEAD_CM
    sw, sh, top = SHOULDERS_CM
    cv2.ellipse(m, (round(ex), round(ey + hdy * u)), (round(hw * u), round(hh * u)), 0, 0, 360, 1.0, -1)
    cv2.rectangle(
        m,
        (round(ex - NECK_HALF_CM * u), round(ey)),
        (round(ex + NECK_HALF_CM * u), round(ey + (top + 4) * u)),
        1.0,
        -1,
    )
    cv2.ellipse(
        m, (round(ex), round(ey + (top + sh) * u)), (round(sw * u), round(sh * u)), 0, 0, 360, 1.0, -1
    )
    return np.asarray(cv2.GaussianBlur(m, (0, 0), max(1.0, OUTLINE_FEATHER_CM * u)), dtype=np.float32)


def _cylinder_back(x_dst: FloatArray, centre_x: float, radius_px: float, yaw_deg: float) -> FloatArray:
    """Where a point seen at `x_dst` after the cylinder turned by `yaw_deg` was before it."""
    u = np.clip((x_dst - centre_x) / radius_px, -1.0, 1.0)
    phi = np.clip(np.arcsin(u) - math.radians(yaw_deg), -math.pi / 2, math.pi / 2)
    shift = centre_x + radius_px * np.sin(phi) - x_dst
    outside = np.abs(x_dst - centre_x) - radius_px
    shift *= np.clip(1.0 - outside / (0.35 * radius_px), 0.0, 1.0)
    return np.asarray(x_dst + shift, dtype=np.float32)


def face_relief(shape: tuple[int, int], mesh: FloatArray, centre_x: float, radius_px: float) -> FloatArray:
    """The face's depth in front of the head-turn cylinder, px (positive towards the camera), per pixel.

    face_landmark's z (negative towards the camera) is spread over the face by normalised Gaussian
    splatting of its 468 points, the cylinder's own depth is taken off, the result is zeroed on average
    along the face's outline and faded out beyond it: the nose and the brows stand out, the cheeks curve
    away. 0 outside the face.
    """
    h, w = shape
    pts = np.asarray(mesh, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    depth = -pts[:, 2]
    u = np.clip((x - centre_x) / radius_px, -1.0, 1.0)
    rel = depth - radius_px * np.sqrt(1.0 - u * u)
    hull = np.asarray(cv2.convexHull(pts[:, :2].astype(np.float32)), dtype=np.float32).reshape(-1, 2)
    on_hull = [int(np.argmin(np.sum((pts[:, :2] - p) ** 2, axis=1))) for p in hull]
    rel = rel - float(np.median(rel[on_hull]))
    acc = np.zeros((h, w), np.float32)
    wt = np.zeros((h, w), np.float32)
    xi = np.clip(np.round(x).astype(np.int64), 0, w - 1)
    yi = np.clip(np.round(y).astype(np.int64), 0, h - 1)
    np.add.at(acc, (yi, xi), rel.astype(np.float32))
    np.add.at(wt, (yi, xi), 1.0)
    spacing = max(1.0, 0.035 * radius_px)
    acc = np.asarray(cv2.GaussianBlur(acc, (0, 0), spacing), dtype=np.float32)
    wt = np.asarray(cv2.GaussianBlur(wt, (0, 0), spacing), dtype=np.float32)
    field_ = acc / np.maximum(wt, 1e-6)
    mask = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1.0)
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), 2.0 * spacing), dtype=np.float32)
    return np.asarray(field_ * mask, dtype=np.float32)


def turn_head(
    img: Frame, centre_x: float, radius_px: float, yaw_deg: float, relief: FloatArray | None = None
) -> Frame:
    """The head turned by `yaw_deg` about a vertical axis: the photo mapped onto a cylinder and rotated.

    Points at angle phi on a cylinder of `radius_px` around `centre_x` move to phi + yaw; what turns out
    of view is hidden, the far side is compressed, the near side stretched; beyond the cylinder the shift
    fades out over a third of the radius (hair, ears, background). With `relief` (`face_relief`: depth in
    front of the cylinder) a point also moves by relief x sin(yaw): the nose tip moves further than the
    cheeks beside it, as on a real head (solved backwards by a few fixed-point steps).
    """
    if yaw_deg == 0.0:
        return img
    h, w = img.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    base = _cylinder_back(xs, centre_x, radius_px, yaw_deg)
    map_x = np.broadcast_to(base[None, :], (h, w)).astype(np.float32)
    map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).astype(np.float32)
    if relief is not None:
        grid = np.broadcast_to(xs[None, :], (h, w)).astype(np.float32)
        sin = math.sin(math.radians(yaw_deg))
        for _ in range(4):
            r = np.asarray(cv2.remap(relief, map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0), np.float32)
            map_x = _cylinder_back(np.asarray(grid - r * sin, np.float32), centre_x, radius_px, yaw_deg)
    out = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def _lid_curves(contour: FloatArray, n: int = 24) -> tuple[FloatArray, FloatArray]:
    """Lower and upper lid of a 16-point eye contour, each resampled to `n` points from outer to inner."""
    lower = contour[0:9]
    upper = np.concatenate([contour[8:16], contour[0:1]])[::-1]

    def resample(c: FloatArray) -> FloatArray:
        d = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])
        t = np.linspace(0.0, float(d[-1]), n)
        return np.stack([np.interp(t, d, c[:, 0]), np.interp(t, d, c[:, 1])], axis=1).astype(np.float32)

    return resample(lower), resample(upper)


def close_eyes(img: Frame, eyes: tuple[FloatArray, FloatArray], closed: float, scale: int = 4) -> Frame:
    """The eyes closed by `closed` (0 open .. 1 shut), as a lid closes.

    The upper lid (the skin between the brow and the lid margin, lashes included) slides down and the
    lower lid up until they meet at 85% of the opening, so the eye's own skin and lashes cover it; the
    stretched lid is smoothed a little and the lash line where the lids meet darkened. Worked at `scale`x
    the photo's resolution.
    """
    if closed <= 0.0:
        return img
    c = min(closed, 1.0)
    big = np.asarray(cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
    hh, ww = big.shape[:2]
    map_y = np.broadcast_to(np.arange(hh, dtype=np.float32)[:, None], (hh, ww)).copy()
    map_x = np.broadcast_to(np.arange(ww, dtype=np.float32)[None, :], (hh, ww)).copy()
    lid = np.zeros((hh, ww), np.float32)
    lash = np.zeros((hh, ww), np.float32)
    width = 1.0
    for contour in eyes:
        pts = np.asarray(contour, dtype=np.float32)[:, :2] * scale
        width = float(np.linalg.norm(pts[0] - pts[8]))
        low_c, up_c = _lid_curves(pts)
        lo = low_c[np.argsort(low_c[:, 0])]
        up = up_c[np.argsort(up_c[:, 0])]
        x0 = max(0, math.floor(float(pts[:, 0].min())))
        x1 = min(ww - 1, math.ceil(float(pts[:, 0].max())))
        for x in range(x0, x1 + 1):
            lo_y = float(np.interp(x, lo[:, 0], lo[:, 1]))
            up_y = min(float(np.interp(x, up[:, 0], up[:, 1])), lo_y)
            meet = up_y + 0.85 * (lo_y - up_y)
            new_up, new_lo = up_y + c * (meet - up_y), lo_y + c * (meet - lo_y)
            top, bottom = up_y - 0.45 * width, lo_y + 0.3 * width
            y0, y1 = max(0, math.floor(top)), min(hh - 1, math.ceil(bottom))
            ys = np.arange(y0, y1 + 1, dtype=np.float32)
            from_up = top + (ys - top) * (up_y - top) / max(new_up - top, 1e-3)
            from_lo = bottom - (bottom - ys) * (bottom - lo_y) / max(bottom - new_lo, 1e-3)
            map_y[y0 : y1 + 1, x] = np.where(ys <= new_up, from_up, np.where(ys >= new_lo, from_lo, ys))
            t0, t1 = max(0, round(top + 0.15 * width)), min(hh - 1, round(new_up - 0.06 * width))
            if t1 > t0:
                lid[t0 : t1 + 1, x] = 1.0
        margin = up_c + c * ((up_c + 0.85 * (low_c - up_c)) - up_c)
        thick = max(1, round(0.07 * width))
        cv2.polylines(lash, [np.round(margin).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
    out = np.asarray(
        cv2.remap(big, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), np.float32
    )
    smooth = np.asarray(cv2.GaussianBlur(out, (0, 0), 0.25 * width), dtype=np.float32)
    lid_m = np.asarray(cv2.GaussianBlur(lid, (0, 0), 0.03 * width + 0.5), dtype=np.float32)[:, :, None]
    out = out * (1.0 - lid_m) + smooth * lid_m
    lash_m = np.asarray(cv2.GaussianBlur(lash, (0, 0), 0.02 * width + 0.5), dtype=np.float32)[:, :, None]
    out = out * (1.0 - 0.5 * c * lash_m)
    small = cv2.resize(
        np.clip(out, 0, 255).astype(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA
    )
    return np.asarray(small, dtype=np.uint8)


def posed(sitter: Sitter, pose: Pose) -> Frame:
    """The sitter's photo with `pose` applied (eyes closed first, then the head turned)."""
    img = sitter.image
    if pose.eyes_closed > 0.0:
        if sitter.eyes is None:
            raise VisionError("closing the eyes needs the eye contours of the photo (Sitter.eyes)")
        img = close_eyes(img, sitter.eyes, pose.eyes_closed)
    if pose.yaw_deg != 0.0:
        if sitter.face_x is not None:
            a, b = sitter.face_x
            centre, radius = (a + b) / 2.0, TURN_RADIUS_FACE * abs(b - a) / 2.0
        else:
            centre, radius = sitter.eye_centre[0], TURN_RADIUS_EYES * sitter.eye_px
        radius = max(radius, 1.0)
        relief = None
        if sitter.mesh is not None:
            relief = face_relief((img.shape[0], img.shape[1]), sitter.mesh, centre, radius)
        img = turn_head(img, centre, radius, pose.yaw_deg, relief)
    return img


def render_person(
    sitter: Sitter, opt: Optics, distance_cm: float = 50.0, x_cm: float = 0.0, pose: Pose | None = None
) -> Frame:
    """A frame with the sitter as a live person `distance_cm` from the camera (eyes 6.3 cm apart).

    The posed photo is scaled to the distance, continued beyond its edges (`_continued`) and shown inside
    a head-and-shoulders outline; the room (`background`) is seen only around the person. Lighting, blur
    and sensor noise are applied to the whole frame at once (`_finish`).
    """
    img = posed(sitter, pose or Pose())
    f = opt.focal_px
    s = (f * INTEROCULAR_CM / distance_cm) / sitter.eye_px
    ex = opt.width / 2.0 + f * x_cm / distance_cm
    ey = opt.height * EYES_Y
    sx, sy = sitter.eye_centre
    h, w = img.shape[:2]
    # padding (photo px) so that the continued photo covers the whole frame
    need = max(ex / s - sx, (opt.width - ex) / s - (w - sx), ey / s - sy, (opt.height - ey) / s - (h - sy))
    pad = max(0, min(math.ceil(need) + 2, 4 * max(h, w)))
    big = _continued(img, pad)
    m = np.asarray([[s, 0.0, ex - (sx + pad) * s], [0.0, s, ey - (sy + pad) * s]], dtype=np.float64)
    person = np.asarray(
        cv2.warpAffine(
            big, m, (opt.width, opt.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
        dtype=np.float32,
    )
    mask = _outline((opt.height, opt.width), (ex, ey), f / distance_cm)[:, :, None]
    frame = background(opt).astype(np.float32) * (1.0 - mask) + person * mask
    return _finish(np.asarray(frame, dtype=np.float32), opt)
