"""Why is a face not covered: untouched, or blurred too little? detail_removed by face width, in three bands.

Each method runs as `unetblur privacy` runs it (NAME=`unetblur blur` flags) on the held-out photos of
``--split``; for every ground-truth face, its detail_removed (DESIGN.md §4) is counted as *missed*
(< 0.1: the method left it alone), *partial* (0.1 up to the coverage bar 0.8) or *covered*. A model
that misses needs recall (training); one that covers partially needs a bigger or stronger region
(compositing settings).

    python experiments/full_photo/miss_or_partial.py "cf=--model centerface@0.3" "pkg=--model student" \\
        --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 --split val

``--list-missed W`` also lists every missed face at least W px wide (photo and box), to look at.

Val only when choosing anything: the test split is for the final table. Untimed.
"""

from __future__ import annotations

import argparse
import math
import sys

from unetblur.anonymise import anonymised, open_blurrer_for
from unetblur.commands.privacy import parse_method
from unetblur.errors import UnetblurError
from unetblur.evaluate.metrics import COVERED_THRESHOLD, bucket_names, detail_removed, size_bucket
from unetblur.evaluate.photos import held_out_photos
from unetblur.io import read_image

#: Below this share of detail removed a face counts as untouched (JPEG re-encoding alone removes a little).
MISSED_BELOW = 0.1


def bands_by_bucket(blurrer, photos, missed_faces: list | None = None) -> dict[str, list[int]]:
    """{size bucket: [missed, partial, covered]} face counts (faces without detail are left out); each missed
    face is appended to ``missed_faces`` as ``(photo, face)`` when a list is given."""
    counts = {name: [0, 0, 0] for name in bucket_names()}
    for photo in photos:
        image = read_image(photo.path)
        output = anonymised(blurrer, image, source=str(photo.path)).image
        for face in photo.faces:
            value = detail_removed(output, image, face)
            if not math.isnan(value):
                band = 0 if value < MISSED_BELOW else (1 if value < COVERED_THRESHOLD else 2)
                counts[size_bucket(face.width)][band] += 1
                if band == 0 and missed_faces is not None:
                    missed_faces.append((photo, face))
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+", help='NAME="unetblur blur flags", as `unetblur privacy --method`')
    parser.add_argument("--data", required=True, help="dataset folders, DIR or DIR1,DIR2")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=0, help="photos per dataset folder (0: all)")
    parser.add_argument("--list-missed", type=float, metavar="W", help="also list the missed faces at least W px wide")
    args = parser.parse_args(argv)
    try:
        photos = held_out_photos(args.data, args.split, args.limit)
        blurrers = {name: open_blurrer_for(bcfg, threads=bcfg.threads)
                    for name, bcfg in map(parse_method, args.methods)}
        print("| method | bucket | faces | missed | partial | covered |\n|---|---|---|---|---|---|")
        missed_by_method: dict[str, list] = {name: [] for name in blurrers} if args.list_missed is not None else {}
        for name, blurrer in blurrers.items():
            counts = bands_by_bucket(blurrer, photos, missed_by_method.get(name))
            for bucket, (missed, partial, covered) in counts.items():
                total = missed + partial + covered
                if total:
                    print(f"| `{name}` | {bucket} | {total} | {missed / total:.3f} | {partial / total:.3f} | "
                          f"{covered / total:.3f} |")
        if missed_by_method:
            print("\n| method | photo | face box (x1, y1, x2, y2) | width |\n|---|---|---|---|")
            for name, faces in missed_by_method.items():
                for photo, face in faces:
                    if face.width >= args.list_missed:
                        box = ", ".join(f"{v:.0f}" for v in face.box)
                        print(f"| `{name}` | {photo.key} | {box} | {face.width:.0f} |")
    except UnetblurError as exc:
        print(f"miss_or_partial: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
