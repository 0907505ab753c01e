"""Exploration: SFace + MobileFaceNet score fusion through the project's own eval path and rule.

The embeddings come from `eval`'s own cache (models/cache/embeddings), the folds and the operating-point
rule from calibrate.py, the fusion from calibrate.fuse. Run from anywhere:
    .venv/bin/python models/experiments/fusion_eval.py [WEIGHT ...]
"""

import sys

from atm_host.vision.calibrate import choose_operating_point, fuse
from atm_host.vision.config import VisionConfig
from atm_host.vision.eval_cmd import TARGET_FAR, fit
from atm_host.vision.evaluate import compute_metrics, to_embedded
from atm_host.vision.paths import shared_dir

WEIGHTS = (1.0, 0.8, 0.7, 0.6, 0.0)  # SFace's weight; 1.0 is SFace alone, 0.0 MobileFaceNet alone


def main(weights: list[float]) -> None:
    """One line per weight and gate setting: held-out metrics and the operating point."""
    faces = shared_dir() / "data" / "faces"
    folders = [faces / "aligned112", faces / "unaligned150"]
    sface_sets, _ = fit(VisionConfig(threads=2), folders)
    mfn_sets, _ = fit(VisionConfig(threads=2, embedder="mobilefacenet"), folders)
    a, b = to_embedded(sface_sets), to_embedded(mfn_sets)
    for w in weights:
        for gate in (False, True):
            c = choose_operating_point(fuse(a, b, w), target_far=TARGET_FAR, gate=gate)
            m = compute_metrics(c.held_out.genuine, c.held_out.impostor)
            print(
                f"w_sface {w:.1f} gate {gate!s:5}: EER {m.eer * 100:5.2f}% "
                f"TAR@1e-3 {m.tar_at[1e-3][0] * 100:6.2f}% TAR@1e-4 {m.tar_at[1e-4][0] * 100:6.2f}% "
                f"| threshold {c.threshold:.6f} (margin {c.margin:.2f}), "
                f"held-out FA {c.row.false_accepts}/{c.row.impostor_pairs} "
                f"(95% up {c.row.far_upper95:.2e}), TAR {c.row.tar * 100:5.2f}%"
            )


if __name__ == "__main__":
    main([float(x) for x in sys.argv[1:]] or list(WEIGHTS))
