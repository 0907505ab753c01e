"""The `eval` command: identity cross-validated metrics, the operating point and its FAR bound, plots."""

from pathlib import Path

import numpy as np

from .calibrate import OperatingChoice, choose_operating_point, cross_validate
from .config import QualityConfig, VisionConfig
from .errors import VisionError
from .evaluate import (
    HEADER,
    IMAGE_SUFFIXES,
    ImageSet,
    compute_metrics,
    embed_folder,
    format_metrics,
    pair_scores,
    plot,
)
from .evaluate import to_embedded as embedded_of
from .manifest import OperatingPoint, load_manifest, save_manifest
from .metrics import clopper_pearson_upper
from .paths import CACHE_DIR
from .pipeline import FacePipeline

TARGET_FAR = 1e-4
EMBEDDING_CACHE = CACHE_DIR / "embeddings"
RULE = (
    "highest within-set impostor score of all fitting pairs (faces passing the embedding-norm gate) + "
    "the smallest margin (0.01 steps) at which, under cross-validation over identities (genuine pairs "
    "leave-one-identity-out, impostor pairs leave-two-identities-out), no held-out impostor pair is "
    "accepted and the one-sided 95% Clopper-Pearson upper bound of the held-out FAR is <= target_far; "
    "stored exactly"
)


def dataset_name(sets: list[ImageSet]) -> str:
    """How the manifest names the folders a threshold was fitted on."""
    return " + ".join(s.name for s in sets) + " (../shared/data/faces dev set)"


def expand_sets(folders: list[Path]) -> list[Path]:
    """Each folder as a set of <person>/<image>; a folder of such sets (like ../shared/data/faces) is
    replaced by its sets, so `eval FACES_ROOT` and `eval SET...` both work."""
    out: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise VisionError(f"{folder} is not a folder of <person>/<image>")
        subs = sorted(p for p in folder.iterdir() if p.is_dir())
        has_images = any(
            f.suffix.lower() in IMAGE_SUFFIXES for sub in subs for f in sub.iterdir() if f.is_file()
        )
        nested = [p for p in subs if any(q.is_dir() for q in p.iterdir())]
        out.extend(nested if nested and not has_images else [folder])
    return out


def fit(
    config: VisionConfig, folders: list[Path], progress: bool = False
) -> tuple[list[ImageSet], OperatingChoice]:
    """Embed `folders` (cached) and choose the operating point: what `eval --write` stores."""
    cfg = config.model_copy(update={"quality": QualityConfig(check_distance=False)})
    pipe = FacePipeline(cfg)
    sets = [embed_folder(pipe, f, EMBEDDING_CACHE, progress) for f in expand_sets(folders)]
    return sets, choose_operating_point(embedded_of(sets), target_far=TARGET_FAR, gate=True)


def operating_point(choice: OperatingChoice, sets: list[ImageSet]) -> OperatingPoint:
    """The manifest record of `choice`."""
    held, row = choice.held_out, choice.row
    return OperatingPoint(
        threshold=choice.threshold,
        target_far=choice.target_far,
        far=row.false_accepts / max(row.impostor_pairs, 1),
        tar=row.tar,
        genuine_pairs=int(held.genuine.size),
        impostor_pairs=row.impostor_pairs,
        dataset=dataset_name(sets),
        rule=RULE,
        margin=choice.margin,
        max_fitted_impostor=choice.max_fitted_impostor,
        far_upper95=row.far_upper95,
        false_accepts=row.false_accepts,
        min_embedding_norm=choice.min_embedding_norm,
    )


