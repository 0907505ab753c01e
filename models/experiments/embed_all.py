"""Exploration (not part of the host): embed every dev image with SFace and MobileFaceNet, face and mirror,
saved to var/vexp/emb.npz for compare_candidates.py and gate_and_multiframe.py. Run from the repository root."""
"""Scratch: embed every dev image with every variant; save npz."""
import sys, time
from pathlib import Path
import numpy as np, cv2
from atm_host.vision.config import QualityConfig, VisionConfig
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.evaluate import read_image

root = Path("/work/shared/data/faces")
pipe = FacePipeline(VisionConfig(threads=2, quality=QualityConfig(check_distance=False)))
mfn_pipe = FacePipeline(VisionConfig(threads=2, embedder="mobilefacenet", quality=QualityConfig(check_distance=False)))
sface_model = pipe.embedder._model
mfn_model = mfn_pipe.embedder._model
rows = []
for sub in ["aligned112", "unaligned150"]:
    for person in sorted(p for p in (root / sub).iterdir() if p.is_dir()):
        for path in sorted(person.iterdir()):
            img = read_image(path)
            q = np.nan
            if img.shape[:2] == (112, 112):
                al = img
            else:
                s = pipe.sample(img, gate=False)
                al, q = s.aligned, s.quality.score
            rgb = al[:, :, ::-1].astype(np.float32)
            s0 = sface_model.run(rgb[None].copy())[0][0]
            s1 = sface_model.run(rgb[:, ::-1][None].copy())[0][0]
            b = np.stack([(rgb - 127.5) / 128.0, (rgb[:, ::-1] - 127.5) / 128.0]).astype(np.float32)
            m = mfn_model.run(b)[0]
            grey = cv2.cvtColor(al, cv2.COLOR_BGR2GRAY)
            sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
            rows.append((sub, person.name, path.name, s0, s1, m[0], m[1], q, sharp, float(grey.mean())))
np.savez("var/vexp/emb.npz",
    set=np.array([r[0] for r in rows]), person=np.array([r[1] for r in rows]), fname=np.array([r[2] for r in rows]),
    s0=np.stack([r[3] for r in rows]), s1=np.stack([r[4] for r in rows]), m0=np.stack([r[5] for r in rows]), m1=np.stack([r[6] for r in rows]),
    q=np.array([r[7] for r in rows]), sharp=np.array([r[8] for r in rows]), bright=np.array([r[9] for r in rows]))
print(len(rows))
