"""The `eval` command: score labelled folders, print the metrics table, draw plots, store the threshold."""

from pathlib import Path

import numpy as np

from .config import QualityConfig, VisionConfig
from .evaluate import HEADER, FolderScores, compute_metrics, embed_folder, format_metrics, plot
from .manifest import OperatingPoint, load_manifest, save_manifest
from .metrics import confident_threshold, rate_at
from .pipeline import FacePipeline

TARGET_FAR = 1e-4


def run_eval(config: VisionConfig, folders: list[Path], out_dir: Path, write: bool) -> int:
    """Evaluate; with `write`, store the pooled FAR<=1e-4 threshold in the manifest. Returns exit code."""
    # Photo sets are not camera frames at 40-70 cm: the distance check would reject them all.
    cfg = config.model_copy(update={"quality": QualityConfig(check_distance=False)})
    pipe = FacePipeline(cfg)
    out_dir = out_dir / cfg.embedder
    sets: list[FolderScores] = []
    for folder in folders:
        sets.append(embed_folder(pipe, folder))
    gen = np.concatenate([s.genuine for s in sets])
    imp = np.concatenate([s.impostor for s in sets])
    pooled = compute_metrics(gen, imp)
    # Bank grade: FAR <= 1e-4 with 95% confidence (Poisson bound on the count of impostors accepted),
    # pooled AND on every set alone (a small set then allows no impostor at all), so a set whose
    # impostors score higher (e.g. photos through detection + alignment) sets the bar.
    per_set = {s.name: confident_threshold(s.impostor, TARGET_FAR) for s in sets}
    threshold = max(confident_threshold(imp, TARGET_FAR), *per_set.values())
    print(f"embedder {cfg.embedder}, threads {cfg.threads}; pairs within each folder; accept if score >= thr")
    print(HEADER)
    for s in sets:
        m = compute_metrics(s.genuine, s.impostor)
        print(format_metrics(s.name, m))
        plot(s.name, genuine=s.genuine, impostor=s.impostor, m=m, threshold=threshold, out_dir=out_dir)
    if len(sets) > 1:
        print(format_metrics("pooled", pooled))
    paths = plot("pooled", genuine=gen, impostor=imp, m=pooled, threshold=threshold, out_dir=out_dir)
    for s in sets:
        fails = dict(s.failures) or "none"
        flags = dict(s.quality_flags) or "none"
        print(f"{s.name}: {s.images} images, failures {fails}, quality-gate flags (not enforced) {flags}")
    far, tar = rate_at(imp, threshold), rate_at(gen, threshold)
    for s in sets:
        print(
            f"  at the operating threshold, {s.name}: FAR {rate_at(s.impostor, threshold):.2e} "
            f"({s.impostor.size} impostor pairs), TAR {rate_at(s.genuine, threshold) * 100:.2f}% "
            f"(own threshold {per_set[s.name]:.4f})"
        )
    print(
        f"operating threshold (FAR <= {TARGET_FAR:g} at 95% confidence, pooled over {imp.size} "
        "impostor pairs "
        "and in each set): "
        f"{threshold:.4f} -> pooled FAR {far:.2e}, TAR {tar * 100:.2f}%"
    )
    print(f"plots: {', '.join(str(p) for p in paths)} and per-set PNGs in {out_dir}")
    if write:
        manifest = load_manifest(cfg.manifest)
        entry = manifest.entry(cfg.embedder)
        entry.operating_point = OperatingPoint(
            threshold=round(threshold, 6),
            target_far=TARGET_FAR,
            far=far,
            tar=round(tar, 6),
            genuine_pairs=int(gen.size),
            impostor_pairs=int(imp.size),
            dataset=" + ".join(s.name for s in sets) + " (../shared/data/faces dev set)",
        )
        entry.measured.update(
            {
                "auc_pooled": f"{pooled.auc:.5f}",
                "eer_pooled": f"{pooled.eer * 100:.2f}%",
                "tar_at_far_1e-3": f"{pooled.tar_at[1e-3][0] * 100:.2f}%",
                "tar_at_far_1e-4": f"{pooled.tar_at[1e-4][0] * 100:.2f}%",
            }
        )
        save_manifest(manifest, cfg.manifest)
        print(f"threshold {threshold:.4f} written to {cfg.manifest}")
    return 0
