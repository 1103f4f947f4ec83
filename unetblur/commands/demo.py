"""``unetblur demo``: the embedded default, end to end on data it generates itself."""

from __future__ import annotations

from pathlib import Path

from ._recipe import add_recipe_arguments, run_recipe_command

DEFAULT_RECIPE = Path("experiments/demo/recipe.yaml")


def register(sub) -> None:
    p = sub.add_parser("demo", help="synthesise data, train, prune, distill, export, compare, blur (about 10 min on 2 cores)",
                       description="Run the embedded-default recipe (experiments/demo/recipe.yaml): synthetic dataset → "
                                   "teacher → pruned + distilled student → ONNX FP32/INT8 → comparison report → "
                                   "blurred sample image and video. Finished stages are skipped on a rerun.")
    add_recipe_arguments(p, DEFAULT_RECIPE, Path("runs/demo"))
    p.set_defaults(func=run)


def run(args) -> int:
    return run_recipe_command(args, final_hint="report: {runs}/compare/report.html (and report.md)")
