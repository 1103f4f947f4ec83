"""``unetblur bench``: latency, throughput and memory of an ONNX file under ONNX Runtime.

Torch-free (runs on the device too). Latency is the median of ``runs`` timed calls after ``warmup``
untimed ones, batch 1, random input of each size; the spread is p10/p90. ``cpu_median_ms`` is the
process CPU time per call: with ``--threads 1`` it is the latency on an idle core even when other
jobs share the machine (with more threads it also counts ORT's spin-waiting). Memory is the process's
resident set: ``rss_mb`` after the runs of a size and ``peak_rss_mb`` (``getrusage`` high-water
mark, so it never decreases: sizes are run smallest first). ``tracemalloc`` would miss ORT's arena.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UnetblurError
from ..machine import cpu_name

DEFAULT_SIZES = "128x128,256x256,1280x720"


@dataclass(frozen=True)
class BenchConfig:
    """Settings of ``unetblur bench``."""

    model: str = ""
    sizes: str = DEFAULT_SIZES          # WxH list, comma separated
    threads: int = 0                    # ORT intra-op threads; 0: one per core
    runs: int = 20
    warmup: int = 3
    providers: str = ""                 # comma separated; "" = every available provider, each benchmarked
    json: str = ""                      # write the results here too
    profile: bool = False               # also print ORT's per-operator time at the first size


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"128x128,1280x720"`` → ``[(128, 128), (1280, 720)]`` as (width, height)."""
    sizes = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        w, sep, h = item.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
            raise UnetblurError(f"--sizes {item!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
        sizes.append((int(w), int(h)))
    if not sizes:
        raise UnetblurError("--sizes is empty; e.g. --sizes 128x128,1280x720")
    return sizes


def current_rss_mb() -> float:
    """Resident set size of this process now (MB), from /proc (Linux) or getrusage elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """High-water mark of this process's resident set (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _benchmark_providers(cfg: BenchConfig) -> list[str]:
    import onnxruntime as ort

    from ..runtime.onnx import default_providers

    if cfg.providers:
        return [p.strip() for p in cfg.providers.split(",") if p.strip()]
    # Benchmark each real provider on its own (TensorRT/CUDA fall back to CPU for some nodes).
    return [p for p in default_providers() if p in ort.get_available_providers()]


def time_session(model, width: int, height: int, runs: int, warmup: int, seed: int = 0) -> dict:
    """Time ``model.run`` (an :class:`~unetblur.runtime.onnx.OnnxModel`) on one random 1×3×H×W input."""
    x = np.random.default_rng(seed).random((1, 3, height, width), dtype=np.float32)
    for _ in range(warmup):
        model.run(x)
    times, cpu = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        model.run(x)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    t = np.asarray(times)
    median = float(np.median(t))
    return {"size": f"{width}x{height}", "median_ms": round(median, 2), "p10_ms": round(float(np.percentile(t, 10)), 2),
            "p90_ms": round(float(np.percentile(t, 90)), 2), "min_ms": round(float(t.min()), 2), "runs": runs,
            "warmup": warmup, "fps": round(1000 / median, 2) if median > 0 else None,
            "cpu_median_ms": round(float(np.median(cpu)), 2),
            "ms_per_megapixel": round(median / (width * height / 1e6), 2)}


def benchmark(cfg: BenchConfig) -> dict:
    """Benchmark ``cfg.model`` on every requested provider and size; returns the JSON-ready result
    (and writes it to ``cfg.json`` when set)."""
    import onnxruntime as ort

    from ..fsutil import write_text_atomic
    from ..runtime.onnx import OnnxModel

    if not cfg.model:
        raise UnetblurError("no model given: unetblur bench MODEL.onnx")
    if cfg.runs < 1 or cfg.warmup < 0 or cfg.threads < 0:
        raise UnetblurError(f"--runs must be ≥ 1, --warmup and --threads ≥ 0 (got {cfg.runs}, {cfg.warmup}, "
                            f"{cfg.threads})")
    sizes = sorted(parse_sizes(cfg.sizes), key=lambda s: s[0] * s[1])
    threads = cfg.threads or None
    result = {"model": str(cfg.model), "size_kb": None, "threads": cfg.threads or f"default ({os.cpu_count()} cores)",
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": cpu_name(),
              "onnxruntime": ort.__version__, "config": asdict(cfg), "baseline_rss_mb": round(current_rss_mb(), 1),
              "results": []}
    path = Path(cfg.model)
    for provider in _benchmark_providers(cfg):
        model = OnnxModel(path, threads=threads, providers=[provider])
        result["size_kb"] = round(path.stat().st_size / 1024, 1)
        result["precision"] = model.precision
        result["stride"] = model.stride
        for w, h in sizes:
            row = time_session(model, *_to_stride(w, h, model.stride), cfg.runs, cfg.warmup)
            rss = current_rss_mb()
            row.update(provider=provider, requested=f"{w}x{h}", rss_mb=round(rss, 1),
                       peak_rss_mb=round(max(rss, peak_rss_mb()), 1))
            result["results"].append(row)
        del model
    if cfg.profile:
        w, h = sizes[0]
        result["profile"] = profile_operators(path, *_to_stride(w, h, result.get("stride", 32)), threads=threads,
                                              runs=min(cfg.runs, 10))
    if cfg.json:
        write_text_atomic(cfg.json, json.dumps(result, indent=2) + "\n")
    return result


def _to_stride(w: int, h: int, stride: int) -> tuple[int, int]:
    """The size the network really runs at (the runtime pads up to the stride)."""
    return -(-w // stride) * stride, -(-h // stride) * stride


def profile_operators(path: str | os.PathLike, width: int, height: int, threads: int | None = None,
                      runs: int = 10, providers: list[str] | None = None) -> dict:
    """Where the time goes: ORT's per-node profile (``SessionOptions.enable_profiling``) summed by
    operator type. In an INT8 graph ``QLinearConv``/``ConvInteger`` run in 8 bits, ``QuantizeLinear``/
    ``DequantizeLinear`` are conversions, and a plain ``Conv``/``ConvTranspose`` still runs in float.
    Times are averaged over ``runs + 1`` calls (the first, a warm-up, included).
    Returns ``{"size", "runs", "total_ms_per_run", "by_op": {op: {"ms_per_run", "share", "nodes"}}}``."""
    from ..runtime.onnx import OnnxModel, open_session

    with tempfile.TemporaryDirectory(prefix="unetblur-prof-") as tmp:
        model = OnnxModel(path, threads=threads, providers=providers or ["CPUExecutionProvider"])
        # A second session with profiling on; the first gives the input name and dtype.
        session = open_session(path, threads, providers or ["CPUExecutionProvider"], profile_prefix=str(Path(tmp) / "p"))
        x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
        feed = {model.input_name: x.astype(model.input_dtype)}
        session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    node_names = set()
    for ev in trace:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        op = ev.get("args", {}).get("op_name", "?")
        by_op[op][0] += ev.get("dur", 0) / 1000.0
        node_names.add((op, ev["name"]))
    calls = runs + 1
    total = sum(v[0] for v in by_op.values()) / calls
    ops = {op: {"ms_per_run": round(v[0] / calls, 3), "share": round(v[0] / calls / total, 4) if total else 0,
                "nodes": sum(1 for o, _ in node_names if o == op)}
           for op, v in sorted(by_op.items(), key=lambda kv: -kv[1][0])}
    return {"size": f"{width}x{height}", "runs": calls, "total_ms_per_run": round(total, 2), "by_op": ops}


def format_table(result: dict) -> str:
    """The benchmark as a fixed-width text table (one row per provider × size)."""
    head = (f"{result['model']}  ({result.get('precision', '?')}, {result.get('size_kb')} KB)  "
            f"threads: {result['threads']}  onnxruntime {result['onnxruntime']}  {result['processor']}")
    cols = ["provider", "size", "median ms", "p10 ms", "p90 ms", "cpu ms", "fps", "ms/MP", "rss MB", "peak MB"]
    rows = [[r["provider"].replace("ExecutionProvider", ""), r["size"], f"{r['median_ms']:.2f}", f"{r['p10_ms']:.2f}",
             f"{r['p90_ms']:.2f}", f"{r['cpu_median_ms']:.2f}", f"{r['fps']:.1f}", f"{r['ms_per_megapixel']:.1f}", f"{r['rss_mb']:.0f}",
             f"{r['peak_rss_mb']:.0f}"] for r in result["results"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = [head, "  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    prof = result.get("profile")
    if prof:
        lines.append(f"per-operator time at {prof['size']} ({prof['total_ms_per_run']:.2f} ms/run summed over nodes):")
        for op, v in list(prof["by_op"].items())[:12]:
            lines.append(f"  {op:<24} {v['ms_per_run']:9.3f} ms  {100 * v['share']:5.1f} %  ({v['nodes']} nodes)")
    return "\n".join(lines)
