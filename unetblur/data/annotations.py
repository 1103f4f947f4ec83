"""Annotation readers: every supported face-box format read into :class:`~unetblur.faces.Face` values.

Each reader returns an :class:`Annotations`: a mapping from the image path *relative to the image
root* (POSIX separators) to its faces, plus the problems found while reading (boxes with NaN or
non-positive sizes are dropped and reported; paths that would escape the image root are
reported and skipped). Boxes partly outside their image are clipped later by ``data build``,
which knows the real image size.

Formats (``FORMATS``):

``wider``     WIDER FACE ``wider_face_{train,val}_bbx_gt.txt``: name / count / ``x y w h blur
              expression illumination invalid occlusion pose``. An image with 0 faces is followed by
              one dummy all-zero line. Faces flagged *invalid* are kept: for anonymisation a face
              too unclear to evaluate a detector on must still be blurred.
``fddb``      FDDB ``FDDB-fold-XX-ellipseList.txt``: name (no extension) / count /
              ``major_radius minor_radius angle_rad cx cy score``; the ellipse is kept.
``yolo``      YOLO txt: one ``.txt`` per image (beside it or in a ``labels/`` folder mirroring
              ``images/``), lines ``class cx cy w h`` normalised to [0, 1].
``voc``       Pascal VOC xml (one file per image, or a folder of them).
``coco``      COCO json (``images``, ``annotations`` with ``bbox`` = x, y, w, h, ``categories``).
``labelme``   LabelMe json (one file per image, or a folder of them); rectangles and polygons.
``celeba``    CelebA ``list_bbox_celeba.txt``: count / header / ``image_id x_1 y_1 width height``.
``plain``     plain JSON ``{"image.jpg": [[x1, y1, x2, y2], ...]}`` (entries may also be
              ``{"box": [...], "score": s}`` dicts), or a ``faces.jsonl`` as ``data build`` writes.

Boxes are taken to refer to the photo as displayed, with its EXIF orientation applied (what LabelMe,
CVAT and Roboflow show while labelling), which is how ``read_image`` returns it.

Label filtering (YOLO, VOC, COCO, LabelMe): when some class names contain ``face``, only those
classes are read; otherwise every box is taken to be a face (a single-class face export).
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import UnetblurError
from ..faces import Face, iter_faces_lines
from ..io import IMAGE_EXTENSIONS, is_image_path

FORMATS = ("wider", "fddb", "yolo", "voc", "coco", "labelme", "celeba", "plain")


@dataclass
class Annotations:
    """Faces read from an annotation source.

    faces:      image path relative to ``image_root`` (POSIX) → faces in that image's pixels.
    problems:   ``{"path": ..., "reason": ...}`` for every dropped box or skipped entry.
    image_root: the folder the keys are relative to.
    """

    format: str
    source: Path
    image_root: Path
    faces: dict[str, list[Face]] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)
    #: Keys reported as skipped: never in ``faces``, whatever is added for them later. A skipped entry
    #: built as a face-free pair would teach the network that its faces are background.
    skipped: set[str] = field(default_factory=set)

    def skip(self, key: str, reason: str) -> None:
        """Report image ``key`` as skipped and keep it out of ``faces`` (also if it was added before)."""
        self.problem(key, reason)
        safe = safe_relpath(str(key))
        if safe is not None:
            self.skipped.add(safe)
            self.faces.pop(safe, None)

    @property
    def face_count(self) -> int:
        return sum(len(v) for v in self.faces.values())

    def problem(self, path: str, reason: str) -> None:
        self.problems.append({"path": str(path), "reason": reason})

    def add(self, key: str, faces: Iterable[Face] = ()) -> None:
        """Add ``faces`` to image ``key`` (an unsafe key is reported and skipped)."""
        safe = safe_relpath(key)
        if safe is None:
            self.problem(key, f"path escapes the image root {self.image_root}; entry skipped")
            return
        if safe in self.skipped:
            return
        self.faces.setdefault(safe, []).extend(faces)

    def merge(self, other: "Annotations") -> None:
        """Add another source's faces, re-keyed relative to this ``image_root``."""
        for key, faces in other.faces.items():
            full = Path(other.image_root) / key
            try:
                rel = full.relative_to(self.image_root).as_posix()
            except ValueError:
                self.problem(str(full), f"image lies outside {self.image_root}; skipped")
                continue
            self.add(rel, faces)
        self.problems.extend(other.problems)


