"""``unetblur distill``: train a student U-Net from the blurred targets and a frozen teacher."""

from __future__ import annotations

import argparse

from . import train as train_command
from ._config import add_config_flags, run_library

#: Flags of `unetblur train` that mean the same here; `--model` is replaced by the student flags below.
_NOT_SHARED = {"help", "model", "out", "config", "print_config"}


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.replace(" ", "").split(",") if w]
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths are comma-separated integers, e.g. 16,32,64,128; got {text!r}")
    return widths


def register(sub) -> None:
    p = sub.add_parser(
        "distill", help="train a student by knowledge distillation from a teacher (pruned, preset or your own)",
        description="Train a student U-Net with loss = α·L(student, target) + (1−α)·L(student, teacher) (α = 0.7 "
                    "is the thesis), optionally plus a bottleneck/decoder feature term. The student is a model file "
                    "(e.g. from `unetblur prune`), a preset, widths or a spec file. Same run folder, metrics, resume "
                    "and --max-minutes budget as `unetblur train`. Settings: defaults ← each --config YAML ← flags.")
    add_config_flags(p)
    p.add_argument("--teacher", metavar="T.pt", help="the teacher's model file (frozen, eval mode)")
    student = p.add_mutually_exclusive_group()
    student.add_argument("--student", dest="model", metavar="S.pt",
                         help="start from this model file, e.g. a pruned teacher (fine-tuning)")
    student.add_argument("--preset", dest="model", metavar="NAME", help="fresh student preset: student_v1 (default), student_v2, tiny")
    student.add_argument("--spec", dest="model", metavar="YAML", help="fresh student from a UNetSpec YAML/JSON file")
    student.add_argument("--widths", type=_widths, metavar="W1,W2,...",
                         help="fresh symmetric student: encoder widths then bottleneck, e.g. 16,32,64,128")
    p.add_argument("--upsample", choices=("transpose", "nearest"), help="fresh student: upsampling (nearest is INT8-friendly)")
    p.add_argument("--block", choices=("conv", "dsconv"), help="fresh student: 3×3 conv or depthwise-separable blocks")
    p.add_argument("--stem-stride", type=int, choices=(1, 2, 4, 8), help="fresh student: strided first conv "
                   "(the net runs at 1/s resolution)")
    p.add_argument("--alpha", type=float, help="weight of the ground-truth term (default 0.7; 1 = no teacher)")
    p.add_argument("--feature-weight", type=float, help="weight of the bottleneck + decoder feature term (default 0)")
    p.add_argument("--out", help="run folder (default runs/student)")
    # Every run flag of `unetblur train` (data, epochs, lr, loss, budget, devices, resume, ...), one definition.
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    train_command.register(scratch)
    for action in scratch.choices["train"]._actions:
        if action.dest not in _NOT_SHARED:
            p._add_action(action)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.distill import DistillConfig, distill

    return run_library(DistillConfig, distill, args)
