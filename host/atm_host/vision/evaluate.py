"""Evaluation on labelled face folders (one sub-folder per person): scores, metrics, plots, threshold."""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from .errors import NoFaceError, VisionError
from .frame import FloatArray, Frame
from .metrics import Roc, Scores, auc, eer, rate_at, roc, threshold_for_far
from .pipeline import FacePipeline

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
TARGET_FARS = (1e-2, 1e-3, 1e-4)


@dataclass
class FolderScores:
    """Embeddings of one labelled folder, the pair scores and the failures."""

    name: str
    images: int = 0
    failures: Counter[str] = field(default_factory=Counter[str])
    quality_flags: Counter[str] = field(default_factory=Counter[str])
    genuine: Scores = field(default_factory=lambda: np.zeros(0))
    impostor: Scores = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Metrics:
    """Headline metrics of a score set."""

    genuine: int
    impostor: int
    auc: float
    eer: float
    eer_threshold: float
    tar_at: dict[float, tuple[float, float]]  # target FAR -> (TAR, threshold)
    curve: Roc


def read_image(path: Path) -> Frame:
    """A BGR image from disk (VisionError if unreadable)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VisionError(f"cannot read image {path}")
    return np.asarray(img, dtype=np.uint8)


def embed_folder(pipe: FacePipeline, root: Path) -> FolderScores:
    """Run the pipeline on every image under `root`/<person>/ and score all pairs.

    112x112 images are taken as already aligned (embedder only); others go through detection, alignment
    and the quality gate in report mode (the gate's reasons are counted, the image is still scored).
    """
    out = FolderScores(root.name)
    labels: list[int] = []
    vecs: list[FloatArray] = []
    people = sorted(p for p in root.iterdir() if p.is_dir())
    if len(people) < 2:
        raise VisionError(f"{root}: need at least two person folders, found {len(people)}")
    for label, person in enumerate(people):
        for path in sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            out.images += 1
            img = read_image(path)
            try:
                if img.shape[:2] == (112, 112):
                    vec = pipe.embed_aligned(img)
                else:
                    sample = pipe.sample(img, gate=False)
                    out.quality_flags.update(sample.quality.reasons)
                    vec = sample.embedding
            except NoFaceError:
                out.failures["no face"] += 1
                continue
            except VisionError as exc:
                out.failures[type(exc).__name__] += 1
                continue
            labels.append(label)
            vecs.append(vec)
    mat = np.stack(vecs).astype(np.float64)
    sims = mat @ mat.T
    lab = np.asarray(labels)
    iu = np.triu_indices(len(labels), k=1)
    same = lab[iu[0]] == lab[iu[1]]
    pairs = sims[iu]
    out.genuine, out.impostor = pairs[same], pairs[~same]
    return out


def compute_metrics(genuine: Scores, impostor: Scores) -> Metrics:
    """AUC, EER and TAR at FAR 1e-2, 1e-3, 1e-4 with the thresholds that achieve them."""
    curve = roc(genuine, impostor)
    e, et = eer(curve)
    tar_at: dict[float, tuple[float, float]] = {}
    for f in TARGET_FARS:
        t = threshold_for_far(impostor, f)
        tar_at[f] = (rate_at(genuine, t), t)
    return Metrics(genuine.size, impostor.size, auc(genuine, impostor), e, et, tar_at, curve)


def format_metrics(name: str, m: Metrics) -> str:
    """One table row."""
    tars = "  ".join(f"{m.tar_at[f][0] * 100:6.2f}% @{m.tar_at[f][1]:.3f}" for f in TARGET_FARS)
    return f"{name:14} {m.genuine:7d} {m.impostor:8d}  {m.auc:.5f}  {m.eer * 100:5.2f}%  {tars}"


HEADER = (
    f"{'set':14} {'genuine':>7} {'impostor':>8}  {'AUC':7}  {'EER':6}  "
    "TAR@FAR1e-2 (thr)    TAR@FAR1e-3 (thr)    TAR@FAR1e-4 (thr)"
)


def plot(
    name: str, *, genuine: Scores, impostor: Scores, m: Metrics, threshold: float, out_dir: Path
) -> list[Path]:
    """ROC (log FAR) and score histogram PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    roc_path, hist_path = out_dir / f"{name}_roc.png", out_dir / f"{name}_hist.png"
    fig, ax = cast(tuple[Any, Any], plt.subplots(figsize=(6, 4.5)))
    floor = 1.0 / max(impostor.size, 1)
    ax.semilogx(np.maximum(m.curve.far, floor), m.curve.tar, lw=1.5)
    for f in TARGET_FARS:
        ax.axvline(f, color="grey", ls=":", lw=0.8)
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(f"ROC {name}: AUC {m.auc:.4f}, EER {m.eer * 100:.2f}%")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(roc_path), dpi=110)
    plt.close(fig)
    fig, ax = cast(tuple[Any, Any], plt.subplots(figsize=(6, 4.5)))
    bins = np.linspace(-0.4, 1.0, 71)
    ax.hist(impostor, bins=bins, density=True, alpha=0.6, label=f"impostor ({impostor.size})")
    ax.hist(genuine, bins=bins, density=True, alpha=0.6, label=f"genuine ({genuine.size})")
    ax.axvline(threshold, color="red", lw=1.2, label=f"threshold {threshold:.3f} (FAR<=1e-4)")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"Score distributions: {name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(hist_path), dpi=110)
    plt.close(fig)
    return [roc_path, hist_path]
