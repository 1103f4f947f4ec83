"""THE blur definition: ``blur_faces`` makes every training target and powers every detector baseline.

Shapes
    ``ellipse`` (default): the ellipse inscribed in the face box, both semi-axes multiplied by
    ``mask_scale`` (default 1.2, so the jaw and forehead corners a tight box misses are covered;
    the ellipse then covers ≈ 1.13× the box's area). A face that carries its own ellipse (FDDB)
    uses that ellipse, also scaled by ``mask_scale``.
    ``box``: the face box scaled by ``mask_scale`` about its centre.
Styles
    ``gaussian`` (default): Gaussian blur whose kernel scales with the face: kernel ≈
    ``strength`` × face size (longer box side), odd, at least 5 px. ``kernel=41`` fixes it
    instead (the thesis's dataset v1). Large kernels are computed on a downscaled patch
    (sigma ≤ 8 px there) and upscaled, which is visually the same and keeps 4K video fast; this
    is part of the definition, so targets and baselines agree bit for bit.
    ``pixelate``: mosaic of ``pixel_blocks`` blocks across the face (``kernel`` fixes the block
    size in pixels instead). ``solid``: fill with ``color``.
Pixels outside the mask are returned unchanged (bit-exact): the background is never touched.

Needs only NumPy and OpenCV, so the torch-free runtime composites with the same rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import cv2
import numpy as np

from .errors import UnetblurError
from .faces import Face

STYLES = ("gaussian", "pixelate", "solid")
SHAPES = ("ellipse", "box")
#: The thesis's dataset v1: a fixed Gaussian kernel of 41 px.
THESIS_V1_KERNEL = 41
_MAX_DIRECT_SIGMA = 8.0  # above this sigma, blur a downscaled patch (see module docstring)


@dataclass(frozen=True)
class BlurFields:
    """The blur settings a user chooses, as flat config fields: THE one spelling of them in
    :class:`BlurSettings`, in every config that blurs (``blur``, ``data build``, ``data synth``) and on
    every command line (``--style --shape --mask-scale --kernel --strength``), so the YAML that made a
    dataset configures ``unetblur blur`` to match it. ``data build``'s older spellings
    (``blur_style``, ``--blur-kernel`` ...) are read as aliases (:data:`BLUR_ALIASES`)."""

    style: str = "gaussian"
    shape: str = "ellipse"
    mask_scale: float = 1.2
    kernel: int | None = None           # fixed Gaussian kernel / mosaic block (41 = the thesis's dataset v1);
                                        # None = scales with the face
    strength: float = 1.0               # kernel ≈ strength × face size

    def blur_settings(self) -> "BlurSettings":
        """These fields as a :class:`BlurSettings` (raises :class:`UnetblurError` on a bad value)."""
        return BlurSettings(**{name: getattr(self, name) for name in BLUR_FIELDS})


#: The names of the user-facing blur fields, in order.
BLUR_FIELDS = tuple(f.name for f in fields(BlurFields))
#: Older spellings of the blur fields (``data build`` YAML keys and flags before they were unified).
BLUR_ALIASES = {"blur_style": "style", "blur_shape": "shape", "blur_kernel": "kernel", "blur_strength": "strength"}


@dataclass(frozen=True)
class BlurSettings(BlurFields):
    """The whole blur definition: :class:`BlurFields` plus the knobs no command line exposes."""

    pixel_blocks: int = 8
    color: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self):
        if self.style not in STYLES:
            raise UnetblurError(f"blur style {self.style!r} is unknown; choose one of {', '.join(STYLES)}")
        if self.shape not in SHAPES:
            raise UnetblurError(f"blur shape {self.shape!r} is unknown; choose one of {', '.join(SHAPES)}")
        if not (self.mask_scale > 0 and math.isfinite(self.mask_scale)):
            raise UnetblurError(f"mask_scale must be a positive number, got {self.mask_scale}")
        if self.kernel is not None and self.kernel < 1:
            raise UnetblurError(f"blur kernel must be a positive number of pixels, got {self.kernel}")
        if not self.strength > 0:
            raise UnetblurError(f"blur strength must be positive, got {self.strength}")
        if self.pixel_blocks < 1:
            raise UnetblurError(f"pixel_blocks must be at least 1, got {self.pixel_blocks}")

    def gaussian_kernel(self, face_size: float) -> int:
        """Odd Gaussian kernel size in pixels for a face of ``face_size`` pixels."""
        k = self.kernel if self.kernel is not None else max(5, int(round(self.strength * face_size)))
        return k if k % 2 == 1 else k + 1

    def pixel_block(self, face_size: float) -> int:
        """Mosaic block size in pixels for a face of ``face_size`` pixels."""
        if self.kernel is not None:
            return max(1, int(self.kernel))
        return max(2, int(round(face_size / self.pixel_blocks)))

    def blur_settings(self) -> "BlurSettings":
        return self

    @classmethod
    def from_dict(cls, data: dict | None) -> "BlurSettings":
        """The settings a manifest, an export or a config recorded (``to_dict``'s form; older spellings
        accepted, keys of later versions ignored); raises :class:`UnetblurError` on a bad value.
        The one way a recorded blur is read back."""
        if not isinstance(data, dict):
            return DEFAULT_BLUR
        known = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in data.items():
            key = BLUR_ALIASES.get(key, key)
            if key in known:
                kwargs[key] = tuple(value) if isinstance(value, list) else value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise UnetblurError(f"recorded blur settings {data!r} are not usable ({exc})") from None

    def to_dict(self) -> dict:
        return {"style": self.style, "shape": self.shape, "mask_scale": self.mask_scale, "kernel": self.kernel,
                "strength": self.strength, "pixel_blocks": self.pixel_blocks, "color": list(self.color)}


#: The default blur: what every blurrer uses when it is given no settings.
DEFAULT_BLUR = BlurSettings()

_SHIFT = 4  # cv2 drawing fixed-point bits: sub-pixel accurate ellipses


def face_mask(shape_hw: tuple[int, int], face: Face, settings: BlurSettings,
              origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """HW uint8 mask (255 inside) of the region ``blur_faces`` changes for one face.

    ``origin`` ``(x, y)``: the mask is the window of the frame that starts there (the face stays in
    frame coordinates), so a window's pixels are the whole-frame mask's, bit for bit.
    """
    mask = np.zeros(shape_hw, np.uint8)
    s, one = settings.mask_scale, 1 << _SHIFT
    ox, oy = origin
    if settings.shape == "box":
        cx, cy = face.center
        hw, hh = face.width * s / 2, face.height * s / 2
        x1, y1 = int(round(cx - hw)) - ox, int(round(cy - hh)) - oy
        x2, y2 = int(round(cx + hw)) - ox, int(round(cy + hh)) - oy
        mask[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = 255
        return mask
    if face.ellipse is not None:
        cx, cy, ax, ay, angle = face.ellipse
    else:
        (cx, cy), ax, ay, angle = face.center, face.width / 2, face.height / 2, 0.0
    center = (int(round((cx - 0.5) * one)) - ox * one, int(round((cy - 0.5) * one)) - oy * one)
    axes = (max(1, int(round(ax * s * one))), max(1, int(round(ay * s * one))))
    cv2.ellipse(mask, center, axes, float(angle), 0, 360, 255, thickness=-1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def blur_patch(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, face_size: float,
               settings: BlurSettings) -> np.ndarray:
    """The blurred pixels of ``image[y1:y2, x1:x2]`` for a face of ``face_size`` px.

    The Gaussian reads context around the patch from the image itself (not a mirrored border),
    so a blurred face blends into its surroundings.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if settings.style == "solid":
        out = np.empty((y2 - y1, x2 - x1, image.shape[2]), image.dtype)
        out[...] = np.asarray(settings.color, dtype=image.dtype)[: image.shape[2]]
        return out
    if settings.style == "pixelate":
        patch = image[y1:y2, x1:x2]
        block = settings.pixel_block(face_size)
        ph, pw = patch.shape[:2]
        small = cv2.resize(patch, (max(1, pw // block), max(1, ph // block)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (pw, ph), interpolation=cv2.INTER_NEAREST)
    k = settings.gaussian_kernel(face_size)
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for a kernel of size k
    margin = k // 2 + 1
    X1, Y1, X2, Y2 = max(0, x1 - margin), max(0, y1 - margin), min(w, x2 + margin), min(h, y2 + margin)
    ctx = image[Y1:Y2, X1:X2]
    # The Gaussian runs on float32: OpenCV's fixed-point uint8 path is off by up to 1.6 grey levels
    # from the exact blur and, on face-sized patches, twice as slow; float32 rounds to within 0.5.
    if sigma <= _MAX_DIRECT_SIGMA:
        blurred = cv2.GaussianBlur(ctx.astype(np.float32), (k, k), sigma, borderType=cv2.BORDER_REFLECT)
    else:
        f = sigma / _MAX_DIRECT_SIGMA
        ch, cw = ctx.shape[:2]
        small = cv2.resize(ctx, (max(1, round(cw / f)), max(1, round(ch / f))), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small.astype(np.float32), (0, 0), _MAX_DIRECT_SIGMA, borderType=cv2.BORDER_REFLECT)
        blurred = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_LINEAR)
    return _as_dtype(blurred[y1 - Y1:y2 - Y1, x1 - X1:x2 - X1], image.dtype)


def _as_dtype(pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``pixels`` (float32) in ``dtype``, rounded to the nearest level and saturated for integer images."""
    if not np.issubdtype(dtype, np.integer):
        return pixels.astype(dtype, copy=False)
    if dtype == np.uint8:
        # The Gaussian and the bilinear upsampling weigh image pixels by weights ≥ 0, so no pixel is negative,
        # and for x ≥ 0 OpenCV's |x| rounded half to even and saturated is clip(rint(x)): one pass, not three.
        return cv2.convertScaleAbs(pixels).reshape(pixels.shape)
    info = np.iinfo(dtype)
    return np.clip(np.rint(pixels), info.min, info.max).astype(dtype)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x1, y1, x2, y2)`` (end exclusive) of the set pixels of a 2-D bool or uint8 mask, None when none is set.
    ``cv2.boundingRect`` reads the mask once: ~40x faster than ``np.nonzero`` on a face-sized mask."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8) if mask.dtype == np.bool_ else mask)
    return (x, y, x + w, y + h) if w else None


def paste(out: np.ndarray, patch: np.ndarray, x1: int, y1: int, where: np.ndarray) -> None:
    """Copy ``patch``'s pixels where ``where`` (HW bool) is set into ``out`` at ``(x1, y1)``, in place.
    ``np.copyto(where=)`` is ~4× faster than boolean-index assignment on a face-sized patch."""
    h, w = where.shape
    np.copyto(out[y1:y1 + h, x1:x1 + w], patch, where=where[..., None])


def blur_faces(image: np.ndarray, faces: Sequence[Face], settings: BlurSettings | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Blur ``faces`` in ``image``.

    Args:
        image: HWC uint8 RGB array.
        faces: boxes in ``image``'s pixels; boxes partly outside the image are clipped,
            invalid ones (NaN, empty) ignored.
        settings: style, shape and strength; defaults to :class:`BlurSettings()`.
    Returns:
        ``(blurred, mask)``: the HWC uint8 result and the HW uint8 union mask (255 = blurred).
        Each face is blurred from the original pixels, so the result does not depend on
        the blur of a neighbour (overlaps take the later face's blur).
    """
    settings = settings or DEFAULT_BLUR
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"blur_faces expects an HWC uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    out = image.copy()
    union = np.zeros((h, w), np.uint8)
    for face in faces:
        if not face.is_valid():
            continue
        # Each face's mask is drawn on a window around it, so the cost follows the face, not the frame.
        X1, Y1, X2, Y2 = _face_window(face, settings, h, w)
        if X1 >= X2 or Y1 >= Y2:
            continue
        m = face_mask((Y2 - Y1, X2 - X1), face, settings, origin=(X1, Y1))
        box = mask_box(m)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        patch = blur_patch(image, X1 + x1, Y1 + y1, X1 + x2, Y1 + y2, face.size, settings)
        region = m[y1:y2, x1:x2] > 0
        paste(out, patch, X1 + x1, Y1 + y1, region)
        union[Y1 + y1:Y1 + y2, X1 + x1:X1 + x2] |= m[y1:y2, x1:x2]
    return out, union


def _face_window(face: Face, settings: BlurSettings, h: int, w: int) -> tuple[int, int, int, int]:
    """A window of an ``h``×``w`` image holding all of ``face_mask``'s region for ``face`` (2 px spare)."""
    s = settings.mask_scale
    if settings.shape == "box" or face.ellipse is None:
        (cx, cy), rx, ry = face.center, face.width * s / 2, face.height * s / 2
    else:
        cx, cy, ax, ay, _ = face.ellipse
        rx = ry = max(ax, ay) * s  # any rotation stays inside the circle of the longer semi-axis
    return (max(0, math.floor(cx - rx) - 2), max(0, math.floor(cy - ry) - 2),
            min(w, math.ceil(cx + rx) + 3), min(h, math.ceil(cy + ry) + 3))
