"""Shared flags of the recipe verbs (``demo``, ``thesis``)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UnetblurError


def add_recipe_arguments(p, default_recipe: Path | None, default_runs: Path | None) -> None:
    """Add the flags; a None default means the verb picks it at run time (``thesis`` by its mode)."""
    p.add_argument("--recipe", type=Path, default=default_recipe,
                   help=f"recipe YAML (default {default_recipe or 'by mode'})")
    p.add_argument("--runs", type=Path, default=default_runs, help=f"output folder (default {default_runs or 'by mode'})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe variable (repeatable)")
    p.add_argument("--only", action="append", metavar="STAGE", help="run only this stage (repeatable)")
    p.add_argument("--force", action="store_true", help="rerun stages that are already done")


def run_recipe_command(args, final_hint: str) -> int:
    from ..recipe import load_recipe, run_recipe

    if not args.recipe.is_file():
        raise UnetblurError(f"{args.recipe}: recipe not found (run from the repository root, or pass --recipe)")
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UnetblurError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = value
    code = run_recipe(load_recipe(args.recipe), args.runs, overrides, args.only, args.force)
    if code == 0:
        print(final_hint.format(runs=args.runs), file=sys.stderr)
    return code
