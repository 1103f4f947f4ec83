"""Write a training checkpoint's weights (best.ckpt, last.ckpt) as a unetblur model file.

`unetblur train` writes model.pt (the best val loss) only when a run ends by itself; a run stopped early
leaves its checkpoints, and val loss is not the coverage the operating point is chosen by, so both are
worth searching. The architecture and meta come from a model file of the same spec (the run's model.pt,
or the file it started from); the checkpoint is read with weights_only=True.

    python experiments/full_photo/ckpt_to_model.py runs/full_photo/student_topwide_warm/checkpoints/last.ckpt \\
        runs/full_photo/topwide_warm.pt -o runs/full_photo/stage16_last.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unetblur.errors import UnetblurError
from unetblur.models import load_model, save_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="Lightning checkpoint of `unetblur train` (.ckpt)")
    parser.add_argument("architecture", help="unetblur model file with the same spec (.pt)")
    parser.add_argument("-o", "--out", required=True, help="new model file (.pt); never overwrites")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists():
            raise UnetblurError(f"{out} already exists; choose another -o")
        model, meta = load_model(args.architecture)
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        weights = {k[len("model."):]: v for k, v in ckpt.get("state_dict", {}).items() if k.startswith("model.")}
        if not weights:
            raise UnetblurError(f"{args.checkpoint} holds no model weights (not a `unetblur train` checkpoint)")
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise UnetblurError(f"{args.checkpoint} does not fit {args.architecture}'s spec (other layers or "
                                f"widths; {len(str(exc).splitlines())} mismatches)") from None
        save_model(model, out, {**meta, "weights_from": {"checkpoint": args.checkpoint, "epochs": ckpt.get("epoch")}})
    except (UnetblurError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.checkpoint} (after {ckpt.get('epoch')} epochs) → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
