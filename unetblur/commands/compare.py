"""``unetblur compare``: score U-Nets and detector+blur baselines on a dataset split; report + graphs."""

from __future__ import annotations

import argparse
import sys

from ._config import add_config_flags, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare U-Nets (.pt, .onnx) with detector+blur baselines: metrics, cost, report, graphs",
        description="Run every --method on a dataset split and score it with the DESIGN.md §4 metrics "
                    "(whole image, face, background, coverage, false blur, re-identification; by face size) and "
                    "cost (parameters, MACs, file size, latency). Also scores the full-resolution originals when "
                    "the dataset's manifest points to them. Writes results.csv, summary.json, report.md, "
                    "report.html and graph PNGs into --out. Settings: defaults ← each --config YAML ← flags.")
    p.add_argument("--data", help="dataset folder (DESIGN.md §4 layout)")
    p.add_argument("--method", dest="methods", action="append", metavar="NAME=SPEC",
                   help="a method to score (repeatable); SPEC: oracle, identity (no change), centerface, haar, or a .pt / .onnx model "
                        "file, e.g. --method teacher=runs/teacher/model.pt --method haar")
    add_config_flags(p)
    p.add_argument("--split", choices=("train", "val", "test"), help="split to score (default test)")
    p.add_argument("--limit", type=int, help="score at most N images (default all)")
    p.add_argument("--out", help="output folder (default runs/compare)")
    p.add_argument("--threads", type=int, help="threads for models and ONNX Runtime (default: one per core)")
    p.add_argument("--mode", choices=("raw", "composite"),
                   help="how a U-Net makes the image: raw network output (the thesis, default) or composite")
    p.add_argument("--device", help="torch device for .pt models (default cpu)")
    p.add_argument("--full-res", dest="full_res", action=argparse.BooleanOptionalAction, default=None,
                   help="also score the full-resolution originals named in the manifest (default on)")
    p.add_argument("--full-res-limit", type=int, help="at most N originals (default 20; 0 = as many as --limit)")
    p.add_argument("--reid", action=argparse.BooleanOptionalAction, default=None,
                   help="compute reid_rate with dlib (default on when unetblur[reid] is installed)")
    p.add_argument("--warmup", type=int, help="untimed runs per method before timing (default 2)")
    p.add_argument("--grid-images", type=int, help="images in the qualitative grid (default 4; 0 = none)")
    p.add_argument("--run", dest="runs", action="append", metavar="RUN_DIR",
                   help="training run folder whose curves the report includes (repeatable)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="one line per method on stderr as it finishes (default on)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import EXIT_FINDINGS, EXIT_OK
    from ..evaluate.compare import CompareConfig, compare, load_summary

    cfg = config_from_args(CompareConfig, args)
    if cfg is None:
        return EXIT_OK
    out = compare(cfg)
    skipped = load_summary(out).get("skipped") or []
    for item in skipped:
        print(f"unetblur: skipped {item}", file=sys.stderr)
    print(f"report: {out / 'report.html'} (and report.md, results.csv, summary.json)", file=sys.stderr)
    if skipped:
        print(f"unetblur: {len(skipped)} input(s) skipped", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK
