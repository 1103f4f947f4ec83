"""The dataset layout of DESIGN.md §4, in one place.

    root/train/ train_blur/ train_mask/ val/ val_blur/ val_mask/ test/ test_blur/ test_mask/
         faces.jsonl  manifest.json

Same file stem in each folder of a split; targets and masks are lossless PNG; masks single
channel, 255 = face. Optional: ``train_negative/``, single-channel PNGs with 255 on mined false
positives (pixels a model called face where there is none, written by
experiments/full_photo/mine_false_blobs.py); training weighs their mask loss up (``mined_negative_weight``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnetblurError
from ..io import IMAGE_EXTENSIONS

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
FACES = "faces.jsonl"


def negative_dir(root: str | os.PathLike, split: str) -> Path:
    """The optional folder of mined false-positive maps of ``split``."""
    return Path(root) / f"{split}_negative"


def split_dirs(root: str | os.PathLike, split: str) -> tuple[Path, Path, Path]:
    """(inputs, targets, masks) folders of ``split``."""
    root = Path(root)
    return root / split, root / f"{split}_blur", root / f"{split}_mask"


@dataclass(frozen=True)
class Sample:
    stem: str
    image: Path
    target: Path
    mask: Path | None
    negative: Path | None = None


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")}


def list_samples(root: str | os.PathLike, split: str, *, require_masks: bool = False) -> list[Sample]:
    """Samples of ``split`` whose input and target both exist, sorted by stem.

    Unpaired files are left out here; ``unetblur data check`` reports them.
    """
    img_dir, blur_dir, mask_dir = split_dirs(root, split)
    images, targets, masks = _by_stem(img_dir), _by_stem(blur_dir), _by_stem(mask_dir)
    negatives = _by_stem(negative_dir(root, split))
    stems = sorted(set(images) & set(targets) & (set(masks) if require_masks else set(images)))
    return [Sample(s, images[s], targets[s], masks.get(s), negatives.get(s)) for s in stems]


def manifest_blur(manifest: dict):
    """The :class:`~unetblur.blur.BlurSettings` a dataset's targets were made with (the default when the
    manifest records none), so baselines and the oracle blur exactly as the targets do."""
    from ..blur import BlurSettings

    return BlurSettings.from_dict(manifest.get("blur") or manifest.get("blur_settings"))


def read_manifest(root: str | os.PathLike) -> dict:
    """The dataset's ``manifest.json`` ({} when absent: a hand-made thesis-layout folder)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnetblurError(f"{path}: not a readable manifest ({exc})") from None


def dataset_folders(data: str | os.PathLike) -> list[Path]:
    """The dataset folders a ``--data`` value names: one folder, or several joined by commas (``A,B``),
    trained on together (their splits concatenated)."""
    parts = [p.strip() for p in str(data).split(",")]
    if not all(parts):
        raise UnetblurError(f"--data {str(data)!r}: an empty folder name; give DIR or DIR1,DIR2")
    return [Path(p) for p in parts]


def require_dataset(root: str | os.PathLike, split: str = "train") -> Path:
    """Check ``root`` looks like a dataset with a non-empty ``split``; return it as a Path."""
    root = Path(root)
    if not root.is_dir():
        raise UnetblurError(f"{root}: dataset folder not found (build one with `unetblur data build` or `data synth`)")
    if not list_samples(root, split):
        raise UnetblurError(f"{root}: no paired images in {split}/ and {split}_blur/ "
                            "(expected the layout train/ train_blur/ train_mask/ val/ ...)")
    return root