def safe_relpath(name: str) -> str | None:
    """``name`` as a normalised POSIX path inside its root, or None if it is absolute or escapes it."""
    name = str(name).strip().replace("\\", "/")
    if not name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    norm = posixpath.normpath(name)
    if norm == "." or norm == ".." or norm.startswith("../"):
        return None
    return norm


def checked_face(ann: Annotations, key: str, x1, y1, x2, y2, *, score: float = 1.0,
                 ellipse=None) -> Face | None:
    """A Face from corner coordinates, or None (reported) when they are not finite or the size is not positive."""
    try:
        vals = [float(v) for v in (x1, y1, x2, y2)]
    except (TypeError, ValueError):
        ann.problem(key, f"box {[x1, y1, x2, y2]} is not numeric; dropped")
        return None
    if not all(math.isfinite(v) for v in vals):
        ann.problem(key, f"box {vals} has a non-finite coordinate; dropped")
        return None
    if not (vals[2] > vals[0] and vals[3] > vals[1]):
        ann.problem(key, f"box {vals} has a non-positive width or height; dropped")
        return None
    try:
        score = float(score)
    except (TypeError, ValueError):
        ann.problem(key, f"box {vals} has a non-numeric score {score!r}; dropped")
        return None
    if not math.isfinite(score):
        ann.problem(key, f"box {vals} has a non-finite score {score!r}; dropped")
        return None
    return Face(*vals, score=score, ellipse=ellipse)


def _xywh(ann, key, x, y, w, h, score=1.0):
    try:
        x, y, w, h = (float(v) for v in (x, y, w, h))
    except (TypeError, ValueError):
        ann.problem(key, f"box {[x, y, w, h]} is not numeric; dropped")
        return None
    return checked_face(ann, key, x, y, x + w, y + h, score=score)


