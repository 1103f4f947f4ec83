"""Recipes: a resumable sequence of ``unetblur`` commands (the demo, the thesis reproduction), and the
shared flags of the verbs that run them (``demo``, ``thesis``).

A recipe runs verbs through :func:`unetblur.cli.main`, so it belongs to the shell, not the library.

A recipe is a YAML file::

    vars: {size: 64}                  # defaults; --set key=value overrides
    stages:
      - name: teacher
        done: "{runs}/teacher/model.pt"      # the stage is skipped when this exists
        run: [train, --data, "{runs}/data", --model, teacher, --out, "{runs}/teacher"]

Each stage is an ordinary CLI command, so every number a recipe produces can be reproduced by
hand with the command it prints. ``{runs}`` is the recipe's output folder; other ``{name}``s
come from ``vars``. A stage that fails stops the recipe (exit code of the stage); finished stages
are skipped on the next run, which is what makes a recipe resumable.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import read_yaml
from ..errors import UnetblurError


@dataclass(frozen=True)
class Stage:
    name: str
    run: tuple[str, ...]
    done: str | None = None


@dataclass(frozen=True)
class Recipe:
    path: Path
    stages: tuple[Stage, ...]
    vars: dict = field(default_factory=dict)


def load_recipe(path: str | os.PathLike) -> Recipe:
    path = Path(path)
    data = read_yaml(path)
    unknown = set(data) - {"vars", "stages"}
    if unknown:
        raise UnetblurError(f"{path}: unknown recipe keys {sorted(unknown)}; a recipe has 'vars' and 'stages'")
    stages = []
    for i, s in enumerate(data.get("stages") or []):
        if not isinstance(s, dict) or "name" not in s or "run" not in s or not isinstance(s["run"], list):
            raise UnetblurError(f"{path}: stage {i + 1} needs a 'name' and a 'run' list")
        extra = set(s) - {"name", "run", "done"}
        if extra:
            raise UnetblurError(f"{path}: stage {s['name']!r} has unknown keys {sorted(extra)}")
        stages.append(Stage(str(s["name"]), tuple(str(a) for a in s["run"]), s.get("done")))
    if not stages:
        raise UnetblurError(f"{path}: the recipe has no stages")
    return Recipe(path, tuple(stages), dict(data.get("vars") or {}))


def _fill(text: str, values: dict) -> str:
    try:
        return text.format(**values)
    except KeyError as exc:
        raise UnetblurError(f"recipe uses {{{exc.args[0]}}} but no such variable is set "
                            f"(known: {', '.join(sorted(values))})") from None


def run_recipe(recipe: Recipe, runs: str | os.PathLike, overrides: dict | None = None,
               only: list[str] | None = None, force: bool = False) -> int:
    """Run the stages in order, skipping finished ones. Returns the exit code (0 when all passed).

    ``overrides`` replace ``vars``; ``only`` restricts to the named stages; ``force`` reruns
    finished stages.
    """
    from ..cli import main as cli_main  # the shell's entry point; imported late, as cli imports the verbs

    runs = Path(runs)
    values = {**{k: str(v) for k, v in recipe.vars.items()}, **(overrides or {}), "runs": str(runs)}
    names = [s.name for s in recipe.stages]
    for name in only or []:
        if name not in names:
            raise UnetblurError(f"no stage {name!r} in {recipe.path}; stages: {', '.join(names)}")
    runs.mkdir(parents=True, exist_ok=True)
    log = runs / "recipe.log"
    start = time.monotonic()
    for stage in recipe.stages:
        if only and stage.name not in only:
            continue
        argv = [_fill(a, values) for a in stage.run]
        done = _fill(stage.done, values) if stage.done else None
        shown = "unetblur " + " ".join(shlex.quote(a) for a in argv)
        if done and Path(done).exists() and not force:
            print(f"[{stage.name}] done already ({done}); skipping", file=sys.stderr)
            continue
        print(f"[{stage.name}] {shown}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        code = cli_main(argv)
        took = time.monotonic() - t0
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{stage.name}\texit {code}\t{took:.1f}s\t{shown}\n")
        if code not in (0, 1):
            print(f"[{stage.name}] failed with exit code {code} after {took:.0f}s; fix and rerun to resume",
                  file=sys.stderr)
            return code
        print(f"[{stage.name}] finished in {took:.0f}s", file=sys.stderr)
    print(f"recipe finished in {time.monotonic() - start:.0f}s; outputs in {runs}", file=sys.stderr)
    return 0


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
