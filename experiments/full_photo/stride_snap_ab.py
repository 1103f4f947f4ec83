"""Time per photo of one `unetblur blur` method with and without the stride snap (STRIDE_SNAP in
unetblur/runtime/composite.py), interleaved photo by photo in one process so machine drift hits both alike.

    python experiments/full_photo/stride_snap_ab.py --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 \\
        --split val --every 2 --repeat 2 --method "--model student"

Coverage with and without it comes from the privacy table (the snap changes what the network sees by at most 3 %).
Val only: the test split is for the final table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

from unetblur.anonymise import open_blurrer_for
from unetblur.commands.privacy import parse_method
from unetblur.errors import UnetblurError
from unetblur.evaluate.photos import held_out_photos, time_one_photo
from unetblur.runtime.composite import CompositingBlurrer, working_scale


def compositing_blurrer(blurrer) -> CompositingBlurrer:
    """The CompositingBlurrer inside ``blurrer`` (a TemporalBlurrer wraps one); input_equalisation.py uses it too."""
    while not isinstance(blurrer, CompositingBlurrer):
        inner = getattr(blurrer, "blurrer", None)
        if inner is None:
            raise UnetblurError("the method is not a compositing blurrer; the snap applies to composite mode only")
        blurrer = inner
    return blurrer


def _unsnapped(blurrer):
    """The blurrer with the working factor as it was before the snap."""
    comp = compositing_blurrer(blurrer)
    comp._pass_scale = types.MethodType(lambda self, h, w, s=1.0: working_scale(h, w, self.working_size) * s, comp)
    return blurrer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--method", default="--model student", help="unetblur blur flags")
    ap.add_argument("--every", type=int, default=1, help="take every Nth photo")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        photos = held_out_photos(args.data, args.split)[::max(1, args.every)]
        _, cfg = parse_method(f"m={args.method}")
        runs = {"snap": open_blurrer_for(cfg, threads=cfg.threads),
                "no snap": _unsnapped(open_blurrer_for(cfg, threads=cfg.threads))}
    except UnetblurError as exc:
        print(f"stride_snap_ab: {exc}", file=sys.stderr)
        return 2
    ms = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for blurrer in runs.values():
            time_one_photo(blurrer, photos[0], scratch)  # warm-up
        for rep in range(args.repeat):
            for i, photo in enumerate(photos):
                order = list(runs.items()) if (i + rep) % 2 else list(runs.items())[::-1]
                for name, blurrer in order:
                    ms[name].append(time_one_photo(blurrer, photo, scratch)[2])
    for name, values in ms.items():
        print(f"{name:8s} photos {len(values)}  median {statistics.median(values):6.1f} ms  "
              f"mean {np.mean(values):6.2f} ms")
    saved = np.subtract(ms["no snap"], ms["snap"])
    wider = np.array([p.key.startswith("wider") for p in photos] * args.repeat)
    print(f"saved per photo: mean {saved.mean():.2f} ms, median {np.median(saved):.2f} ms "
          f"(WIDER photos {saved[wider].mean():.2f}, others {saved[~wider].mean():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
