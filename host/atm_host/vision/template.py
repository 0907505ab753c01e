"""Versioned face templates (embedding + model id + quality): a model change forces re-enrolment."""

import base64
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .embedder import cosine
from .errors import TemplateError
from .frame import FloatArray

TEMPLATE_FORMAT = 1


class Template(BaseModel):
    """An enrolled face. The bank stores it; the ATM never does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(default=TEMPLATE_FORMAT, description="Template format version.")
    model: str = Field(description="Embedder name in the manifest.")
    model_sha256: str = Field(description="sha256 of the embedder file that made the embedding.")
    dim: int = Field(description="Embedding length.")
    embedding_b64: str = Field(description="Little-endian float32 unit vector, base64.")
    quality: float = Field(ge=0.0, le=1.0, description="Quality score of the enrolment image.")
    created: str = Field(description="UTC time of enrolment, ISO 8601.")

    def embedding(self) -> FloatArray:
        """The embedding as a float32 array."""
        vec = np.frombuffer(base64.b64decode(self.embedding_b64), dtype="<f4").astype(np.float32)
        if vec.shape != (self.dim,):
            raise TemplateError(f"template embedding has {vec.size} values, header says {self.dim}")
        return vec


def make_template(embedding: FloatArray, model: str, model_sha256: str, quality: float) -> Template:
    """A template for `embedding` made by `model` (identified by name and file hash)."""
    return Template(
        model=model,
        model_sha256=model_sha256,
        dim=int(embedding.size),
        embedding_b64=base64.b64encode(embedding.astype("<f4").tobytes()).decode("ascii"),
        quality=max(0.0, min(1.0, quality)),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def parse_template(text: str | bytes) -> Template:
    """Parse a template, refusing unknown fields and formats."""
    try:
        tpl = Template.model_validate_json(text)
    except ValidationError as exc:
        raise TemplateError(f"malformed template: {exc}") from exc
    if tpl.format != TEMPLATE_FORMAT:
        raise TemplateError(f"template format {tpl.format} is not {TEMPLATE_FORMAT}: re-enrolment needed")
    return tpl


def compare(template: Template, embedding: FloatArray, model: str, model_sha256: str) -> float:
    """Cosine similarity of `embedding` to the template, only if both come from the same model file."""
    if template.model != model or template.model_sha256 != model_sha256:
        raise TemplateError(
            f"template was made by {template.model} ({template.model_sha256[:12]}), the host runs {model} "
            f"({model_sha256[:12]}): re-enrolment needed"
        )
    return cosine(template.embedding(), embedding)
