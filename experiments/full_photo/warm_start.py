"""Warm-start a student of another width from a trained one (unetblur.compress.widen.resize).

The new model file gives the trained model's output, except for the channels pruned where the new spec
is narrower; its new channels start feeding nothing, so `unetblur train --model OUT` grows them from
where the trained student stands instead of from scratch.

    python experiments/full_photo/warm_start.py experiments/full_photo/student_small_faces_5k.pt \\
        experiments/full_photo/student_topwide_spec.yaml -o runs/full_photo/topwide_warm.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from unetblur.compress.widen import resize
from unetblur.errors import UnetblurError
from unetblur.models import UNetSpec, count_parameters, load_model, save_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="trained unetblur model file (.pt)")
    parser.add_argument("spec", help="UNetSpec YAML of the new widths (as `unetblur train --model` reads)")
    parser.add_argument("-o", "--out", required=True, help="new model file (.pt); never overwrites")
    parser.add_argument("--importance", default="l2", help="how narrowed layers choose the channels they keep")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists():
            raise UnetblurError(f"{out} already exists; choose another -o")
        model, meta = load_model(args.model)
        spec = UNetSpec.from_dict(yaml.safe_load(Path(args.spec).read_text()))
        resized = resize(model, spec, args.importance)
        save_model(resized, out, {"warm_start": {"from": args.model, "spec": args.spec, "importance": args.importance},
                                  "parent": meta})
    except (UnetblurError, OSError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model} ({count_parameters(model):,} parameters) → {out} ({count_parameters(resized):,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
