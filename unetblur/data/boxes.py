"""Boxes read from a file, as a face detector: ``--model file:boxes.json`` / ``--detector file:PATH``.

It reads every annotation format ``data build`` reads, so it lives in the data layer; the runtime's
:func:`unetblur.detectors.open_detector` imports it only when a ``file:`` detector is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UnetblurError
from ..faces import Face
from .annotations import read_annotations


class FileDetector:
    """Boxes read from a file: a ``faces.jsonl`` or any annotation format ``data build`` reads.

    ``detect(image, path=...)`` looks the image up by its path (as written in the file, relative),
    by file name, or by stem; ``path`` is required because pixels alone cannot name the image.
    """

    #: Pixels alone cannot name the image: callers pass ``path`` to :meth:`detect`.
    needs_path = True

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        ann = read_annotations(self.path)
        self.name = f"file:{self.path.name}"
        self.faces: dict[str, list[Face]] = {}
        self._by_name: dict[str, list[Face]] = {}
        self._by_stem: dict[str, list[Face]] = {}
        for key, faces in ann.faces.items():
            self.faces[key] = faces
            self._by_name.setdefault(Path(key).name, faces)
            self._by_stem.setdefault(Path(key).stem, faces)
        if not self.faces:
            raise UnetblurError(f"{self.path}: no images listed; nothing for the file detector to report")

    def lookup(self, path: str | os.PathLike) -> list[Face] | None:
        """Faces recorded for ``path``: the longest tail of the path the file lists (``photos/sub/a.jpg``
        finds ``sub/a.jpg`` or ``a.jpg``), then the name, then the stem; None if absent."""
        key = str(path).replace("\\", "/")
        parts = [p for p in key.split("/") if p not in ("", ".")]
        for i in range(len(parts)):
            if "/".join(parts[i:]) in self.faces:
                return list(self.faces["/".join(parts[i:])])
        for table, k in ((self._by_name, Path(key).name), (self._by_stem, Path(key).stem)):
            if k in table:
                return list(table[k])
        return None

    def detect(self, image: np.ndarray, path: str | os.PathLike | None = None) -> list[Face]:
        if path is None:
            raise UnetblurError(f"{self.name} holds boxes per image file; it cannot blur video frames or streams "
                                "(use a model or a detector such as centerface for those)")
        faces = self.lookup(path)
        if faces is None:
            raise UnetblurError(f"{path}: not listed in {self.path}")
        h, w = image.shape[:2]
        return [c for c in (f.clipped(w, h) for f in faces) if c is not None]
