"""Mined negatives: where a mask-channel model fires on a training photo that shows no face there.

``unetblur blur`` keeps a found region when its probability passes the threshold and its peak reaches
``min_peak``; on whole photos most of the background it changes is such regions on the scene (bushes,
wheels, skin, signs: experiments/full_photo/bg_sources_stage20_val.md). A uniform charge on every
confident background pixel (``hard_negative_weight``) moved the student along the same
coverage-vs-background frontier. These maps charge only the regions a model was seen to keep, so the
loss can push them down without taxing the faces' own neighbourhood. Measured (stage 22 in
experiments/full_photo/README.md): it removed a quarter of them on val, and as many faces with them.

The maps go to ``ROOT/train_negative/STEM.png`` (the optional folder of unetblur/data/layout.py), for the
train split only: the val and test photos choose and judge operating points and must not teach the model.
:func:`write_negative_maps` writes any other per-photo map there the same way (the ring past large faces of
experiments/full_photo/ring_negatives.py, stage 24).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..data.layout import FACES, list_samples, negative_dir, require_dataset
from ..errors import UnetblurError
from ..evaluate.metrics import background_mask
from ..faces import Face, read_faces_jsonl
from ..io import read_image, write_image

MINED_FILE = "mined.json"


@dataclass(frozen=True)
class MiningSettings:
    threshold: float = 0.5      # a region is the pixels at or above this probability (the compositor's threshold)
    min_peak: float = 0.9       # ... kept only if its peak reaches this (a little under the package's 0.95, so
                                # the regions just below the line are charged too)
    detector_score: float = 0.3  # CenterFace boxes at or above this score are spared as unannotated faces

    def check(self) -> None:
        if not 0 < self.threshold < 1 or not 0 < self.min_peak <= 1:
            raise UnetblurError(f"threshold must be in (0, 1) and min_peak in (0, 1], got {self.threshold}, "
                                f"{self.min_peak}")
        if not 0 <= self.detector_score <= 1:
            raise UnetblurError(f"detector_score must be in [0, 1], got {self.detector_score}")


def false_blob_map(prob: np.ndarray, faces: list[Face], settings: MiningSettings) -> np.ndarray:
    """HW bool: the pixels of ``prob`` (HW float in [0, 1]) that belong to a kept region (≥ threshold,
    peak ≥ min_peak) and lie in bg_changed's background of ``faces`` (outside each box grown
    ``BG_BOX_GROWTH``×): exactly what the region would cost in the full-photo table. ``faces``: the
    annotated ones and any the annotation lacks."""
    above = (prob >= settings.threshold).astype(np.uint8)
    n, labels = cv2.connectedComponents(above, connectivity=8)
    if n <= 1:
        return np.zeros(prob.shape, bool)
    peaks = np.zeros(n, np.float32)
    np.maximum.at(peaks, labels.ravel(), prob.ravel().astype(np.float32))
    kept = peaks >= settings.min_peak
    kept[0] = False
    return kept[labels] & background_mask(prob.shape, faces)


def _faces_of(root: str | os.PathLike) -> dict[str, list[Face]]:
    path = Path(root) / FACES
    return read_faces_jsonl(path) if path.is_file() else {}


def _stored_faces(faces_of: dict[str, list[Face]], split: str, sample) -> list[Face]:
    """The faces of one stored photo, in its own pixels (a new list: callers add to it)."""
    return list(faces_of.get(f"{split}/{sample.image.name}", []))


def _photo_blobs(sample, faces: list[Face], face_probability, settings: MiningSettings, detector):
    """:func:`false_blob_map` of one stored photo, sparing its annotated ``faces`` and the detector's."""
    image = read_image(sample.image)
    prob = face_probability(image)
    if prob.shape != image.shape[:2]:
        raise UnetblurError(f"{sample.image}: the model's map is {prob.shape[::-1]}, the image {image.shape[1::-1]}")
    faces += [f for f in detector.detect(image) if f.score >= settings.detector_score] if detector else []
    return false_blob_map(prob, faces, settings)


def false_blob_share(root: str | os.PathLike, split: str, face_probability, settings: MiningSettings, detector=None,
                     limit: int = 0) -> float:
    """The share of ``split``'s stored pixels that :func:`false_blob_map` marks (``limit`` > 0: that many photos,
    evenly spaced): a measurement only, nothing is written, so it may read val."""
    settings.check()
    require_dataset(root, split)
    samples = list_samples(root, split)
    if limit and len(samples) > limit:
        samples = samples[::len(samples) // limit][:limit]
    faces_of = _faces_of(root)
    charged = pixels = 0
    for s in samples:    # counted as they come: a split's maps at 640 px would hold ~0.4 GB
        blob = _photo_blobs(s, _stored_faces(faces_of, split, s), face_probability, settings, detector)
        charged, pixels = charged + int(blob.sum()), pixels + blob.size
    return charged / max(pixels, 1)


def mine_dataset(root: str | os.PathLike, face_probability, settings: MiningSettings, detector=None,
                 model_name: str = "") -> dict:
    """Write ``root/train_negative/`` from ``face_probability(image) → HW prob`` (the image's own size) and
    return the summary also written there (``mined.json``), see :func:`write_negative_maps`."""
    settings.check()
    return write_negative_maps(root, lambda sample, faces: _photo_blobs(sample, faces, face_probability, settings,
                                                                        detector),
                               {"model": model_name, "settings": asdict(settings)})


def write_negative_maps(root: str | os.PathLike, map_of, about: dict) -> dict:
    """Write ``root/train_negative/STEM.png`` for every train photo where ``map_of(sample, faces) → HW bool``
    (``faces``: the stored photo's faces, in its pixels) marks any pixel, and return ``about`` with the counts,
    also written there (``mined.json``). A previous folder is replaced only once the new one is complete."""
    require_dataset(root, "train")
    samples = list_samples(root, "train")
    faces_of = _faces_of(root)
    out = negative_dir(root, "train")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    photos = charged = pixels = 0
    for s in samples:
        blob = map_of(s, _stored_faces(faces_of, "train", s))
        photos += 1
        pixels += blob.size
        if blob.any():
            charged += int(blob.sum())
            write_image(tmp / f"{s.stem}.png", blob.astype(np.uint8) * 255)
    summary = {**about, "photos": photos, "photos_with_negatives": len(list(tmp.glob("*.png"))),
               "negative_share": charged / max(pixels, 1)}
    (tmp / MINED_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return summary
