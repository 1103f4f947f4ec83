"""``unetblur privacy``: the full-photo privacy table (DESIGN.md §4 protocol)."""

from __future__ import annotations

import argparse
import shlex

from ..errors import UnetblurError
from ._config import add_config_flags, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "privacy", help="score blur settings on whole held-out photos: coverage, background damage, re-ID, speed",
        description="Run each method exactly as `unetblur blur` runs it on the original photos of a built "
                    "dataset's split (native resolution), timed end to end, and write table.md, results.json, "
                    "pareto.png and side-by-side sheets/ into --out. A method is NAME=BLUR FLAGS, e.g. "
                    "--method \"cf=--model centerface@0.3\" --method \"student=--model student\".")
    p.add_argument("--data", help="dataset folder(s) made by `unetblur data build`, DIR or DIR1,DIR2")
    p.add_argument("--method", dest="methods", action="append", default=None, metavar="NAME=FLAGS",
                   help="a row of the table: NAME=the `unetblur blur` flags it runs with (repeatable)")
    add_config_flags(p)
    p.add_argument("--split", help="which split's photos: test (held out, default) or val (to pick settings)")
    p.add_argument("--limit", type=int, help="at most this many photos per dataset folder (default all)")
    p.add_argument("--out", help="output folder (default runs/privacy)")
    p.add_argument("--reid", action=argparse.BooleanOptionalAction, default=None,
                   help="reid_rank1 / reid_verify with dlib (default on when installed)")
    p.add_argument("--warmup", type=int, help="untimed runs per method before timing (default 2)")
    p.add_argument("--sheets", type=int, help="photos shown side by side in sheets/ (default 6; 0 = none)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="one line per method on stderr (default on)")
    p.set_defaults(func=run)


def _blur_parser() -> argparse.ArgumentParser:
    """``unetblur blur``'s own argument parser, so a method's flags mean exactly what they mean there."""
    from . import blur as blur_command

    top = argparse.ArgumentParser(prog="unetblur", add_help=False)
    sub = top.add_subparsers()
    blur_command.register(sub)
    parser = sub.choices["blur"]

    def error(message: str):
        raise UnetblurError(message)

    parser.error = error
    return parser


def parse_method(text: str):
    """``"NAME=FLAGS"`` → ``(name, BlurConfig)``: the configuration ``unetblur blur FLAGS`` would run."""
    from ..anonymise import BlurConfig

    name, sep, flags = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise UnetblurError(f"--method {text!r}: expected NAME=BLUR FLAGS, e.g. \"cf=--model centerface@0.3\"")
    try:
        args = _blur_parser().parse_args(["photo.jpg", *shlex.split(flags)])
    except UnetblurError as exc:
        raise UnetblurError(f"--method {name}: {exc}") from None
    return name, config_from_args(BlurConfig, args, inputs=())


def run(args) -> int:
    import sys

    from ..evaluate.photos import PhotoBenchConfig, photo_benchmark

    cfg = config_from_args(PhotoBenchConfig, args)
    if cfg is None:
        return 0
    out = photo_benchmark(cfg, [parse_method(m) for m in cfg.methods])
    print(f"privacy table: {out / 'table.md'}", file=sys.stderr)
    return 0
