"""The thesis's privacy study, ours: can a face recogniser still tell who is in a model's output?

On a dataset split (the letterboxed test photos), every ground-truth face at least ``min_face``
pixels wide in the stored image is embedded by dlib's ResNet (:mod:`.reid`) in the original (the
*gallery*, one row per face) and in each method's output. Per method:

* ``reid_verify``: share of faces whose output embedding lies within dlib's same-person
  threshold (0.6) of its own original: the thesis's question ("is it still the same person?",
  asked there with ArcFace cosine similarity < 0.4).
* ``reid_rank1``: share of faces whose output's nearest gallery face is its own original (chance
  = 1 / gallery size): identification, which ranks blurs where verification cannot.

The recogniser is injectable so the bookkeeping is tested without dlib.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.layout import FACES, list_samples, manifest_blur, read_manifest, require_dataset
from ..errors import UnetblurError
from ..faces import iter_faces_jsonl
from ..io import read_image
from .reid import REID_MIN_FACE, REID_THRESHOLD, reid_rank1


def privacy_study(data: str | os.PathLike, methods: Sequence[tuple[str, str]], *, split: str = "test",
                  min_face: float = REID_MIN_FACE, threshold: float = REID_THRESHOLD, threads: int = 1,
                  recognizer=None) -> dict:
    """Run the study on ``split`` of dataset ``data`` for ``methods`` ((name, spec) as ``compare`` takes them).

    Returns ``{"split", "min_face", "threshold", "images", "faces_eligible", "gallery", "chance",
    "methods": {name: {"reid_verify", "reid_rank1", "median_distance"}}}``; shares in [0, 1], NaN
    when no face is eligible.
    """
    from ..runtime.factory import open_blurrer

    root = require_dataset(data, split)
    if not methods:
        raise UnetblurError("privacy study: give at least one method")
    if recognizer is None:
        from .reid import default_recognizer
        recognizer = default_recognizer()
    faces_of = {rec["image"]: rec["faces"] for rec in iter_faces_jsonl(root / FACES)} \
        if (root / FACES).is_file() else {}
    # Only images with an eligible face are run: the others cannot change any number here.
    cases = []
    for sample in list_samples(root, split):
        eligible = [f for f in faces_of.get(f"{split}/{sample.image.name}", []) if f.width >= min_face]
        if eligible:
            cases.append((read_image(sample.image), eligible))
    gallery = [recognizer.embed(image, f) for image, faces in cases for f in faces]
    settings = manifest_blur(read_manifest(root))
    results = {}
    for name, spec in methods:
        blurrer = open_blurrer(spec, settings, name=name, threads=threads)
        outputs = []
        for image, faces in cases:
            out = np.asarray(blurrer(image, faces).image)
            outputs.extend(recognizer.embed(out, f) for f in faces)
        if gallery:
            distances = np.linalg.norm(np.asarray(outputs) - np.asarray(gallery), axis=1)
            rank1 = reid_rank1(np.asarray(outputs), np.asarray(gallery), range(len(gallery)))
            results[name] = {"reid_verify": float(np.mean(distances <= threshold)), "reid_rank1": rank1,
                             "median_distance": float(np.median(distances))}
        else:
            results[name] = {"reid_verify": math.nan, "reid_rank1": math.nan, "median_distance": math.nan}
    return {"dataset": str(Path(root)), "split": split, "min_face": min_face, "threshold": threshold,
            "images": len(cases), "faces_eligible": len(gallery), "gallery": len(gallery),
            "chance": 1 / len(gallery) if gallery else math.nan, "methods": results}
