"""``unetblur tables``: the thesis's tables from run, export and compare folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("tables", help="regenerate the thesis tables (sizes, MMAC, training metrics, KD, comparison)",
                       description="Write the thesis's tables as Markdown from the folders the pipeline wrote. "
                                   "With --val and --published: our figures beside the thesis's; with --privacy: "
                                   "the re-identification study; with --graphs: MSE/MAE graphs per method and "
                                   "per face size.")
    p.add_argument("--model", dest="models", action="append", required=True, metavar="NAME=RUN[,EXPORT[,STEM]]",
                   help="a model: its run folder (model.pt, metrics.csv), optionally its export folder and file stem")
    p.add_argument("--compare", metavar="DIR", help="a compare output folder (summary.json)")
    p.add_argument("--val", action="append", default=[], metavar="NAME=DIR",
                   help="compare folder of a dataset's val split, e.g. v2=runs/x/compare_val_v2 (repeatable)")
    p.add_argument("--published", metavar="YAML", help="the thesis's published figures (experiments/thesis/published.yaml)")
    p.add_argument("--privacy", metavar="DATA", help="run the privacy study (dlib) on this dataset's split")
    p.add_argument("--privacy-split", default="test", choices=("train", "val", "test"), help="(default test)")
    p.add_argument("--threads", type=int, default=1, help="threads of the models in the privacy study (default 1)")
    p.add_argument("--graphs", type=Path, metavar="DIR", help="write the MSE/MAE graphs here and link them")
    p.add_argument("--size", type=int, default=128, help="input side for MACs (default 128)")
    p.add_argument("-o", "--out", type=Path, required=True, help="Markdown file to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UnetblurError
    from ..evaluate.tables import parse_model_entry, write_tables
    from ..fsutil import write_text_atomic

    entries = [parse_model_entry(m) for m in args.models]
    val = {}
    for item in args.val:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UnetblurError(f"--val {item!r}: expected NAME=COMPARE_DIR, e.g. v2=runs/thesis_letterbox/compare_val_v2")
        val[name] = folder
    if val and not args.published:
        raise UnetblurError("--val needs --published YAML (the thesis's figures to set beside ours)")
    study = None
    if args.privacy:
        from ..evaluate.privacy import privacy_study

        methods = [(e.name, str(e.run / "model.pt")) for e in entries] + [("oracle", "oracle"), ("identity", "identity")]
        study = privacy_study(args.privacy, methods, split=args.privacy_split, threads=args.threads)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out.with_name(args.out.stem + "_privacy.json"), json.dumps(study, indent=2) + "\n")
    path = write_tables(entries, args.compare, args.out, args.size, val=val, published=args.published,
                        privacy=study, graphs=args.graphs)
    print(f"tables: {path}", file=sys.stderr)
    return 0
