"""Evaluation on labelled face folders (one sub-folder per person): scores, metrics, plots, threshold."""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from .calibrate import Embedded
from .errors import NoFaceError, VisionError
from .frame import FloatArray, Frame
from .metrics import Roc, Scores, auc, eer, rate_at, roc, threshold_for_far
from .pipeline import FacePipeline

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
TARGET_FARS = (1e-2, 1e-3, 1e-4)


CACHE_VERSION = 2  # bump when the way an image becomes raw outputs changes


@dataclass
class ImageSet:
    """One labelled folder embedded: raw face and mirror outputs per image (NaN rows for failures)."""

    name: str
    root: Path
    files: list[str] = field(default_factory=list[str])
    people: list[str] = field(default_factory=list[str])
    raw_face: FloatArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    raw_mirror: FloatArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    failures: Counter[str] = field(default_factory=Counter[str])
    quality_flags: Counter[str] = field(default_factory=Counter[str])

    @property
    def images(self) -> int:
        """Images read (including failures)."""
        return len(self.files)


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


def _cache_path(pipe: FacePipeline, root: Path, cache_dir: Path) -> Path:
    where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    emb_sha = pipe.embedder_entry.sha256[:16]
    det_sha = pipe.manifest.entry("blazeface_short_range").sha256[:8]
    name = f"{root.name}-{where}-{pipe.config.embedder}-{emb_sha}-det{det_sha}-v{CACHE_VERSION}.npz"
    return cache_dir / name


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.parent.name}/{path.name}:{st.st_size}:{st.st_mtime_ns}"


def embed_folder(
    pipe: FacePipeline, root: Path, cache_dir: Path | None = None, progress: bool = True
) -> ImageSet:
    """Raw embeddings of every image under `root`/<person>/ (cached per embedder sha256).

    112x112 images are taken as already aligned (embedder only); others go through detection, alignment
    and the quality gate in report mode (the gate's reasons are counted, the image is still embedded).
    """
    from tqdm import tqdm

    people = sorted(p for p in root.iterdir() if p.is_dir())
    if len(people) < 2:
        raise VisionError(f"{root}: need at least two person folders, found {len(people)}")
    paths = [
        path
        for person in people
        for path in sorted(person.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    cached: dict[str, tuple[FloatArray, FloatArray, str, str]] = {}
    cache = _cache_path(pipe, root, cache_dir) if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            for i, key in enumerate(z["keys"].tolist()):
                cached[str(key)] = (z["face"][i], z["mirror"][i], str(z["fail"][i]), str(z["flags"][i]))
    out = ImageSet(root.name, root)
    faces: list[FloatArray] = []
    mirrors: list[FloatArray] = []
    keys: list[str] = []
    fails: list[str] = []
    flag_list: list[str] = []
    dim = 0
    for path in tqdm(paths, desc=f"embed {root.name}", unit="img", disable=not progress, leave=False):
        key = _file_key(path)
        if key in cached:
            face, mirror, fail, flags = cached[key]
        else:
            fail, flags = "", ""
            face = mirror = np.zeros(0, dtype=np.float32)
            try:
                img = read_image(path)
                if img.shape[:2] == (112, 112):
                    aligned = img
                else:
                    s = pipe.sample(img, gate=False)
                    flags = ",".join(s.quality.reasons)
                    aligned = s.aligned
                face, mirror = pipe.embedder.raw(aligned)
            except NoFaceError:
                fail = "no face"
            except VisionError as exc:
                fail = type(exc).__name__
        dim = max(dim, face.size)
        keys.append(key)
        faces.append(face)
        mirrors.append(mirror)
        fails.append(fail)
        flag_list.append(flags)
        out.files.append(path.name)
        out.people.append(path.parent.name)
        if fail:
            out.failures[fail] += 1
        out.quality_flags.update(f for f in flags.split(",") if f)
    nan = np.full(dim, np.nan, dtype=np.float32)
    out.raw_face = np.stack([f if f.size == dim else nan for f in faces]).astype(np.float32)
    out.raw_mirror = np.stack([f if f.size == dim else nan for f in mirrors]).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            keys=np.asarray(keys),
            face=out.raw_face,
            mirror=out.raw_mirror,
            fail=np.asarray(fails),
            flags=np.asarray(flag_list),
        )
        tmp.replace(cache)
    return out


def to_embedded(sets: list[ImageSet]) -> Embedded:
    """Unit face + mirror embeddings of every embedded image, identities named "set/person"."""
    vecs: list[FloatArray] = []
    norms: list[float] = []
    labels: list[int] = []
    names: list[str] = []
    groups: list[str] = []
    index: dict[str, int] = {}
    for s in sets:
        for i, person in enumerate(s.people):
            raw = s.raw_face[i] + s.raw_mirror[i]
            if not np.all(np.isfinite(raw)):
                continue
            norm = float(np.linalg.norm(raw))
            if norm == 0.0:
                continue
            ident = f"{s.name}/{person}"
            if ident not in index:
                index[ident] = len(names)
                names.append(ident)
                groups.append(s.name)
            vecs.append(raw / norm)
            norms.append(norm / 2.0)
            labels.append(index[ident])
    return Embedded(
        np.stack(vecs).astype(np.float64),
        np.asarray(norms, dtype=np.float64),
        np.asarray(labels, dtype=np.int64),
        names,
        groups,
    )


def pair_scores(emb: Embedded, use: npt.NDArray[np.bool_] | None = None) -> tuple[Scores, Scores]:
    """(genuine, within-set impostor) scores of all image pairs, optionally of the images in `use`."""
    idx = np.arange(emb.labels.size) if use is None else np.flatnonzero(use)
    x, lab = emb.vectors[idx], emb.labels[idx]
    grp = emb.group_ids()[lab]
    iu = np.triu_indices(idx.size, k=1)
    sims: Scores = np.einsum("ij,ij->i", x[iu[0]], x[iu[1]]).astype(np.float64)
    same = lab[iu[0]] == lab[iu[1]]
    within = grp[iu[0]] == grp[iu[1]]
    return sims[same], sims[~same & within]


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
    ax.axvline(threshold, color="red", lw=1.2, label=f"operating threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"Score distributions: {name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(hist_path), dpi=110)
    plt.close(fig)
    return [roc_path, hist_path]
