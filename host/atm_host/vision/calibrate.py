"""Operating point by cross-validation over identities: held-out scores, threshold rule, margin, FAR bound."""

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import VisionError
from .metrics import Scores, clopper_pearson_upper

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MARGIN_GRID = tuple(round(0.01 * k, 2) for k in range(16))  # 0.00 .. 0.15
GATE_QUANTILE = 0.025  # the embedding-norm gate rejects the weakest 2.5% of the fitting faces


@dataclass(frozen=True)
class Embedded:
    """Unit embeddings of labelled images: identity index per image, each identity's set and name."""

    vectors: npt.NDArray[np.float64]  # (n, d), unit length
    norms: Scores  # raw output length per image (quality signal)
    labels: IntArray  # identity index per image
    names: list[str]  # identity names, "set/person"
    groups: list[str]  # the set of each identity; impostor pairs are taken within a set

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != self.labels.size or self.norms.size != self.labels.size:
            raise VisionError("embeddings, norms and labels differ in length")
        if len(self.names) != len(self.groups) or (self.labels.size and self.labels.max() >= len(self.names)):
            raise VisionError("identity names, groups and labels disagree")

    def group_ids(self) -> IntArray:
        """The set of each identity as a number (equal numbers: same set)."""
        known = sorted(set(self.groups))
        return np.asarray([known.index(g) for g in self.groups], dtype=np.int64)


@dataclass(frozen=True)
class Fold:
    """Identities held out (never used for fitting) and the pairs they are tested on."""

    held_out: tuple[int, ...]
    genuine: bool  # True: the held-out identity's own pairs; False: pairs between the two held out


def folds(emb: Embedded) -> list[Fold]:
    """Leave-one-identity-out for genuine pairs, leave-two-out for impostor pairs (same set).

    Every genuine pair and every within-set impostor pair is tested exactly once, each time against a
    threshold fitted on the other identities only.
    """
    k = len(emb.names)
    out = [Fold((i,), True) for i in range(k)]
    for a, b in itertools.combinations(range(k), 2):
        if emb.groups[a] == emb.groups[b]:
            out.append(Fold((a, b), False))
    return out


def gate_threshold(norms: Scores, quantile: float = GATE_QUANTILE) -> float:
    """The embedding-norm gate fitted on `norms`: faces below this quantile are refused as unreadable."""
    return float(np.quantile(norms, quantile)) if norms.size else 0.0


def impostor_scores(emb: Embedded, use: BoolArray) -> Scores:
    """All within-set impostor pair scores among the images selected by `use`."""
    idx = np.flatnonzero(use)
    x = emb.vectors[idx]
    lab = emb.labels[idx]
    grp = emb.group_ids()[lab]
    iu = np.triu_indices(idx.size, k=1)
    keep = (lab[iu[0]] != lab[iu[1]]) & (grp[iu[0]] == grp[iu[1]])
    sims = np.einsum("ij,ij->i", x[iu[0][keep]], x[iu[1][keep]])
    return sims.astype(np.float64)


def threshold_above(impostor: Scores, margin: float) -> float:
    """The threshold rule: strictly above every fitted impostor score, plus `margin`.

    Stored exactly as this float (never rounded: rounding could move it below a fitted impostor).
    """
    if impostor.size == 0:
        raise VisionError("no impostor pairs to fit a threshold on")
    top = float(np.max(impostor))
    return float(np.nextafter(top + margin, np.inf)) if margin > 0 else float(np.nextafter(top, np.inf))


@dataclass(frozen=True)
class HeldOut:
    """Held-out scores with the threshold each was judged by (fitted without its identities)."""

    genuine: Scores
    genuine_threshold: Scores
    impostor: Scores
    impostor_threshold: Scores
    impostor_pair: IntArray  # identity pair id a * 1000 + b of each impostor score
    images: int
    gated: int  # held-out images refused by their fold's norm gate (failure to acquire)

    def false_accepts(self, margin: float = 0.0) -> int:
        """Held-out impostor pairs at or above their fold's threshold (+ extra margin)."""
        return int(np.sum(self.impostor >= self.impostor_threshold + margin))

    def tar(self, margin: float = 0.0) -> float:
        """Held-out genuine pairs at or above their fold's threshold (+ extra margin)."""
        return float(np.mean(self.genuine >= self.genuine_threshold + margin)) if self.genuine.size else 0.0

    def crossing_identity_pairs(self, margin: float = 0.0) -> int:
        """Held-out identity pairs with at least one impostor pair accepted."""
        hit = self.impostor >= self.impostor_threshold + margin
        return len(set(self.impostor_pair[hit].tolist()))

    def identity_pairs(self) -> int:
        """Identity pairs the impostor scores come from."""
        return len(set(self.impostor_pair.tolist()))


