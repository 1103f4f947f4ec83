"""How fast would a U-Net shape run as the INT8 student? Timed before training anything.

Each spec (a UNetSpec YAML, as `unetblur train --model` reads) becomes a random-weight net whose
BatchNorm statistics come from random images (``random_calibrated_model``), is exported and
quantised exactly as `unetblur export --int8` does (calibrated on synthetic images: the speed of an
INT8 graph does not depend on its weights), and is timed with ONNX Runtime on the working sizes
`unetblur blur` would feed it (4:3 frames, sides padded to the net's stride), best of ``--repeat``.

    python experiments/full_photo/arch_speed.py experiments/full_photo/student_spec.yaml \\
        experiments/full_photo/student_s2d_spec.yaml --sizes 640,800,1024

Run it on an idle machine: it measures wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from unetblur.deploy.onnx_export import (calibration_batches, export_onnx, random_calibrated_model,
                                         synthetic_images)
from unetblur.deploy.quantize import quantize_int8
from unetblur.models import UNetSpec, count_parameters


def int8_latency_ms(spec: UNetSpec, sizes: list[int], threads: int, repeat: int) -> tuple[int, dict[int, float]]:
    import onnxruntime as ort

    model = random_calibrated_model(spec)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "net.onnx", Path(tmp) / "net.int8.onnx"
        export_onnx(model, fp32, {})
        quantize_int8(fp32, int8, calibration_batches(synthetic_images(8), spec.stride, 128))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    times = {}
    for long_side in sizes:
        h, w = (-(-v // spec.stride) * spec.stride for v in (long_side * 3 // 4, long_side))
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        for _ in range(3):
            session.run(None, {"image": x})
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            session.run(None, {"image": x})
            best = min(best, time.perf_counter() - start)
        times[long_side] = best * 1000
    return count_parameters(model), times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="UNetSpec YAML files")
    parser.add_argument("--sizes", default="640,800,1024", help="working sizes (longer side), comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| spec | parameters | " + " | ".join(f"{s} px" for s in sizes) + " |")
    print("|---|---|" + "---|" * len(sizes))
    for path in args.specs:
        spec = UNetSpec.from_dict(yaml.safe_load(Path(path).read_text()))
        params, times = int8_latency_ms(spec, sizes, args.threads, args.repeat)
        print(f"| {Path(path).stem} ({spec.describe()}) | {params:,} | "
              + " | ".join(f"{times[s]:.1f} ms" for s in sizes) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
