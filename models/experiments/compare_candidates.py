"""Exploration: the candidate table of docs/vision.md (identity folds as in calibrate.py, no gate)."""

from collections.abc import Callable, Sequence

import numpy as np
from atm_host.vision.calibrate import Embedded, folds, threshold_above
from atm_host.vision.metrics import confident_threshold
from common import Bools, Floats, Ints, Pairs, headline, identity_mean, load, pairs, unit

# a candidate: the images it may fit on (mask over images) -> score matrix (N x N) of all images
Candidate = Callable[[Bools], Floats]
FUSION_WEIGHTS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0)


def fit_pairs(p: Pairs, fit: Bools) -> tuple[Bools, Bools]:
    """(genuine, within-set impostor) pair masks among the fitting images."""
    m = fit[p.iu[0]] & fit[p.iu[1]] & p.within
    return m & p.same, m & ~p.same


def cand_plain(x: Floats) -> Candidate:
    """Cosine of the unit vectors `x` (nothing fitted)."""
    return lambda fit: x @ x.T


def cand_center(x: Floats, labels: Ints, per_identity: bool = True) -> Candidate:
    """Cosine after removing the fitting images' mean (of identity means, or of images)."""

    def scores(fit: Bools) -> Floats:
        mu = identity_mean(x, labels, fit) if per_identity else x[fit].mean(0)
        xc = unit(x - mu)
        return xc @ xc.T

    return scores


def cand_snorm(x: Floats, labels: Ints, topk: int | None = None, center: bool = False) -> Candidate:
    """Symmetric S-norm of the cosine against the fitting images as cohort (optionally its top k)."""

    def scores(fit: Bools) -> Floats:
        xc = unit(x - identity_mean(x, labels, fit)) if center else x
        sim = xc @ xc.T
        cohort = sim[:, fit]  # image vs cohort
        if topk:
            cohort = np.sort(cohort, axis=1)[:, -topk:]
        mu, sd = cohort.mean(1), cohort.std(1)
        z = (sim - mu[:, None]) / sd[:, None]
        return 0.5 * (z + z.T)

    return scores


def cand_fuse(
    a: Floats,
    b: Floats,
    labels: Ints,
    p: Pairs,
    weights: Sequence[float] = FUSION_WEIGHTS,
    fixed: float | None = None,
    center: bool = False,
) -> tuple[Candidate, list[float]]:
    """w * cos_a + (1 - w) * cos_b, w fitted per fold (max TAR@1e-3 + TAR@1e-4 - EER on the fitting
    pairs) unless `fixed`; also returns the list the chosen weights are appended to."""
    chosen: list[float] = []

    def scores(fit: Bools) -> Floats:
        xa, xb = a, b
        if center:
            xa = unit(a - identity_mean(a, labels, fit))
            xb = unit(b - identity_mean(b, labels, fit))
        sa, sb = xa @ xa.T, xb @ xb.T
        if fixed is not None:
            w = fixed
        else:
            g, i = fit_pairs(p, fit)
            best: tuple[float, float] | None = None
            for cand in weights:
                v = (cand * sa + (1 - cand) * sb)[p.iu]
                e, t3, t4 = headline(v[g], v[i])
                key = t3 + t4 - e  # fit criterion
                if best is None or key > best[0]:
                    best = (key, cand)
            assert best is not None
            w = best[1]
        chosen.append(w)
        return w * sa + (1 - w) * sb

    return scores, chosen


def run_cv(candidate: Candidate, name: str, emb: Embedded, p: Pairs) -> None:
    """Held-out scores over calibrate.folds (genuine pairs leave-one-identity-out, impostor pairs
    leave-two-identities-out within a set); prints the metrics and the result at two fitted thresholds:
    the Poisson-confident one for FAR 1e-4 and just above the highest fitting impostor."""
    gen: list[Floats] = []
    imp: list[Floats] = []
    thr: dict[tuple[bool, str], list[Floats]] = {(g, k): [] for g in (True, False) for k in ("conf", "max")}
    for fold in folds(emb):
        fit = ~np.isin(emb.labels, fold.held_out)
        v = candidate(fit)[p.iu].astype(np.float64)  # float32 scores, exactly
        if fold.genuine:
            sel = p.same & (p.li == fold.held_out[0])
            gen.append(v[sel])
        else:
            a, b = fold.held_out
            sel = ((p.li == a) & (p.lj == b)) | ((p.li == b) & (p.lj == a))
            imp.append(v[sel])
        _, fit_imp = fit_pairs(p, fit)
        thr[fold.genuine, "conf"].append(np.full(sel.sum(), confident_threshold(v[fit_imp], 1e-4)))
        thr[fold.genuine, "max"].append(np.full(sel.sum(), threshold_above(v[fit_imp], 0.0)))
    g, i = np.concatenate(gen), np.concatenate(imp)
    t = {key: np.concatenate(val) for key, val in thr.items()}
    e, t3, t4 = headline(g, i)
    fa_conf, tar_conf = np.sum(i >= t[False, "conf"]), np.mean(g >= t[True, "conf"])
    fa_max, tar_max = np.sum(i >= t[False, "max"]), np.mean(g >= t[True, "max"])
    print(
        f"{name:34} g {g.size} i {i.size} EER {e * 100:5.2f}% TAR@1e-3 {t3 * 100:6.2f}% "
        f"TAR@1e-4 {t4 * 100:6.2f}% | conf thr: FA {fa_conf} TAR {tar_conf * 100:5.2f}% "
        f"| max thr: FA {fa_max} TAR {tar_max * 100:5.2f}%"
    )


def main() -> None:
    """Every candidate of the table, in its order."""
    cache = load()
    lab = cache.labels
    s0, s1, m0, m1 = unit(cache.s0), unit(cache.s1), unit(cache.m0), unit(cache.m1)
    sflip, mflip = unit(s0 + s1), unit(m0 + m1)
    emb = cache.embedded(s0, np.linalg.norm(cache.s0, axis=1))
    p = pairs(cache)
    run_cv(cand_plain(s0), "sface", emb, p)
    run_cv(cand_plain(sflip), "sface flip", emb, p)
    run_cv(cand_plain(mflip), "mfn flip", emb, p)
    run_cv(cand_center(s0, lab), "sface centered", emb, p)
    run_cv(cand_center(sflip, lab), "sface flip centered", emb, p)
    run_cv(cand_snorm(s0, lab), "sface snorm", emb, p)
    run_cv(cand_snorm(sflip, lab), "sface flip snorm", emb, p)
    run_cv(cand_snorm(sflip, lab, topk=100), "sface flip snorm top100", emb, p)
    fused, weights = cand_fuse(sflip, mflip, lab, p)
    run_cv(fused, "fuse sflip+mfn (fit w)", emb, p)
    print(sorted(set(weights)))
    fused, weights = cand_fuse(sflip, mflip, lab, p, center=True)
    run_cv(fused, "fuse centered (fit w)", emb, p)
    print(sorted(set(weights)))


if __name__ == "__main__":
    main()
