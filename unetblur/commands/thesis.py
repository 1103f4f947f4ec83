"""``unetblur thesis``: reproduce the thesis experiments in one resumable command."""

from __future__ import annotations

from pathlib import Path

from ._recipe import add_recipe_arguments, run_recipe_command

DEFAULT_RECIPE = Path("experiments/thesis/recipe.yaml")


def register(sub) -> None:
    p = sub.add_parser("thesis", help="reproduce the thesis: datasets v1/v2, teacher, students, INT8, comparison, tables",
                       description="Run experiments/thesis/recipe.yaml on a dataset source (--set source=DIR). Finished "
                                   "stages are skipped on a rerun; the tables land in the runs folder.")
    add_recipe_arguments(p, DEFAULT_RECIPE, Path("runs/thesis"))
    p.set_defaults(func=run)


def run(args) -> int:
    return run_recipe_command(args, final_hint="tables: {runs}/tables.md")
