"""A scene-generator camera for the demo, tests and bench: nothing, a phone with a QR, or a face at 50 cm.

The face in front of the camera is either a photo held up (`render_face`: what a presentation attack
looks like; it never moves) or a live customer (`LiveCustomer`: the photo rendered as a person, who reads
the screen and does what the active challenge asks: blinks, or turns the head left or right).
"""

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from atm_host.vision.challenge import Challenge
from atm_host.vision.frame import FloatArray, Frame
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.scene import (
    Optics,
    PhoneScene,
    Pose,
    Sitter,
    background,
    render_faces,
    render_person,
    render_phone,
)

from . import messages as msg
from .states import Snapshot, State

# face_landmark mesh indices of each eye's contour, in the order scene.Sitter.eyes expects (outer corner,
# lower lid to the inner corner, upper lid back): the subject's right eye, then the left eye.
RIGHT_EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE_CONTOUR = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
CHEEK_RIGHT, CHEEK_LEFT = 234, 454  # the face's sides (the same points the challenge's yaw uses)

# How the simulated person acts, one step per frame the camera delivers (so a loaded machine that reads
# fewer frames per second slows the person down instead of missing the blink).
REACTION_FRAMES = 9  # ~0.3 s at 30 fps between the prompt appearing and the person starting
BLINK_CLOSURE = (0.35, 0.7, 1.0, 1.0, 1.0, 1.0, 0.7, 0.35)  # a deliberate blink, ~0.27 s
BLINK_EVERY = 30  # frames: blinks again while the screen still asks (~1 s)
TURN_YAW_DEG = 35.0  # how far the person turns the head when asked
TURN_STEPS = 5  # frames to get there, then the head is held turned while the screen asks


def sitter_from_photo(pipe: FacePipeline, photo: Frame) -> Sitter:
    """Measure a face photo for rendering it as a person: eye distance, eye midpoint, eye contours."""
    face = pipe.find_customer(photo)
    mesh = pipe.mesh(photo, face)
    eyes: tuple[FloatArray, FloatArray] = (
        np.asarray(mesh.points[list(RIGHT_EYE_CONTOUR), :2], dtype=np.float32),
        np.asarray(mesh.points[list(LEFT_EYE_CONTOUR), :2], dtype=np.float32),
    )
    centre = np.asarray(face.keypoints[0:2], dtype=np.float32).mean(axis=0)
    sides = (float(mesh.points[CHEEK_RIGHT, 0]), float(mesh.points[CHEEK_LEFT, 0]))
    mesh_xyz = np.asarray(mesh.points, dtype=np.float32)  # depth: the turn has the face's parallax
    return Sitter(photo, face.eye_distance, (float(centre[0]), float(centre[1])), eyes, sides, mesh_xyz)


def challenge_on_screen(snap: Snapshot) -> Challenge | None:
    """The challenge the ATM's screen asks for in `snap` (what the customer reads), or None."""
    if snap.state is not State.CHALLENGE:
        return None
    for challenge, key in ((Challenge.BLINK, "blink"), (Challenge.TURN_LEFT, "turn_left"),
                           (Challenge.TURN_RIGHT, "turn_right")):  # fmt: skip
        if snap.prompt == msg.GUIDANCE[key].as_dict():
            return challenge
    return None


def action_pose(challenge: Challenge, step: int) -> Pose:
    """The pose `step` frames after the person read `challenge` on the screen."""
    t = step - REACTION_FRAMES
    if t < 0:
        return Pose()
    if challenge is Challenge.BLINK:
        t %= BLINK_EVERY
        return Pose(eyes_closed=BLINK_CLOSURE[t]) if t < len(BLINK_CLOSURE) else Pose()
    sign = 1.0 if challenge is Challenge.TURN_LEFT else -1.0  # left: the nose moves to the image's right
    return Pose(yaw_deg=sign * TURN_YAW_DEG * min(1.0, (t + 1) / TURN_STEPS))


class LiveCustomer:
    """A person in front of the camera: their face photo rendered as a live person at `distance_cm`.

    `frame` is the person looking at the camera; `frame_for(pose)` renders (and keeps) other poses.
    """

    def __init__(self, sitter: Sitter, optics: Optics, distance_cm: float = 50.0) -> None:
        self.sitter = sitter
        self.optics = optics
        self.distance_cm = distance_cm
        self._frames: dict[Pose, Frame] = {}
        self.frame = self.frame_for(Pose())

    def frame_for(self, pose: Pose) -> Frame:
        """The camera frame of the person in `pose` (rendered once)."""
        frame = self._frames.get(pose)
        if frame is None:
            frame = render_person(self.sitter, self.optics, self.distance_cm, pose=pose)
            self._frames[pose] = frame
        return frame

    def prepare(self, challenges: Sequence[Challenge] = tuple(Challenge)) -> None:
        """Render every frame the person needs to act out `challenges` (keeps the camera's pace steady)."""
        for challenge in challenges:
            last = REACTION_FRAMES + max(BLINK_EVERY, TURN_STEPS)
            for step in range(last):
                self.frame_for(action_pose(challenge, step))


