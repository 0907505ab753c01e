"""Exploration: each embedding candidate's operating point under calibrate.py's rule (gate on and off)."""

import numpy as np
from atm_host.vision.calibrate import Embedded, choose_operating_point, fuse
from atm_host.vision.evaluate import compute_metrics
from common import load, unit

FUSION_WEIGHTS = (0.6, 0.7, 0.8)


def main() -> None:
    """One line per candidate and gate setting: held-out metrics, margin, threshold, false accepts, TAR."""
    cache = load()
    s_raw = cache.s0 + cache.s1
    m_raw = cache.m0 + cache.m1
    s_norm = np.linalg.norm(s_raw, axis=1) / 2
    sface = cache.embedded(unit(s_raw), s_norm)
    cands: dict[str, Embedded] = {
        "sface one image": cache.embedded(unit(cache.s0), np.linalg.norm(cache.s0, axis=1)),
        "sface face+mirror": sface,
        "mobilefacenet face+mirror": cache.embedded(unit(m_raw), np.linalg.norm(m_raw, axis=1) / 2),
    }
    for w in FUSION_WEIGHTS:
        # w * cos_sface + (1 - w) * cos_mfn, SFace's norms for the gate
        cands[f"fusion w={w}"] = fuse(sface, cands["mobilefacenet face+mirror"], w)
    for name, emb in cands.items():
        for gate in (False, True):
            c = choose_operating_point(emb, target_far=1e-4, gate=gate)
            m = compute_metrics(c.held_out.genuine, c.held_out.impostor)
            print(
                f"{name:28} gate={gate!s:5} EER {m.eer * 100:5.2f}% TAR@1e-3 {m.tar_at[1e-3][0] * 100:6.2f}% "
                f"TAR@1e-4 {m.tar_at[1e-4][0] * 100:6.2f}% | margin {c.margin:.2f} thr {c.threshold:.4f} "
                f"FA {c.row.false_accepts}/{c.row.impostor_pairs} up95 {c.row.far_upper95:.2e} "
                f"TAR@op {c.row.tar * 100:5.2f}%"
            )


if __name__ == "__main__":
    main()
