"""Benchmark: per-stage face pipeline latency (median, p95) and QR decoders side by side, machine noted."""

import argparse
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from .config import QualityConfig, VisionConfig
from .errors import VisionError
from .evaluate import read_image
from .frame import Frame
from .paths import shared_dir
from .pipeline import FacePipeline
from .qr import decode
from .qr_conditions import sample_conditions, token_payload
from .scene import Optics, render_faces, render_phone

RESOLUTIONS = ((640, 480), (1280, 720))
STAGES = ("detect", "align", "quality", "embed", "liveness")
# Raspberry Pi 4 (Cortex-A72, 1.5 GHz) runs XNNPACK float models and OpenCV about 3-5x slower per core
# than this class of x86 core (published TFLite benchmarks); we use 4x as the estimate, 6x as the bound.
PI4_FACTOR, PI4_BOUND = 4.0, 6.0


def _record(component: str, measure: str, median: float, p95: float, unit: str, note: str = "") -> None:
    """Feed `./atm bench`'s combined table when the tools package is installed beside the host."""
    try:
        from atm_tools.benchrows import record
    except ImportError:  # the host deployed alone: its own printout is the result
        return
    record(component, measure, median, p95, unit, note)


def machine() -> str:
    """CPU model, core count, OS and the versions that matter."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    vers = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("ai-edge-litert", "opencv-python-headless", "zxing-cpp")
    )
    system = f"{platform.system()} {platform.machine()}"
    return f"{cpu}; {os.cpu_count()} cores; {system}; Python {platform.python_version()}; {vers}"


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.median(arr)), float(np.percentile(arr, 95))


def face_frames(width: int, height: int, count: int) -> list[Frame]:
    """Faces from the shared dev set composed at 50 cm into frames of the given size."""
    root = shared_dir() / "data" / "faces" / "unaligned150"
    if not root.is_dir():
        raise VisionError(
            f"{root} is missing: the benchmark composes its face frames from it (set ATM_SHARED)"
        )
    people = sorted(p for p in root.iterdir() if p.is_dir())
    frames: list[Frame] = []
    for i in range(count):
        person = people[i % len(people)]
        img = read_image(sorted(person.iterdir())[i // len(people) % 5])
        # eye distance of the source photo: about 0.37 of its width for these crops
        frames.append(render_faces([(img, 0.37 * img.shape[1], 50.0, 0.0)], Optics(width, height, seed=i)))
    return frames


def bench_faces(frames_per_res: int, threads_list: list[int], out: Callable[[str], None]) -> None:
    """Per-stage latency table."""
    out(f"Face pipeline, ms per frame (median / p95 over {frames_per_res} frames, face at 50 cm)")
    head = "  ".join(f"{s:>13}" for s in (*STAGES, "total", "landmarks*"))
    out(f"{'frame':9} {'thr':>3}  {head}")
    pi_rows: list[str] = []
    for width, height in RESOLUTIONS:
        frames = face_frames(width, height, frames_per_res)
        for threads in threads_list:
            pipe = FacePipeline(VisionConfig(threads=threads, quality=QualityConfig(check_distance=False)))
            times: dict[str, list[float]] = {k: [] for k in (*STAGES, "total", "landmarks*")}
            for i in range(len(frames) + 3):
                frame = frames[i % len(frames)]
                t0 = time.perf_counter()
                sample = pipe.sample(frame, gate=False)
                pipe.check_liveness(frame, sample.detection)
                total = (time.perf_counter() - t0) * 1000.0
                pipe.mesh(frame, sample.detection)
                if i < 3:  # warm-up
                    continue
                for k in STAGES:
                    times[k].append(pipe.timings[k])
                times["total"].append(total)
                times["landmarks*"].append(pipe.timings["landmarks"])
            cells = "  ".join("{:6.2f}/{:6.2f}".format(*_stats(times[k])) for k in times)
            out(f"{f'{width}x{height}':9} {threads:>3}  {cells}")
            med, p95 = _stats(times["total"])
            _record("vision", f"face pipeline total, {width}x{height}, {threads} thr", med, p95, "ms")
            pi_rows.append(
                f"{width}x{height} {threads} thr: {med:.1f} ms here -> Pi 4 about {med * PI4_FACTOR:.0f} ms "
                f"(p95 {p95 * PI4_FACTOR:.0f}, worst-case factor {PI4_BOUND:g}: {p95 * PI4_BOUND:.0f} ms)"
            )
    out(
        "total = detect (+ refine) + align + quality + embed + liveness (2 MiniFASNet); "
        "*landmarks: only during an active challenge"
    )
    out(f"Raspberry Pi 4 estimate (x{PI4_FACTOR:g}, not measured on a Pi):")
    for row in pi_rows:
        out("  " + row)


def _decoders() -> dict[str, Callable[[Frame, str], bool]]:
    from pyzbar import pyzbar as _pyzbar  # pyright: ignore[reportMissingTypeStubs]

    pyzbar = cast(Any, _pyzbar)  # untyped library; only .decode(grey) -> [.data: bytes] is used

    detector = cv2.QRCodeDetector()

    def zxing(frame: Frame, want: str) -> bool:
        return any(c.text == want for c in decode(frame).codes)

    def zbar(frame: Frame, want: str) -> bool:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        results = cast(list[Any], pyzbar.decode(grey))
        return any(bytes(r.data) == want.encode() for r in results)

    def opencv(frame: Frame, want: str) -> bool:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        text, _, _ = detector.detectAndDecode(grey)
        return text == want

    return {"zxing-cpp": zxing, "pyzbar": zbar, "opencv": opencv}


def bench_qr(count: int, out: Callable[[str], None]) -> None:
    """Decode rate and time of each decoder on the same generated phone frames."""
    decoders = _decoders()
    out(
        f"QR decode on {count} generated phone frames per resolution "
        "(96-byte token, QR 3.5-5 cm at 18-35 cm, "
        "turned up to 30 deg, 30% dark mode, 50% glare, blur, noise, light 0.55-1.25); same frames for all"
    )
    out(f"{'frame':9} {'decoder':10} {'rate':>7} {'median ms':>10} {'p95 ms':>8}")
    for width, height in RESOLUTIONS:
        cases = [sample_conditions(10_000 + i, width, height) for i in range(count)]
        frames = [(render_phone(s, o)[0], str(s.payload)) for s, o in cases]
        for name, fn in decoders.items():
            ok, ms = 0, list[float]()
            for frame, want in frames:
                t0 = time.perf_counter()
                good = fn(frame, want)
                ms.append((time.perf_counter() - t0) * 1000.0)
                ok += good
            med, p95 = _stats(ms)
            out(f"{f'{width}x{height}':9} {name:10} {ok / count * 100:6.1f}% {med:10.2f} {p95:8.2f}")
            _record(
                "vision", f"QR decode {name}, {width}x{height}", med, p95, "ms", f"{ok / count:.0%} decoded"
            )


def qr_sweep(count: int, out: Callable[[str], None]) -> None:
    """Decode rate by payload size, error correction and QR width at 25 cm (for docs/qr-guidance.md)."""
    from .scene import qr_version

    out(f"QR guidance sweep: phone at 25 cm, {count} random conditions per cell; rate (camera px per module)")
    sides = (3.0, 4.0, 5.0, 6.0)
    out(f"{'frame':9} {'payload':>7} {'ec':2} {'ver':>3}  " + "  ".join(f"{s:>4.1f} cm     " for s in sides))
    for width, height in RESOLUTIONS:
        focal = Optics(width, height).focal_px
        for n_bytes in (64, 96, 160):
            for ec in ("l", "m", "q"):
                cells: list[str] = []
                version = qr_version(token_payload(n_bytes, 0), ec)
                modules = 17 + 4 * version
                for side in sides:
                    ok = 0
                    for i in range(count):
                        scene, optics = sample_conditions(20_000 + i, width, height, payload_bytes=n_bytes)
                        scene = dataclasses.replace(scene, qr_side_cm=side, distance_cm=25.0, error=ec)
                        ok += any(
                            c.text == scene.payload for c in decode(render_phone(scene, optics)[0]).codes
                        )
                    ppm = focal * side / 25.0 / modules
                    cells.append(f"{ok / count * 100:4.0f}% ({ppm:3.1f})")
                out(
                    f"{f'{width}x{height}':9} {n_bytes:>5} B {ec.upper():2} {version:>3}  " + "  ".join(cells)
                )


def main(argv: list[str] | None = None) -> int:
    """`bench [--frames N] [--qr N] [--threads 1 2] [--skip-faces] [--skip-qr] [--qr-sweep N]`."""
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    p.add_argument("--frames", type=int, default=30, help="face frames per resolution and thread count")
    p.add_argument("--qr", type=int, default=100, help="QR frames per resolution")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    p.add_argument("--skip-faces", action="store_true", help="only the QR part")
    p.add_argument("--skip-qr", action="store_true", help="only the face part")
    p.add_argument(
        "--qr-sweep", type=int, default=0, help="also run the guidance sweep with N frames per cell"
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"machine: {machine()}")
    try:
        if not args.skip_faces:
            bench_faces(int(args.frames), [int(t) for t in args.threads], print)
        if not args.skip_qr:
            bench_qr(int(args.qr), print)
        if args.qr_sweep:
            qr_sweep(int(args.qr_sweep), print)
    except VisionError as exc:
        print(f"error: {exc}")
        return 2
    return 0
