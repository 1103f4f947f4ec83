"""``unetblur thesis``: reproduce the thesis experiments in one resumable command."""

from __future__ import annotations

from pathlib import Path

from ._recipe import add_recipe_arguments, run_recipe_command

DEFAULT_RECIPE = Path("experiments/thesis/recipe.yaml")
#: ``--set mode=letterbox`` runs the thesis's own framing, whose stages differ (two sources merged,
#: val on both datasets, the privacy study), so it is a recipe of its own with its own runs folder.
MODE_RECIPES = {"letterbox": (Path("experiments/thesis/letterbox.yaml"), Path("runs/thesis_letterbox"))}


def register(sub) -> None:
    p = sub.add_parser("thesis", help="reproduce the thesis: datasets v1/v2, teacher, students, INT8, comparison, tables",
                       description="Run experiments/thesis/recipe.yaml on a dataset source (--set source=DIR). "
                                   "--set mode=letterbox runs experiments/thesis/letterbox.yaml instead (whole "
                                   "photos letterboxed to 128×128 from WIDER + FDDB, tables beside the thesis's "
                                   "published numbers) into runs/thesis_letterbox. Finished stages are skipped on "
                                   "a rerun; the tables land in the runs folder.")
    add_recipe_arguments(p, None, None)
    p.set_defaults(func=run)


def run(args) -> int:
    mode = next((o.partition("=")[2] for o in reversed(args.overrides) if o.startswith("mode=")), "crops")
    recipe, runs = MODE_RECIPES.get(mode, (DEFAULT_RECIPE, Path("runs/thesis")))
    args.recipe = args.recipe or recipe
    args.runs = args.runs or runs
    return run_recipe_command(args, final_hint="tables: {runs}/tables.md")
