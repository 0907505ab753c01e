"""Exploration: the embedding-norm gate sweep and multi-photo templates (docs/vision.md)."""

import numpy as np
from atm_host.vision.evaluate import pair_scores
from common import Cache, Floats, headline, load, unit

GATE_NORMS = (0, 7, 8, 9, 9.5, 10)


def gate_sweep(cache: Cache) -> None:
    """Metrics of the images whose raw output is at least each norm on GATE_NORMS (all pairs, no folds)."""
    s_norm = np.linalg.norm(cache.s0, axis=1)
    sflip_norm = np.linalg.norm(cache.s0 + cache.s1, axis=1) / 2
    m_norm = np.linalg.norm(cache.m0 + cache.m1, axis=1) / 2
    corr = np.corrcoef(m_norm, s_norm)[0, 1]
    print("mfn rawnorm pct", np.percentile(m_norm, [1, 5, 50]), "corr with sface norm", corr)
    for vecs, name, norms in [
        (unit(cache.s0), "sface", s_norm),
        (unit(unit(cache.s0) + unit(cache.s1)), "sflip", sflip_norm),
    ]:
        emb = cache.embedded(vecs, norms)
        for tau in GATE_NORMS:
            keep = norms >= tau
            g, i = pair_scores(emb, keep)
            e, t3, t4 = headline(g, i)
            print(
                f"{name} norm>={tau}: FTA {np.mean(~keep) * 100:.1f}% imp {i.size} EER {e * 100:.2f}% "
                f"TAR@1e-3 {t3 * 100:.2f}% TAR@1e-4 {t4 * 100:.2f}%"
            )


def multi_frame(
    cache: Cache,
    vecs: Floats,
    raw: Floats,
    rng: np.random.Generator,
    k: int = 3,
    weight: str = "none",
    reps: int = 20,
) -> tuple[tuple[float, float, float], int, int]:
    """Template = k random images of a person (combined by `weight`), probe = each other image of that
    person (genuine) and every image of the other people of the set (impostor); `reps` draws per person.
    Returns ((EER, TAR@1e-3, TAR@1e-4), genuine count, impostor count)."""
    lab = cache.labels
    group = np.array(cache.groups)
    gen: list[Floats] = []
    imp: list[Floats] = []
    for _ in range(reps):
        for person in range(len(cache.names)):
            idx = np.flatnonzero(lab == person)
            if idx.size < k + 1:
                continue
            t = rng.choice(idx, k, replace=False)
            if weight == "none":
                template = unit(vecs[t].sum(0))
            elif weight == "raw":
                template = unit(raw[t].sum(0))
            elif weight == "norm2":
                w = np.linalg.norm(raw[t], axis=1) ** 2
                template = unit((vecs[t] * w[:, None]).sum(0))
            elif weight == "best":
                template = vecs[t[np.argmax(np.linalg.norm(raw[t], axis=1))]]
            else:
                raise ValueError(f"unknown template weighting {weight!r}")
            rest = np.setdiff1d(idx, t)
            gen.append(vecs[rest] @ template)
            others = np.flatnonzero((lab != person) & (group[lab] == group[person]))
            imp.append(vecs[others] @ template)
    g, i = np.concatenate(gen), np.concatenate(imp)
    return headline(g, i), g.size, i.size


def main() -> None:
    """The gate sweep, then templates of 1, 3 and 5 photos of SFace face + mirror."""
    cache = load()
    gate_sweep(cache)
    sflip = unit(unit(cache.s0) + unit(cache.s1))
    rng = np.random.default_rng(0)  # one stream over all runs below, in this order
    for k in [1, 3, 5]:
        for w in ["none", "raw", "norm2"] if k > 1 else ["none"]:
            (e, t3, t4), ng, ni = multi_frame(cache, sflip, cache.s0 + cache.s1, rng, k, w)
            print(
                f"multi-frame k={k} weight={w}: g {ng} i {ni} EER {e * 100:.2f}% TAR@1e-3 {t3 * 100:.2f}% "
                f"TAR@1e-4 {t4 * 100:.2f}%"
            )


if __name__ == "__main__":
    main()
