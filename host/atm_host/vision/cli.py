"""Command line of the vision package: models, eval, pad-eval, bench, enroll, verify, qr."""

import argparse
import sys
from pathlib import Path

from .config import VisionConfig
from .errors import VisionError
from .paths import CACHE_DIR, REPORTS_DIR, shared_dir


def _config(args: argparse.Namespace) -> VisionConfig:
    if args.embedder:
        return VisionConfig(threads=int(args.threads), embedder=str(args.embedder))
    return VisionConfig(threads=int(args.threads))


def _cmd_models(args: argparse.Namespace) -> int:
    from .manifest import load_manifest
    from .models_step import materialise

    cfg = _config(args)
    n = materialise(load_manifest(cfg.manifest), cfg.model_dir, cfg.liveness.model_dir, CACHE_DIR / "dl")
    print(f"models step done: {n} fetched, all sha256 verified")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .eval_cmd import run_eval

    folders = [Path(f) for f in args.folders] or [
        shared_dir() / "data" / "faces" / "aligned112",
        shared_dir() / "data" / "faces" / "unaligned150",
    ]
    return run_eval(_config(args), folders, Path(args.out), bool(args.write))


def _cmd_enroll(args: argparse.Namespace) -> int:
    from .evaluate import read_image
    from .pipeline import FacePipeline

    tpl = FacePipeline(_config(args)).enroll(read_image(Path(args.image)))
    Path(args.out).write_text(tpl.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print(f"template written to {args.out} (model {tpl.model}, quality {tpl.quality:.2f})")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .evaluate import read_image
    from .pipeline import FacePipeline
    from .template import parse_template

    tpl = parse_template(Path(args.template).read_bytes())
    res = FacePipeline(_config(args)).verify(read_image(Path(args.image)), tpl)
    print(
        f"score {res.score:.4f} threshold {res.threshold:.4f} -> {'MATCH' if res.match else 'NO MATCH'}; "
        f"liveness P(real) {res.liveness.p_real:.3f} ({res.liveness.verdict.value})"
    )
    return 0 if res.match else 1


def _cmd_qr(args: argparse.Namespace) -> int:
    from .evaluate import read_image
    from .qr import decode

    found_any = False
    for name in args.images:
        res = decode(read_image(Path(name)))
        for code in res.codes:
            found_any = True
            print(f"{name}: {code.text!r} at {code.corners} ({'inverted' if code.inverted else 'normal'})")
        print(f"{name}: {len(res.codes)} code(s) in {res.ms:.2f} ms")
    return 0 if found_any else 1


def _cmd_pad_eval(args: argparse.Namespace) -> int:
    from .pad import ATTACKS, run_pad_eval, table
    from .pipeline import FacePipeline
    from .scene import Optics

    folder = Path(args.folder) if args.folder else shared_dir() / "data" / "faces" / "unaligned150"
    kinds = tuple(args.kinds.split(",")) if args.kinds else ("live", *ATTACKS)
    optics = Optics(int(args.width), int(args.height), seed=3)
    res = run_pad_eval(FacePipeline(_config(args)), folder, int(args.per_person), kinds, bool(args.before),
                       optics, int(args.people))  # fmt: skip
    print(
        f"PAD set from {folder} at {optics.width}x{optics.height}, 50 cm "
        "(accepted = passed the ATM's face step; before = the code before the PAD checks)"
    )
    print("\n".join(table(res)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands)."""
    p = argparse.ArgumentParser(prog="python -m atm_host.vision", description=__doc__)
    p.add_argument("--threads", type=int, default=2, help="TFLite threads per model")
    p.add_argument(
        "--embedder", default=None, help="manifest name of the embedder (default: the configured one)"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", help="fetch and verify every model in models/manifest.json").set_defaults(
        fn=_cmd_models
    )
    e = sub.add_parser("eval", help="metrics, ROC and histogram PNGs on labelled face folders")
    e.add_argument("folders", nargs="*", help="folders of <person>/<image> (default: the shared dev set)")
    e.add_argument("--out", default=str(REPORTS_DIR / "vision"), help="where the PNGs go")
    e.add_argument("--write", action="store_true", help="store the FAR<=1e-4 threshold in the manifest")
    e.set_defaults(fn=_cmd_eval)
    pe = sub.add_parser("pad-eval", help="APCER per attack type and BPCER on a PAD set made from photos")
    pe.add_argument("folder", nargs="?", help="<person>/<image> photos (default: the shared unaligned150)")
    pe.add_argument("--people", type=int, default=0, help="only the first N people (0: all)")
    pe.add_argument("--per-person", type=int, default=1, help="photos of each person used as victims")
    pe.add_argument("--kinds", default="", help="comma list of live and attack types (default: all)")
    pe.add_argument("--width", type=int, default=1280)
    pe.add_argument("--height", type=int, default=720)
    pe.add_argument("--before", action="store_true", help="also decide as the code before PAD did")
    pe.set_defaults(fn=_cmd_pad_eval)
    sub.add_parser("bench", help="per-stage latency and QR decoders (see `bench --help`)", add_help=False)
    en = sub.add_parser("enroll", help="make a template from an image")
    en.add_argument("image")
    en.add_argument("--out", required=True, help="template JSON file")
    en.set_defaults(fn=_cmd_enroll)
    v = sub.add_parser("verify", help="verify an image against a template")
    v.add_argument("image")
    v.add_argument("--template", required=True)
    v.set_defaults(fn=_cmd_verify)
    q = sub.add_parser("qr", help="decode QR codes in images")
    q.add_argument("images", nargs="+")
    q.set_defaults(fn=_cmd_qr)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; VisionError becomes a one-line message and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its options belong to the benchmark's own parser
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an image, template or output file the user named
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
