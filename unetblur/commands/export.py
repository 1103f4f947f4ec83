"""``unetblur export MODEL.pt``: ONNX FP32 (+ INT8 / FP16) with metadata, checked against torch."""

from __future__ import annotations

import sys
from pathlib import Path

from ._config import add_config_flags, config_from_args


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (FP32, INT8, FP16) with parity and quality checks",
                       description="Export a saved model to ONNX with dynamic batch and size and metadata, check it "
                                   "against torch (fails with exit 2 beyond tolerance; nothing is written then), "
                                   "optionally quantise to INT8 (static QDQ) and convert to FP16.")
    p.add_argument("model", help="model file (.pt) saved by train, prune or distill")
    add_config_flags(p)
    p.add_argument("-o", "--out-dir", help="output folder (default export/artifacts)")
    p.add_argument("--name", help="file stem of the outputs (default: the model file's stem)")
    p.add_argument("--int8", action="store_true", default=None, help="also write NAME.int8.onnx (static QDQ INT8)")
    p.add_argument("--fp16", action="store_true", default=None, help="also write NAME.fp16.onnx (float32 IO)")
    p.add_argument("--calib-data", "--data", dest="data", metavar="DIR",
                   help="dataset root: train split calibrates INT8, val split checks parity and quality")
    p.add_argument("--calib-count", type=int, help="calibration images (default 64)")
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"), help="INT8 calibration (default minmax)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--per-channel", dest="per_channel", action="store_true", default=None,
                   help="per-output-channel INT8 weights (default)")
    g.add_argument("--per-tensor", dest="per_channel", action="store_false", default=None, help="one INT8 scale per weight tensor")
    p.add_argument("--reduce-range", choices=("auto", "on", "off"),
                   help="7-bit weights (default auto: on for per-channel weights, which saturate in 8 bits on x86 without VNNI)")
    p.add_argument("--quant-format", choices=("qdq", "qoperator"), help="INT8 graph format (default qdq)")
    p.add_argument("--int8-target", choices=("cpu", "tensorrt"),
                   help="cpu (default: ONNX Runtime on x86/ARM) or tensorrt (symmetric int8 activations, for trtexec)")
    p.add_argument("--simplify", action="store_true", default=None, help="simplify the graph with onnxslim")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--parity-count", type=int, help="images for the torch vs ORT check (default 8)")
    p.add_argument("--tolerance", type=float, help="max abs difference torch vs ORT FP32, values in [0,1] (default 1e-3)")
    p.add_argument("--int8-min-psnr", type=float, help="fail when INT8 vs FP32 PSNR is below this, dB (default 30; 0 off)")
    p.add_argument("--operating-point", metavar="KEY=V,...",
                   help="composite settings stored in the files and used by `unetblur blur` when its flags leave them "
                        "out, e.g. working_size=320,threshold=0.4,scales=1/0.5 (choose them on val with `unetblur privacy`)")
    p.add_argument("--eval-count", type=int, help="validation images in the quality report (default all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..deploy.onnx_export import ExportConfig, export_model

    cfg = config_from_args(ExportConfig, args)
    if cfg is None:
        return 0
    report = export_model(cfg)
    p = report["parity_fp32"]
    print(f"parity torch vs ORT: max abs diff {p['max_abs_diff']:.2e} over {p['images']} images "
          f"({report['parity_images']})", file=sys.stderr)
    for key, check in (("int8", report.get("int8")), ("fp16", report.get("fp16"))):
        if check and check.get("vs_fp32"):
            print(f"{key} vs fp32: PSNR {check['vs_fp32']['mean_psnr_db']} dB (mean), "
                  f"max abs diff {check['vs_fp32']['max_abs_diff']:.3f}", file=sys.stderr)
    for key, f in report["files"].items():
        print(f"{key}: {f['path']} ({f['size_kb']} KB)")
    print(f"report: {Path(cfg.out_dir) / (report['name'] + '.export.json')}", file=sys.stderr)
    return 0
