"""``unetblur plot``: redraw the graphs of compare folders and training run folders."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "plot", help="graphs of compare results (MSE/MAE, coverage by face size, quality vs latency) and "
                     "training runs (train vs val MSE and MAE)",
        description="For each folder: a compare output (summary.json) gets errors.png, coverage.png and "
                    "pareto.png; a training run (metrics.csv) gets its curve PNGs. Written beside the inputs "
                    "unless --out is given.")
    p.add_argument("paths", nargs="+", metavar="RESULTS_DIR|RUN_DIR")
    p.add_argument("--out", help="write the graphs here instead")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluate.plots import plot_paths

    for path in plot_paths(args.paths, args.out):
        print(path, file=sys.stderr)
    return 0
