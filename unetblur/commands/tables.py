"""``unetblur tables``: the thesis's tables from run, export and compare folders."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("tables", help="regenerate the thesis tables (sizes, MMAC, training metrics, KD, comparison)",
                       description="Write the thesis's tables as Markdown from the folders the pipeline wrote.")
    p.add_argument("--model", dest="models", action="append", required=True, metavar="NAME=RUN[,EXPORT[,STEM]]",
                   help="a model: its run folder (model.pt, metrics.csv), optionally its export folder and file stem")
    p.add_argument("--compare", metavar="DIR", help="a compare output folder (summary.json)")
    p.add_argument("--size", type=int, default=128, help="input side for MACs (default 128)")
    p.add_argument("-o", "--out", type=Path, required=True, help="Markdown file to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluate.tables import parse_model_entry, write_tables

    path = write_tables([parse_model_entry(m) for m in args.models], args.compare, args.out, args.size)
    print(f"tables: {path}", file=sys.stderr)
    return 0
