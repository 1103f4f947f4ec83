"""The metric definitions of DESIGN.md §4: one definition each, shared by training, distillation,
export parity checks and the comparison harness.

Notation: I = input, T = target, O = method output, M = union of ground-truth face masks.

Every function is duck-typed: it takes either

* NumPy arrays, HWC (or HW) images: float in [0, 1] or uint8 in [0, 255] (divided by 255), and
  returns a Python ``float``; or
* torch tensors, NCHW (or CHW) float in [0, 1] (uint8 is divided by 255), and returns a 0-dim
  tensor (differentiable where the maths allows, so a loss can reuse it).

Pixel errors are pooled over every element given: for a batch, ``mse`` is the mean over all
images, channels and pixels together (not a mean of per-image values).

Masks are 0/1: bool, floats (> 0.5 is face) or integers (non-zero is face, so 0/1 and 0/255 both work),
and broadcastable to the image. A mask with one dimension fewer than the image is given a
channel axis where the layout has one: last for NumPy (HW → HW1), third from last for torch
(NHW → N1HW). A masked metric over an empty region (no face pixels for ``*_face``, no
background for ``*_bg``) is **NaN**: "not measurable", never 0. Aggregators use ``nanmean``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..faces import SIZE_BUCKETS, size_bucket

__all__ = [
    "mse", "mae", "psnr", "ssim",
    "mse_face", "mae_face", "mse_bg", "mae_bg", "psnr_bg",
    "blur_completeness", "is_covered", "coverage_recall", "false_blur",
    "detail_removed", "coverage", "coverage_interval", "bg_changed", "changed_pixels", "background_mask", "false_blur_images",
    "FALSE_BLUR_SHARE",
    "BG_BOX_GROWTH",
    "COVERED_THRESHOLD", "CHANGED_THRESHOLD", "SIZE_BUCKETS", "size_bucket", "bucket_names", "group_by_bucket",
    "psnr_from_mse",
]

#: A face is *covered* when its ``detail_removed`` (privacy) reaches this; ``coverage_recall`` applies
#: the same bar to ``blur_completeness`` (agreement with the reference blur, thesis-style).
COVERED_THRESHOLD = 0.8
#: An image counts in ``false_blur_images`` when more than this share of its background changed.
FALSE_BLUR_SHARE = 0.01
#: ``bg_changed``'s background: outside every face box grown by this factor about its centre.
BG_BOX_GROWTH = 1.5
#: A pixel is *changed* when some channel differs by more than this (values in [0, 1]).
CHANGED_THRESHOLD = 8 / 255
# Float noise guard so a uint8 difference of exactly 8 never counts as "more than 8/255".
_EPS = 1e-6


# --------------------------------------------------------------------------- array plumbing

def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _as_float(x: Any):
    """[0, 1] floats: uint8 (and other integer types) are divided by 255."""
    if _is_torch(x):
        import torch
        if x.dtype == torch.bool:
            return x.float()
        if not torch.is_floating_point(x):
            return x.float() / 255.0
        return x
    x = np.asarray(x)
    if x.dtype == bool:
        return x.astype(np.float64)
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float64) / 255.0
    return x.astype(np.float64, copy=False)


def _as_mask(mask: Any, like: Any):
    """0/1 float mask with a channel axis added where needed so it broadcasts against ``like``."""
    if _is_torch(like):
        import torch
        m = mask if _is_torch(mask) else torch.as_tensor(np.asarray(mask))
        m = m.to(like.device)
        m = (m > 0.5) if torch.is_floating_point(m) else (m != 0)
        m = m.to(like.dtype if torch.is_floating_point(like) else torch.float32)
        if m.ndim == like.ndim - 1 and like.ndim >= 3:
            m = m.unsqueeze(-3)
        return m
    m = np.asarray(mask.detach().cpu().numpy() if _is_torch(mask) else mask)
    m = ((m > 0.5) if np.issubdtype(m.dtype, np.floating) else (m != 0)).astype(np.float64)
    if m.ndim == np.ndim(like) - 1 and np.ndim(like) >= 3:
        m = m[..., None]
    return m


def _channel_axis(x: Any) -> int | None:
    """Axis holding colour channels: last for NumPy HWC, third from last for torch (N)CHW."""
    if x.ndim < 3:
        return None
    return -3 if _is_torch(x) else -1


def _nan_like(x: Any):
    if _is_torch(x):
        import torch
        return torch.tensor(float("nan"), dtype=x.dtype if x.is_floating_point() else torch.float32,
                            device=x.device)
    return float("nan")


def _result(value: Any):
    return value if _is_torch(value) else float(value)


def _log10(x: Any):
    if _is_torch(x):
        import torch
        return torch.log10(x)
    return np.log10(x) if x > 0 else -np.inf


def _masked_mean(values: Any, mask: Any):
    """Mean of ``values`` over the elements where the (broadcast) mask is 1; NaN when empty."""
    if _is_torch(values):
        full = mask.expand_as(values) if mask.shape != values.shape else mask
        count = full.sum()
        if float(count) == 0:
            return _nan_like(values)
        return (values * full).sum() / count
    full = np.broadcast_to(mask, values.shape)
    count = full.sum()
    if count == 0:
        return float("nan")
    return float((values * full).sum() / count)


def _check_same_shape(a: Any, b: Any, what: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def _sq_err(output: Any, target: Any):
    o, t = _as_float(output), _as_float(target)
    _check_same_shape(o, t, "metric")
    return (o - t) ** 2


def _abs_err(output: Any, target: Any):
    o, t = _as_float(output), _as_float(target)
    _check_same_shape(o, t, "metric")
    return abs(o - t)


# --------------------------------------------------------------------------- whole image

def mse(output: Any, target: Any):
    """Mean squared error over all elements, values in [0, 1]."""
    err = _sq_err(output, target)
    return _result(err.mean())


def mae(output: Any, target: Any):
    """Mean absolute error over all elements, values in [0, 1]."""
    err = _abs_err(output, target)
    return _result(err.mean())


def psnr_from_mse(value: Any):
    """PSNR in dB for a peak of 1.0: ``10·log10(1 / mse)``; +inf for a perfect match, NaN stays NaN."""
    if _is_torch(value):
        return -10.0 * _log10(value)
    value = float(value)
    if math.isnan(value):
        return float("nan")
    return math.inf if value == 0 else -10.0 * math.log10(value)


def psnr(output: Any, target: Any):
    """Peak signal-to-noise ratio in dB (peak 1.0) of the whole image; +inf when identical."""
    return psnr_from_mse(mse(output, target))


def ssim(output: Any, target: Any):
    """Structural similarity of the whole image (Gaussian-free 7×7 window, data range 1).

    NumPy: ``skimage.metrics.structural_similarity`` on an HWC (or HW) image. Torch: the mean
    SSIM over an NCHW batch with ``torchmetrics`` (11×11 Gaussian window, its default).
    Images smaller than the window use the largest odd window that fits.
    """
    o, t = _as_float(output), _as_float(target)
    _check_same_shape(o, t, "ssim")
    if _is_torch(o):
        from torchmetrics.functional.image import structural_similarity_index_measure
        if o.ndim == 3:
            o, t = o.unsqueeze(0), t.unsqueeze(0)
        side = min(o.shape[-2:])
        kernel = min(11, side if side % 2 else side - 1)
        return structural_similarity_index_measure(o.float(), t.float(), data_range=1.0,
                                                   kernel_size=max(kernel, 1))
    from skimage.metrics import structural_similarity
    side = min(o.shape[:2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        return float("nan")
    channel_axis = -1 if o.ndim == 3 else None
    return float(structural_similarity(o, t, data_range=1.0, channel_axis=channel_axis, win_size=win))


# --------------------------------------------------------------------------- face / background

def mse_face(output: Any, target: Any, mask: Any):
    """Mean of (O−T)² over pixels inside the face mask M (all channels); NaN when M is empty."""
    err = _sq_err(output, target)
    return _masked_mean(err, _as_mask(mask, err))


def mae_face(output: Any, target: Any, mask: Any):
    """Mean of |O−T| over pixels inside the face mask M (all channels); NaN when M is empty."""
    err = _abs_err(output, target)
    return _masked_mean(err, _as_mask(mask, err))


def mse_bg(output: Any, target: Any, mask: Any):
    """Mean of (O−T)² over pixels outside the face mask M; NaN when the image is all face."""
    err = _sq_err(output, target)
    return _masked_mean(err, 1 - _as_mask(mask, err))


def mae_bg(output: Any, target: Any, mask: Any):
    """Mean of |O−T| over pixels outside the face mask M; NaN when the image is all face."""
    err = _abs_err(output, target)
    return _masked_mean(err, 1 - _as_mask(mask, err))


def psnr_bg(output: Any, target: Any, mask: Any):
    """PSNR (dB, peak 1.0) of the background only: how much of the scene a method damages."""
    return psnr_from_mse(mse_bg(output, target, mask))


# --------------------------------------------------------------------------- privacy

def blur_completeness(output: Any, input: Any, target: Any, face_mask: Any):
    """‖O−I‖² / ‖T−I‖² inside one face's mask: 0 = face untouched, 1 = changed as much as the target.

    Values above 1 mean the method changed the face more than the target does. NaN when the
    mask is empty or the target does not change the face at all (nothing to measure).
    """
    o, i, t = _as_float(output), _as_float(input), _as_float(target)
    _check_same_shape(o, i, "blur_completeness")
    _check_same_shape(t, i, "blur_completeness")
    m = _as_mask(face_mask, i)
    changed = (((o - i) ** 2) * m).sum()
    wanted = (((t - i) ** 2) * m).sum()
    if float(wanted) == 0:
        return _nan_like(o)
    return _result(changed / wanted)


def is_covered(completeness: float) -> bool:
    """A face is covered when its blur completeness is ≥ :data:`COVERED_THRESHOLD` (0.8)."""
    return bool(float(completeness) >= COVERED_THRESHOLD)


def coverage_recall(completeness: Iterable[float]) -> float:
    """"Agreement": :func:`coverage`'s share (≥ 0.8, NaN left out) over per-face blur completeness values."""
    return coverage(completeness)


