"""Where does a method's background damage lie: on faces the annotation lacks, or on the scene?

``bg_changed`` (DESIGN.md §4) charges every changed pixel outside the ground-truth face boxes grown
1.5×. FDDB annotates only some of the faces in its news photos, and WIDER FACE skips some, so a
method that blurs a real but unannotated face is charged as if it had blurred a wall. This script
splits each method's bg_changed, photo by photo, into the part that falls inside a face full-scale
CenterFace finds there (its box grown 1.5×, as the ruler grows the ground truth) and the rest, so the
two sources can be told apart. It explains the ruler's numbers; it does not replace them: the
targets stay stated on bg_changed as defined.

    python experiments/full_photo/bg_sources.py --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 \\
        --split val --method "student=--model student" --method "centerface@0.3=--model centerface@0.3"

Val only when choosing anything: the test split is for the final table.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from unetblur.anonymise import anonymised, open_blurrer_for
from unetblur.commands.privacy import parse_method
from unetblur.detectors import open_detector
from unetblur.errors import UnetblurError
from unetblur.evaluate import metrics as M
from unetblur.evaluate.photos import held_out_photos
from unetblur.io import read_image


def split_background(output: np.ndarray, image: np.ndarray, faces, found) -> tuple[float, float]:
    """``(on found faces, elsewhere)``: shares of the background (as ``bg_changed`` defines it for the
    ground truth ``faces``) changed inside a ``found`` face's box grown 1.5×, and outside all of them.
    They sum to ``M.bg_changed(output, image, faces)``."""
    changed = M.changed_pixels(output, image)
    background = M.background_mask(changed.shape, faces)
    count = int(background.sum())
    if not count:
        return float("nan"), float("nan")
    on_found = background & ~M.background_mask(changed.shape, found)
    return float((changed & on_found).sum() / count), float((changed & background & ~on_found).sum() / count)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder(s) made by `unetblur data build` (DIR or DIR1,DIR2)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=0, help="photos per dataset folder (0 = all)")
    ap.add_argument("--method", action="append", required=True, help="NAME=BLUR FLAGS, as `unetblur privacy` takes them")
    ap.add_argument("--finder", default="centerface", help="the detector whose faces count as unannotated faces")
    args = ap.parse_args(argv)
    try:
        photos = held_out_photos(args.data, args.split, args.limit)
        methods = [parse_method(m) for m in args.method]
        finder = open_detector(args.finder)
        blurrers = {name: open_blurrer_for(cfg, threads=cfg.threads) for name, cfg in methods}
        shares = {name: [] for name in blurrers}
        for photo in photos:
            image = read_image(photo.path)
            found = finder.detect(image)
            for name, blurrer in blurrers.items():
                output = anonymised(blurrer, image, source=str(photo.path)).image
                shares[name].append(split_background(output, image, photo.faces, found))
    except UnetblurError as exc:
        print(f"bg_sources: {exc}", file=sys.stderr)
        return 2
    print(f"{len(photos)} photos of {args.data} ({args.split}); faces found by {args.finder}\n")
    print("| method | bg_changed | on faces the annotation lacks | elsewhere | share on faces |")
    print("|---|---|---|---|---|")
    for name, rows in shares.items():
        on_faces, elsewhere = np.nanmean(np.asarray(rows), axis=0)
        total = on_faces + elsewhere
        print(f"| {name} | {100 * total:.2f} % | {100 * on_faces:.2f} % | {100 * elsewhere:.2f} % | "
              f"{on_faces / total if total else float('nan'):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
