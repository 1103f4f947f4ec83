"""What sets the faces a method misses apart: exposure, contrast and sharpness of missed against covered faces.

Each face of the held-out photos (``--split``) is run through the method as `unetblur privacy` runs it and
counted missed (detail_removed < 0.1, as in miss_or_partial.py) or covered (≥ 0.8); for each width band the
median brightness (mean grey in [0, 1]), contrast (its standard deviation) and sharpness (mean |Laplacian|)
of the face box in the original, and the coverage of dark faces (mean grey < 0.25) against the others.

    python experiments/full_photo/missed_faces_exposure.py "--model student" \\
        --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 --split val

Val only when choosing anything: the test split is for the final table. Untimed.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from unetblur.anonymise import anonymised, open_blurrer_for
from unetblur.commands.privacy import parse_method
from unetblur.errors import UnetblurError
from unetblur.evaluate.metrics import COVERED_THRESHOLD, detail_removed
from unetblur.evaluate.photos import held_out_photos
from unetblur.io import read_image

from miss_or_partial import MISSED_BELOW

BANDS = ((32, 64), (64, 128))
DARK_BELOW = 0.25


def face_rows(method: str, data: str, split: str) -> np.ndarray:
    """One row per face in BANDS: width, detail_removed, mean grey, grey std, mean |Laplacian|."""
    _, cfg = parse_method(f"m={method}")
    blurrer = open_blurrer_for(cfg, threads=cfg.threads)
    rows = []
    for photo in held_out_photos(data, split):
        image = read_image(photo.path)
        output = anonymised(blurrer, image, source=str(photo.path)).image
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        sharp = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
        for face in photo.faces:
            width = face.box[2] - face.box[0]
            if not BANDS[0][0] <= width < BANDS[-1][1]:
                continue
            x1, y1, x2, y2 = (max(0, int(round(v))) for v in face.box)
            box = grey[y1:y2, x1:x2]
            if box.size:
                rows.append((width, detail_removed(output, image, face), box.mean(), box.std(),
                             sharp[y1:y2, x1:x2].mean()))
    return np.array(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method", help="unetblur blur flags, e.g. \"--model student\"")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    args = ap.parse_args(argv)
    try:
        rows = face_rows(args.method, args.data, args.split)
    except UnetblurError as exc:
        print(f"missed_faces_exposure: {exc}", file=sys.stderr)
        return 2
    print("| band | missed | covered | grey missed / covered | contrast | sharpness | covered: dark / others |")
    print("|---|---|---|---|---|---|---|")
    for lo, hi in BANDS:
        band = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
        missed, covered = band & (rows[:, 1] < MISSED_BELOW), band & (rows[:, 1] >= COVERED_THRESHOLD)
        medians = [f"{np.median(rows[missed, j]):.3f} / {np.median(rows[covered, j]):.3f}" for j in (2, 3, 4)]
        dark = band & (rows[:, 2] < DARK_BELOW)
        share = lambda m: f"{np.mean(rows[m, 1] >= COVERED_THRESHOLD):.2f} ({m.sum()})"
        print(f"| {lo}-{hi} | {missed.sum()} | {covered.sum()} | {' | '.join(medians)} | "
              f"{share(dark)} / {share(band & ~dark)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
