"""Charge the ring past each large face's ruler box: negative maps for ``mined_negative_weight``.

On val the package spends 1.14 of its 1.99 % background on blur around annotated faces that reaches past the
ruler's 1.5× box, 0.99 of it around faces ≥ 64 px ([region_study_val.md](region_study_val.md)): its masks run on
over hair, necks and shoulders. This marks, on every train photo of ``unetblur data build`` datasets, the
pixels of each face at least ``--min-width`` stored pixels wide grown ``--growth``× about its centre that lie in
bg_changed's background (outside every face's 1.5× box), and writes them as ``ROOT/train_negative/`` maps
(unetblur/training/mining.py), replacing any mined ones. Unlike stage 22's mined blobs they hold no regions on
the scene and nothing around small faces: they ask the mask to end where a large face ends.

    python experiments/full_photo/ring_negatives.py \\
        --data runs/datasets/wider_gf320,runs/datasets/fddb_gf320,runs/datasets/wider_gf480,runs/datasets/fddb_gf480,runs/datasets/wider_gf640
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from unetblur.data.layout import dataset_folders
from unetblur.errors import UnetblurError
from unetblur.evaluate.metrics import background_mask
from unetblur.training.mining import write_negative_maps


def ring_map(shape_hw: tuple[int, int], faces, min_width: float, growth: float) -> np.ndarray:
    """HW bool: inside some face ≥ ``min_width`` wide grown ``growth``× about its centre, and in bg_changed's
    background of ``faces``."""
    large = [f for f in faces if f.width >= min_width]
    return ~background_mask(shape_hw, large, growth=growth) & background_mask(shape_hw, faces)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder(s) (DIR or DIR1,DIR2)")
    ap.add_argument("--min-width", type=float, default=32.0, help="faces at least this wide (stored pixels)")
    ap.add_argument("--growth", type=float, default=2.5, help="the ring's outer edge, in face sizes")
    args = ap.parse_args(argv)

    def rings(sample, faces):
        image = cv2.imread(str(sample.image), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise UnetblurError(f"{sample.image}: not a readable image")
        return ring_map(image.shape, faces, args.min_width, args.growth)

    try:
        for root in dataset_folders(args.data):
            summary = write_negative_maps(root, rings, {"rings": {"min_width": args.min_width, "growth": args.growth}})
            print(f"{root}: {summary['photos_with_negatives']} of {summary['photos']} photos charged, "
                  f"{100 * summary['negative_share']:.2f} % of their pixels", flush=True)
    except UnetblurError as exc:
        print(f"ring_negatives: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
