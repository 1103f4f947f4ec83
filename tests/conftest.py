"""Shared fixtures: tiny synthetic images and datasets made on the fly (no downloads, no committed data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unetblur.blur import blur_faces
from unetblur.faces import Face, write_faces_jsonl
from unetblur.io import write_image


def make_face_image(rng: np.random.Generator, size: int = 64, n_faces: int = 2) -> tuple[np.ndarray, list[Face]]:
    """A textured background with simple drawn faces (skin ellipse, dark eyes, mouth)."""
    import cv2

    h = w = size
    img = (rng.random((h, w, 3)) * 90 + 60).astype(np.uint8)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    faces = []
    for _ in range(n_faces):
        fw = int(rng.integers(size // 6, size // 3))
        fh = int(fw * 1.25)
        x1 = int(rng.integers(0, w - fw))
        y1 = int(rng.integers(0, h - fh))
        cx, cy = x1 + fw // 2, y1 + fh // 2
        skin = tuple(int(c) for c in rng.integers([150, 100, 70], [240, 190, 160]))
        cv2.ellipse(img, (cx, cy), (fw // 2, fh // 2), 0, 0, 360, skin, -1)
        for ex in (cx - fw // 5, cx + fw // 5):
            cv2.circle(img, (ex, cy - fh // 8), max(1, fw // 12), (20, 20, 30), -1)
        cv2.line(img, (cx - fw // 5, cy + fh // 4), (cx + fw // 5, cy + fh // 4), (120, 30, 40), max(1, fw // 16))
        faces.append(Face(x1, y1, x1 + fw, y1 + fh))
    return img, faces


def write_tiny_dataset(root: Path, size: int = 32, counts=(8, 4, 4), seed: int = 0) -> Path:
    """A dataset in the DESIGN.md §4 layout with ``counts`` images in train/val/test."""
    rng = np.random.default_rng(seed)
    records = []
    for split, n in zip(("train", "val", "test"), counts):
        for i in range(n):
            img, faces = make_face_image(rng, size, n_faces=int(rng.integers(0, 3)))
            blurred, mask = blur_faces(img, faces)
            stem = f"{split}_{i:04d}"
            write_image(root / split / f"{stem}.png", img)
            write_image(root / f"{split}_blur" / f"{stem}.png", blurred)
            write_image(root / f"{split}_mask" / f"{stem}.png", mask)
            records.append({"image": f"{split}/{stem}.png", "split": split, "faces": faces})
    write_faces_jsonl(root / "faces.jsonl", records)
    (root / "manifest.json").write_text(json.dumps({
        "source": "tests", "targets_from": "ground_truth", "image_size": size,
        "counts": dict(zip(("train", "val", "test"), counts)),
    }))
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A 32×32 dataset: 8 train, 4 val, 4 test images."""
    return write_tiny_dataset(tmp_path / "ds")


@pytest.fixture
def experiment_script():
    """Load a committed experiment script (``experiments/...py``, not a package) as a module."""
    import importlib.util

    def load(relative: str):
        path = Path(__file__).resolve().parents[1] / "experiments" / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