def cross_validate(emb: Embedded, *, gate: bool, margin: float = 0.0) -> HeldOut:
    """Held-out scores over identity folds; threshold (and gate) fitted on the other identities only."""
    gen: list[Scores] = []
    gthr: list[Scores] = []
    imp: list[Scores] = []
    ithr: list[Scores] = []
    ipair: list[IntArray] = []
    gated_img: set[int] = set()
    for fold in folds(emb):
        out = np.isin(emb.labels, fold.held_out)
        fit = ~out
        tau = gate_threshold(emb.norms[fit]) if gate else -np.inf
        ok = emb.norms >= tau
        gated_img.update(int(j) for j in np.flatnonzero(out & ~ok))
        thr = threshold_above(impostor_scores(emb, fit & ok), margin)
        if fold.genuine:
            idx = np.flatnonzero(out & ok)
            x = emb.vectors[idx]
            iu = np.triu_indices(idx.size, k=1)
            s: Scores = np.einsum("ij,ij->i", x[iu[0]], x[iu[1]]).astype(np.float64)
            gen.append(s)
            gthr.append(np.full(s.size, thr))
        else:
            a, b = fold.held_out
            xa = emb.vectors[np.flatnonzero((emb.labels == a) & ok)]
            xb = emb.vectors[np.flatnonzero((emb.labels == b) & ok)]
            s = (xa @ xb.T).ravel().astype(np.float64)
            imp.append(s)
            ithr.append(np.full(s.size, thr))
            ipair.append(np.full(s.size, a * 1000 + b, dtype=np.int64))
    cat = np.concatenate
    return HeldOut(
        genuine=cat(gen) if gen else np.zeros(0),
        genuine_threshold=cat(gthr) if gthr else np.zeros(0),
        impostor=cat(imp) if imp else np.zeros(0),
        impostor_threshold=cat(ithr) if ithr else np.zeros(0),
        impostor_pair=cat(ipair) if ipair else np.zeros(0, dtype=np.int64),
        images=int(emb.labels.size),
        gated=len(gated_img),
    )


@dataclass(frozen=True)
class MarginRow:
    """Held-out outcome of one margin on the grid."""

    margin: float
    false_accepts: int
    impostor_pairs: int
    far_upper95: float
    tar: float
    crossing_identity_pairs: int


@dataclass(frozen=True)
class OperatingChoice:
    """The chosen operating point and the evidence it rests on."""

    threshold: float
    margin: float
    max_fitted_impostor: float
    min_embedding_norm: float | None
    target_far: float
    supported: bool  # False: the held-out bound never reached target_far on the grid
    row: MarginRow  # held-out outcome at the chosen margin
    table: list[MarginRow]
    held_out: HeldOut


def margin_table(held: HeldOut, confidence: float = 0.95) -> list[MarginRow]:
    """Held-out false accepts, FAR bound and TAR for each margin on the grid."""
    n = int(held.impostor.size)
    rows: list[MarginRow] = []
    for m in MARGIN_GRID:
        k = held.false_accepts(m)
        rows.append(
            MarginRow(
                m, k, n, clopper_pearson_upper(k, n, confidence), held.tar(m), held.crossing_identity_pairs(m)
            )
        )
    return rows


def choose_operating_point(
    emb: Embedded, *, target_far: float, gate: bool, confidence: float = 0.95
) -> OperatingChoice:
    """Threshold = highest impostor score of all fitting pairs + the smallest margin at which, under
    identity cross-validation, no held-out impostor pair is accepted and the held-out FAR's
    Clopper-Pearson upper bound at `confidence` is <= `target_far`.

    Zero crossings, not just a bound under the target: the held-out false accepts come from one or two
    look-alike pairs of people, so a bound over pairs that share people is optimistic. If no margin on the
    grid qualifies (too few held-out pairs: fewer than ~3 / target_far), the margin with the lowest bound
    is used and `supported` is False: the data cannot back `target_far`.
    """
    held = cross_validate(emb, gate=gate)
    table = margin_table(held, confidence)
    good = [r for r in table if r.false_accepts == 0 and r.far_upper95 <= target_far]
    supported = bool(good)
    row = good[0] if good else min(table, key=lambda r: (r.far_upper95, -r.tar))
    tau = gate_threshold(emb.norms) if gate else None
    use = emb.norms >= tau if tau is not None else np.ones(emb.labels.size, dtype=bool)
    imp = impostor_scores(emb, use)
    threshold = threshold_above(imp, row.margin)
    return OperatingChoice(
        threshold=threshold,
        margin=row.margin,
        max_fitted_impostor=float(np.max(imp)),
        min_embedding_norm=tau,
        target_far=target_far,
        supported=supported,
        row=row,
        table=table,
        held_out=held,
    )


def fuse(a: Embedded, b: Embedded, weight_a: float) -> Embedded:
    """Score-level fusion of two embedders as one embedding: [sqrt(w) a, sqrt(1 - w) b].

    For unit a and b the result is a unit vector and the cosine of two of them is exactly
    w * cos_a + (1 - w) * cos_b, so the bank's plain cosine compares fused probes and templates. The
    gate keeps `a`'s norms.
    """
    if not 0.0 <= weight_a <= 1.0:
        raise VisionError(f"fusion weight {weight_a} outside 0..1")
    if a.names != b.names or not np.array_equal(a.labels, b.labels):
        raise VisionError("the two embedders saw different images: cannot fuse")
    vecs = np.hstack([np.sqrt(weight_a) * a.vectors, np.sqrt(1.0 - weight_a) * b.vectors])
    return Embedded(vecs, a.norms, a.labels, a.names, a.groups)
