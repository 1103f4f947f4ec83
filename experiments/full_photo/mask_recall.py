"""Does a mask-channel student *find* the faces it fails to cover? Mask-peak recall by face width.

For every ground-truth face of the held-out photos (a split of ``unetblur data build`` datasets, the
originals at native resolution, scaled to ``--working-size`` exactly as ``unetblur blur`` scales
them), the highest mask probability inside the face's box; a face whose peak is below the blur
threshold is not found at all, whatever the compositing does. Also the share of background pixels
(outside every face box grown 1.5×) at or above each threshold: what lowering it would cost.

    python experiments/full_photo/mask_recall.py runs/full_photo/student_ft/model.pt \\
        --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 --split val --limit 80 --working-size 480

Val only when choosing anything: the test split is for the final table.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from unetblur.errors import UnetblurError
from unetblur.evaluate.metrics import background_mask
from unetblur.evaluate.photos import held_out_photos
from unetblur.io import read_image
from unetblur.runtime.composite import CompositingBlurrer
from unetblur.runtime.factory import open_image_model

BUCKETS = ((16, 32), (32, 64), (64, 128), (128, None))
THRESHOLDS = (0.3, 0.5, 0.7)


def face_peaks(model, photos, working_size: int, thresholds=THRESHOLDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(face widths in original pixels, mask peak per face, per-photo background probabilities ≥ each threshold)."""
    if not getattr(model, "mask_channel", False):
        # The compositor would fall back to a difference mask, which has no peaks to measure.
        raise UnetblurError(f"{getattr(model, 'name', 'model')}: has no mask channel")
    blurrer = CompositingBlurrer(model, working_size=working_size)  # the working-size scaling of `blur`
    widths, peaks, background = [], [], []
    for photo in photos:
        image = read_image(photo.path)
        mask = blurrer.face_probability(image)
        s = mask.shape[1] / image.shape[1]
        for face in photo.faces:
            x1, y1, x2, y2 = (v * s for v in face.box)
            box = mask[max(0, int(y1)):max(int(y1) + 1, round(y2)), max(0, int(x1)):max(int(x1) + 1, round(x2))]
            if box.size:
                widths.append(face.box[2] - face.box[0])
                peaks.append(float(box.max()))
        outside = background_mask(mask.shape, photo.faces, scale=s)
        background.append([float((mask[outside] >= t).mean()) if outside.any() else 0.0 for t in thresholds])
    return np.asarray(widths), np.asarray(peaks), np.asarray(background)


def render(widths: np.ndarray, peaks: np.ndarray, background: np.ndarray, thresholds=THRESHOLDS) -> str:
    head = "| face width | faces | " + " | ".join(f"peak ≥ {t}" for t in thresholds) + " |"
    lines = [head, "|" + "---|" * (2 + len(thresholds))]
    for lo, hi in BUCKETS:
        sel = (widths >= lo) & (widths < (hi or np.inf))
        label = f"{lo}-{hi}" if hi else f">={lo}"
        cells = [f"{np.mean(peaks[sel] >= t):.2f}" if sel.any() else "—" for t in thresholds]
        lines.append(f"| {label} | {int(sel.sum())} | " + " | ".join(cells) + " |")
    lines.append("| background pixels | | " + " | ".join(f"{100 * background[:, i].mean():.2f} %"
                                                      for i in range(len(thresholds))) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a mask-channel model file (.pt or .onnx)")
    p.add_argument("--data", required=True, help="dataset folder(s) made by `unetblur data build` (DIR or DIR1,DIR2)")
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, default=0, help="at most this many photos per dataset (0 = all)")
    p.add_argument("--working-size", type=int, default=480)
    p.add_argument("--thresholds", default=",".join(map(str, THRESHOLDS)),
                   help="mask thresholds to report, comma-separated (recall vs background at each)")
    args = p.parse_args(argv)
    try:
        thresholds = tuple(float(t) for t in args.thresholds.split(","))
    except ValueError:
        print(f"error: --thresholds must be numbers separated by commas, got {args.thresholds!r}", file=sys.stderr)
        return 2
    try:
        photos = held_out_photos(args.data, args.split, args.limit)
        widths, peaks, background = face_peaks(open_image_model(args.model), photos, args.working_size, thresholds)
    except UnetblurError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model} at working size {args.working_size}: {len(photos)} {args.split} photos, {len(widths)} faces\n")
    print(render(widths, peaks, background, thresholds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
