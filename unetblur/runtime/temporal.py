"""Temporal hold for video: keep blurring a face for a few frames after the method loses it.

Flicker (a face that is blurred, then visible for one frame, then blurred again) is the most common
complaint about frame-by-frame anonymisers: a single uncovered frame is enough to recognise
someone. :class:`TemporalBlurrer` wraps any :class:`Blurrer`; a face found in frame t keeps being
blurred (with the same ``blur_faces`` rules) in frames t+1 … t+K unless a new detection overlaps it.

:func:`uncovered_frames` measures flicker against ground truth: the frames in which some face is
not covered by the blurred region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..blur import DEFAULT_BLUR, BlurSettings, blur_faces, face_mask
from ..errors import UnetblurError
from ..faces import Face
from .base import Blurrer, BlurResult


def _overlaps(a: Face, b: Face) -> bool:
    return min(a.x2, b.x2) > max(a.x1, b.x1) and min(a.y2, b.y2) > max(a.y1, b.y1)


#: Frames a lost face stays blurred in video and streams (``unetblur blur --hold-frames``): long enough
#: to bridge a detector's single-frame misses, short enough that a face that left is not chased.
DEFAULT_HOLD_FRAMES = 3


@dataclass
class _Track:
    face: Face
    frames_left: int


class TemporalBlurrer:
    """Wraps a :class:`Blurrer` for a sequence of frames: faces lost for ≤ ``hold_frames`` frames stay blurred.

    ``settings``: the blur of held faces (default: the wrapped blurrer's ``settings``). Call
    :meth:`reset` between unrelated videos. Not thread-safe: one instance per video stream.
    """

    def __init__(self, blurrer: Blurrer, hold_frames: int = DEFAULT_HOLD_FRAMES, settings: BlurSettings | None = None):
        if hold_frames < 0:
            raise UnetblurError(f"hold frames must be ≥ 0, got {hold_frames}")
        self.blurrer = blurrer
        self.hold_frames = int(hold_frames)
        self.settings = settings or getattr(blurrer, "settings", None) or DEFAULT_BLUR
        self.name = getattr(blurrer, "name", "blurrer") + (f"+hold{hold_frames}" if hold_frames else "")
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        self._tracks = []

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        result = self.blurrer(image, faces)
        current = list(result.faces)
        # A held face that a current face overlaps is the same face found again: the new box replaces it.
        held = [t for t in self._tracks if not any(_overlaps(t.face, c) for c in current)]
        self._tracks = [_Track(f, self.hold_frames) for f in current]
        if not held:
            return result
        h, w = image.shape[:2]
        extra = [c for c in (t.face.clipped(w, h) for t in held) if c is not None]
        out, mask = result.image, result.mask
        if extra:
            # Blur held regions from the *input* pixels (blur_faces' rule), then paste them over the output.
            blurred, held_mask = blur_faces(image, extra, self.settings)
            sel = held_mask > 0
            out = out.copy()
            out[sel] = blurred[sel]
            mask = np.maximum(mask if mask is not None else 0.0, sel.astype(np.float32))
        self._tracks += [_Track(t.face, t.frames_left - 1) for t in held if t.frames_left > 1]
        return BlurResult(out, mask, current + extra)


def face_coverage(mask: np.ndarray, face: Face, settings: BlurSettings | None = None) -> float:
    """Share (0-1) of ``face``'s ``blur_faces`` region (ellipse/box of ``settings``) inside ``mask``
    (HW, > 0 = blurred)."""
    h, w = mask.shape[:2]
    region = face_mask((h, w), face, settings or DEFAULT_BLUR) > 0
    n = int(region.sum())
    if n == 0:
        return 1.0
    return float((np.asarray(mask)[region] > 0).sum()) / n


def uncovered_frames(masks: Iterable[np.ndarray], faces_per_frame: Iterable[Sequence[Face]], *,
                     min_coverage: float = 0.8, min_size: float = 0.0,
                     settings: BlurSettings | None = None) -> dict:
    """Count frames in which a ground-truth face is not covered by the blurred region.

    Args:
        masks: per frame, HW mask of what the method blurred (>0 = blurred), e.g. ``BlurResult.mask``.
        faces_per_frame: per frame, the ground-truth faces (in that frame's pixels).
        min_coverage: a face is covered when at least this share of its region is blurred.
        min_size: faces smaller than this (longer side, px) are ignored.
    Returns:
        ``{"frames", "frames_with_faces", "uncovered_frames", "uncovered_faces", "faces",
        "uncovered_frame_indices"}``.
    """
    frames = with_faces = uncovered = faces_total = faces_uncovered = 0
    indices = []
    for i, (mask, faces) in enumerate(zip(masks, faces_per_frame)):
        frames += 1
        faces = [f for f in faces if f.size >= min_size]
        if not faces:
            continue
        with_faces += 1
        bad = sum(face_coverage(mask, f, settings) < min_coverage for f in faces)
        faces_total += len(faces)
        faces_uncovered += bad
        if bad:
            uncovered += 1
            indices.append(i)
    return {"frames": frames, "frames_with_faces": with_faces, "uncovered_frames": uncovered,
            "uncovered_faces": faces_uncovered, "faces": faces_total, "uncovered_frame_indices": indices}
