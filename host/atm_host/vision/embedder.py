"""Face embedders on aligned 112x112 faces: SFace and MobileFaceNet, each on the face + its mirror."""

import numpy as np

from .errors import VisionError
from .frame import FloatArray, Frame
from .runtime import TfliteModel


class MobileFaceNet:
    """Embeds aligned BGR 112x112 faces; the input batch of 2 holds the face and its mirror image."""

    def __init__(self, model: TfliteModel) -> None:
        if model.input_shapes[0] != (2, 112, 112, 3):
            raise VisionError(
                f"{model.name}: expected input [2,112,112,3], got {list(model.input_shapes[0])}"
            )
        self._model = model
        self._batch = np.zeros((2, 112, 112, 3), dtype=np.float32)
        self.last_norm = 0.0

    def raw(self, aligned: Frame) -> tuple[FloatArray, FloatArray]:
        """The un-normalised outputs for the face and for its mirror image."""
        if aligned.shape != (112, 112, 3):
            raise VisionError(f"aligned face must be 112x112x3, got {aligned.shape}")
        rgb = (aligned[:, :, ::-1].astype(np.float32) - 127.5) / 128.0
        self._batch[0] = rgb
        self._batch[1] = rgb[:, ::-1]
        (out,) = self._model.run(self._batch)
        return np.array(out[0], dtype=np.float32), np.array(out[1], dtype=np.float32)

    def embed(self, aligned: Frame) -> FloatArray:
        """L2-normalised sum of the embeddings of the face and its mirror."""
        face, mirror = self.raw(aligned)
        vec = face + mirror
        norm = float(np.linalg.norm(vec))
        if norm == 0.0 or not np.isfinite(norm):
            raise VisionError("embedding is zero or not finite")
        self.last_norm = norm / 2.0
        return (vec / norm).astype(np.float32)


class SFace:
    """Embeds aligned BGR 112x112 faces with SFace (converted offline): NHWC RGB float 0..255 -> 128-d.

    Flip fusion: the face and its mirror image are embedded and their raw outputs added before the
    L2 normalisation (docs/vision.md, "Accuracy": EER 2.28% -> 2.17% on held-out identities). The raw
    output's length is kept as `last_norm`: SFace gives short vectors to faces it cannot read well
    (profile, sunglasses, a second face, a poster), which the pipeline uses as a quality check.
    """

    def __init__(self, model: TfliteModel) -> None:
        if model.input_shapes[0] != (1, 112, 112, 3):
            raise VisionError(
                f"{model.name}: expected input [1,112,112,3], got {list(model.input_shapes[0])}"
            )
        self._model = model
        self._batch = np.zeros((1, 112, 112, 3), dtype=np.float32)
        self.last_norm = 0.0

    def raw(self, aligned: Frame) -> tuple[FloatArray, FloatArray]:
        """The un-normalised outputs for the face and for its mirror image."""
        if aligned.shape != (112, 112, 3):
            raise VisionError(f"aligned face must be 112x112x3, got {aligned.shape}")
        rgb = aligned[:, :, ::-1]
        self._batch[0] = rgb
        (out,) = self._model.run(self._batch)
        face = np.array(out[0], dtype=np.float32)
        self._batch[0] = rgb[:, ::-1]
        (out,) = self._model.run(self._batch)
        return face, np.array(out[0], dtype=np.float32)

    def embed(self, aligned: Frame) -> FloatArray:
        """L2-normalised sum of the face's and the mirror's outputs; `last_norm` = half the sum's length."""
        face, mirror = self.raw(aligned)
        return self._finish(face, mirror)

    def _finish(self, face: FloatArray, mirror: FloatArray) -> FloatArray:
        vec = face + mirror
        norm = float(np.linalg.norm(vec))
        if norm == 0.0 or not np.isfinite(norm):
            raise VisionError("embedding is zero or not finite")
        self.last_norm = norm / 2.0
        return (vec / norm).astype(np.float32)


Embedder = MobileFaceNet | SFace


def make_embedder(name: str, model: TfliteModel) -> Embedder:
    """The embedder class for the manifest entry `name`."""
    if name.startswith("sface"):
        return SFace(model)
    if name.startswith("mobilefacenet"):
        return MobileFaceNet(model)
    raise VisionError(f"no embedder implementation for model {name!r}")


def cosine(a: FloatArray, b: FloatArray) -> float:
    """Cosine similarity of two embeddings."""
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
