"""Mine a mask-channel model's false blobs on the training photos of ``unetblur data build`` datasets
(``ROOT/train_negative/``, see unetblur/training/mining.py); ``mined_negative_weight`` in a training
config then charges them. Each stored photo is read at its own size, the size training shows it at.

    python experiments/full_photo/mine_false_blobs.py runs/full_photo/s20.pt \\
        --data runs/datasets/wider_gf320,runs/datasets/fddb_gf320,runs/datasets/wider_gf480,runs/datasets/fddb_gf480,runs/datasets/wider_gf640

Train split only: val and test choose and judge the operating points. ``--measure SPLIT`` writes nothing and
prints the share of stored pixels the model's false blobs cover on SPLIT (``--limit`` photos, evenly spaced), so
a model trained on the maps can be checked against the one they were mined from:

    python experiments/full_photo/mine_false_blobs.py runs/full_photo/s20.pt --data runs/datasets/wider_gf640 \
        --measure val --limit 120 --min-peak 0.95
"""

from __future__ import annotations

import argparse
import sys
import time

from unetblur.data.layout import dataset_folders
from unetblur.detectors import open_detector
from unetblur.errors import UnetblurError
from unetblur.runtime.composite import CompositingBlurrer
from unetblur.runtime.factory import open_image_model
from unetblur.training.mining import MiningSettings, false_blob_share, mine_dataset


def main(argv: list[str] | None = None) -> int:
    defaults = MiningSettings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a mask-channel model file (.pt or .onnx)")
    p.add_argument("--data", required=True, help="dataset folder(s) (DIR or DIR1,DIR2)")
    p.add_argument("--threshold", type=float, default=defaults.threshold)
    p.add_argument("--min-peak", type=float, default=defaults.min_peak)
    p.add_argument("--detector-score", type=float, default=defaults.detector_score,
                   help="spare CenterFace detections at or above this score (unannotated faces)")
    p.add_argument("--measure", choices=("train", "val"), help="write nothing; print the false-blob share of this split")
    p.add_argument("--limit", type=int, default=0, help="with --measure: at most this many photos per dataset (0 = all)")
    args = p.parse_args(argv)
    settings = MiningSettings(args.threshold, args.min_peak, args.detector_score)
    try:
        model = open_image_model(args.model)
        if not getattr(model, "mask_channel", False):
            raise UnetblurError(f"{args.model}: has no mask channel")
        detector = open_detector("centerface")

        def face_probability(image):
            # working_size = the stored photo's longer side: the network sees it unscaled, as in training.
            return CompositingBlurrer(model, working_size=max(image.shape[:2])).face_probability(image)

        for root in dataset_folders(args.data):
            start = time.perf_counter()
            if args.measure:
                share = false_blob_share(root, args.measure, face_probability, settings, detector, args.limit)
                print(f"{root} {args.measure}: false blobs cover {100 * share:.2f} % of the stored pixels "
                      f"(threshold {settings.threshold}, min_peak {settings.min_peak})", flush=True)
                continue
            summary = mine_dataset(root, face_probability, settings, detector, str(args.model))
            print(f"{root}: {summary['photos_with_negatives']}/{summary['photos']} photos charged, "
                  f"{100 * summary['negative_share']:.2f} % of pixels, {time.perf_counter() - start:.0f} s", flush=True)
    except UnetblurError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
