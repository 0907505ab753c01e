"""Exploration: SFace + MobileFaceNet score fusion through the project's own eval path (cached embeddings,
identity folds, the operating-point rule). Run from the repository root:
    .venv/bin/python models/experiments/fusion_eval.py [WEIGHT ...]
"""

import sys

from atm_host.vision.calibrate import choose_operating_point, fuse
from atm_host.vision.config import VisionConfig
from atm_host.vision.eval_cmd import TARGET_FAR, fit
from atm_host.vision.evaluate import compute_metrics, to_embedded
from atm_host.vision.paths import shared_dir

faces = shared_dir() / "data" / "faces"
folders = [faces / "aligned112", faces / "unaligned150"]
sface_sets, _ = fit(VisionConfig(threads=2), folders)
mfn_sets, _ = fit(VisionConfig(threads=2, embedder="mobilefacenet"), folders)
a, b = to_embedded(sface_sets), to_embedded(mfn_sets)
for w in [float(x) for x in sys.argv[1:]] or [1.0, 0.8, 0.7, 0.6, 0.0]:
    for gate in (False, True):
        c = choose_operating_point(fuse(a, b, w), target_far=TARGET_FAR, gate=gate)
        m = compute_metrics(c.held_out.genuine, c.held_out.impostor)
        print(
            f"w_sface {w:.1f} gate {gate!s:5}: EER {m.eer * 100:5.2f}% TAR@1e-3 {m.tar_at[1e-3][0] * 100:6.2f}% "
            f"TAR@1e-4 {m.tar_at[1e-4][0] * 100:6.2f}% | threshold {c.threshold:.6f} (margin {c.margin:.2f}), "
            f"held-out FA {c.row.false_accepts}/{c.row.impostor_pairs} (95% up {c.row.far_upper95:.2e}), "
            f"TAR {c.row.tar * 100:5.2f}%"
        )