def _open_text(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UnetblurError(f"{path}: cannot read annotations ({exc.strerror})") from None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnetblurError(f"{path}: cannot read annotations ({exc.strerror})") from None
    except ValueError as exc:
        raise UnetblurError(f"{path}: not valid JSON ({exc})") from None


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as displayed (EXIF orientation applied), from the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def _face_label_filter(names: Iterable[str]):
    names = [str(n) for n in names]
    face_names = {n for n in names if "face" in n.lower()}
    return (lambda n: str(n) in face_names) if face_names else (lambda n: True)


# --------------------------------------------------------------------------- line-based formats

def read_wider(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """WIDER FACE ``*_bbx_gt.txt``. ``image_root`` defaults to the ``WIDER_<split>/images`` folder beside it."""
    path = Path(path)
    if image_root is None:
        split = "val" if "_val_" in path.name else "test" if "_test_" in path.name else "train"
        image_root = path.parent.parent / f"WIDER_{split}" / "images"
    ann = Annotations("wider", path, Path(image_root))
    lines = _open_text(path)
    i, n = 0, len(lines)
    while i < n:
        name = lines[i].strip()
        i += 1
        if not name:
            continue
        if i >= n:
            ann.problem(name, f"{path.name}: no face count after the image name (file truncated)")
            break
        try:
            count = int(lines[i].strip())
        except ValueError:
            raise UnetblurError(f"{path}:{i + 1}: expected a face count after {name!r}, got {lines[i].strip()!r} "
                                "(is this a WIDER FACE bbx_gt file?)") from None
        i += 1
        faces = []
        if count == 0:
            # The official files follow a 0 count with one dummy "0 0 0 0 0 0 0 0 0 0" line.
            if i < n and len(lines[i].split()) >= 4 and all(_is_number(t) for t in lines[i].split()):
                i += 1
        for line in lines[i:i + count]:
            parts = line.split()
            if len(parts) < 4:
                ann.problem(name, f"face line {line.strip()!r} has fewer than 4 numbers; dropped")
                continue
            face = _xywh(ann, name, *parts[:4])
            if face is not None:
                faces.append(face)
        i += count
        ann.add(name, faces)
    return ann


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def read_fddb(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """FDDB ellipse list. Names have no extension; ``.jpg`` is added. ``image_root`` defaults to
    ``originalPics`` beside the ``FDDB-folds`` folder."""
    path = Path(path)
    if image_root is None:
        image_root = path.parent.parent / "originalPics"
    ann = Annotations("fddb", path, Path(image_root))
    lines = _open_text(path)
    i, n = 0, len(lines)
    while i < n:
        name = lines[i].strip()
        i += 1
        if not name:
            continue
        try:
            count = int(lines[i].strip())
        except (ValueError, IndexError):
            raise UnetblurError(f"{path}:{i + 1}: expected a face count after {name!r} "
                                "(is this an FDDB ellipse list?)") from None
        i += 1
        key = name if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + ".jpg"
        faces = []
        for line in lines[i:i + count]:
            parts = line.split()
            try:
                ra, rb, theta, cx, cy = (float(v) for v in parts[:5])
            except ValueError:
                ann.problem(key, f"ellipse line {line.strip()!r} is not numeric; dropped")
                continue
            if len(parts) < 5 or not all(math.isfinite(v) for v in (ra, rb, theta, cx, cy)) or ra <= 0 or rb <= 0:
                ann.problem(key, f"ellipse {line.strip()!r} has non-finite or non-positive values; dropped")
                continue
            faces.append(Face.from_ellipse(cx, cy, ra, rb, math.degrees(theta)))
        i += count
        ann.add(key, faces)
    return ann


def read_celeba(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """CelebA ``list_bbox_celeba.txt`` (boxes refer to the in-the-wild ``img_celeba`` images)."""
    path = Path(path)
    if image_root is None:
        candidates = [path.parent / "img_celeba", path.parent.parent / "Img" / "img_celeba",
                      path.parent.parent / "img_celeba", path.parent]
        image_root = next((c for c in candidates if c.is_dir()), path.parent)
    ann = Annotations("celeba", path, Path(image_root))
    for lineno, line in enumerate(_open_text(path), 1):
        parts = line.split()
        if len(parts) != 5 or not is_image_path(parts[0]):
            continue  # the count line and the header
        face = _xywh(ann, parts[0], *parts[1:5])
        ann.add(parts[0], [face] if face else [])
    return ann


def read_yolo(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """YOLO labels. ``path`` is a dataset folder (``images/`` + ``labels/``, or ``.txt`` beside the
    images) or a ``labels/`` folder. Every image found gets an entry (no label file = no faces)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if path.name == "labels" and image_root is None:
        image_root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    image_root = Path(image_root) if image_root is not None else path
    ann = Annotations("yolo", path, image_root)
    names = _yolo_names(path) or _yolo_names(image_root.parent) or []
    keep = _face_label_filter(names)
    from ..io import list_images

    for img in list_images(image_root):
        key = img.relative_to(image_root).as_posix()
        label = _yolo_label_for(img, image_root)
        faces: list[Face] = []
        if label is not None:
            rows = [ln.split() for ln in _open_text(label) if ln.strip()]
            size = _image_size(img) if rows else None
            if rows and size is None:
                ann.skip(key, "cannot read the image size to scale its YOLO boxes; image skipped")
                continue
            for row in rows:
                if len(row) < 5:
                    ann.problem(key, f"YOLO line {' '.join(row)!r} has fewer than 5 fields; dropped")
                    continue
                cls = row[0]
                name = names[int(cls)] if cls.isdigit() and int(cls) < len(names) else cls
                if not keep(name):
                    continue
                try:
                    cx, cy, w, h = (float(v) for v in row[1:5])
                except ValueError:
                    ann.problem(key, f"YOLO line {' '.join(row)!r} is not numeric; dropped")
                    continue
                W, H = size
                face = checked_face(ann, key, (cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H)
                if face:
                    faces.append(face)
        ann.add(key, faces)
    return ann


def _yolo_label_for(img: Path, image_root: Path) -> Path | None:
    beside = img.with_suffix(".txt")
    if beside.is_file():
        return beside
    parts = list(img.parts)
    for i in range(len(parts) - 1, -1, -1):  # .../images/x.jpg → .../labels/x.txt
        if parts[i] == "images":
            cand = Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
            if cand.is_file():
                return cand
    cand = image_root.parent / "labels" / img.relative_to(image_root).with_suffix(".txt")
    return cand if cand.is_file() else None


def _yolo_names(folder: Path) -> list[str] | None:
    """Class names from ``data.yaml`` / ``classes.txt`` / ``obj.names`` in ``folder`` (or None)."""
    for name in ("data.yaml", "dataset.yaml"):
        p = folder / name
        if p.is_file():
            import yaml

            from ..config import safe_load_bounded

            try:
                data = safe_load_bounded(p.read_text(encoding="utf-8"), str(p)) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError, UnetblurError):
                return None
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
    for name in ("classes.txt", "obj.names"):
        p = folder / name
        if p.is_file():
            return [ln.strip() for ln in _open_text(p) if ln.strip()]
    return None


# --------------------------------------------------------------------------- structured formats

def read_voc(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """Pascal VOC xml: one file, or a folder of them (``Annotations/`` beside ``JPEGImages/``, or
    xml files beside their images)."""
    path = Path(path)
    files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
    folder = path if path.is_dir() else path.parent
    if image_root is None:
        image_root = folder.parent / "JPEGImages" if (folder.parent / "JPEGImages").is_dir() else folder
    ann = Annotations("voc", path, Path(image_root))
    parsed = []
    for f in files:
        try:
            parsed.append((f, ET.parse(f).getroot()))
        except (ET.ParseError, OSError) as exc:
            ann.problem(str(f), f"not readable VOC xml ({exc}); skipped")
    keep = _face_label_filter(o.findtext("name", "") for _, r in parsed for o in r.iter("object"))
    for f, root in parsed:
        filename = (root.findtext("filename") or "").strip() or f.with_suffix(".jpg").name
        # Keys are relative to the image root: an xml beside its image names it relative to itself.
        key = filename
        if safe_relpath(filename) is not None and (f.parent / filename).is_file():
            try:
                key = (f.parent / filename).relative_to(ann.image_root).as_posix()
            except ValueError:
                key = filename
        faces = []
        for obj in root.iter("object"):
            if not keep(obj.findtext("name", "")):
                continue
            bb = obj.find("bndbox")
            if bb is None:
                ann.problem(key, "object without <bndbox>; dropped")
                continue
            face = checked_face(ann, key, *(bb.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")))
            if face:
                faces.append(face)
        ann.add(key, faces)
    return ann


def read_coco(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """COCO json. ``image_root`` defaults to the file's folder (Roboflow puts ``_annotations.coco.json``
    beside the images), or ``../images`` / ``../<split>`` for the official layout when that exists."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise UnetblurError(f"{path}: not a COCO file (needs 'images' and 'annotations')")
    for section in ("images", "annotations"):
        if not isinstance(data[section], list):
            raise UnetblurError(f"{path}: not a COCO file ({section!r} must be a list, "
                                f"got {type(data[section]).__name__})")
    if image_root is None:
        image_root = path.parent
        if path.parent.name == "annotations":
            split = path.stem.split("_")[-1]
            for cand in (path.parent.parent / split, path.parent.parent / "images" / split, path.parent.parent / "images"):
                if cand.is_dir():
                    image_root = cand
                    break
    ann = Annotations("coco", path, Path(image_root))
    categories = data.get("categories", [])
    cats = {c.get("id"): str(c.get("name", "")) for c in (categories if isinstance(categories, list) else [])
            if isinstance(c, dict) and _is_json_key(c.get("id"))}
    keep = _face_label_filter(cats.values())
    names = {}
    for img in data["images"]:
        if not (isinstance(img, dict) and "id" in img and "file_name" in img):
            continue
        if not _is_json_key(img["id"]):
            ann.skip(str(img["file_name"]), f"image id {img['id']!r} is not a number or text; image skipped")
            continue
        names[img["id"]] = str(img["file_name"])
        ann.add(str(img["file_name"]), [])
    for a in data["annotations"]:
        if not isinstance(a, dict):
            continue
        if not _is_json_key(a.get("image_id")) or not _is_json_key(a.get("category_id")):
            ann.problem(str(path), f"annotation {a.get('id')!r} has an image_id or category_id that is not "
                                   "a number or text; dropped")
            continue
        name = names.get(a.get("image_id"))
        if name is None:
            ann.problem(str(path), f"annotation {a.get('id')} refers to unknown image_id {a.get('image_id')}; dropped")
            continue
        if cats and not keep(cats.get(a.get("category_id"), "")):
            continue
        bbox = a.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            ann.problem(name, f"annotation {a.get('id')} has no 4-number bbox; dropped")
            continue
        face = _xywh(ann, name, *bbox, score=a.get("score", 1.0))
        if face and safe_relpath(name) is not None:
            ann.faces[safe_relpath(name)].append(face)
    return ann


def _is_json_key(value) -> bool:
    """True for COCO ids usable as dict keys (numbers, text, or absent); lists/dicts are malformed."""
    return value is None or isinstance(value, (int, float, str))


def read_labelme(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """LabelMe json: one file or a folder of them. ``imagePath`` is relative to the json file."""
    path = Path(path)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    image_root = Path(image_root) if image_root is not None else (path if path.is_dir() else path.parent)
    ann = Annotations("labelme", path, image_root)
    docs = []
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            ann.problem(str(f), f"not readable JSON ({exc}); skipped")
            continue
        if isinstance(doc, dict) and isinstance(doc.get("shapes"), list):
            docs.append((f, doc))
    keep = _face_label_filter(s.get("label", "") for _, d in docs for s in d["shapes"] if isinstance(s, dict))
    for f, doc in docs:
        image_path = str(doc.get("imagePath") or f.with_suffix(".jpg").name).replace("\\", "/")
        if safe_relpath(image_path) is None:
            ann.problem(image_path, f"imagePath in {f.name} escapes the image root; entry skipped")
            continue
        try:
            key = (f.parent / image_path).resolve().relative_to(ann.image_root.resolve()).as_posix()
        except ValueError:
            ann.problem(image_path, f"imagePath in {f.name} escapes the image root {ann.image_root}; entry skipped")
            continue
        faces = []
        for shape in doc["shapes"]:
            if not isinstance(shape, dict) or not keep(shape.get("label", "")):
                continue
            pts = shape.get("points") or []
            try:
                xs = [float(p[0]) for p in pts]
                ys = [float(p[1]) for p in pts]
            except (TypeError, ValueError, IndexError):
                ann.problem(key, f"shape {shape.get('label')!r} has malformed points; dropped")
                continue
            if not xs:
                ann.problem(key, f"shape {shape.get('label')!r} has no points; dropped")
                continue
            if shape.get("shape_type") == "circle" and len(pts) == 2:
                r = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
                face = checked_face(ann, key, xs[0] - r, ys[0] - r, xs[0] + r, ys[0] + r)
            else:
                face = checked_face(ann, key, min(xs), min(ys), max(xs), max(ys))
            if face:
                faces.append(face)
        ann.add(key, faces)
    return ann


def read_plain(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Annotations:
    """Plain JSON ``{"image": [[x1, y1, x2, y2], ...]}`` or a ``faces.jsonl`` (``image`` + ``faces``)."""
    path = Path(path)
    ann = Annotations("plain", path, Path(image_root) if image_root is not None else path.parent)
    if path.suffix.lower() == ".jsonl":
        def refuse(lineno: int, exc: Exception):
            raise UnetblurError(f"{path}:{lineno}: not a faces record ({exc})")

        # Faces stay as written: _plain_faces skips (and reports) a bad box instead of the whole line.
        for _, rec in iter_faces_lines(path, parse_faces=False, on_error=refuse):
            key = rec["image"]
            # A faces.jsonl of a built dataset names the original image in "source".
            ann.add(str(rec.get("source") or key), _plain_faces(ann, key, rec.get("faces", [])))
        return ann
    data = _load_json(path)
    if not isinstance(data, dict):
        raise UnetblurError(f"{path}: plain face JSON must map image paths to lists of boxes")
    for key, entries in data.items():
        ann.add(str(key), _plain_faces(ann, str(key), entries))
    return ann


def _plain_faces(ann: Annotations, key: str, entries) -> list[Face]:
    faces = []
    if not isinstance(entries, list):
        ann.skip(key, f"expected a list of boxes, got {type(entries).__name__}; entry skipped")
        return faces
    for e in entries:
        score, ellipse = 1.0, None
        if isinstance(e, dict):
            score = e.get("score", 1.0)
            try:
                ellipse = tuple(float(v) for v in e["ellipse"]) if e.get("ellipse") else None
            except (TypeError, ValueError):
                ann.problem(key, f"ellipse {e.get('ellipse')!r} is not a list of numbers; box dropped")
                continue
            e = e.get("box")
        if not isinstance(e, (list, tuple)) or len(e) != 4:
            ann.problem(key, f"box {e!r} is not [x1, y1, x2, y2]; dropped")
            continue
        face = checked_face(ann, key, *e, score=score, ellipse=ellipse)
        if face:
            faces.append(face)
    return faces


READERS = {"wider": read_wider, "fddb": read_fddb, "yolo": read_yolo, "voc": read_voc, "coco": read_coco,
           "labelme": read_labelme, "celeba": read_celeba, "plain": read_plain}


# --------------------------------------------------------------------------- format detection

def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of an annotation file or folder from its content."""
    path = Path(path)
    if not path.exists():
        raise UnetblurError(f"{path}: annotation file or folder not found")
    if path.is_dir():
        if any(path.rglob("*.xml")):
            return "voc"
        for f in sorted(path.rglob("*.json"))[:20]:
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and "shapes" in doc:
                return "labelme"
            if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
                return "coco"
        if path.name == "labels" or (path / "labels").is_dir() or any(path.rglob("*.txt")):
            return "yolo"
        raise UnetblurError(f"{path}: cannot tell the annotation format of this folder; pass --format")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "voc"
    if suffix == ".jsonl":
        return "plain"
    if suffix == ".json":
        data = _load_json(path)
        if isinstance(data, dict) and "images" in data and "annotations" in data:
            return "coco"
        if isinstance(data, dict) and "shapes" in data:
            return "labelme"
        return "plain"
    lines = [ln.strip() for ln in _open_text(path)[:50] if ln.strip()]
    if not lines:
        raise UnetblurError(f"{path}: annotation file is empty")
    if len(lines) >= 2 and lines[0].isdigit() and lines[1].split()[:1] == ["image_id"]:
        return "celeba"
    if len(lines) >= 2 and lines[1].lstrip("-").isdigit():
        for ln in lines[2:]:
            n = len(ln.split())
            if n >= 10:
                return "wider"
            if n in (5, 6):
                return "fddb"
        return "wider"
    if all(len(ln.split()) == 5 and all(_is_number(t) for t in ln.split()) for ln in lines):
        return "yolo"
    raise UnetblurError(f"{path}: cannot tell the annotation format; pass --format one of {', '.join(FORMATS)}")


def read_annotations(path: str | os.PathLike, fmt: str | None = None,
                     image_root: str | os.PathLike | None = None) -> Annotations:
    """Read any supported format (auto-detected unless ``fmt`` is given)."""
    fmt = fmt or detect_format(path)
    if fmt not in READERS:
        raise UnetblurError(f"annotation format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    return READERS[fmt](path, image_root)


def find_annotations(src: str | os.PathLike) -> Annotations | None:
    """Find the annotations of an official layout under ``src`` (keys made relative to ``src``).

    Recognised: WIDER FACE (``wider_face_split/`` + ``WIDER_*/images``), FDDB (``FDDB-folds/`` +
    ``originalPics/``), CelebA (``list_bbox_celeba.txt``), Roboflow/COCO exports
    (``_annotations.coco.json``), YOLO (``labels/``), VOC (``Annotations/`` or xml files), LabelMe
    json beside images. Returns None when nothing is recognised.
    """
    src = Path(src)
    found: list[Annotations] = []
    split_dir = src / "wider_face_split"
    for split in ("train", "val"):
        gt = split_dir / f"wider_face_{split}_bbx_gt.txt"
        if gt.is_file() and (src / f"WIDER_{split}" / "images").is_dir():
            found.append(read_wider(gt, src / f"WIDER_{split}" / "images"))
    if not found and (src / "FDDB-folds").is_dir():
        for f in sorted((src / "FDDB-folds").glob("*ellipseList.txt")):
            found.append(read_fddb(f, src / "originalPics" if (src / "originalPics").is_dir() else src))
    if not found:
        celeba = next(iter(sorted(src.rglob("list_bbox_celeba.txt"))), None)
        if celeba is not None:
            found.append(read_celeba(celeba))
    if not found:
        for f in sorted(src.rglob("*.json")):
            if f.name == "_annotations.coco.json" or f.parent.name == "annotations":
                try:
                    found.append(read_coco(f))
                except UnetblurError:
                    continue
    if not found and ((src / "labels").is_dir() or any((d / "labels").is_dir() for d in src.iterdir() if d.is_dir())):
        found.append(read_yolo(src))
    if not found and (any(src.rglob("*.xml"))):
        found.append(read_voc(src / "Annotations" if (src / "Annotations").is_dir() else src))
    if not found:
        try:
            if detect_format(src) == "labelme":
                found.append(read_labelme(src))
        except UnetblurError:
            pass
    if not found:
        return None
    merged = Annotations(found[0].format, src, src)
    for ann in found:
        merged.merge(ann)
    return merged
