"""A scene-generator camera for the demo, tests and bench: nothing, a phone with a QR, or a face at 50 cm."""

import threading
import time

import numpy as np

from atm_host.vision.frame import Frame
from atm_host.vision.scene import Optics, PhoneScene, background, render_faces, render_phone


class ScriptedCamera:
    """Plays the customer in front of the ATM; frames are rendered once per scene and paced at `fps`.

    `shown_at` is the monotonic time the current scene came into view (the bench's "QR in view").
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

    def _show(self, frame: Frame, scene: str) -> None:
        with self._lock:
            self._frame = frame
            self.scene = scene
            self.shown_at = time.monotonic()

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
        """A frame with this face at `distance_cm` (eyes 6.3 cm apart); not shown yet."""
        return render_faces([(image, eye_px, distance_cm, 0.0)], self.optics)

    def show_face(self, image: Frame, eye_px: float, distance_cm: float = 50.0) -> None:
        """The customer's face (a photo composed into the scene) at `distance_cm`."""
        self._show(self.render_face(image, eye_px, distance_cm), "face")

    def show_frame(self, frame: Frame, scene: str = "frame") -> None:
        """Any prepared frame (pre-rendered faces keep scene changes instant)."""
        self._show(frame, scene)

    def read(self) -> Frame:
        """The current scene, at most `fps` frames per second like a real sensor."""
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.period
        with self._lock:
            return self._frame

    def close(self) -> None:
        self._closed = True
