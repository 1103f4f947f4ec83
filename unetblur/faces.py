"""The ``Face`` value type and the ``faces.jsonl`` file format.

Boxes are ``(x1, y1, x2, y2)`` in pixels of the image they refer to, floats, ``x2 > x1``.
An optional ellipse ``(cx, cy, semi_axis_x, semi_axis_y, angle_degrees)`` is kept when the
source provides one (FDDB); the blur then follows it instead of the box's inscribed ellipse.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import BadInputError
from .fsutil import atomic_path

#: Face-width buckets of DESIGN.md §4, in original-image pixels: (name, low, high).
SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), ("64-128", 64, 128), (">=128", 128, math.inf),
)


def size_bucket(width: float) -> str:
    """Name of the DESIGN.md §4 bucket a face of this width (original pixels) falls into."""
    for name, low, high in SIZE_BUCKETS:
        if low <= width < high:
            return name
    return SIZE_BUCKETS[-1][0]


@dataclass(frozen=True)
class Face:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0
    ellipse: tuple[float, float, float, float, float] | None = None

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def size(self) -> float:
        """Face size used to scale the blur strength: the longer side of the box, in pixels."""
        return max(self.width, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def is_valid(self) -> bool:
        """Finite coordinates and a positive area."""
        return all(math.isfinite(v) for v in self.box) and self.width > 0 and self.height > 0

    def scaled(self, sx: float, sy: float | None = None, dx: float = 0.0, dy: float = 0.0) -> "Face":
        """Map into another image: ``x' = x*sx + dx``, ``y' = y*sy + dy``."""
        sy = sx if sy is None else sy
        ellipse = None
        if self.ellipse is not None:
            cx, cy, ax, ay, ang = self.ellipse
            ellipse = (cx * sx + dx, cy * sy + dy, ax * sx, ay * sy, ang)
        return replace(self, x1=self.x1 * sx + dx, y1=self.y1 * sy + dy, x2=self.x2 * sx + dx,
                       y2=self.y2 * sy + dy, ellipse=ellipse)

    def clipped(self, width: int, height: int) -> "Face | None":
        """The part of the box inside a ``width`` × ``height`` image, or None if nothing is left."""
        x1, y1 = max(0.0, self.x1), max(0.0, self.y1)
        x2, y2 = min(float(width), self.x2), min(float(height), self.y2)
        if not (x2 > x1 and y2 > y1):
            return None
        return replace(self, x1=x1, y1=y1, x2=x2, y2=y2)

    def to_dict(self) -> dict:
        d = {"box": [round(v, 3) for v in self.box], "score": round(float(self.score), 4)}
        if self.ellipse is not None:
            d["ellipse"] = [round(float(v), 3) for v in self.ellipse]
        return d

    def as_stored(self) -> "Face":
        """This face exactly as ``faces.jsonl`` stores it (``to_dict`` rounding: box and ellipse to
        3 decimals, score to 4). Dataset builders blur with these values, so that blurring a stored
        image with the faces read back from its ``faces.jsonl`` reproduces the stored target bit
        for bit (the oracle scores exactly 0 on it)."""
        return Face.from_dict(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Face":
        if len(d["box"]) != 4:
            raise ValueError(f"a box needs 4 numbers, got {len(d['box'])}")
        x1, y1, x2, y2 = (float(v) for v in d["box"])
        ellipse = tuple(float(v) for v in d["ellipse"]) if d.get("ellipse") else None
        return cls(x1, y1, x2, y2, float(d.get("score", 1.0)), ellipse)  # type: ignore[arg-type]

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float, score: float = 1.0) -> "Face":
        return cls(float(x), float(y), float(x) + float(w), float(y) + float(h), float(score))

    @classmethod
    def from_ellipse(cls, cx: float, cy: float, ax: float, ay: float, angle_deg: float, score: float = 1.0) -> "Face":
        """A face given as an ellipse (FDDB); its box is the ellipse's axis-aligned bounding box."""
        t = math.radians(angle_deg)
        hw = math.sqrt((ax * math.cos(t)) ** 2 + (ay * math.sin(t)) ** 2)
        hh = math.sqrt((ax * math.sin(t)) ** 2 + (ay * math.cos(t)) ** 2)
        return cls(cx - hw, cy - hh, cx + hw, cy + hh, score, (cx, cy, ax, ay, angle_deg))


def write_faces_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write one JSON object per line. Each record has ``image`` and ``faces`` (list of Face or dict)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            rec = dict(rec)
            rec["faces"] = [f.to_dict() if isinstance(f, Face) else f for f in rec.get("faces", [])]
            fh.write(json.dumps(rec, sort_keys=True) + "\n")


def iter_faces_lines(path: str | os.PathLike, *, parse_faces: bool = True,
                     on_error: Callable[[int, Exception], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` for every record of a ``faces.jsonl``: THE reader of the format.

    A record needs ``image``; with ``parse_faces`` its ``faces`` become :class:`Face` values (a box of
    other than four numbers is an error), else they stay as written. A line that is not a record raises
    :class:`BadInputError` (``line N: not a faces record``), or, given ``on_error``, is passed to
    ``on_error(line number, error)`` and skipped. Blank lines are skipped; undecodable bytes are replaced.
    """
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInputError(path, f"cannot open ({exc.strerror})") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rec["image"] = str(rec["image"])
                if parse_faces:
                    rec["faces"] = [Face.from_dict(f) for f in rec.get("faces", [])]
            except (ValueError, KeyError, TypeError) as exc:
                if on_error is None:
                    raise BadInputError(path, f"line {lineno}: not a faces record ({exc})") from None
                on_error(lineno, exc)
                continue
            yield lineno, rec


def iter_faces_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Read ``faces.jsonl`` records, turning their faces into :class:`Face` values."""
    for _, rec in iter_faces_lines(path):
        yield rec


def read_faces_jsonl(path: str | os.PathLike) -> dict[str, list[Face]]:
    """Map image key → faces for a ``faces.jsonl`` file."""
    return {rec["image"]: rec["faces"] for rec in iter_faces_jsonl(path)}