class ScriptedCamera:
    """Plays the customer in front of the ATM; frames are rendered once per scene and paced at `fps`.

    `shown_at` is the monotonic time the current scene came into view (the bench's "QR in view").
    A live customer (`show_customer`, or `show_frame` of a live customer's `frame`) follows the screen:
    give the camera what the screen shows with `follow(...)`, or tell it with `perform(challenge)`.
    """

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0, seed: int = 3) -> None:
        self.optics = Optics(width, height, seed=seed)
        self.period = 1.0 / fps
        self._lock = threading.Lock()
        self._frame: Frame = np.asarray(background(self.optics), dtype=np.uint8)
        self._next = time.monotonic()
        self.shown_at = time.monotonic()
        self.scene = "nothing"
        self._closed = False
        self._people: list[LiveCustomer] = []
        self._live: LiveCustomer | None = None
        self._screen: Callable[[], Challenge | None] | None = None
        self._asked: Challenge | None = None  # what the live customer is doing now
        self._step = 0
        self.performed: list[Challenge] = []  # every challenge a live customer started to act out

    def _show(self, frame: Frame, scene: str, live: "LiveCustomer | None" = None) -> None:
        with self._lock:
            self._frame = frame
            self.scene = scene
            self.shown_at = time.monotonic()
            self._live = live
            self._asked = None
            self._step = 0

    def show_nothing(self) -> None:
        """Nobody in front of the ATM."""
        self._show(np.asarray(background(self.optics), dtype=np.uint8), "nothing")

    def show_phone(self, token_text: str, distance_cm: float = 25.0, qr_side_cm: float = 4.5) -> None:
        """A phone held up with the withdrawal QR on its screen."""
        frame, _ = render_phone(
            PhoneScene(token_text, qr_side_cm=qr_side_cm, distance_cm=distance_cm, yaw_deg=8.0), self.optics
        )
        self._show(frame, "phone")

    def render_face(self, image: Frame, eye_px: float, distance_cm: float = 50.0) -> Frame:
        """A frame with this face photo held up at `distance_cm` (eyes 6.3 cm apart); not shown yet.

        The photo itself, not a person: it cannot blink or turn (the presentation-attack scene).
        """
        return render_faces([(image, eye_px, distance_cm, 0.0)], self.optics)

    def show_face(self, image: Frame, eye_px: float, distance_cm: float = 50.0) -> None:
        """A face photo held up in front of the camera at `distance_cm`."""
        self._show(self.render_face(image, eye_px, distance_cm), "face")

    def live_customer(self, sitter: Sitter, distance_cm: float = 50.0) -> LiveCustomer:
        """A live person with this face, rendered with this camera's optics (their frames are linked)."""
        person = LiveCustomer(sitter, self.optics, distance_cm)
        with self._lock:
            self._people.append(person)
        return person

    def show_customer(self, person: LiveCustomer) -> None:
        """The live customer steps in front of the camera and follows what the screen asks."""
        self._show(person.frame, "face", person)

    def show_frame(self, frame: Frame, scene: str = "frame") -> None:
        """Any prepared frame (pre-rendered faces keep scene changes instant).

        The `frame` of a live customer made by `live_customer` brings that person, who can act.
        """
        with self._lock:
            person = next((p for p in self._people if p.frame is frame), None)
        if person is not None:
            self.show_customer(person)
        else:
            self._show(frame, scene)

    def follow(self, screen: Callable[[], Challenge | None] | None) -> None:
        """Let the person in front of the camera read the screen: `screen()` is the challenge it shows."""
        with self._lock:
            self._screen = screen

    def perform(self, challenge: Challenge | None) -> None:
        """Ask the live customer to do `challenge` now (None: stop); a photo in view does nothing."""
        with self._lock:
            self._act(challenge)

    def _act(self, challenge: Challenge | None) -> None:
        if challenge is not self._asked:
            self._asked = challenge
            self._step = 0
            if challenge is not None and self._live is not None:
                self.performed.append(challenge)

    def read(self) -> Frame:
        """The current scene, at most `fps` frames per second like a real sensor."""
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.period
        screen = self._screen
        asked = screen() if screen is not None else None
        with self._lock:
            live = self._live
            if live is None:
                return self._frame
            if screen is not None:
                self._act(asked)
            if self._asked is None:
                return live.frame
            pose = action_pose(self._asked, self._step)
            self._step += 1
        return live.frame_for(pose)

    def close(self) -> None:
        self._closed = True
