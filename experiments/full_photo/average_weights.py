"""Average the weights of model files of one spec (a uniform "weight soup") into a new model file.

Models fine-tuned from one another lie in one basin, so their mean is a model too; a run that learned to
find more faces (and blur more background on the way) averaged with the weights it started from lands
between the two on the val frontier, and may land past both. Integer buffers (BatchNorm's batch count)
are taken from the first file.

    python experiments/full_photo/average_weights.py experiments/full_photo/student_topwide_warm.pt \\
        runs/full_photo/stage17_last.pt -o runs/full_photo/stage1617_soup.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unetblur.errors import UnetblurError
from unetblur.models import load_model, save_model
from unetblur.models.checkpoint import model_kind_and_spec


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (in float64, cast back); the first state's others."""
    return {key: (sum(s[key].double() for s in states) / len(states)).to(value.dtype)
            if value.is_floating_point() else value
            for key, value in states[0].items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="unetblur model files (.pt) of the same spec, two or more")
    parser.add_argument("-o", "--out", required=True, help="new model file (.pt); never overwrites")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists():
            raise UnetblurError(f"{out} already exists; choose another -o")
        if len(args.models) < 2:
            raise UnetblurError("give two or more model files to average")
        loaded = [load_model(path) for path in args.models]
        model, meta = loaded[0]
        for path, (other, _) in zip(args.models[1:], loaded[1:]):
            if model_kind_and_spec(other) != model_kind_and_spec(model):
                raise UnetblurError(f"{path} has another architecture than {args.models[0]}; average one spec only")
        model.load_state_dict(average_state([m.state_dict() for m, _ in loaded]))
        save_model(model, out, {"averaged": list(args.models), "parent": meta})
    except (UnetblurError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"mean of {len(args.models)} model files → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
