"""Exploration: the candidate table of docs/vision.md (identity folds as in calibrate.py, no gate)."""
import itertools, numpy as np, sys
from atm_host.vision.metrics import roc, eer, threshold_for_far, rate_at, confident_threshold
d = np.load("var/vexp/emb.npz")
ident = np.array([f"{s}/{p}" for s, p in zip(d["set"], d["person"])])
names = sorted(set(ident)); lab = np.array([names.index(i) for i in ident]); K = len(names)
setof = np.array([names[k].split("/")[0] for k in range(K)])
def n(x): return x / np.linalg.norm(x, axis=-1, keepdims=True)
S0, S1, M0, M1 = n(d["s0"]), n(d["s1"]), n(d["m0"]), n(d["m1"])
SF = n(S0 + S1); MF = n(M0 + M1)
N = len(lab)
iu = np.triu_indices(N, 1); li, lj = lab[iu[0]], lab[iu[1]]
same = li == lj; ws = setof[li] == setof[lj]
def metrics(g, i):
    c = roc(g, i); e, _ = eer(c)
    return e, rate_at(g, threshold_for_far(i, 1e-3)), rate_at(g, threshold_for_far(i, 1e-4))

# a candidate: fit(fit_mask over images) -> sim matrix (N x N) for all images
def fit_pairs(fitimg):
    m = fitimg[iu[0]] & fitimg[iu[1]] & ws
    return m & same, m & ~same

def cand_plain(E):
    return lambda fitimg: E @ E.T

def cand_center(E, per_identity=True):
    def f(fitimg):
        if per_identity:
            mu = np.mean([E[fitimg & (lab == k)].mean(0) for k in set(lab[fitimg])], axis=0)
        else:
            mu = E[fitimg].mean(0)
        X = n(E - mu); return X @ X.T
    return f

def cand_snorm(E, topk=None, center=False):
    def f(fitimg):
        X = E
        if center:
            mu = np.mean([E[fitimg & (lab == k)].mean(0) for k in set(lab[fitimg])], axis=0); X = n(E - mu)
        S = X @ X.T
        C = S[:, fitimg]  # image vs cohort
        if topk:
            C = np.sort(C, axis=1)[:, -topk:]
        mu_, sd = C.mean(1), C.std(1)
        Z = (S - mu_[:, None]) / sd[:, None]
        return 0.5 * (Z + Z.T)
    return f

def cand_fuse(A, B, ws_grid=(0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0), fixed=None, center=False):
    def f(fitimg):
        XA, XB = A, B
        if center:
            for_ = []
            XA = n(A - np.mean([A[fitimg & (lab == k)].mean(0) for k in set(lab[fitimg])], axis=0))
            XB = n(B - np.mean([B[fitimg & (lab == k)].mean(0) for k in set(lab[fitimg])], axis=0))
        SA, SB = XA @ XA.T, XB @ XB.T
        if fixed is not None:
            w = fixed
        else:
            g, i = fit_pairs(fitimg)
            best = None
            for w in ws_grid:
                v = (w * SA + (1 - w) * SB)[iu]
                e, t3, t4 = metrics(v[g], v[i])
                key = t3 + t4 - e  # fit criterion
                if best is None or key > best[0]: best = (key, w)
            w = best[1]
        f.ws.append(w)
        return w * SA + (1 - w) * SB
    f.ws = []
    return f

def run_cv(fit, name, margin_report=True):
    # genuine: leave-one-identity-out; impostor: leave-two-identities-out (within set)
    gen, imp, thr_imp, thr_gen, thr_imp0, thr_gen0 = [], [], [], [], [], []
    for k in range(K):
        fitimg = lab != k
        S = fit(fitimg)
        sel = same & (li == k)
        gen.append(S[iu][sel])
        g, i = fit_pairs(fitimg); v = S[iu]
        thr_gen.append(np.full(sel.sum(), confident_threshold(v[i], 1e-4)))
        thr_gen0.append(np.full(sel.sum(), np.nextafter(v[i].max(), 1)))
    for a, b in itertools.combinations(range(K), 2):
        if setof[a] != setof[b]: continue
        fitimg = (lab != a) & (lab != b)
        S = fit(fitimg); v = S[iu]
        sel = ((li == a) & (lj == b)) | ((li == b) & (lj == a))
        imp.append(v[sel])
        g, i = fit_pairs(fitimg)
        thr_imp.append(np.full(sel.sum(), confident_threshold(v[i], 1e-4)))
        thr_imp0.append(np.full(sel.sum(), np.nextafter(v[i].max(), 1)))
    gen, imp = np.concatenate(gen), np.concatenate(imp)
    tg, ti, tg0, ti0 = map(np.concatenate, (thr_gen, thr_imp, thr_gen0, thr_imp0))
    e, t3, t4 = metrics(gen, imp)
    far = np.sum(imp >= ti); tar = np.mean(gen >= tg)
    far0 = np.sum(imp >= ti0); tar0 = np.mean(gen >= tg0)
    print(f"{name:34} g {gen.size} i {imp.size} EER {e*100:5.2f}% TAR@1e-3 {t3*100:6.2f}% TAR@1e-4 {t4*100:6.2f}% | conf thr: FA {far} TAR {tar*100:5.2f}% | max thr: FA {far0} TAR {tar0*100:5.2f}%")
    return gen, imp

if __name__ == "__main__":
    run_cv(cand_plain(S0), "sface")
    run_cv(cand_plain(SF), "sface flip")
    run_cv(cand_plain(MF), "mfn flip")
    run_cv(cand_center(S0), "sface centered")
    run_cv(cand_center(SF), "sface flip centered")
    run_cv(cand_snorm(S0), "sface snorm")
    run_cv(cand_snorm(SF), "sface flip snorm")
    run_cv(cand_snorm(SF, topk=100), "sface flip snorm top100")
    f = cand_fuse(SF, MF); run_cv(f, "fuse sflip+mfn (fit w)"); print(sorted(set(f.ws)))
    f = cand_fuse(SF, MF, center=True); run_cv(f, "fuse centered (fit w)"); print(sorted(set(f.ws)))
