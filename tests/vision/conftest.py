"""Shared fixtures: the shared data folder, materialised models, one loaded pipeline per session."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from atm_host.vision.config import QualityConfig, VisionConfig
from atm_host.vision.frame import Frame
from atm_host.vision.manifest import load_manifest
from atm_host.vision.models_step import materialise
from atm_host.vision.paths import CACHE_DIR, MANIFEST_PATH, default_liveness_dir, shared_dir
from atm_host.vision.pipeline import FacePipeline


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (or $ATM_SHARED); the tests need its faces and liveness models."""
    root = shared_dir()
    assert (root / "data" / "faces").is_dir(), f"shared data missing at {root} (set ATM_SHARED)"
    return root


@pytest.fixture(scope="session")
def models_ready() -> None:
    """Run the models step (idempotent: fetches only what is missing, verifies every sha256)."""
    materialise(
        load_manifest(MANIFEST_PATH), CACHE_DIR, default_liveness_dir(), CACHE_DIR / "dl", log=lambda _: None
    )


@pytest.fixture(scope="session")
def pipe(models_ready: None) -> FacePipeline:
    """The production pipeline, 2 threads."""
    return FacePipeline(VisionConfig(threads=2))


@pytest.fixture(scope="session")
def photo_pipe(models_ready: None) -> FacePipeline:
    """The pipeline with the distance check off, for photo sets that are not camera frames."""
    return FacePipeline(VisionConfig(threads=2, quality=QualityConfig(check_distance=False)))


def read(path: Path) -> Frame:
    """A BGR image."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return np.asarray(img, dtype=np.uint8)


@pytest.fixture(scope="session")
def unaligned(shared: Path) -> dict[str, list[Path]]:
    """The 5 x 11 unaligned dev faces by person."""
    root = shared / "data" / "faces" / "unaligned150"
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}