def false_blur(output: Any, input: Any, mask: Any):
    """Share of background pixels (outside M) that the method changed by more than 8/255 in some channel.

    A pixel counts once whatever its channel count. NaN when the image has no background.
    """
    o, i = _as_float(output), _as_float(input)
    _check_same_shape(o, i, "false_blur")
    diff = abs(o - i)
    axis = _channel_axis(diff)
    if axis is not None:
        diff = diff.amax(dim=axis, keepdim=True) if _is_torch(diff) else diff.max(axis=axis, keepdims=True)
    changed = diff > CHANGED_THRESHOLD + _EPS
    changed = changed.float() if _is_torch(changed) else changed.astype(np.float64)
    background = 1 - _as_mask(mask, o)
    if _is_torch(background):
        if background.ndim == changed.ndim and background.shape[-3] != 1:
            background = background.amax(dim=-3, keepdim=True)
    elif background.ndim == changed.ndim and axis is not None and background.shape[-1] != 1:
        background = background.max(axis=-1, keepdims=True)
    return _masked_mean(changed, background)


# --------------------------------------------------------------------------- whole-photo privacy (NumPy)

def _grey(image: np.ndarray) -> np.ndarray:
    """HWC RGB (uint8 or [0, 1] float) → HW float64 grey in [0, 1] (ITU-R BT.601 weights)."""
    x = _as_float(image)
    return x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x


