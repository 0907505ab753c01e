"""TFLite runtime: ai-edge-litert first, tflite-runtime as a fallback; a model is loaded only if verified."""

from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from .errors import RuntimeUnavailableError, VisionError
from .manifest import ModelEntry, read_verified
from .paths import MODELS_DIR


class _Interpreter(Protocol):
    def allocate_tensors(self) -> None: ...
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def set_tensor(self, index: int, value: npt.NDArray[Any]) -> None: ...
    def invoke(self) -> None: ...
    def get_tensor(self, index: int) -> npt.NDArray[Any]: ...


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import (  # pyright: ignore[reportMissingTypeStubs]
            Interpreter,
        )

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return cast(Any, Interpreter), "tflite-runtime"
    except ImportError:
        raise RuntimeUnavailableError(
            "no TFLite runtime: install ai-edge-litert (requirements/vision.txt) or tflite-runtime"
        ) from None


class TfliteModel:
    """One verified .tflite model with a fixed thread count; `run` maps input arrays to output arrays."""

    def __init__(self, name: str, content: bytes, threads: int) -> None:
        cls, self.runtime = _interpreter_class()
        try:
            interp = cast(_Interpreter, cls(model_content=content, num_threads=threads))
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise VisionError(f"model {name!r} could not be loaded by {self.runtime}: {exc}") from exc
        self.name = name
        self._interp = interp
        self._inputs = [int(d["index"]) for d in interp.get_input_details()]
        self._outputs = [int(d["index"]) for d in interp.get_output_details()]
        self.input_shapes = [tuple(int(v) for v in d["shape"]) for d in interp.get_input_details()]

    def run(self, *inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Run the model on `inputs` (in input order) and return copies of all outputs."""
        for index, value in zip(self._inputs, inputs, strict=True):
            self._interp.set_tensor(index, value)
        self._interp.invoke()
        return [np.asarray(self._interp.get_tensor(i), dtype=np.float32).copy() for i in self._outputs]


def entry_path(entry: ModelEntry, model_dir: Path, liveness_dir: Path) -> Path:
    """Where the file of `entry` lives under the configured folders."""
    if entry.location == "committed":
        return MODELS_DIR / entry.file
    return (liveness_dir if entry.location == "liveness_dir" else model_dir) / entry.file


def load_model(
    name: str, entry: ModelEntry, model_dir: Path, liveness_dir: Path, threads: int
) -> TfliteModel:
    """Load `entry` after checking its sha256 against the manifest (a mismatch raises ModelIntegrityError)."""
    content = read_verified(entry_path(entry, model_dir, liveness_dir), entry.sha256)
    return TfliteModel(name, content, threads)
