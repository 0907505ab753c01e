"""Exploration: each embedding candidate's operating point under calibrate.py's rule (gate on and off)."""

import numpy as np

from atm_host.vision.calibrate import Embedded, choose_operating_point
from atm_host.vision.evaluate import compute_metrics

d = np.load("var/vexp/emb.npz")
ident = np.array([f"{s}/{p}" for s, p in zip(d["set"], d["person"], strict=True)])
names = sorted(set(ident))
lab = np.array([names.index(i) for i in ident], dtype=np.int64)
groups = [n.split("/")[0] for n in names]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


s_raw = d["s0"] + d["s1"]
m_raw = d["m0"] + d["m1"]
s_norm = np.linalg.norm(s_raw, axis=1) / 2
cands = {
    "sface one image": (unit(d["s0"]), np.linalg.norm(d["s0"], axis=1)),
    "sface face+mirror": (unit(s_raw), s_norm),
    "mobilefacenet face+mirror": (unit(m_raw), np.linalg.norm(m_raw, axis=1) / 2),
}
for w in (0.6, 0.7, 0.8):
    # score fusion w * cos_sface + (1 - w) * cos_mfn == cosine of the concatenation [sqrt(w) a, sqrt(1-w) b]
    cat = np.hstack([np.sqrt(w) * unit(s_raw), np.sqrt(1 - w) * unit(m_raw)])
    cands[f"fusion w={w}"] = (cat, s_norm)
for name, (vec, norms) in cands.items():
    emb = Embedded(vec.astype(np.float64), norms.astype(np.float64), lab, names, groups)
    for gate in (False, True):
        c = choose_operating_point(emb, target_far=1e-4, gate=gate)
        m = compute_metrics(c.held_out.genuine, c.held_out.impostor)
        print(
            f"{name:28} gate={gate!s:5} EER {m.eer * 100:5.2f}% TAR@1e-3 {m.tar_at[1e-3][0] * 100:6.2f}% "
            f"TAR@1e-4 {m.tar_at[1e-4][0] * 100:6.2f}% | margin {c.margin:.2f} thr {c.threshold:.4f} "
            f"FA {c.row.false_accepts}/{c.row.impostor_pairs} up95 {c.row.far_upper95:.2e} TAR@op {c.row.tar * 100:5.2f}%"
        )
