"""``unetblur data check``: validate a dataset folder against the layout of DESIGN.md §4.

Checks, per split: every input has a target and a mask with the same stem (and nothing is left
over), targets and masks are PNG (lossless), the three images of a sample have the same size,
masks are single-channel with values in {0, 255}; every file decodes; no leftover temporaries.
Then ``manifest.json`` counts and ``faces.jsonl`` records against what is on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BadInputError, UnetblurError
from ..faces import iter_faces_lines
from ..io import IMAGE_EXTENSIONS, read_image
from .layout import FACES, MANIFEST, SPLITS, split_dirs


def _files(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """Images by stem, and hidden leftovers (interrupted writes)."""
    by_stem: dict[str, Path] = {}
    hidden = []
    if not folder.is_dir():
        return by_stem, hidden
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if p.name.startswith("."):
            hidden.append(p)
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(p.stem, p)
    return by_stem, hidden


#: What a file's content must be, by its extension (Pillow's format names).
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF",
            ".tiff": "TIFF"}


def _format_problem(path: Path, role: str) -> str | None:
    """The content must be what the extension says: a JPEG saved as ``.png`` is lossy where the
    layout promises lossless, and tools that trust the name read it wrongly."""
    try:
        with Image.open(path) as img:
            actual = img.format
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None  # decoding problems are reported by the full read
    expected = _FORMATS.get(path.suffix.lower())
    if expected and actual != expected and not (expected == "JPEG" and actual == "MPO"):
        return f"{path}: {role} holds {actual} data but is named {path.suffix}"
    return None


def _mask_problem(path: Path, size: tuple[int, int]) -> str | None:
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return f"{path}: mask does not decode ({exc})"
    if mode not in ("L", "1"):
        return f"{path}: mask has mode {mode}; expected single-channel (L)"
    if arr.shape[1::-1] != size:
        return f"{path}: mask is {arr.shape[1]}x{arr.shape[0]} but its input is {size[0]}x{size[1]}"
    if mode == "L":
        bad = np.unique(arr[(arr != 0) & (arr != 255)])
        if bad.size:
            return f"{path}: mask has values other than 0 and 255 (e.g. {', '.join(map(str, bad[:5]))})"
    return None


def _check_sample(split: str, stem: str, img_path: Path, target: Path | None, mask: Path | None,
                  dirs: tuple[Path, Path, Path], problems: list[str]) -> None:
    """One input with its target and mask: present, readable, lossless, the same size."""
    _, blur_dir, mask_dir = dirs
    if target is None:
        problems.append(f"{img_path}: no target {blur_dir.name}/{stem}.png")
    if mask is None:
        problems.append(f"{img_path}: no mask {mask_dir.name}/{stem}.png")
    try:
        image = read_image(img_path)
    except BadInputError as exc:
        problems.append(f"{exc.path}: input {exc.problem}")
        return
    size = (image.shape[1], image.shape[0])
    for role, p in (("input", img_path), ("target", target), ("mask", mask)):
        msg = _format_problem(p, role) if p is not None else None
        if msg:
            problems.append(msg)
    if target is not None:
        if target.suffix.lower() != ".png":
            problems.append(f"{target}: target is not PNG (targets must be lossless)")
        try:
            t = read_image(target)
            if (t.shape[1], t.shape[0]) != size:
                problems.append(f"{target}: target is {t.shape[1]}x{t.shape[0]} but its input is "
                                f"{size[0]}x{size[1]}")
        except BadInputError as exc:
            problems.append(f"{exc.path}: target {exc.problem}")
    if mask is not None:
        if mask.suffix.lower() != ".png":
            problems.append(f"{mask}: mask is not PNG (masks must be lossless)")
        msg = _mask_problem(mask, size)
        if msg:
            problems.append(msg)


def _check_split(root: Path, split: str, problems: list[str], on_disk: set[str]) -> int:
    """The files of one split; returns its number of inputs and adds their keys to ``on_disk``."""
    dirs = split_dirs(root, split)
    img_dir = dirs[0]
    (images, h1), (targets, h2), (masks, h3) = (_files(d) for d in dirs)
    for p in h1 + h2 + h3:
        problems.append(f"{p}: leftover temporary or hidden file (an interrupted write?)")
    for stem in sorted(set(targets) - set(images)):
        problems.append(f"{targets[stem]}: target without an input in {img_dir.name}/")
    for stem in sorted(set(masks) - set(images)):
        problems.append(f"{masks[stem]}: mask without an input in {img_dir.name}/")
    for stem, img_path in images.items():
        on_disk.add(f"{split}/{img_path.name}")
        _check_sample(split, stem, img_path, targets.get(stem), masks.get(stem), dirs, problems)
    return len(images)


def _check_manifest(root: Path, counts: dict[str, int], problems: list[str]) -> None:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        problems.append(f"{manifest_path}: missing (datasets made by `unetblur data build/synth` have one)")
        return
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{manifest_path}: not readable JSON ({exc})")
        manifest = {}
    declared = manifest.get("counts") if isinstance(manifest, dict) else None
    if not isinstance(declared, dict):
        problems.append(f"{manifest_path}: has no 'counts' per split")
        return
    for split in SPLITS:
        if int(declared.get(split, 0) or 0) != counts[split]:
            problems.append(f"{manifest_path}: counts.{split} is {declared.get(split, 0)} but "
                            f"{split}/ holds {counts[split]} images")


def _check_faces(root: Path, on_disk: set[str], problems: list[str]) -> None:
    faces_path = root / FACES
    if not faces_path.is_file():
        return
    listed: set[str] = set()

    def bad_line(lineno: int, exc: Exception) -> None:
        problems.append(f"{faces_path}:{lineno}: not a faces record ({exc})")

    try:
        for lineno, rec in iter_faces_lines(faces_path, on_error=bad_line):
            image = rec["image"]
            if image in listed:
                problems.append(f"{faces_path}:{lineno}: {image} is listed twice")
            listed.add(image)
            if image not in on_disk:
                problems.append(f"{faces_path}:{lineno}: {image} is not in the dataset")
    except BadInputError as exc:
        problems.append(str(exc))
    for missing in sorted(on_disk - listed):
        problems.append(f"{faces_path}: no record for {missing}")


def check_dataset(root: str | os.PathLike) -> tuple[list[str], str]:
    """Validate ``root``. Returns (every problem found as a line, a one-line summary).

    Raises :class:`UnetblurError` only when ``root`` is not a folder at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise UnetblurError(f"{root}: dataset folder not found")
    problems: list[str] = []
    on_disk: set[str] = set()
    counts = {split: _check_split(root, split, problems, on_disk) for split in SPLITS}
    if sum(counts.values()) == 0:
        problems.append(f"{root}: no images in train/, val/ or test/ (expected the layout train/ train_blur/ "
                        "train_mask/ val/ ...)")
    _check_manifest(root, counts, problems)
    _check_faces(root, on_disk, problems)
    summary = (f"checked {root}: train {counts['train']} / val {counts['val']} / test {counts['test']} samples; "
               + (f"{len(problems)} problem(s)" if problems else "no problems"))
    return problems, summary
