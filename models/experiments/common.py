"""Shared by the exploration scripts: the embedding cache of embed_all.py, labels, pair masks, metrics."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from atm_host.vision.calibrate import Embedded
from atm_host.vision.evaluate import compute_metrics
from atm_host.vision.paths import REPO_ROOT

CACHE = REPO_ROOT / "var" / "vexp" / "emb.npz"  # written by embed_all.py

Floats = npt.NDArray[np.floating[Any]]  # the cache holds float32, calibrate.py works in float64
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Cache:
    """embed_all.py's raw outputs per image (SFace and MobileFaceNet, face and mirror) with identities."""

    s0: Floats  # SFace, face (float32 as the models give them)
    s1: Floats  # SFace, mirror
    m0: Floats  # MobileFaceNet, face
    m1: Floats  # MobileFaceNet, mirror
    labels: Ints  # identity index per image
    names: list[str]  # identity names "set/person", sorted
    groups: list[str]  # the set of each identity

    def embedded(self, vectors: Floats, norms: Floats) -> Embedded:
        """These images as calibrate.py's Embedded, with the given unit vectors and gate norms."""
        return Embedded(
            vectors.astype(np.float64), norms.astype(np.float64), self.labels, self.names, self.groups
        )


def load(path: Path = CACHE) -> Cache:
    """The cache written by embed_all.py (run it first)."""
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run models/experiments/embed_all.py first")
    with np.load(path) as d:
        ident = [f"{s}/{p}" for s, p in zip(d["set"].tolist(), d["person"].tolist(), strict=True)]
        names = sorted(set(ident))
        labels = np.array([names.index(i) for i in ident], dtype=np.int64)
        return Cache(d["s0"], d["s1"], d["m0"], d["m1"], labels, names, [n.split("/")[0] for n in names])


def unit(x: Floats) -> Floats:
    """Each row scaled to length 1."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def identity_mean(x: Floats, labels: Ints, use: Bools) -> Floats:
    """Mean over the identities in `use` of each identity's mean vector (the cohort mean)."""
    return np.mean([x[use & (labels == k)].mean(0) for k in np.unique(labels[use])], axis=0)


@dataclass(frozen=True)
class Pairs:
    """All image pairs (upper triangle of the N x N score matrix): same identity, same set."""

    iu: tuple[Ints, Ints]
    li: Ints  # identity of the first image of each pair
    lj: Ints  # identity of the second
    same: Bools  # genuine pair
    within: Bools  # both identities from the same set (impostor pairs are taken within a set)


def pairs(cache: Cache) -> Pairs:
    """The pair index of every image pair of `cache`."""
    iu = np.triu_indices(cache.labels.size, 1)
    li, lj = cache.labels[iu[0]], cache.labels[iu[1]]
    group = np.array(cache.groups)
    return Pairs(iu, li, lj, li == lj, group[li] == group[lj])


def headline(genuine: Floats, impostor: Floats) -> tuple[float, float, float]:
    """(EER, TAR at FAR 1e-3, TAR at FAR 1e-4), as evaluate.compute_metrics reports them."""
    m = compute_metrics(genuine.astype(np.float64), impostor.astype(np.float64))
    return m.eer, m.tar_at[1e-3][0], m.tar_at[1e-4][0]
