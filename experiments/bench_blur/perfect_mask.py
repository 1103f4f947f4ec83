"""Upper bound of compositing: coverage recall when the "student" predicts the perfect mask.

The mask of an ImageModel stand-in is the ground-truth ``blur_faces`` mask, resized to the working
size the compositing runs it at. If compositing loses nothing, every face is covered at every
working size, and a real student's coverage is decided by its mask alone.

    .venv/bin/python experiments/bench_blur/perfect_mask.py --photos 15
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_blur import DEFAULT_WIDER, parse_floats, wider_photos  # noqa: E402


class PerfectMask:
    """ImageModel stand-in whose mask is a given full-resolution mask (0/255), resized to its input."""

    name = "perfect-mask"
    stride = 1

    def __init__(self, mask: np.ndarray):
        self.mask = mask.astype(np.float32) / 255.0

    def predict(self, image):
        h, w = image.shape[:2]
        return image, cv2.resize(self.mask, (w, h), interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    from unetblur.blur import BlurSettings, blur_faces, face_mask
    from unetblur.evaluate.metrics import blur_completeness, coverage_recall
    from unetblur.io import read_image
    from unetblur.runtime.composite import CompositingBlurrer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=15)
    p.add_argument("--scales", type=parse_floats, default=[0.25, 0.5, 1.0], help="working size / longer side")
    p.add_argument("--wider", type=Path, default=DEFAULT_WIDER)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    settings = BlurSettings()
    photos = wider_photos(args.wider, args.photos, args.seed)
    print("| working size / longer side | recall ≥ 32 px (faces) | recall ≥ 64 px (faces) | median completeness |")
    print("|---|---|---|---|")
    for s in args.scales:
        c32, c64 = [], []
        for path, faces in photos:
            image = read_image(path)
            h, w = image.shape[:2]
            faces = [c for c in (f.clipped(w, h) for f in faces) if c is not None and c.width >= 32]
            target, mask = blur_faces(image, faces, settings)
            out = CompositingBlurrer(PerfectMask(mask), settings, working_size=round(max(h, w) * s))(image).image
            for face in faces:
                c = float(blur_completeness(out, image, target, face_mask((h, w), face, settings) > 0))
                c32.append(c)
                if face.width >= 64:
                    c64.append(c)
        print(f"| {s:g} | {coverage_recall(c32):.3f} ({len(c32)}) | {coverage_recall(c64):.3f} ({len(c64)}) | "
              f"{np.nanmedian(c32):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
