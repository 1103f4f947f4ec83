"""What every verb's flags share: ``--config``/``--print-config``, the blur flags, and the step from
parsed flags to the verb's config dataclass.

A flag reaches the config when its ``dest`` is a field name of the config dataclass (no hand-kept
list of names beside the dataclass); ``tests/commands/test_flags.py`` checks that every flag of every
verb is such a field, so a flag cannot silently miss its setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar

C = TypeVar("C")

#: Parser destinations that are the shell's, not settings.
NOT_SETTINGS = frozenset({"help", "config", "print_config", "func", "command", "data_command"})


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """``--config YAML`` (repeatable deltas) and ``--print-config`` (show the resolved config and stop)."""
    p.add_argument("--config", action="append", default=[], metavar="YAML", help="YAML config delta (repeatable)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (defaults ← YAML ← flags) as YAML and exit; reusable as --config")


def add_blur_flags(p: argparse.ArgumentParser, title: str = "blur") -> None:
    """The :class:`~unetblur.blur.BlurFields` flags, one spelling for every verb; ``data build``'s older
    ``--blur-style/--blur-shape/--blur-kernel/--blur-strength`` still work."""
    g = p.add_argument_group(title)
    g.add_argument("--style", "--blur-style", dest="style", choices=("gaussian", "pixelate", "solid"),
                   help="blur style (default gaussian)")
    g.add_argument("--shape", "--blur-shape", dest="shape", choices=("ellipse", "box"),
                   help="blurred region shape (default ellipse)")
    g.add_argument("--mask-scale", type=float, help="grow each face region by this factor (default 1.2; "
                                                     "`blur` with CenterFace: 1.4, its boxes are tighter than "
                                                     "annotated faces)")
    g.add_argument("--kernel", "--blur-kernel", dest="kernel", type=int, metavar="PX",
                   help="fixed Gaussian kernel / mosaic block in px (41 = the thesis's dataset v1); "
                        "default scales with the face")
    g.add_argument("--strength", "--blur-strength", dest="strength", type=float,
                   help="kernel ≈ strength × face size (default 1.0)")


def setting_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def config_from_args(cls: type[C], args: argparse.Namespace, **given: Any) -> C | None:
    """The config of a verb: defaults ← each ``--config`` YAML ← flags (those whose dest names a field of
    ``cls``; None = not given) ← ``given`` (positional arguments). With ``--print-config``, print it as
    YAML on stdout and return None: the caller then stops with exit code 0."""
    from ..config import load_config, to_dict

    names = setting_names(cls)
    overrides = {k: v for k, v in vars(args).items() if k in names}
    overrides.update(given)
    cfg = load_config(cls, getattr(args, "config", None) or [], overrides)
    if getattr(args, "print_config", False):
        import yaml

        sys.stdout.write(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return None
    return cfg


def run_library(cls: type[C], function, args: argparse.Namespace, **given: Any) -> int:
    """The whole verb for the common case: build the config, call ``function(config)``, exit 0."""
    cfg = config_from_args(cls, args, **given)
    if cfg is not None:
        function(cfg)
    return 0