def _laplacian(grey: np.ndarray) -> np.ndarray:
    """3×3 Laplacian (4-neighbour) of a HW array; the outermost ring of pixels is 0 (no neighbours)."""
    out = np.zeros_like(grey)
    out[1:-1, 1:-1] = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1])
    return out


def detail_removed(output: np.ndarray, input: np.ndarray, face) -> float:
    """Share of the original's fine detail that the output no longer carries, over one face (DESIGN.md §4).

    ``1 − ⟨L(O), L(I)⟩ / ⟨L(I), L(I)⟩`` summed over the ellipse inscribed in the face box (a
    :class:`~unetblur.faces.Face` or ``(x1, y1, x2, y2)`` in the images' pixels), L = 3×3 Laplacian of
    the grey image in [0, 1]. Blur, mosaic and solid fill score ≈ 1, an untouched face 0, whatever the
    shape or style of the blurred region. NaN when the original has no detail there (flat) or the
    ellipse holds no pixel. ``output``/``input``: HWC RGB, same shape.
    """
    o, i = np.asarray(output), np.asarray(input)
    _check_same_shape(o, i, "detail_removed")
    x1, y1, x2, y2 = (float(v) for v in (face.box if hasattr(face, "box") else face))
    h, w = i.shape[:2]
    # The box plus one pixel of context, so the Laplacian at the ellipse's edge sees its neighbours.
    X1, Y1 = max(0, int(np.floor(x1)) - 1), max(0, int(np.floor(y1)) - 1)
    X2, Y2 = min(w, int(np.ceil(x2)) + 1), min(h, int(np.ceil(y2)) + 1)
    if X2 - X1 < 3 or Y2 - Y1 < 3:
        return float("nan")
    lo, li = _laplacian(_grey(o[Y1:Y2, X1:X2])), _laplacian(_grey(i[Y1:Y2, X1:X2]))
    ys, xs = np.mgrid[Y1:Y2, X1:X2]
    cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    inside = ((xs + 0.5 - cx) / ax) ** 2 + ((ys + 0.5 - cy) / ay) ** 2 <= 1.0
    inside[[0, -1], :] = False  # the ring whose Laplacian is undefined
    inside[:, [0, -1]] = False
    energy = float((li[inside] ** 2).sum())
    if energy <= 1e-12:
        return float("nan")
    return 1.0 - float((lo[inside] * li[inside]).sum()) / energy


