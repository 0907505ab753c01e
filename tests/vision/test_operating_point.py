"""The operating point: identity folds, the threshold rule, the FAR bound, flip fusion, the shipped value."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from atm_host.vision.calibrate import (
    Embedded,
    choose_operating_point,
    cross_validate,
    folds,
    fuse,
    impostor_scores,
    threshold_above,
)
from atm_host.vision.cli import main
from atm_host.vision.config import VisionConfig
from atm_host.vision.errors import VisionError
from atm_host.vision.eval_cmd import dataset_name, expand_sets, fit, operating_point
from atm_host.vision.manifest import load_manifest, save_manifest
from atm_host.vision.metrics import binomial_cdf, clopper_pearson_upper, poisson_upper
from atm_host.vision.paths import MANIFEST_PATH, shared_dir
from atm_host.vision.pipeline import FacePipeline

from .conftest import read


def _synthetic(people: int = 8, per: int = 6, groups: int = 2, seed: int = 0) -> Embedded:
    """Random identities: each a direction, its images that direction plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 32))
    vecs = np.repeat(centres, per, axis=0) + 0.6 * rng.normal(size=(people * per, 32))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return Embedded(
        vecs,
        rng.uniform(8.0, 14.0, people * per),
        np.repeat(np.arange(people), per).astype(np.int64),
        [f"g{p % groups}/p{p}" for p in range(people)],
        [f"g{p % groups}" for p in range(people)],
    )


def test_folds_never_test_an_identity_they_were_fitted_on() -> None:
    emb = _synthetic()
    fs = folds(emb)
    genuine = [f.held_out for f in fs if f.genuine]
    assert sorted(genuine) == [(p,) for p in range(8)]  # each person's own pairs tested once
    pairs = [f.held_out for f in fs if not f.genuine]
    assert len(pairs) == 2 * math.comb(4, 2)  # impostor pairs only within a set, each pair once
    assert all(emb.groups[a] == emb.groups[b] for a, b in pairs)


def test_a_look_alike_pair_is_caught_only_because_its_people_are_held_out() -> None:
    # Persons 0 and 2 (same set) are made near twins: a threshold fitted with them inside would sit above
    # their scores; held out, their pairs must be judged by a threshold fitted on the others and counted.
    emb = _synthetic()
    vecs = emb.vectors.copy()
    vecs[emb.labels == 2] = vecs[emb.labels == 0] + 1e-3
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    twins = Embedded(vecs, emb.norms, emb.labels, emb.names, emb.groups)
    held = cross_validate(twins, gate=False)
    assert held.false_accepts() >= 30  # the 36 twin pairs score ~1.0, above every other person's pairs
    assert held.crossing_identity_pairs() >= 1
    assert held.impostor.size == sum(
        int(np.sum(emb.labels == a) * np.sum(emb.labels == b))
        for a, b in (f.held_out for f in folds(emb) if not f.genuine)
    )
    # the threshold fitted on everyone is above the twins, so an in-sample count would have hidden them
    assert threshold_above(impostor_scores(twins, np.ones(twins.labels.size, dtype=bool)), 0.0) > 0.99


def test_threshold_is_never_below_a_fitted_impostor() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        imp = rng.normal(0.0, 0.1, 500).astype(np.float32).astype(np.float64)
        for margin in (0.0, 0.01, 0.06):
            t = threshold_above(imp, margin)
            assert t > imp.max() + margin - 1e-12
            assert not np.any(imp >= t - margin)
            assert json.loads(json.dumps(t)) == t  # stored exactly: JSON keeps every bit of the float
    emb = _synthetic(people=10, per=8)
    choice = choose_operating_point(emb, target_far=1e-2, gate=True)
    use = emb.norms >= (choice.min_embedding_norm or -np.inf)
    assert choice.threshold > impostor_scores(emb, use).max()


def test_clopper_pearson_bound() -> None:
    n = 98_890
    assert clopper_pearson_upper(0, n) == pytest.approx(1.0 - 0.05 ** (1.0 / n), rel=1e-9)  # ~3/n
    assert clopper_pearson_upper(1, 10) == pytest.approx(0.3942, abs=1e-4)  # tabulated one-sided 95%
    for k in (0, 1, 4, 10):
        up = clopper_pearson_upper(k, n)
        assert binomial_cdf(k, n, up) == pytest.approx(0.05, abs=1e-6)  # the definition
        assert up * n == pytest.approx(poisson_upper(k, 0.95), rel=2e-3)  # Poisson limit for large n
    assert clopper_pearson_upper(4, n) < 1e-4 < clopper_pearson_upper(5, n)
    assert clopper_pearson_upper(10, 10) == 1.0
    assert binomial_cdf(3, 3, 0.4) == pytest.approx(1.0)
    assert binomial_cdf(0, 5, 0.5) == pytest.approx(1 / 32)


def test_choice_says_when_the_data_cannot_back_the_target() -> None:
    emb = _synthetic()  # a few hundred impostor pairs cannot show 1e-4
    choice = choose_operating_point(emb, target_far=1e-4, gate=False)
    assert not choice.supported
    assert choice.row.far_upper95 > 1e-4


