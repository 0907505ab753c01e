"""Exploration: embed every dev face with SFace and MobileFaceNet (face and mirror) into var/vexp/emb.npz.

The cache the other scripts here read (common.load). Run from anywhere:
    .venv/bin/python models/experiments/embed_all.py [OUT.npz]
"""

import sys
from pathlib import Path

import cv2
import numpy as np
from atm_host.vision.config import QualityConfig, VisionConfig
from atm_host.vision.evaluate import read_image
from atm_host.vision.paths import shared_dir
from atm_host.vision.pipeline import FacePipeline
from common import CACHE

SETS = ("aligned112", "unaligned150")


def main(out: Path) -> None:
    """112x112 images are taken as aligned; others go through detection and alignment (gate off)."""
    root = shared_dir() / "data" / "faces"
    quality = QualityConfig(check_distance=False)
    pipe = FacePipeline(VisionConfig(threads=2, quality=quality))
    mfn = FacePipeline(VisionConfig(threads=2, embedder="mobilefacenet", quality=quality)).embedder
    rows: list[tuple[str, str, str]] = []
    raw: dict[str, list[np.ndarray]] = {"s0": [], "s1": [], "m0": [], "m1": []}
    extra: dict[str, list[float]] = {"q": [], "sharp": [], "bright": []}
    for sub in SETS:
        for person in sorted(p for p in (root / sub).iterdir() if p.is_dir()):
            for path in sorted(person.iterdir()):
                img = read_image(path)
                q = np.nan
                if img.shape[:2] == (112, 112):
                    aligned = img
                else:
                    s = pipe.sample(img, gate=False)
                    aligned, q = s.aligned, s.quality.score
                outputs = (*pipe.embedder.raw(aligned), *mfn.raw(aligned))
                for key, vec in zip(("s0", "s1", "m0", "m1"), outputs, strict=True):
                    raw[key].append(vec)
                grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
                extra["q"].append(q)
                extra["sharp"].append(float(cv2.Laplacian(grey, cv2.CV_64F).var()))
                extra["bright"].append(float(grey.mean()))
                rows.append((sub, person.name, path.name))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        allow_pickle=False,
        set=np.array([r[0] for r in rows]),
        person=np.array([r[1] for r in rows]),
        fname=np.array([r[2] for r in rows]),
        **{k: np.stack(v) for k, v in raw.items()},
        **{k: np.array(v) for k, v in extra.items()},
    )
    print(f"{len(rows)} images -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE)