def _covered_count(values: Iterable[float]) -> tuple[int, int]:
    """``(covered, measurable)`` faces over per-face ``detail_removed`` values (NaN: no detail, left out)."""
    finite = [float(v) for v in values if not math.isnan(float(v))]
    return sum(v >= COVERED_THRESHOLD for v in finite), len(finite)


def coverage(values: Iterable[float]) -> float:
    """Covered faces / faces over per-face ``detail_removed`` values (covered: ≥ :data:`COVERED_THRESHOLD`).

    Faces whose value is NaN (no detail in the original) are left out; NaN when none is left.
    """
    covered, n = _covered_count(values)
    return covered / n if n else float("nan")


def coverage_interval(values: Iterable[float], z: float = 1.96) -> tuple[float, float]:
    """95 % (``z`` = 1.96) Wilson score interval of :func:`coverage` over the same values: how far the
    share could move with another draw of as many faces. Two rows whose intervals overlap widely are
    not told apart by the table. ``(nan, nan)`` when no face is measurable."""
    covered, n = _covered_count(values)
    if not n:
        return float("nan"), float("nan")
    p = covered / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # All or none covered: the bound is exactly 1 or 0 (the formula's float rounding would miss it).
    return (0.0 if covered == 0 else centre - half), (1.0 if covered == n else centre + half)


def bg_changed(output: np.ndarray, input: np.ndarray, faces) -> float:
    """Share of background pixels whose largest channel difference |O−I| exceeds 8/255 (DESIGN.md §4).

    Background = outside every face box (``Face`` or ``(x1, y1, x2, y2)``) grown :data:`BG_BOX_GROWTH`×
    about its centre, so a method that blurs a face with a generous margin is not charged for it.
    NaN when no background is left. ``output``/``input``: HWC RGB, same shape.
    """
    changed = changed_pixels(output, input)
    background = background_mask(changed.shape, faces)
    count = int(background.sum())
    return float(changed[background].sum() / count) if count else float("nan")


def changed_pixels(output: np.ndarray, input: np.ndarray) -> np.ndarray:
    """HW bool: pixels whose largest channel difference |O−I| exceeds :data:`CHANGED_THRESHOLD`."""
    o, i = np.asarray(output), np.asarray(input)
    _check_same_shape(o, i, "changed_pixels")
    diff = np.abs(_as_float(o) - _as_float(i))
    return (diff.max(axis=-1) if diff.ndim == 3 else diff) > CHANGED_THRESHOLD + _EPS


def background_mask(shape_hw: tuple[int, int], faces, scale: float = 1.0, growth: float = BG_BOX_GROWTH) -> np.ndarray:
    """HW bool, True outside every face box (``Face`` or ``(x1, y1, x2, y2)``, times ``scale`` for an
    image resized by that factor) grown ``growth``× about its centre; with the default
    :data:`BG_BOX_GROWTH`, bg_changed's background."""
    background = np.ones(shape_hw, bool)
    h, w = shape_hw
    for face in faces:
        x1, y1, x2, y2 = (float(v) * scale for v in (face.box if hasattr(face, "box") else face))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        hw, hh = (x2 - x1) * growth / 2, (y2 - y1) * growth / 2
        gx1, gy1 = max(0, int(np.floor(cx - hw))), max(0, int(np.floor(cy - hh)))
        gx2, gy2 = min(w, int(np.ceil(cx + hw))), min(h, int(np.ceil(cy + hh)))
        background[gy1:gy2, gx1:gx2] = False
    return background


def false_blur_images(bg_changed_values: Iterable[float]) -> float:
    """Share of images whose ``bg_changed`` exceeds :data:`FALSE_BLUR_SHARE` (1 %); NaN values are left out."""
    finite = [float(v) for v in bg_changed_values if not math.isnan(float(v))]
    if not finite:
        return float("nan")
    return sum(v > FALSE_BLUR_SHARE for v in finite) / len(finite)


# --------------------------------------------------------------------------- size buckets

def bucket_names() -> list[str]:
    """Face-width bucket names of DESIGN.md §4, smallest first."""
    return [name for name, _, _ in SIZE_BUCKETS]


def group_by_bucket(values: Sequence[float], widths: Sequence[float]) -> dict[str, list[float]]:
    """Group per-face values by the width bucket (original-image pixels) of each face.

    Every bucket name is present (possibly with an empty list) so tables keep their columns.
    """
    if len(values) != len(widths):
        raise ValueError(f"group_by_bucket: {len(values)} values for {len(widths)} widths")
    groups: dict[str, list[float]] = {name: [] for name in bucket_names()}
    for value, width in zip(values, widths):
        groups[size_bucket(float(width))].append(float(value))
    return groups
