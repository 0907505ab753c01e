"""Where the repository, its models folder and the shared read-only material live."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELS_DIR = REPO_ROOT / "models"
MANIFEST_PATH = MODELS_DIR / "manifest.json"
CACHE_DIR = MODELS_DIR / "cache"
REPORTS_DIR = REPO_ROOT / "reports"


def shared_dir() -> Path:
    """The shared read-only folder: $ATM_SHARED, else ../shared beside the repository."""
    env = os.environ.get("ATM_SHARED")
    return Path(env) if env else (REPO_ROOT.parent / "shared")


def default_liveness_dir() -> Path:
    """Default folder of the MiniFASNet liveness models (not part of the project)."""
    return shared_dir() / "models" / "minifasnet"
