"""Full resolution from a small network: the U-Net finds the faces, ``blur_faces`` rules blur them.

A compact U-Net runs on the whole frame, optionally downscaled to a *working size* (its cost grows
with the pixels it sees). Its face mask (the mask channel, or where its RGB output differs from
its input) is split into connected components at the working size, and only each component's box
is upsampled to the frame's resolution (cost grows with face area, not frame size). Each
component becomes a face box, and the blur of that face is made at full resolution with the one
blur definition (:func:`unetblur.blur.blur_patch`, strength from the face size). Pixels outside
the blurred region are the input's, bit for bit: the network never touches the background.

Torch-free: NumPy and OpenCV only (the model behind :class:`ImageModel` may be ONNX Runtime).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..blur import DEFAULT_BLUR, BlurSettings, blur_patch, face_mask, mask_box, paste
from ..errors import UnetblurError
from ..faces import Face
from .base import BlurResult, ImageModel, check_image, check_mask, difference_mask
from .onnx import upsample_output

#: How the region blurred for a component is chosen.
#: ``face``: the component's own pixels plus the ``blur_faces`` shape (ellipse/box, ``mask_scale``) of
#: the face the component implies, so a patchy mask still yields a whole blurred face (default).
#: ``mask``: exactly the component's pixels.
REGIONS = ("face", "mask")


def working_scale(height: int, width: int, working_size: int | None) -> float:
    """Factor (≤ 1) that brings the longer side of an image down to ``working_size`` pixels (1 if None)."""
    if not working_size:
        return 1.0
    return min(1.0, float(working_size) / max(height, width))


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """``(width, height)`` of an image scaled by ``factor`` (cv2's order), at least 1 pixel each."""
    return max(1, round(width * factor)), max(1, round(height * factor))


#: How much further than the working size a frame may be shrunk so that a side lands on a multiple of the
#: network's stride. The network pads each side up to the stride (64 for the packaged student): a 450-px
#: side runs as 512, 448 as 448. On the held-out photos a 3 % allowance cuts the padded pixels by 8.5 %.
STRIDE_SNAP = 0.03


def stride_snapped_scale(height: int, width: int, factor: float, stride: int, max_shrink: float = STRIDE_SNAP) -> float:
    """``factor``, or a factor at most ``max_shrink`` smaller that puts a side on a multiple of ``stride``
    when that leaves the network fewer padded pixels to compute (the smallest padded frame wins)."""
    if stride <= 1 or max_shrink <= 0:
        return factor

    def padded_area(f: float) -> int:
        w, h = scaled_size(height, width, f)
        return -(-w // stride) * -(-h // stride)

    best, best_area = factor, padded_area(factor)
    for side in (height, width):
        multiple = int(side * factor) // stride * stride  # the largest multiple of the stride not above the side
        f = multiple / side
        if multiple and f >= factor * (1.0 - max_shrink) and padded_area(f) < best_area:
            best, best_area = f, padded_area(f)
    return best


class CompositingBlurrer:
    """A :class:`Blurrer` that composites a full-resolution blur where an :class:`ImageModel` sees faces.

    Args:
        model: the U-Net behind any backend (``predict(image) -> (rgb, mask|None)``).
        settings: the blur applied to each found face (style, shape, strength, ``mask_scale``).
        working_size: longer side, in pixels, at which the network runs (None: native resolution).
            Frames smaller than this are not upscaled.
        threshold: mask probability at or above which a pixel is face (mask-channel models); for
            models without a mask channel the difference mask is already 0/1.
        scales: extra downscaling factors relative to the working size; one network pass per scale,
            masks OR-ed. ``(1.0, 0.5)`` adds a half-resolution pass that sees faces larger than the
            network's receptive field at a size it was trained on.
        dilate: grow the face mask by this many full-resolution pixels before blurring (safety margin).
        grow: scale each found face about its centre by this factor (≥ 1) before it is blurred: a
            model whose masks cover only the middle of a face (a small student) still blurs all of
            it, and the blur's strength follows the grown face. Part of a model's operating point.
        min_peak: keep a region only if its mask peaks at ≥ this (0: every region ≥ ``threshold``).
            Above ``threshold`` it is hysteresis: ``min_peak`` decides *whether* there is a face (false
            positives), the lower ``threshold`` *how much* of it is blurred (a small face's mask is
            confident only at its centre). Part of a model's operating point.
        small_area, small_peak: a component smaller than ``small_area`` working-resolution pixels is kept
            when it peaks at ≥ ``small_peak`` instead of ``min_peak`` (0: off). A small region costs little
            background when it is wrong, and a small face's mask is less sure than a large one's, so the
            bar that holds large false positives down need not drop small faces. Part of a model's
            operating point.
        min_area: components smaller than this many working-resolution pixels are noise and dropped.
        region: ``face`` or ``mask`` (see :data:`REGIONS`).
        diff_threshold: 0-255 threshold of the difference mask for models without a mask channel.
        close: morphological closing radius (working pixels) that joins the fragments a difference
            mask breaks a face into (smooth skin changes little under blur); default 2 for models
            without a mask channel, 0 with one.
        name: shown in reports (default ``<model>+composite``).

    ``faces`` of the result are the estimated face boxes (component box shrunk by ``mask_scale``, so
    ``blur_faces`` would re-expand it to the component), with score = the component's peak probability.
    """

    def __init__(self, model: ImageModel, settings: BlurSettings | None = None, *, working_size: int | None = None,
                 threshold: float = 0.5, scales: Sequence[float] = (1.0,), dilate: int = 0, grow: float = 1.0,
                 min_peak: float = 0.0, small_area: int = 0, small_peak: float = 0.0, min_area: int = 4,
                 region: str = "face", diff_threshold: int = 8, close: int | None = None,
                 name: str | None = None):
        if working_size is not None and working_size < 16:
            raise UnetblurError(f"working size must be at least 16 pixels (or none for native), got {working_size}")
        if not 0.0 < threshold <= 1.0:
            raise UnetblurError(f"mask threshold must be in (0, 1], got {threshold}")
        scales = tuple(float(s) for s in scales) or (1.0,)
        if any(not 0.0 < s <= 1.0 for s in scales):
            raise UnetblurError(f"scales must be in (0, 1] (fractions of the working size), got {list(scales)}")
        if dilate < 0:
            raise UnetblurError(f"dilate must be a number of pixels ≥ 0, got {dilate}")
        if not 1.0 <= grow <= 4.0:
            raise UnetblurError(f"grow must be a factor between 1 and 4, got {grow}")
        if not 0.0 <= min_peak <= 1.0:
            raise UnetblurError(f"min_peak must be a mask probability in [0, 1], got {min_peak}")
        if not 0.0 <= small_peak <= 1.0:
            raise UnetblurError(f"small_peak must be a mask probability in [0, 1], got {small_peak}")
        if small_area < 0:
            raise UnetblurError(f"small_area must be a number of working pixels ≥ 0, got {small_area}")
        if region not in REGIONS:
            raise UnetblurError(f"region {region!r} is unknown; choose one of {', '.join(REGIONS)}")
        self.model = model
        self.settings = settings or DEFAULT_BLUR
        self.working_size = working_size
        self.threshold = float(threshold)
        self.scales = scales
        self.dilate = int(dilate)
        self.grow = float(grow)
        self.min_peak = float(min_peak)
        self.small_area = int(small_area)
        self.small_peak = float(small_peak)
        self.min_area = int(min_area)
        self.region = region
        self.diff_threshold = int(diff_threshold)
        self.close = close
        self._used_difference = False
        self.name = name or f"{getattr(model, 'name', 'model')}+composite"

    # ------------------------------------------------------------------ mask

    def face_probability(self, image: np.ndarray) -> np.ndarray:
        """HW float32 in [0, 1] at the *working* resolution: max over the passes (smaller passes upsampled)."""
        prob, cell = self.face_map(image)
        work_w, work_h = self._working_size(*image.shape[:2])
        return upsample_output(prob[None], cell, (work_h, work_w))[0]

    def _pass_scale(self, height: int, width: int, scale: float = 1.0) -> float:
        """The factor by which a pass at ``scale`` of the working size resizes a frame of this size:
        snapped to the model's stride (:func:`stride_snapped_scale`)."""
        return stride_snapped_scale(height, width, working_scale(height, width, self.working_size) * scale,
                                    getattr(self.model, "stride", 1))

    def _working_size(self, height: int, width: int) -> tuple[int, int]:
        """``(width, height)`` at which the network sees a frame of this size (the first pass)."""
        return scaled_size(height, width, self._pass_scale(height, width))

    def face_map(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """``(probability map, cell)``: the face probability (max over the passes, smaller passes
        resampled to the first pass's grid), each map pixel covering ``cell``×``cell`` working pixels.

        A model whose graph ends at a coarser grid (``coarse_mask``, an exported strided-stem U-Net) is
        read there (cell = its output stride): components are found on that grid and only each face's
        box is upsampled to full resolution, so the cost beyond the network grows with face area, not
        with frame size. Other models give a working-resolution map (cell = 1).
        """
        h, w = image.shape[:2]
        coarse = getattr(self.model, "coarse_mask", None) if getattr(self.model, "mask_channel", False) \
            and getattr(self.model, "output_stride", 1) > 1 else None
        prob, cell = None, 1
        for s in self.scales:
            f = self._pass_scale(h, w, s)
            if f < 1.0:
                # Pixel-area averaging where the frame really shrinks (no aliasing); bilinear for a shrink of a
                # few per cent (a stride snap): within 4 levels of area averaging at 0.97 (mean 0.13 on val
                # photos) at a fifth of its cost (a 450-px photo to 448: 0.4 ms instead of 2.1).
                interpolation = cv2.INTER_AREA if f < 1.0 - STRIDE_SNAP else cv2.INTER_LINEAR
                small = cv2.resize(image, scaled_size(h, w, f), interpolation=interpolation)
            else:
                small = image
            if coarse is not None:
                mask, stride = coarse(small)
                # A NaN or wrong-sized mask would read as "no face": refuse it (fail closed).
                check_mask(mask, (-(-small.shape[0] // stride), -(-small.shape[1] // stride)), self.name)
            else:
                stride = 1
                rgb, mask = self.model.predict(small, rgb=not self.model.mask_channel)
                check_mask(mask, small.shape[:2], self.name)
                if mask is None:
                    mask = difference_mask(small, rgb, self.diff_threshold)
                    self._used_difference = True
            mask = np.asarray(mask, np.float32)
            if prob is None:
                prob, cell = mask, stride
            else:
                if mask.shape != prob.shape:
                    mask = cv2.resize(mask, (prob.shape[1], prob.shape[0]), interpolation=cv2.INTER_LINEAR)
                prob = np.maximum(prob, mask)
        return prob, cell

    def components(self, prob: np.ndarray, full_hw: tuple[int, int], cell: int = 1):
        """Connected components of ``prob ≥ threshold`` (a :meth:`face_map` of ``cell``×``cell`` working
        pixels per value) as full-resolution pieces: a list of ``(pixels bool crop, (x1, y1, x2, y2)
        full-res box of the crop, peak prob)``."""
        H, W = full_hw
        h0, w0 = prob.shape
        work_w, work_h = self._working_size(H, W)
        sx, sy = W / work_w * cell, H / work_h * cell
        binary = (prob >= self.threshold).astype(np.uint8)
        close = self.close if self.close is not None else (2 if self._used_difference else 0)
        if close:
            k = 2 * close + 1
            binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
            # Pixels closing added take the threshold value, so they survive the full-res upsampling.
            prob = np.where(binary > 0, np.maximum(prob, self.threshold), prob)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        pad = self.dilate
        out = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            area *= cell * cell   # in working pixels, whatever grid the map is on
            if area < self.min_area:
                continue
            # One map pixel of margin: bilinear upsampling spreads a pixel's value that far. The margin keeps
            # its own (below-threshold) values, so the component ends where the upsampled map crosses the
            # threshold; only another component's pixels are zeroed.
            lx1, ly1, lx2, ly2 = max(0, x - 1), max(0, y - 1), min(w0, x + bw + 1), min(h0, y + bh + 1)
            labels_here = labels[ly1:ly2, lx1:lx2]
            local = np.where((labels_here == i) | (labels_here == 0), prob[ly1:ly2, lx1:lx2], 0.0).astype(np.float32)
            peak = float(local.max())
            if peak < (self.small_peak if area < self.small_area else self.min_peak):
                continue
            X1, Y1 = int(np.floor(lx1 * sx)), int(np.floor(ly1 * sy))
            X2, Y2 = min(W, int(np.ceil(lx2 * sx))), min(H, int(np.ceil(ly2 * sy)))
            if (sx, sy) != (1.0, 1.0):
                # Bilinear upsampling of this box only (within a pixel of a whole-frame resize, and no
                # sampling grids: a face filling a 48 MP photo costs one float copy of its box).
                local = cv2.resize(local, (X2 - X1, Y2 - Y1), interpolation=cv2.INTER_LINEAR)
            crop = local >= self.threshold
            del local
            if pad:
                k = 2 * pad + 1
                X1p, Y1p, X2p, Y2p = max(0, X1 - pad), max(0, Y1 - pad), min(W, X2 + pad), min(H, Y2 + pad)
                grown = np.zeros((Y2p - Y1p, X2p - X1p), np.uint8)
                grown[Y1 - Y1p:Y1 - Y1p + crop.shape[0], X1 - X1p:X1 - X1p + crop.shape[1]] = crop
                crop = cv2.dilate(grown, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
                X1, Y1, X2, Y2 = X1p, Y1p, X2p, Y2p
            tight = mask_box(crop)
            if tight is None:
                continue
            # Tighten to the pixels actually set, so the box is the component's own.
            cx1, cy1, cx2, cy2 = tight
            out.append((crop[cy1:cy2, cx1:cx2], (X1 + cx1, Y1 + cy1, X1 + cx2, Y1 + cy2), min(1.0, peak)))
        return out

    def face_from_box(self, box: tuple[int, int, int, int], score: float) -> Face:
        """The face a component box implies: the box shrunk by ``mask_scale`` about its centre (the
        blur_faces masks the model learned are the face ellipse/box grown by ``mask_scale``), then
        grown by ``grow``."""
        x1, y1, x2, y2 = box
        s = self.settings.mask_scale / self.grow
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / (2 * s), (y2 - y1) / (2 * s)
        return Face(cx - hw, cy - hh, cx + hw, cy + hh, score)

    # ------------------------------------------------------------------ blur

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        check_image(image)
        prob, cell = self.face_map(image)
        comps = self.components(prob, image.shape[:2], cell)
        out, union, found = composite_faces(image, comps, self)
        return BlurResult(out, union, found)


def composite_faces(image: np.ndarray, comps, blurrer: CompositingBlurrer):
    """Blend a full-resolution blur into a copy of ``image`` over each component.

    Returns ``(image, mask, faces)``: HWC uint8, HW float32 {0, 1} union of the blurred regions, and
    one face per component. Work is confined to each face's box, so it is independent of frame size.
    """
    h, w = image.shape[:2]
    out = image.copy()
    union = np.zeros((h, w), np.float32)
    found: list[Face] = []
    settings = blurrer.settings
    for crop, (x1, y1, x2, y2), score in comps:
        face = blurrer.face_from_box((x1, y1, x2, y2), score)
        found.append(face)
        if blurrer.region == "face":
            # The face's blur_faces region, drawn on a window around the component (margin for rounding).
            m = 2 + int(np.ceil(max(x2 - x1, y2 - y1) * 0.05))
            X1, Y1, X2, Y2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
            sel = face_mask((Y2 - Y1, X2 - X1), face, settings, origin=(X1, Y1)) > 0
            sel[y1 - Y1:y2 - Y1, x1 - X1:x2 - X1] |= crop
        else:
            X1, Y1, X2, Y2, sel = x1, y1, x2, y2, crop
        patch = blur_patch(image, X1, Y1, X2, Y2, face.size, settings)
        paste(out, patch, X1, Y1, sel)
        union[Y1:Y2, X1:X2][sel] = 1.0
    return out, union, found


#: The name the comparison factory's composite hook imports.
CompositeBlurrer = CompositingBlurrer