def test_flip_fusion_is_the_normalised_sum_and_mirror_symmetric(photo_pipe: FacePipeline) -> None:
    root = shared_dir() / "data" / "faces" / "aligned112"
    face = read(sorted(next(p for p in sorted(root.iterdir()) if p.is_dir()).glob("*.png"))[0])
    emb = photo_pipe.embedder
    a, b = emb.raw(face)
    vec = emb.embed(face)
    want = (a + b) / np.linalg.norm(a + b)
    assert np.allclose(vec, want, atol=1e-6)
    assert emb.last_norm == pytest.approx(float(np.linalg.norm(a + b)) / 2.0, rel=1e-6)
    # the mirror image gives the same embedding: the model sees the same two images
    assert float(emb.embed(np.ascontiguousarray(face[:, ::-1])) @ vec) > 0.9999


def test_shipped_threshold_is_what_the_fitting_step_produces(models_ready: None) -> None:
    faces = shared_dir() / "data" / "faces"
    sets, choice = fit(VisionConfig(threads=2), [faces / "aligned112", faces / "unaligned150"])
    op = load_manifest(MANIFEST_PATH).entry("sface").operating_point
    assert op is not None
    # Another CPU's kernels can move a dynamic-int8 score by ~1e-4; on the machine that wrote it, 0.
    assert op.threshold == pytest.approx(choice.threshold, abs=1e-3), "re-run `eval --write`"
    assert op.margin == choice.margin and op.min_embedding_norm == pytest.approx(choice.min_embedding_norm)
    assert op.threshold > choice.max_fitted_impostor  # above every dev impostor the gate lets through
    assert op.threshold >= choice.max_fitted_impostor + choice.margin - 1e-3
    assert op.far_upper95 is not None and op.far_upper95 <= op.target_far and choice.supported
    assert op.dataset == dataset_name(sets)


def test_the_write_path_stores_the_fitted_threshold_bit_for_bit(tmp_path: Path) -> None:
    # `round(threshold, 6)` turned 0.46992934 into 0.469929, below a dev impostor: the stored value must be
    # exactly the fitted float, through the manifest file and back.
    emb = _synthetic(people=10, per=8)
    choice = choose_operating_point(emb, target_far=1e-2, gate=True)
    manifest = load_manifest(MANIFEST_PATH)
    manifest.entry("sface").operating_point = operating_point(choice, [])
    save_manifest(manifest, tmp_path / "m.json")
    op = load_manifest(tmp_path / "m.json").entry("sface").operating_point
    assert op is not None
    assert op.threshold == choice.threshold
    use = emb.norms >= (op.min_embedding_norm or -np.inf)
    assert not np.any(impostor_scores(emb, use) >= op.threshold)


def test_eval_prints_held_out_metrics_and_the_bound(
    models_ready: None, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    assert main(["eval", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Held-out identities (17 people)" in out
    assert "95% upper bound" in out and "operating threshold" in out and "TAR@FAR1e-3" in out
    op = load_manifest(MANIFEST_PATH).entry("sface").operating_point
    assert op is not None and repr(op.threshold) in out


def test_eval_takes_a_root_of_sets_and_marks_an_outside_set_held_out(
    models_ready: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faces = shared_dir() / "data" / "faces"
    root = tmp_path / "other"
    for src_set, dst_set in (("aligned112", "heldA"), ("unaligned150", "heldB")):
        for person in sorted(p for p in (faces / src_set).iterdir() if p.is_dir())[:3]:
            (root / dst_set / person.name).mkdir(parents=True)
            for img in sorted(person.iterdir())[:6]:
                (root / dst_set / person.name / img.name).symlink_to(img)
    assert expand_sets([root]) == [root / "heldA", root / "heldB"]
    assert expand_sets([root / "heldA"]) == [root / "heldA"]
    assert main(["eval", str(root), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Held-out identities (6 people)" in out
    assert "not among those it was fitted on: a held-out figure" in out
    assert "gated at" in out


def test_score_fusion_is_the_cosine_of_the_weighted_concatenation() -> None:
    a, b = _synthetic(seed=1), _synthetic(seed=2)
    b = Embedded(
        b.vectors[:, :20] / np.linalg.norm(b.vectors[:, :20], axis=1, keepdims=True),
        b.norms,
        a.labels,
        a.names,
        a.groups,
    )  # another model: another dimension
    for w in (0.0, 0.3, 0.7, 1.0):
        f = fuse(a, b, w)
        assert f.vectors.shape == (a.labels.size, 52)
        assert np.allclose(np.linalg.norm(f.vectors, axis=1), 1.0)
        want = w * (a.vectors @ a.vectors.T) + (1.0 - w) * (b.vectors @ b.vectors.T)
        assert np.allclose(f.vectors @ f.vectors.T, want, atol=1e-12)
    other = Embedded(b.vectors, b.norms, np.roll(a.labels, 1), a.names, a.groups)
    with pytest.raises(VisionError):
        fuse(a, other, 0.5)
    with pytest.raises(VisionError):
        fuse(a, b, 1.5)
