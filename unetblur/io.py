"""Image reading and writing at the edges of the library: HWC uint8 RGB arrays.

Every reader goes through :func:`read_image`, which applies EXIF orientation, converts any mode
(grayscale, RGBA, palette, 16-bit, CMYK) to 8-bit RGB and refuses decompression bombs, so the
rest of the code sees one kind of array.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadInputError
from .fsutil import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: Largest image we decode, in pixels (≈ a 16k × 12k photo). Larger declared sizes are refused
#: before decoding, which also stops decompression bombs. Override with UNETBLUR_MAX_PIXELS.
MAX_PIXELS = int(os.environ.get("UNETBLUR_MAX_PIXELS", 200_000_000))


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` sorted by path; hidden files (our temporaries) are skipped."""
    root = Path(root)
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in root.glob(pattern)
        if p.is_file() and is_image_path(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def iter_images(root: str | os.PathLike, recursive: bool = True) -> Iterator[Path]:
    """Like :func:`list_images` but streams paths without holding the whole listing (huge folders)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_path(name):
                yield Path(dirpath) / name


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L"):
        # Integer rescale 0..65535 → 0..255 (rounded) without a float64 copy of a large image.
        arr = np.asarray(img).astype(np.uint32)
        gray = ((arr * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "I":
        arr = np.asarray(img)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(arr.astype(np.float32) * np.float32(255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        gray = np.clip(np.round(arr * 255.0 if arr.max(initial=0) <= 1.0 else arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparency onto black: the same thing a viewer shows on a dark page and
        # deterministic, so targets and inputs agree.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


# PIL's own guard (a warning above MAX_IMAGE_PIXELS, an error above twice that) uses the same limit,
# so UNETBLUR_MAX_PIXELS is the one number that decides, whichever check fires first.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_BOMB_SIZE = re.compile(r"Image size \((\d+) pixels\)")


def _too_large(path: Path, pixels: int | None, what: str = "image") -> BadInputError:
    size = f"{pixels} pixels" if pixels else "its declared size"
    return BadInputError(path, f"{what} is too large: {size}, above the limit of {MAX_PIXELS} pixels "
                               "(possible decompression bomb; set UNETBLUR_MAX_PIXELS to raise the limit)")


def check_pixels(path: str | os.PathLike, width: int, height: int, what: str = "image") -> None:
    """Refuse a declared size above :data:`MAX_PIXELS` (images, video frames, stream frames) before
    anything of that size is allocated."""
    if width * height > MAX_PIXELS:
        raise _too_large(Path(path), width * height, what)


def _decode(path: str | os.PathLike, what: str) -> Image.Image:
    """Open, size-check, fully decode and EXIF-orient one image file (the one guarded way in).

    The caller closes the returned image. No extra full-size copy is made unless the EXIF
    orientation needs one (large photos: memory is the decoded image plus the array made from it).
    """
    path = Path(path)
    if path.is_dir():
        raise BadInputError(path, f"is a folder, expected {what} file")
    if not path.is_file():
        raise BadInputError(path, "file not found")
    if path.stat().st_size == 0:
        raise BadInputError(path, "file is empty (0 bytes)")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise BadInputError(path, f"cannot read file ({exc.strerror})") from None
    img = None
    try:
        with fh, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(fh)
                w, h = img.size
                check_pixels(path, w, h)
                if w < 1 or h < 1:
                    raise BadInputError(path, "image has no pixels")
                frames = getattr(img, "n_frames", 1)
                # Only the first frame would be read (and written): the others would be lost without a
                # word. MPO (phone JPEGs) carry previews/depth maps, not more pictures of the scene.
                if frames > 1 and img.format != "MPO":
                    raise BadInputError(path, f"holds {frames} frames or pages ({img.format}: multi-page or "
                                              "animated); only single images are supported: split it first")
                img.load()
                if img.getexif().get(0x0112, 1) not in (0, 1):
                    upright = ImageOps.exif_transpose(img)
                    img.close()
                    img = upright
                return img
            except BaseException:
                if img is not None:
                    img.close()
                raise
    except BadInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        m = _BOMB_SIZE.search(str(exc))
        raise _too_large(path, int(m.group(1)) if m else None) from None
    except UnidentifiedImageError:
        raise BadInputError(path, f"not a readable {what} (unknown or corrupt format)") from None
    except MemoryError:
        raise BadInputError(path, "not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError) as exc:
        # Pillow's decoders raise a variety of these on crafted or damaged files.
        raise BadInputError(path, f"corrupt or truncated {what} ({str(exc) or type(exc).__name__})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an HWC uint8 RGB array with EXIF orientation applied.

    Raises :class:`BadInputError` naming the file for anything unreadable: missing, empty,
    not an image, truncated, or larger than :data:`MAX_PIXELS` (refused from the header, before
    decoding, so a decompression bomb costs no memory). Memory while decoding is about 3 bytes per
    pixel for the result plus one decoded copy (4 bytes per pixel for 16-bit images).
    """
    img = _decode(path, "image")
    try:
        arr = _to_rgb_uint8(img)
    finally:
        img.close()  # free the decoded image before the copy below: lower peak memory
    # np.asarray over a Pillow image is a read-only view; callers draw on, augment and hand
    # these arrays to torch, so they get an ordinary writable array.
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel mask PNG as HW uint8 (0 or 255 expected), with the same guards as
    :func:`read_image` (empty, corrupt, too large) and EXIF orientation applied."""
    img = _decode(path, "mask")
    try:
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return np.ascontiguousarray(_to_rgb_uint8(img)[..., 0])
        return np.array(img if img.mode == "L" else img.convert("L"))
    finally:
        img.close()


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95, exif: bytes | None = None) -> None:
    """Write an HWC uint8 RGB (or HW uint8 mask) array atomically; format follows the suffix.

    PNG is lossless. No metadata is written unless ``exif`` is given (privacy by default).
    """
    path = Path(path)
    if image.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8, got {image.dtype}")
    img = Image.fromarray(image)
    suffix = path.suffix.lower()
    params: dict = {}
    if suffix in (".jpg", ".jpeg"):
        params = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    elif suffix == ".webp":
        params = {"quality": quality}
    elif suffix == ".png":
        params = {"compress_level": 1}
    if exif:
        params["exif"] = exif
    with atomic_path(path) as tmp:
        img.save(tmp, format=Image.registered_extensions().get(suffix, "PNG"), **params)


def read_exif(path: str | os.PathLike) -> bytes | None:
    """Raw EXIF bytes of an image (for ``--keep-metadata``), orientation reset to 1 since pixels are upright."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            if not exif:
                return None
            exif[0x0112] = 1
            return exif.tobytes()
    except (OSError, UnidentifiedImageError):
        return None
