"""Metric definitions on known score sets."""

import numpy as np
import pytest
from atm_host.vision.metrics import auc, eer, rate_at, roc, threshold_for_far


def test_separable_scores() -> None:
    gen, imp = np.linspace(0.6, 0.9, 50), np.linspace(-0.2, 0.4, 1000)
    assert auc(gen, imp) == 1.0
    assert eer(roc(gen, imp))[0] == 0.0


def test_auc_counts_ties_as_half() -> None:
    assert auc(np.asarray([0.5]), np.asarray([0.5])) == 0.5


def test_threshold_for_far_allows_at_most_the_target() -> None:
    rng = np.random.default_rng(0)
    imp = rng.normal(0.0, 0.1, 100_000)
    for far in (1e-2, 1e-3, 1e-4):
        t = threshold_for_far(imp, far)
        assert rate_at(imp, t) <= far
        assert rate_at(imp, t - 1e-3) > far * 0.5  # not needlessly high
    small = np.asarray([0.1, 0.2, 0.3])
    assert rate_at(small, threshold_for_far(small, 1e-4)) == 0.0


def test_eer_of_overlapping_gaussians() -> None:
    rng = np.random.default_rng(1)
    gen, imp = rng.normal(1.0, 1.0, 20_000), rng.normal(-1.0, 1.0, 20_000)
    assert eer(roc(gen, imp))[0] == pytest.approx(0.1587, abs=0.01)  # Phi(-1)
