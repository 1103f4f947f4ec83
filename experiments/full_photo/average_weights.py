"""Average the weights of model files of one spec (a "weight soup", uniform unless --weights) into a new model file.

Models fine-tuned from one another lie in one basin, so their mean is a model too; a run that learned to
find more faces (and blur more background on the way) averaged with the weights it started from lands
between the two on the val frontier, and may land past both. Integer buffers (BatchNorm's batch count)
are taken from the first file.

    python experiments/full_photo/average_weights.py experiments/full_photo/student_topwide_warm.pt \\
        runs/full_photo/stage17_last.pt -o runs/full_photo/stage1617_soup.pt

--weights mixes in other ratios (they must sum to 1). A negative weight extrapolates along the line
through the files: the mean of A and B with 2 and A with -1 gives B back, so a committed mean and one
of its ends recover the other end when its checkpoint is lost.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from unetblur.errors import UnetblurError
from unetblur.models import load_model, save_model
from unetblur.models.checkpoint import model_kind_and_spec


def average_state(states: list[dict[str, torch.Tensor]], weights: list[float] | None = None) -> dict[str, torch.Tensor]:
    """The element-wise weighted mean of floating-point tensors (in float64, cast back; uniform weights
    unless given); the first state's other tensors."""
    weights = weights or [1 / len(states)] * len(states)
    return {key: sum(w * s[key].double() for w, s in zip(weights, states)).to(value.dtype)
            if value.is_floating_point() else value
            for key, value in states[0].items()}


def parse_weights(text: str | None, count: int) -> list[float] | None:
    """The --weights list, one per model file, summing to 1 (a mean); None for the uniform mean."""
    if text is None:
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise UnetblurError(f"--weights {text!r}: give comma-separated numbers, e.g. 0.5,0.5") from None
    if len(weights) != count:
        raise UnetblurError(f"--weights gives {len(weights)} numbers for {count} model files")
    if not all(math.isfinite(w) for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise UnetblurError(f"--weights must be finite numbers that sum to 1 (they sum to {sum(weights):g})")
    return weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="unetblur model files (.pt) of the same spec, two or more")
    parser.add_argument("-o", "--out", required=True, help="new model file (.pt); never overwrites")
    parser.add_argument("--weights", help="comma-separated weight of each file, summing to 1 (default: equal)")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists():
            raise UnetblurError(f"{out} already exists; choose another -o")
        if len(args.models) < 2:
            raise UnetblurError("give two or more model files to average")
        weights = parse_weights(args.weights, len(args.models))
        loaded = [load_model(path) for path in args.models]
        model, meta = loaded[0]
        for path, (other, _) in zip(args.models[1:], loaded[1:]):
            if model_kind_and_spec(other) != model_kind_and_spec(model):
                raise UnetblurError(f"{path} has another architecture than {args.models[0]}; average one spec only")
        model.load_state_dict(average_state([m.state_dict() for m, _ in loaded], weights))
        save_model(model, out, {"averaged": list(args.models), "weights": weights, "parent": meta})
    except (UnetblurError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'weighted ' if weights else ''}mean of {len(args.models)} model files → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
