"""The face pipeline: detect, pick the customer, align, quality gate, embed, compare, liveness."""

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .align import align_face
from .challenge import Challenge
from .config import VisionConfig
from .detector import BlazeFace, Detection, pick_customer
from .embedder import make_embedder
from .errors import ConfigError, QualityError
from .frame import FloatArray, Frame, check_frame
from .iris import EyeContours, IrisLandmarker
from .landmarks import FaceLandmarker, FaceMesh
from .liveness import PassiveLiveness, PassiveResult
from .manifest import ModelEntry, load_manifest
from .quality import LOOK_AT_CAMERA, QualityReport, assess, require
from .runtime import TfliteModel, load_model
from .session import ChallengeOutcome, FaceSession
from .template import Template, compare, make_template

T = TypeVar("T")


@dataclass(frozen=True)
class FaceSample:
    """The customer's face in one frame: detection, aligned crop, quality and embedding."""

    detection: Detection
    aligned: Frame
    quality: QualityReport
    embedding: FloatArray
    embedding_norm: float = 0.0  # the embedder's raw output length: short for faces it cannot read


@dataclass(frozen=True)
class Verification:
    """Outcome of a 1:1 verification against a template."""

    score: float
    threshold: float
    match: bool
    liveness: PassiveResult


class FacePipeline:
    """Loads the verified models named in the manifest and runs the stages; `timings` holds the last ms."""

    def __init__(self, config: VisionConfig | None = None) -> None:
        self.config = cfg = config or VisionConfig()
        self.manifest = load_manifest(cfg.manifest)
        self.timings: dict[str, float] = {}
        self.embedder_entry: ModelEntry = self.manifest.entry(cfg.embedder)
        op = self.embedder_entry.operating_point
        self._threshold = None if op is None else op.threshold
        self.min_embedding_norm = None if op is None else op.min_embedding_norm
        self.detector = BlazeFace(self._load("blazeface_short_range"), cfg.detector)
        self.embedder = make_embedder(cfg.embedder, self._load(cfg.embedder))
        self._landmarker: FaceLandmarker | None = None
        self._iris: IrisLandmarker | None = None
        self._liveness: PassiveLiveness | None = None

    def _load(self, name: str) -> TfliteModel:
        c = self.config
        return load_model(name, self.manifest.entry(name), c.model_dir, c.liveness.model_dir, c.threads)

    def _timed(self, stage: str, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        out = fn()
        self.timings[stage] = (time.perf_counter() - t0) * 1000.0
        return out

    @property
    def threshold(self) -> float:
        """The calibrated match threshold stored with the embedder in the manifest."""
        if self._threshold is None:
            raise ConfigError(
                f"embedder {self.config.embedder!r} has no calibrated threshold: run `eval --write`"
            )
        return self._threshold

    @property
    def liveness(self) -> PassiveLiveness:
        """The passive liveness models, loaded on first use (they live outside the project)."""
        if self._liveness is None:
            pairs = [(self._load("minifasnet_v2"), 2.7), (self._load("minifasnet_v1se"), 4.0)]
            self._liveness = PassiveLiveness(pairs, self.config.liveness)
        return self._liveness

    @property
    def landmarker(self) -> FaceLandmarker:
        """The face mesh model, loaded on first use (active challenge only)."""
        if self._landmarker is None:
            self._landmarker = FaceLandmarker(self._load("face_landmark"))
        return self._landmarker

    @property
    def iris(self) -> IrisLandmarker:
        """The eye contour model, loaded on first use (blink challenge only)."""
        if self._iris is None:
            self._iris = IrisLandmarker(self._load("iris_landmark"))
        return self._iris

    def find_customer(self, frame: Frame) -> Detection:
        """The customer's face (NoFaceError / MultipleFacesError otherwise)."""
        frame = check_frame(frame)
        t0 = time.perf_counter()
        faces = self.detector.detect(frame) or self.detector.detect_centre(frame)
        face = pick_customer(faces, frame.shape, self.config.detector.second_face_ratio)
        face = self.detector.refine(frame, face)
        self.timings["detect"] = (time.perf_counter() - t0) * 1000.0
        return face

    def source_eye_px(self, image: Frame) -> float:
        """Eye distance of the face in a photo, measured as on camera frames (for composing scenes)."""
        return self.find_customer(image).eye_distance

    def sample(self, frame: Frame, gate: bool = True) -> FaceSample:
        """Detect, align, assess and embed the customer's face; with `gate`, QualityError on a poor face."""
        face = self.find_customer(frame)
        aligned = self._timed("align", lambda: align_face(frame, face))
        report = self._timed("quality", lambda: assess(frame, face, aligned, self.config.quality))
        if gate:
            require(report)
        embedding = self._timed("embed", lambda: self.embedder.embed(aligned))
        norm = self.embedder.last_norm
        if gate and self.min_embedding_norm is not None and norm < self.min_embedding_norm:
            # The embedder cannot read this face (turned away, covered, a second face): another frame.
            raise QualityError([LOOK_AT_CAMERA])
        return FaceSample(face, aligned, report, embedding, norm)

    def embed_aligned(self, aligned: Frame) -> FloatArray:
        """Embed an already aligned 112x112 BGR face (evaluation on aligned sets)."""
        return self.embedder.embed(aligned)

    def check_liveness(self, frame: Frame, face: Detection) -> PassiveResult:
        """Passive liveness of `face`."""
        return self._timed("liveness", lambda: self.liveness.check(frame, face))

    def mesh(self, frame: Frame, face: Detection) -> FaceMesh:
        """face_landmark mesh of `face` (for the active challenge)."""
        return self._timed("landmarks", lambda: self.landmarker.mesh(frame, face))

    def eyes(self, frame: Frame, mesh: FaceMesh) -> EyeContours:
        """iris_landmark's eye contours and openness for the face `mesh` (for the blink challenge)."""
        return self._timed("eyes", lambda: self.iris.eyes(frame, mesh))

    def eye_openness(self, frame: Frame, mesh: FaceMesh) -> float:
        """Eye openness as the blink challenge measures it (`ChallengeConfig.eye_model`)."""
        if self.config.challenge.eye_model == "iris_landmark":
            return self.eyes(frame, mesh).openness()
        return mesh.eye_openness()

    def run_challenge(
        self,
        frames: Iterable[Frame],
        challenge: Challenge,
        reference: Sequence[FloatArray] = (),
        box: tuple[float, float, float, float] | None = None,
    ) -> ChallengeOutcome:
        """Active liveness over consecutive frames with the face tracked and re-identified on each one.

        `reference`: embeddings of the frames seen before the challenge (every challenge frame must be
        that person); `box`: the last face box seen before it. See session.FaceSession for the checks;
        the outcome's `probe` holds the challenge's own good frames for verification.
        """
        return FaceSession(self, challenge, reference, box).run(frames)

    def enroll(self, frame: Frame) -> Template:
        """A template from one good frame."""
        s = self.sample(frame)
        return make_template(s.embedding, self.config.embedder, self.embedder_entry.sha256, s.quality.score)

    def score(self, template: Template, embedding: FloatArray) -> float:
        """Cosine similarity to the template (TemplateError if it came from another model)."""
        return compare(template, embedding, self.config.embedder, self.embedder_entry.sha256)

    def verify(self, frame: Frame, template: Template) -> Verification:
        """Quality-gated 1:1 verification of the customer in `frame`, with passive liveness."""
        s = self.sample(frame)
        live = self.check_liveness(frame, s.detection)
        value = self.score(template, s.embedding)
        return Verification(value, self.threshold, value >= self.threshold, live)
