"""Does equalising what the network sees lift the faces it misses? A probe of contrast-limited adaptive
histogram equalisation (CLAHE, on luma) of the working frame, before the network only: the blur is still
composited onto the untouched photo. ``--mirror`` probes a second test-time change: the network also reads
the mirrored frame, and each cell keeps the larger of the two face probabilities (two network passes).

The package's missed 32-64 px val faces are darker and flatter than the covered ones
(missed_faces_exposure_val.md), so the question is whether a cheap test-time remedy finds them without
training. Each variant runs the whole `unetblur blur` pipeline of ``--method`` with the equaliser in front of
the network (clip limit ``c``; 0 = off), and the flags after ``:`` added to the method:

    python experiments/full_photo/input_equalisation.py --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 \\
        --split val --variant "0:" --variant "2:" --variant "2:--min-peak 0.95" --variant "0:--min-peak 0.7"
    python experiments/full_photo/input_equalisation.py --data runs/datasets/wider_lb320,runs/datasets/fddb_lb320 \
        --split val --mirror --variant "0:" --variant "0:--threshold 0.7" --variant "0:--min-peak 0.9"

Val only when choosing anything: the test split is for the final table. Untimed (the table's job).
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from unetblur.anonymise import anonymised, open_blurrer_for
from unetblur.commands.privacy import parse_method
from unetblur.errors import UnetblurError
from unetblur.evaluate import metrics as M
from unetblur.evaluate.photos import MethodScores, held_out_photos, score_photo, summarise_scores
from unetblur.io import read_image

from stride_snap_ab import compositing_blurrer


def clahe_luma(clip: float):
    """RGB uint8 → RGB uint8 with CLAHE (8×8 tiles) applied to the luma channel."""
    equaliser = cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8))

    def equalise(image: np.ndarray) -> np.ndarray:
        ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = equaliser.apply(np.ascontiguousarray(ycc[..., 0]))
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    return equalise


def equalised(blurrer, clip: float, mirror: bool = False):
    """The blurrer with its network's input equalised (its coarse mask read from the equalised frame) and, with
    ``mirror``, read from the mirrored frame too (the larger probability of each cell kept)."""
    if clip <= 0 and not mirror:
        return blurrer
    model = compositing_blurrer(blurrer).model
    coarse = model.coarse_mask
    if clip > 0:
        plain, equalise = coarse, clahe_luma(clip)
        coarse = lambda small: plain(equalise(small))
    if mirror:
        single = coarse

        def coarse(small):
            prob, stride = single(small)
            # The mirrored map lines up cell for cell when the working width is a multiple of the output
            # stride (4 px for the package); otherwise it is off by less than a cell.
            return np.maximum(prob, single(np.ascontiguousarray(small[:, ::-1]))[0][:, ::-1]), stride
    model.coarse_mask = coarse
    return blurrer


def score(blurrer, photos, cfg) -> str:
    """Table cells: coverage per width bucket, of the faces ≥ 32 px, and bg_changed, scored as the
    privacy table scores them (untimed, no re-identification)."""
    scores = MethodScores()
    for i, photo in enumerate(photos):
        image = read_image(photo.path)
        output = anonymised(blurrer, image, source=str(photo.path)).image
        score_photo(scores, image, output, photo, i, {}, None)
    summary = summarise_scores(scores, np.zeros((0, 128)), cfg)
    coverage = " | ".join(f"{summary['coverage'][b]:.3f}" for b in [*M.bucket_names(), ">=32"])
    return f"{coverage} | {100 * summary['bg_changed']:.2f} % |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--method", default="--model student", help="unetblur blur flags")
    ap.add_argument("--variant", action="append", required=True, help="CLIP:EXTRA FLAGS (clip 0 = no equaliser)")
    ap.add_argument("--mirror", action="store_true", help="every variant also reads the mirrored frame")
    args = ap.parse_args(argv)
    try:
        clip_flags = [(float(clip), flags) for clip, _, flags in (v.partition(":") for v in args.variant)]
    except ValueError:
        print(f"input_equalisation: variants are CLIP:FLAGS with a number for CLIP, got {args.variant}", file=sys.stderr)
        return 2
    try:
        runs = [(clip, flags, parse_method(f"m={args.method} {flags}")[1]) for clip, flags in clip_flags]
        photos = held_out_photos(args.data, args.split)
    except UnetblurError as exc:
        print(f"input_equalisation: {exc}", file=sys.stderr)
        return 2
    print(f"{len(photos)} photos of {args.data} ({args.split}); method {args.method}"
          f"{', mirrored frame read too' if args.mirror else ''}\n")
    print(f"| CLAHE clip | extra flags | {' | '.join(f'cov {b}' for b in M.bucket_names())} | cov ≥32 | bg_changed |")
    print("|---" * (4 + len(M.bucket_names())) + "|")
    for clip, flags, cfg in runs:
        blurrer = equalised(open_blurrer_for(cfg, threads=cfg.threads), clip, args.mirror)
        print(f"| {clip:g} | {flags or '—'} | {score(blurrer, photos, cfg)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
