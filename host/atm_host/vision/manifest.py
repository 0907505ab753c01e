"""The model manifest (models/manifest.json): where each model comes from, its sha256 and its numbers."""

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError, ModelIntegrityError, ModelMissingError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSource(_Strict):
    """The registry package a model file is taken from."""

    registry: Literal["pypi", "npm", "shared"] = Field(
        description="pypi wheel, npm tarball, or 'shared' (data outside the project, loaded from a path)."
    )
    package: str = Field(description="Package name in the registry.")
    version: str = Field(description="Exact package version.")
    member: str = Field(description="Path of the file inside the package archive.")


class TensorSpec(_Strict):
    """Shape and dtype of one model input or output."""

    name: str = Field(description="Tensor name in the model.")
    shape: list[int] = Field(description="Tensor shape.")
    dtype: str = Field(description="Element type.")


class OperatingPoint(_Strict):
    """The calibrated verification threshold stored with the embedder (the bank reads `threshold`)."""

    threshold: float = Field(
        description="Cosine similarity at or above which two faces match; stored exactly as fitted "
        "(never rounded: rounding could move it below a fitted impostor score)."
    )
    target_far: float = Field(description="False accept rate the threshold was chosen for.")
    far: float = Field(
        description="False accept rate at the threshold's rule on held-out identities (cross-validation)."
    )
    tar: float = Field(description="True accept rate at the threshold's rule on held-out identities.")
    genuine_pairs: int = Field(description="Held-out genuine pairs the rates rest on.")
    impostor_pairs: int = Field(description="Held-out impostor pairs the rates rest on.")
    dataset: str = Field(description="What it was calibrated on.")
    rule: str | None = Field(default=None, description="How the threshold was chosen, in words.")
    margin: float | None = Field(
        default=None, description="Added to the highest fitted impostor score (chosen by cross-validation)."
    )
    max_fitted_impostor: float | None = Field(
        default=None, description="Highest impostor score among the pairs the threshold was fitted on."
    )
    far_upper95: float | None = Field(
        default=None,
        description="One-sided 95% Clopper-Pearson upper bound of `far` over the held-out impostor pairs "
        "(pairs sharing identities are not independent: an optimistic bound).",
    )
    false_accepts: int | None = Field(default=None, description="Held-out impostor pairs accepted.")
    min_embedding_norm: float | None = Field(
        default=None,
        description="Faces whose raw embedding is shorter than this are refused by the quality gate "
        "(the embedder cannot read them); None: no such gate.",
    )


class ModelEntry(_Strict):
    """One model the host loads."""

    file: str = Field(description="File name in the model folder.")
    location: Literal["model_dir", "liveness_dir", "committed"] = Field(
        description="model_dir (fetched by the models step), liveness_dir (outside the project), or "
        "committed "
        "(built offline, kept in the repository under models/)."
    )
    sha256: str = Field(description="Hex sha256 of the file; a mismatch is refused on load.")
    size: int = Field(description="File size in bytes.")
    license: str = Field(description="SPDX license of the model.")
    source: ModelSource = Field(description="Where the models step gets it from.")
    build: str | None = Field(default=None, description="How a converted model is rebuilt (offline only).")
    inputs: list[TensorSpec] = Field(description="Input tensors.")
    outputs: list[TensorSpec] = Field(description="Output tensors.")
    preprocessing: str = Field(description="How inputs are prepared.")
    card: str = Field(description="Model card, relative to the models folder.")
    measured: dict[str, str] = Field(default_factory=dict, description="Measured accuracy and latency.")
    operating_point: OperatingPoint | None = Field(
        default=None, description="Verification threshold (embedders)."
    )


class Manifest(_Strict):
    """All models, keyed by a short name used in configuration."""

    schema_version: int = Field(default=1, description="Manifest format version.")
    models: dict[str, ModelEntry] = Field(description="Models by name.")

    def entry(self, name: str) -> ModelEntry:
        """The entry called `name`, or a ConfigError naming the known ones."""
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ConfigError(f"model {name!r} is not in the manifest (known: {known})") from None


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest."""
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"manifest not found: {path}") from None
    except ValidationError as exc:
        raise ConfigError(f"manifest {path} is invalid: {exc}") from exc


def save_manifest(manifest: Manifest, path: Path) -> None:
    """Write the manifest, stable and readable (two-space JSON, trailing newline)."""
    text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
    path.write_text(text, encoding="utf-8")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def read_verified(path: Path, expected_sha256: str) -> bytes:
    """The bytes of `path` if their sha256 is the expected one; ModelIntegrityError otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelMissingError(
            f"model file {path} is missing: run `python -m atm_host.vision models`"
        ) from None
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"model file {path} has sha256 {actual}, the manifest expects {expected_sha256}: refused "
            "(delete the file and run the models step again, or check the manifest)"
        )
    return data