def run_eval(config: VisionConfig, folders: list[Path], out_dir: Path, write: bool) -> int:
    """Evaluate on held-out identities; with `write`, store the operating point in the manifest."""
    cfg = config.model_copy(update={"quality": QualityConfig(check_distance=False)})
    sets, choice = fit(cfg, folders, progress=True)
    emb = embedded_of(sets)
    out_dir = out_dir / cfg.embedder
    held = choice.held_out
    plain = cross_validate(emb, gate=False)
    print(f"embedder {cfg.embedder} (face + mirror), threads {cfg.threads}; accept if score >= thr")
    for s in sets:
        fails = dict(s.failures) or "none"
        flags = dict(s.quality_flags) or "none"
        print(
            f"{s.name}: {s.images} images of {len(set(s.people))} people, failures {fails}, "
            f"quality-gate flags (not enforced) {flags}"
        )
    print(
        f"\nHeld-out identities ({len(emb.names)} people): each genuine pair is scored with the gate and "
        "threshold fitted on the other people, each impostor pair (within a set) on all but its two people."
    )
    print(HEADER)
    m_all = compute_metrics(plain.genuine, plain.impostor)
    m_gate = compute_metrics(held.genuine, held.impostor)
    print(format_metrics("all images", m_all))
    fta = held.gated / max(held.images, 1)
    print(format_metrics(f"gated FTA{fta * 100:.1f}%", m_gate))
    print(
        "  gate: faces whose raw embedding length is below the 2.5% quantile of the fitting people's are "
        f"refused as unreadable ({held.gated} of {held.images} held-out images; the ATM asks for another "
        "frame)"
    )
    print("\nmargin over the highest fitted impostor -> held-out result (gated)")
    print(
        f"{'margin':>6} {'accepted impostors':>18} {'identity pairs':>14} {'FAR':>9} "
        f"{'95% upper':>9} {'TAR':>7}"
    )
    for r in choice.table:
        mark = " <- chosen" if r is choice.row else ""
        print(
            f"{r.margin:6.2f} {r.false_accepts:>11d} / {r.impostor_pairs:<6d} "
            f"{r.crossing_identity_pairs:>7d} / "
            f"{held.identity_pairs():<5d} {r.false_accepts / max(r.impostor_pairs, 1):9.2e} "
            f"{r.far_upper95:9.2e} {r.tar * 100:6.2f}%{mark}"
        )
    row = choice.row
    people_bound = clopper_pearson_upper(row.crossing_identity_pairs, max(held.identity_pairs(), 1))
    verdict = (
        f"FAR <= {TARGET_FAR:g} at 95% confidence is supported by these pairs"
        if choice.supported
        else f"these pairs CANNOT support FAR <= {TARGET_FAR:g} at 95%: the best they back is "
        f"{row.far_upper95:.2e}"
    )
    print(
        f"\noperating threshold {choice.threshold!r} = highest fitted impostor "
        f"{choice.max_fitted_impostor:.6f} "
        f"+ margin {choice.margin:.2f} (gate: raw norm >= {choice.min_embedding_norm:.3f})\n"
        f"  on held-out identities: FAR {row.false_accepts}/{row.impostor_pairs} = "
        f"{row.false_accepts / max(row.impostor_pairs, 1):.2e} (95% upper bound {row.far_upper95:.2e}), "
        f"TAR {row.tar * 100:.2f}% per image pair; {verdict}.\n"
        f"  The bound treats pairs as independent; they come from {held.identity_pairs()} pairs of people, "
        "so it is optimistic: a population claim needs many more identities.\n"
        f"  Counted by pairs of people: {row.crossing_identity_pairs} of {held.identity_pairs()} had an "
        f"impostor accepted; up to {people_bound * 100:.1f}% of pairs of people may (95% upper bound)."
    )
    manifest = load_manifest(cfg.manifest)
    entry = manifest.entry(cfg.embedder)
    shipped = entry.operating_point
    if shipped is not None:
        fitted_sets = set(shipped.dataset.split(" (")[0].split(" + "))
        shared = sorted(fitted_sets & {s.name for s in sets})
        note = (
            f"fitted on {', '.join(shared)}: in-sample, see the held-out lines above"
            if shared
            else "these folders' names are not among those it was fitted on: a held-out figure"
        )
        print(f"shipped operating point (manifest), {note}:")
        tau = shipped.min_embedding_norm
        views = [("all images", None)] + ([(f"gated at {tau:.3f}", emb.norms >= tau)] if tau else [])
        for label, use in views:
            g, i = pair_scores(emb, use)
            k, n = int(np.sum(i >= shipped.threshold)), max(i.size, 1)
            print(
                f"  threshold {shipped.threshold!r}, {label}: FAR {k}/{i.size} = {k / n:.2e} "
                f"(95% upper {clopper_pearson_upper(k, n):.2e}), "
                f"TAR {float(np.mean(g >= shipped.threshold)) * 100 if g.size else 0.0:.2f}% "
                f"of {g.size} pairs"
            )
    paths = plot(
        "heldout",
        genuine=held.genuine,
        impostor=held.impostor,
        m=m_gate,
        threshold=choice.threshold,
        out_dir=out_dir,
    )
    for s in sets:
        g, i = pair_scores(embedded_of([s]))
        if g.size and i.size:
            plot(
                s.name,
                genuine=g,
                impostor=i,
                m=compute_metrics(g, i),
                threshold=choice.threshold,
                out_dir=out_dir,
            )
    print(f"plots: {', '.join(str(p) for p in paths)} and per-set PNGs in {out_dir}")
    if write:
        entry.operating_point = operating_point(choice, sets)
        entry.measured.update(
            {
                "eer_heldout": f"{m_gate.eer * 100:.2f}% (gated, FTA {fta * 100:.1f}%); "
                f"all images {m_all.eer * 100:.2f}%",
                "tar_at_far_1e-3": f"{m_gate.tar_at[1e-3][0] * 100:.2f}% (held-out, gated)",
                "tar_at_far_1e-4": f"{m_gate.tar_at[1e-4][0] * 100:.2f}% (held-out, gated)",
                "eval": f"python -m atm_host.vision --embedder {cfg.embedder} eval --write",
            }
        )
        for old in ("auc_pooled", "eer_pooled"):
            entry.measured.pop(old, None)
        save_manifest(manifest, cfg.manifest)
        print(f"threshold {choice.threshold!r} written to {cfg.manifest}")
    return 0
