"""Re-identification check (DESIGN.md §4 ``reid_rate``): is a blurred face still recognisable?

For each ground-truth face at least :data:`REID_MIN_FACE` pixels wide, dlib's face recognition
ResNet (from the ``face_recognition_models`` package) embeds the face in the original image I
and in the method's output O, both aligned with the 5-point shape predictor shipped beside it.
The face is *re-identified* when the two 128-d embeddings are within dlib's same-person
threshold :data:`REID_THRESHOLD` (0.6, Euclidean). ``reid_rate`` = re-identified / eligible faces:
lower is better for privacy. :func:`reid_rank1` is the stricter identification test: is the
output's nearest original, among all faces of the run, its own?

Optional: ``pip install unetblur[reid]`` (``dlib-bin`` + ``face_recognition_models``). Without
them :func:`reid_available` is False and reports show :data:`REID_UNAVAILABLE` in the column.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UnetblurError
from ..faces import Face

#: dlib's same-person distance threshold for its ResNet embeddings.
REID_THRESHOLD = 0.6
#: Faces narrower than this (pixels of the evaluated image) are too small for the recogniser.
REID_MIN_FACE = 48
#: What a report shows in place of a number when the extra is not installed.
REID_UNAVAILABLE = "unavailable (install unetblur[reid])"

_RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
_SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"


class ReidUnavailableError(UnetblurError):
    """dlib or face_recognition_models is not installed."""


def _models_dir() -> Path | None:
    # face_recognition_models locates its files with pkg_resources, which recent setuptools no
    # longer ships; find the package folder directly instead of importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / _RECOGNITION_MODEL).is_file() or not (folder / _SHAPE_MODEL).is_file():
        return None
    return folder


def reid_available() -> bool:
    """True when dlib and the face_recognition_models weights can be loaded."""
    return importlib.util.find_spec("dlib") is not None and _models_dir() is not None


class FaceRecognizer:
    """dlib's face recognition ResNet with its 5-point aligner; loads the weights once."""

    def __init__(self):
        if not reid_available():
            raise ReidUnavailableError(f"reid_rate needs dlib and face_recognition_models: {REID_UNAVAILABLE}")
        import dlib

        folder = _models_dir()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(folder / _SHAPE_MODEL))
        self._net = dlib.face_recognition_model_v1(str(folder / _RECOGNITION_MODEL))

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """128-d float64 embedding of ``face`` (box in ``image`` pixels) in an HWC uint8 RGB image."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        rect = self._dlib.rectangle(int(round(face.x1)), int(round(face.y1)),
                                    int(round(face.x2)), int(round(face.y2)))
        landmarks = self._shape(image, rect)
        return np.asarray(self._net.compute_face_descriptor(image, landmarks), dtype=np.float64)


@lru_cache(maxsize=1)
def default_recognizer() -> FaceRecognizer:
    """One shared recogniser per process (the weights take a second to load)."""
    return FaceRecognizer()


def reid_distances(output: np.ndarray, input: np.ndarray, faces: Sequence[Face], *,
                   min_face: float = REID_MIN_FACE, recognizer: FaceRecognizer | None = None) -> list[float]:
    """Embedding distance between each face in ``output`` and in ``input`` (both HWC uint8 RGB, same size).

    Faces narrower than ``min_face`` pixels get NaN (not eligible).
    """
    if output.shape != input.shape:
        raise ValueError(f"reid: shapes differ, {output.shape} vs {input.shape}")
    rec = recognizer or default_recognizer()
    distances = []
    for face in faces:
        if face.width < min_face:
            distances.append(math.nan)
            continue
        d = np.linalg.norm(rec.embed(output, face) - rec.embed(input, face))
        distances.append(float(d))
    return distances


def is_reidentified(distance: float, threshold: float = REID_THRESHOLD) -> bool:
    """Same person according to the recogniser: distance ≤ threshold."""
    return bool(distance <= threshold)


def reid_rate(output: np.ndarray, input: np.ndarray, faces: Sequence[Face], *,
              min_face: float = REID_MIN_FACE, threshold: float = REID_THRESHOLD,
              recognizer: FaceRecognizer | None = None) -> float:
    """Share of eligible faces (≥ ``min_face`` px wide) still re-identified in ``output``; NaN when none is eligible."""
    eligible = [d for d in reid_distances(output, input, faces, min_face=min_face, recognizer=recognizer)
                if not math.isnan(d)]
    if not eligible:
        return math.nan
    return sum(is_reidentified(d, threshold) for d in eligible) / len(eligible)


def reid_rank1(output_embeddings: np.ndarray, gallery_embeddings: np.ndarray,
               own_index: Sequence[int]) -> float:
    """Gallery identification (DESIGN.md §4 ``reid_rank1``): share of output faces whose nearest gallery
    embedding (Euclidean) is their own original.

    ``output_embeddings``: (N, D), one row per output face; ``gallery_embeddings``: (G, D), the
    originals of every face of the run; ``own_index[i]``: the gallery row of output face i's original.
    Chance is 1 / G, so report G beside the number. A tie with the own original counts as a miss
    (a blur that maps every face to the same embedding must not score). NaN when N = 0.
    """
    out = np.asarray(output_embeddings, dtype=np.float64)
    gallery = np.asarray(gallery_embeddings, dtype=np.float64)
    own = np.asarray(own_index, dtype=np.int64)
    if out.ndim != 2 or gallery.ndim != 2 or out.shape[1] != gallery.shape[1] or own.shape != (len(out),):
        raise ValueError(f"reid_rank1: expected (N, D) outputs, (G, D) gallery and N own indices, got "
                         f"{out.shape}, {gallery.shape}, {own.shape}")
    if len(out) == 0:
        return math.nan
    if own.min() < 0 or own.max() >= len(gallery):
        raise ValueError(f"reid_rank1: own indices must lie in [0, {len(gallery)}), got {own.min()}..{own.max()}")
    distances = np.linalg.norm(out[:, None, :] - gallery[None, :, :], axis=2)       # (N, G)
    own_distance = distances[np.arange(len(out)), own]
    others = distances.copy()
    others[np.arange(len(out)), own] = np.inf
    return float(np.mean(own_distance < others.min(axis=1)))
