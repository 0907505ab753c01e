"""Verification metrics from genuine and impostor scores: ROC, AUC, EER, TAR at a FAR, threshold choice."""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Roc:
    """FAR and TAR at each threshold (accept when score >= threshold), thresholds descending."""

    thresholds: Scores
    far: Scores
    tar: Scores


def roc(genuine: Scores, impostor: Scores) -> Roc:
    """The ROC over every distinct score."""
    thresholds = np.unique(np.concatenate([genuine, impostor]))[::-1]
    g, i = np.sort(genuine), np.sort(impostor)
    tar = 1.0 - np.searchsorted(g, thresholds, side="left") / g.size
    far = 1.0 - np.searchsorted(i, thresholds, side="left") / i.size
    return Roc(thresholds.astype(np.float64), far.astype(np.float64), tar.astype(np.float64))


def auc(genuine: Scores, impostor: Scores) -> float:
    """P(genuine score > impostor score), ties counted half (Mann-Whitney)."""
    allv = np.concatenate([genuine, impostor])
    _, inverse, counts = np.unique(allv, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    n_g, n_i = genuine.size, impostor.size
    return float((ranks[:n_g].sum() - n_g * (n_g + 1) / 2.0) / (n_g * n_i))


def eer(curve: Roc) -> tuple[float, float]:
    """(equal error rate, threshold where FAR and FRR cross)."""
    frr = 1.0 - curve.tar
    k = int(np.argmin(np.abs(curve.far - frr)))
    return float((curve.far[k] + frr[k]) / 2.0), float(curve.thresholds[k])


def threshold_for_far(impostor: Scores, target_far: float) -> float:
    """The lowest threshold whose measured FAR (score >= threshold) is at most `target_far`.

    With N impostor pairs, at most floor(target_far * N) impostors may score at or above it; when that
    is 0 the threshold sits just above the highest impostor and the FAR is only bounded by 1/N.
    """
    desc = np.sort(impostor)[::-1]
    allowed = int(np.floor(target_far * desc.size))
    return float(np.nextafter(desc[allowed], np.inf)) if allowed < desc.size else float(desc[-1])


def poisson_upper(k: int, confidence: float) -> float:
    """Upper confidence bound on a Poisson mean after observing `k` events (bisection on the CDF)."""
    lo, hi = 0.0, 10.0 * (k + 5)
    for _ in range(200):
        lam = (lo + hi) / 2.0
        term = cdf = math.exp(-lam)
        for i in range(1, k + 1):
            term *= lam / i
            cdf += term
        if cdf > 1.0 - confidence:
            lo = lam
        else:
            hi = lam
    return (lo + hi) / 2.0


def confident_threshold(impostor: Scores, target_far: float, confidence: float = 0.95) -> float:
    """The lowest threshold at which the FAR is <= `target_far` with `confidence` (Poisson bound).

    Allows the largest number k of impostors at or above it whose upper bound k_up / N is within the
    target; if even k = 0 is not (N < 3 / target at 95%), the threshold sits just above the highest
    impostor. Pairs sharing identities are not independent, so this is a floor of prudence, not a proof.
    """
    n = impostor.size
    k = -1
    while poisson_upper(k + 1, confidence) / n <= target_far:
        k += 1
    desc = np.sort(impostor)[::-1]
    return float(np.nextafter(desc[max(k, 0)], np.inf))


def rate_at(scores: Scores, threshold: float) -> float:
    """Fraction of `scores` at or above `threshold`."""
    return float(np.mean(scores >= threshold)) if scores.size else 0.0


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (exact for the small k used here)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(min(k, n) + 1):
        log_term = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        total += math.exp(log_term)
    return min(total, 1.0)


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate after `k` events in `n` trials.

    The p at which P(X <= k) = 1 - confidence (bisection); with k = 0 it is 1 - (1 - confidence)^(1/n),
    about 3/n at 95%. Trials are assumed independent: pairs that share identities are not.
    """
    if n <= 0:
        raise ValueError("no trials")
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if binomial_cdf(k, n, mid) > 1.0 - confidence:
            lo = mid
        else:
            hi = mid
    return hi
