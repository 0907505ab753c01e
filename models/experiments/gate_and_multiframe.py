"""Exploration: the embedding-norm gate sweep and multi-photo templates (docs/vision.md)."""
import numpy as np
exec(open("models/experiments/compare_candidates.py").read().split("if __name__")[0])
rs = np.linalg.norm(d["s0"], axis=1); rsf = np.linalg.norm(d["s0"] + d["s1"], axis=1) / 2
rm = np.linalg.norm(d["m0"] + d["m1"], axis=1) / 2
print("mfn rawnorm pct", np.percentile(rm, [1, 5, 50]), "corr with sface norm", np.corrcoef(rm, rs)[0, 1])
def sub_metrics(S, keep):
    m = keep[iu[0]] & keep[iu[1]] & ws
    v = S[iu]; return metrics(v[m & same], v[m & ~same]), (m & ~same).sum()
for E, nm, r in [(S0, "sface", rs), (SF, "sflip", rsf)]:
    S = E @ E.T
    for tau in [0, 7, 8, 9, 9.5, 10]:
        keep = r >= tau
        (e, t3, t4), ni = sub_metrics(S, keep)
        print(f"{nm} norm>={tau}: FTA {np.mean(~keep)*100:.1f}% imp {ni} EER {e*100:.2f}% TAR@1e-3 {t3*100:.2f}% TAR@1e-4 {t4*100:.2f}%")
# multi-frame templates: template = k images of a person, probe = one other image
rng = np.random.default_rng(0)
def mf(E, raw, k=3, weight="none", reps=20):
    gen, imp = [], []
    for rep in range(reps):
        for p in range(K):
            idx = np.flatnonzero(lab == p)
            if idx.size < k + 1: continue
            t = rng.choice(idx, k, replace=False)
            if weight == "none": T = n(E[t].sum(0))
            elif weight == "raw": T = n(raw[t].sum(0))
            elif weight == "norm2": w = np.linalg.norm(raw[t], axis=1) ** 2; T = n((E[t] * w[:, None]).sum(0))
            elif weight == "best": T = E[t[np.argmax(np.linalg.norm(raw[t], axis=1))]]
            rest = np.setdiff1d(idx, t)
            gen.append(E[rest] @ T)
            others = np.flatnonzero((lab != p) & (setof[lab] == setof[p]))
            imp.append(E[others] @ T)
    g, i = np.concatenate(gen), np.concatenate(imp)
    return metrics(g, i), g.size, i.size
for k in [1, 3, 5]:
    for w in ["none", "raw", "norm2"] if k > 1 else ["none"]:
        (e, t3, t4), ng, ni = mf(SF, d["s0"] + d["s1"], k, w)
        print(f"multi-frame k={k} weight={w}: g {ng} i {ni} EER {e*100:.2f}% TAR@1e-3 {t3*100:.2f}% TAR@1e-4 {t4*100:.2f}%")
