"""FP32 vs INT8 on this CPU: latency, file size, INT8 fidelity, and where the time goes.

Re-runnable with real models (the lead re-runs it with the trained student)::

    .venv/bin/python experiments/bench_deploy/run.py \
        --model student=runs/thesis/student_v1/model.pt --data runs/datasets/wider_letterbox128

Without ``--model`` it benchmarks two random-weight students (BatchNorm statistics set from random
images, so outputs vary like a trained net's): ``student_v1`` (ConvTranspose upsampling, the
thesis) and ``student_v1`` with ``upsample: nearest``. Latency does not depend on weight values;
quality numbers from random weights are only a smoke check.

Because the machine is shared, FP32 and each INT8 variant are timed *interleaved* (call A, call B,
call A, ...) so both see the same background load; the speed-up is the median of per-pair ratios.
Variants tried: QDQ per-channel (reduce_range auto = the export default), QDQ per-tensor,
QOperator per-channel, QDQ per-channel with 8-bit weights (reduce_range off), and the TensorRT
flavour (symmetric int8 activations) run on the CPU. Writes ``results.json`` and ``results.md`` into ``--out``; models and ONNX
files go to ``--work`` (git-ignored). Takes about 3-4 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from unetblur.machine import describe_machine, machine_info

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name → quantize_int8 keyword arguments
    "int8_qdq_perchannel": dict(per_channel=True, reduce_range="auto", quant_format="qdq"),
    "int8_qdq_pertensor": dict(per_channel=False, reduce_range="auto", quant_format="qdq"),
    "int8_qop_perchannel": dict(per_channel=True, reduce_range="auto", quant_format="qoperator"),
    "int8_qdq_perchannel_fullrange": dict(per_channel=True, reduce_range="off", quant_format="qdq"),
    "int8_qdq_tensorrt_s8s8": dict(per_channel=True, quant_format="qdq", target="tensorrt"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH.pt",
                   help="model to benchmark (repeatable); default: random-weight student_v1 and its nearest-upsample variant")
    p.add_argument("--data", default="", help="dataset root: train split calibrates, val split measures quality")
    p.add_argument("--sizes", default="128x128,1280x720")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=0, help="timed pairs per size (default: 20 at ≤256², 5 above)")
    p.add_argument("--calib-count", type=int, default=32)
    p.add_argument("--eval-count", type=int, default=0, help="validation images for quality (0: all)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"INT8 variants to try (default all: {', '.join(VARIANTS)})")
    p.add_argument("--stem", default="results", help="file stem of the outputs in --out (default results)")
    p.add_argument("--work", default="runs/bench_deploy")
    p.add_argument("--out", default=str(HERE))
    return p.parse_args(argv)


def paired_timing(a, b, x: np.ndarray, runs: int, warmup: int = 2) -> dict:
    """Time ``a.run(x)`` and ``b.run(x)`` alternately. Wall-clock medians and p10/p90, the process
    CPU time per call (with 1 intra-op thread ORT computes in the calling thread, so CPU time is
    the latency on an idle core, robust to other processes sharing the machine), and speed-ups
    as the median of per-pair ratios (wall and CPU)."""
    for _ in range(warmup):
        a.run(x), b.run(x)
    wall = {"a": [], "b": []}
    cpu = {"a": [], "b": []}
    for i in range(runs):
        for key, model in (("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a)):
            c0, t0 = time.process_time(), time.perf_counter()
            model.run(x)
            wall[key].append((time.perf_counter() - t0) * 1000)
            cpu[key].append((time.process_time() - c0) * 1000)
    ta, tb = np.asarray(wall["a"]), np.asarray(wall["b"])
    ca, cb = np.asarray(cpu["a"]), np.asarray(cpu["b"])

    def stats(t, c):
        return {"median_ms": round(float(np.median(t)), 2), "p10_ms": round(float(np.percentile(t, 10)), 2),
                "p90_ms": round(float(np.percentile(t, 90)), 2), "cpu_median_ms": round(float(np.median(c)), 2)}

    return {"fp32": stats(ta, ca), "int8": stats(tb, cb), "speedup_median_of_ratios": round(float(np.median(ta / tb)), 2),
            "cpu_speedup_median_of_ratios": round(float(np.median(ca / np.maximum(cb, 1e-6))), 2), "runs": runs}


def main(argv=None) -> int:
    args = parse_args(argv)
    from unetblur.deploy.bench import parse_sizes, profile_operators
    from unetblur.deploy.onnx_export import (ExportConfig, calibration_batches, dataset_images, export_model,
                                             random_calibrated_model, synthetic_images)
    from unetblur.deploy.parity import compare_outputs, quality_report
    from unetblur.deploy.quantize import quantize_int8
    from unetblur.models import PRESETS, count_parameters, load_model, save_model
    from unetblur.runtime.onnx import OnnxModel
    import onnxruntime as ort

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models: dict[str, Path] = {}
    if args.model:
        for item in args.model:
            name, sep, path = item.partition("=")
            models[name if sep else Path(item).stem] = Path(path if sep else item)
    else:
        for name, spec in (("student_v1", PRESETS["student_v1"]),
                           ("student_v1_nearest", PRESETS["student_v1"].with_options(upsample="nearest"))):
            path = work / f"{name}.random.pt"
            save_model(random_calibrated_model(spec, side=64), path, {"training_size": 128, "weights": "random"})
            models[name] = path

    sizes = parse_sizes(args.sizes)
    unknown = [v for v in args.variants.split(",") if v.strip() and v.strip() not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    parity_images = dataset_images(args.data, "val", 8) if args.data else []
    parity_images = parity_images or synthetic_images(8, seed=3, sizes=((128, 128), (96, 160)))
    calib = dataset_images(args.data, "train", args.calib_count) if args.data else []
    calib = calib or synthetic_images(args.calib_count, seed=4, sizes=((128, 128),))
    started = time.perf_counter()
    results = {"command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]]),
               "machine": {**machine_info(), "python": platform.python_version(), "onnxruntime": ort.__version__},
               "threads": args.threads, "data": args.data or "synthetic", "models": {}}
    for name, pt in models.items():
        torch_model, _ = load_model(pt)
        out = work / name
        report = export_model(ExportConfig(model=str(pt), out_dir=str(out), name=name, parity_count=4,
                                           int8_min_psnr=0))
        fp32_path = out / f"{name}.onnx"
        fp32 = OnnxModel(fp32_path, threads=args.threads, providers=["CPUExecutionProvider"], name="fp32")
        stride = fp32.stride
        entry = {"parameters": count_parameters(torch_model), "spec": torch_model.spec.describe()
                 if hasattr(torch_model, "spec") else "", "fp32_kb": report["files"]["fp32"]["size_kb"],
                 "parity_fp32_max_abs": report["parity_fp32"]["max_abs_diff"], "variants": {}}
        batches = calibration_batches(calib, stride)
        onnx_models = {"fp32": fp32}
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            kw = VARIANTS[variant]
            path = out / f"{name}.{variant}.onnx"
            settings = quantize_int8(fp32_path, path, batches, method="minmax", **kw)
            q = OnnxModel(path, threads=args.threads, providers=["CPUExecutionProvider"], name=variant)
            onnx_models[variant] = q
            v = {"settings": settings, "size_kb": round(path.stat().st_size / 1024, 1),
                 "vs_fp32": compare_outputs(fp32, q, parity_images), "latency": {}}
            if kw.get("target") == "tensorrt":  # what TensorRT computes: the QDQ graph as written, in float
                v["vs_fp32_simulated"] = compare_outputs(fp32, OnnxModel(path, threads=args.threads, optimize=False),
                                                         parity_images)
            for w, h in sizes:
                pw, ph = -(-w // stride) * stride, -(-h // stride) * stride
                x = np.random.default_rng(0).random((1, 3, ph, pw), dtype=np.float32)
                runs = args.runs or (20 if w * h <= 256 * 256 else 5)
                v["latency"][f"{w}x{h}"] = paired_timing(fp32, q, x, runs)
            v["profile_128"] = profile_operators(path, 128, 128, threads=args.threads, runs=10)
            entry["variants"][variant] = v
            print(f"{name} {variant}: {v['size_kb']} KB, PSNR vs fp32 {v['vs_fp32']['mean_psnr_db']} dB, "
                  + ", ".join(f"{s} ×{t['speedup_median_of_ratios']} (CPU ×{t['cpu_speedup_median_of_ratios']})"
                              for s, t in v["latency"].items()),
                  file=sys.stderr, flush=True)
        entry["fp32_profile_128"] = profile_operators(fp32_path, 128, 128, threads=args.threads, runs=10)
        if args.data:
            entry["quality"] = quality_report(onnx_models, args.data, "val", args.eval_count)
        results["models"][name] = entry
    results["seconds"] = round(time.perf_counter() - started, 1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"{args.stem}.md").write_text(render(results))
    print(f"wrote {out_dir / (args.stem + '.md')} in {results['seconds']} s", file=sys.stderr)
    return 0


def render(r: dict) -> str:
    m = r["machine"]
    lines = ["# FP32 vs INT8 on this CPU (generated by run.py; analysis in README.md)", "",
             f"Command: `{r['command']}`  ", f"Machine: {describe_machine(m)} (shared), "
             f"onnxruntime {m['onnxruntime']}, {r['threads']} intra-op threads, batch 1.  ",
             f"Quality images: {r['data']}. Run time {r['seconds']} s.", "",
             "Latency: FP32 and INT8 timed interleaved; wall-clock median (p10–p90) ms; CPU = process CPU ms per "
             "call (with 1 thread: the latency on an idle core); speed-ups = median of per-pair ratios.", ""]
    for name, e in r["models"].items():
        lines += [f"## {name}: {e['spec']}, {e['parameters']:,} parameters, FP32 {e['fp32_kb']} KB "
                  f"(torch vs ORT max abs diff {e['parity_fp32_max_abs']:.1e})", "",
                  "| variant | KB | × smaller | PSNR vs FP32 (dB) | size | FP32 wall ms | INT8 wall ms | wall speed-up "
                  "| FP32 CPU ms | INT8 CPU ms | CPU speed-up |",
                  "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
        notes = []
        for variant, v in e["variants"].items():
            if "vs_fp32_simulated" in v:
                notes.append(f"{variant}: PSNR vs FP32 {v['vs_fp32']['mean_psnr_db']} dB with ORT's x86 int8 kernels, "
                             f"{v['vs_fp32_simulated']['mean_psnr_db']} dB as TensorRT computes it (QDQ in float)")
            for i, (size, t) in enumerate(v["latency"].items()):
                f, q = t["fp32"], t["int8"]
                head = (f"| {variant} | {v['size_kb']} | {e['fp32_kb'] / v['size_kb']:.2f} | "
                        f"{v['vs_fp32']['mean_psnr_db']} |" if i == 0 else "| | | | |")
                lines.append(f"{head} {size} | {f['median_ms']} ({f['p10_ms']}–{f['p90_ms']}) | "
                             f"{q['median_ms']} ({q['p10_ms']}–{q['p90_ms']}) | ×{t['speedup_median_of_ratios']} | "
                             f"{f.get('cpu_median_ms', '—')} | {q.get('cpu_median_ms', '—')} | "
                             f"×{t.get('cpu_speedup_median_of_ratios', '—')} |")
        lines += [""] + [f"* {n}" for n in notes] if notes else []
        lines += ["", "Per-operator time at 128×128 (ORT profile, ms per run, share):", "",
                  "| graph | " + " | ".join(["top operators"]) + " |", "|---|---|"]
        for label, prof in [("fp32", e["fp32_profile_128"])] + [(k, v["profile_128"]) for k, v in e["variants"].items()]:
            ops = ", ".join(f"{op} {d['ms_per_run']:.2f} ({100 * d['share']:.0f}%)"
                            for op, d in list(prof["by_op"].items())[:6])
            lines.append(f"| {label} ({prof['total_ms_per_run']:.2f} ms) | {ops} |")
        if "quality" in e:
            qr = e["quality"]
            lines += ["", f"Quality on the validation split ({qr['images']} images):", "",
                      "| graph | PSNR vs FP32 | PSNR vs target | mse_face | coverage_recall |", "|---|---:|---:|---:|---:|"]
            for k, q in qr.items():
                if isinstance(q, dict):
                    lines.append(f"| {k} | {q.get('psnr_vs_fp32_db', '—')} | {q['psnr_vs_target_db']} | "
                                 f"{q['mse_face']} | {q['coverage_recall']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
