"""``unetblur data build``: raw photos + face boxes (annotations or a detector) → a paired dataset.

Output is the layout of DESIGN.md §4 (see :mod:`unetblur.data.layout`)::

    OUT/train/ train_blur/ train_mask/ val/ ... test/ ...   same stems, PNG
    OUT/faces.jsonl     one record per stored image (see below)
    OUT/manifest.json   how the dataset was made, counts, everything skipped and why

Framing modes
    ``letterbox`` (the thesis): pad the photo to a square with black (centred), resize to S×S.
    ``crops``: S×S windows at about native scale (side × jitter in ``scale_jitter``) around faces,
    plus a share of face-free windows, so a fully convolutional model learns the face sizes it will
    meet on full-resolution frames. A face too big for the window widens it (the crop is then
    downscaled to S) so it is never cut in half by design.

Every stored image's target is ``blur_faces(stored_input, stored_faces, settings)``: the one blur
definition, so the ``oracle`` baseline reproduces targets exactly from ``faces.jsonl``.

``faces.jsonl`` record: ``image`` (path in the dataset), ``split``, ``source`` (photo path relative
to the source root), ``faces`` (boxes in stored pixels, not clipped to the stored image, so that
``blur_faces`` sees the same ellipse), ``source_faces`` (the same faces in original pixels), and
``transform``: ``stored = original * scale + offset`` per axis, with the crop ``window`` in
original pixels.

Splits are drawn per source photo with the seed, so crops of one photo never straddle two splits.
The build runs into a hidden folder beside OUT and is renamed at the end: an interrupted build
leaves no half dataset.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from .. import __version__
from ..blur import BlurFields, BlurSettings, blur_faces
from ..errors import BadInputError, UnetblurError
from ..faces import Face, write_faces_jsonl
from ..fsutil import make_work_dir, refuse_overlap, write_text_atomic
from ..io import list_images, read_image, write_image
from .annotations import find_annotations, read_annotations
from .layout import FACES, MANIFEST, SPLITS, split_dirs


@dataclass(frozen=True)
class BuildConfig(BlurFields):
    """Settings of ``unetblur data build`` (units: pixels unless stated)."""

    source: str = ""
    out: str = ""
    annotations: str | None = None      # file or folder; None = find it in an official layout under source
    format: str | None = None           # annotation format; None = detect
    detector: str | None = None         # "centerface" | "haar" | "file:PATH": make boxes instead of reading them
    fill_gaps: str | None = None        # a detector whose confident faces no annotation covers join the TRAIN targets
    fill_gaps_score: float = 0.7        # the score a gap-filling detection needs
    mode: Literal["letterbox", "crops"] = "letterbox"
    size: int = 128
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    workers: int = 1
    zero_pad: bool = False              # name stored images 00000.png, 00001.png ... per split (the thesis)
    overwrite: bool = False
    limit: int | None = None            # use only the first N source photos (after the seeded shuffle)
    crops_per_image: int = 4            # face-centred crops per photo (at most one per face)
    empty_share: float = 0.2            # share of face-free crops among all crops
    scale_jitter: tuple[float, float] = (0.8, 1.25)  # crop window side = size × a log-uniform factor in this range
    progress: bool = True

    def validate(self) -> None:
        if not self.source:
            raise UnetblurError("data build: give the source folder of raw photos")
        if not self.out:
            raise UnetblurError("data build: give the output folder with -o OUT")
        if self.mode not in ("letterbox", "crops"):
            raise UnetblurError(f"--mode {self.mode!r} is unknown; choose letterbox or crops")
        if not 8 <= self.size <= 8192:
            raise UnetblurError(f"--size must be between 8 and 8192 pixels, got {self.size}")
        if len(self.split) != 3 or any(not (f >= 0 and math.isfinite(f)) for f in self.split) or sum(self.split) <= 0:
            raise UnetblurError(f"--split needs three non-negative shares (train val test), got {list(self.split)}")
        if self.workers < 1:
            raise UnetblurError(f"--workers must be at least 1, got {self.workers}")
        if not 0 <= self.empty_share < 1:
            raise UnetblurError(f"--empty-share must be in [0, 1), got {self.empty_share}")
        if self.crops_per_image < 1:
            raise UnetblurError(f"--crops-per-image must be at least 1, got {self.crops_per_image}")
        lo, hi = self.scale_jitter
        if not 0 < lo <= hi:
            raise UnetblurError(f"--scale-jitter needs 0 < low <= high, got {list(self.scale_jitter)}")
        if self.annotations and self.detector:
            raise UnetblurError("pass either --annotations or --detector, not both")
        if self.fill_gaps and self.detector:
            raise UnetblurError("--fill-gaps adds detections to annotations; with --detector every box is one already")
        if not 0 < self.fill_gaps_score <= 1:
            raise UnetblurError(f"--fill-gaps-score must be in (0, 1], got {self.fill_gaps_score}")
        self.blur_settings()  # raises on bad blur settings


@dataclass
class BuildReport:
    """What a build produced: ``manifest`` as written, plus the output folder."""

    out: Path
    manifest: dict
    skipped: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.dropped


# --------------------------------------------------------------------------- geometry

def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Pad to a centred square with black and resize to ``size``×``size``.

    Returns (HWC uint8 image, (sx, sy) scale, (dx, dy) offset) with ``stored = original * s + d``.
    """
    h, w = image.shape[:2]
    side = max(h, w)
    nw, nh = max(1, round(w * size / side)), max(1, round(h * size / side))
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else image
    out = np.zeros((size, size, 3), np.uint8)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    out[dy:dy + nh, dx:dx + nw] = resized
    return out, (nw / w, nh / h), (float(dx), float(dy))


def _overlaps(face: Face, x0: float, y0: float, side: float, margin: float) -> bool:
    cx, cy = face.center
    hw, hh = face.width * margin / 2, face.height * margin / 2
    return cx + hw > x0 and cx - hw < x0 + side and cy + hh > y0 and cy - hh < y0 + side


def crop_windows(width: int, height: int, faces: list[Face], cfg: BuildConfig,
                 rng: np.random.Generator) -> list[tuple[int, int, int, bool]]:
    """Square crop windows ``(x0, y0, side, has_face)`` in original pixels for one photo."""
    limit = min(width, height)
    lo, hi = math.log(cfg.scale_jitter[0]), math.log(cfg.scale_jitter[1])
    windows = []
    n_face = min(cfg.crops_per_image, len(faces))
    for idx in rng.permutation(len(faces))[:n_face]:
        f = faces[int(idx)]
        side = cfg.size * math.exp(rng.uniform(lo, hi))
        side = max(side, f.size * cfg.mask_scale * 1.25)  # a big face widens the window rather than being cut
        side = int(round(min(side, limit)))
        # Anywhere that keeps the whole face inside when it fits, so faces sit off-centre too.
        x_lo, x_hi = f.x2 - side, f.x1
        y_lo, y_hi = f.y2 - side, f.y1
        if x_lo > x_hi:
            x_lo = x_hi = f.center[0] - side / 2
        if y_lo > y_hi:
            y_lo = y_hi = f.center[1] - side / 2
        x0 = int(round(np.clip(rng.uniform(x_lo, x_hi), 0, width - side)))
        y0 = int(round(np.clip(rng.uniform(y_lo, y_hi), 0, height - side)))
        windows.append((x0, y0, side, True))
    # Face-free windows: empty_share of all crops; a photo without faces gets one.
    want = cfg.empty_share / (1 - cfg.empty_share) * max(len(windows), 1)
    n_empty = int(want) + (1 if rng.random() < want - int(want) else 0)
    if not faces:
        n_empty = max(n_empty, 1)
    for _ in range(n_empty):
        for _attempt in range(25):
            side = int(round(min(cfg.size * math.exp(rng.uniform(lo, hi)), limit)))
            x0 = int(rng.integers(0, width - side + 1))
            y0 = int(rng.integers(0, height - side + 1))
            if not any(_overlaps(f, x0, y0, side, cfg.mask_scale * 1.1) for f in faces):
                windows.append((x0, y0, side, False))
                break
    return windows


def _resize_to(patch: np.ndarray, size: int) -> np.ndarray:
    if patch.shape[0] == size and patch.shape[1] == size:
        return patch
    interp = cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


# --------------------------------------------------------------------------- one photo (runs in a worker)

@dataclass(frozen=True)
class _Task:
    key: str            # photo path relative to the source root
    path: str           # absolute path
    faces: tuple | None  # None = run the detector
    split: str
    stem: str


_WORKER: dict = {}


def quiet_worker_signals() -> None:
    """Workers leave SIGINT to the parent (which stops the pool) and die plainly on SIGTERM, instead of
    inheriting the CLI's handler that turns SIGTERM into an exception (and a traceback per worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _init_worker(cfg: BuildConfig, tmp_root: str, in_pool: bool = False) -> None:
    from ..detectors import open_detector

    if in_pool:
        quiet_worker_signals()
    _WORKER.clear()
    _WORKER.update(cfg=cfg, root=Path(tmp_root), settings=cfg.blur_settings(), detector=None, gap_detector=None)
    for key, name in (("detector", cfg.detector), ("gap_detector", cfg.fill_gaps)):
        if name:
            # One ONNX Runtime thread per worker process: parallelism comes from --workers.
            options = {"threads": 1} if in_pool and name.split("@")[0] == "centerface" else {}
            _WORKER[key] = open_detector(name, **options)


def _detect(image: np.ndarray, key: str, which: str = "detector") -> list[Face]:
    from .boxes import FileDetector

    det = _WORKER[which]
    # Boxes from a file are looked up by the photo's path; real detectors look at the pixels.
    return det.detect(image, path=key) if isinstance(det, FileDetector) else det.detect(image)


def _process(task: _Task) -> dict:
    """Read one photo, frame it, blur it, write its stored images. Never raises for bad input."""
    cfg: BuildConfig = _WORKER["cfg"]
    settings: BlurSettings = _WORKER["settings"]
    root: Path = _WORKER["root"]
    try:
        image = read_image(task.path)
    except BadInputError as exc:
        return {"key": task.key, "skipped": exc.problem}
    h, w = image.shape[:2]
    dropped, fixed = [], []
    if task.faces is None:
        try:
            faces = _detect(image, task.key)
        except UnetblurError as exc:
            return {"key": task.key, "skipped": str(exc)}
    else:
        faces = []
        for f in task.faces:
            c = f.clipped(w, h)
            if c is None:
                dropped.append({"path": task.key, "reason": f"box {[round(v, 1) for v in f.box]} lies outside "
                                                            f"the {w}x{h} image; dropped"})
            else:
                if c.box != f.box:
                    fixed.append({"path": task.key, "reason": f"box {[round(v, 1) for v in f.box]} clipped to the "
                                                              f"{w}x{h} image"})
                faces.append(c)
    gap_faces = []
    if _WORKER["gap_detector"] is not None and task.split == "train":
        try:
            gap_faces = unannotated_faces(_detect(image, task.key, "gap_detector"), faces, cfg.fill_gaps_score)
        except UnetblurError as exc:
            return {"key": task.key, "skipped": str(exc)}
        faces = faces + gap_faces
    rng = np.random.default_rng([cfg.seed, zlib.crc32(task.key.encode("utf-8"))])
    frames = []  # (stored image, scale xy, offset xy, window or None, faces in the frame (original px))
    if cfg.mode == "letterbox":
        stored, s, d = letterbox(image, cfg.size)
        frames.append((stored, s, d, None, faces))
    else:
        for x0, y0, side, _ in crop_windows(w, h, faces, cfg, rng):
            patch = _resize_to(image[y0:y0 + side, x0:x0 + side], cfg.size)
            k = cfg.size / side
            inside = [f for f in faces if _overlaps(f, x0, y0, side, cfg.mask_scale)]
            frames.append((patch, (k, k), (-x0 * k, -y0 * k), [x0, y0, x0 + side, y0 + side], inside))
    records = []
    img_dir, blur_dir, mask_dir = split_dirs(root, task.split)
    for i, (stored, (sx, sy), (dx, dy), window, src_faces) in enumerate(frames):
        stem = task.stem if cfg.mode == "letterbox" else f"{task.stem}_c{i:02d}"
        stored = np.ascontiguousarray(stored)
        # Blur with the faces as faces.jsonl will hold them (rounded), so the oracle reproduces the target exactly.
        stored_faces = [f.scaled(sx, sy, dx, dy).as_stored() for f in src_faces]
        blurred, mask = blur_faces(stored, stored_faces, settings)
        write_image(img_dir / f"{stem}.png", stored)
        write_image(blur_dir / f"{stem}.png", blurred)
        write_image(mask_dir / f"{stem}.png", mask)
        transform = {"mode": cfg.mode, "scale": [round(sx, 6), round(sy, 6)], "offset": [round(dx, 3), round(dy, 3)],
                     "source_size": [w, h]}
        if window is not None:
            transform["window"] = window
        records.append({"image": f"{task.split}/{stem}.png", "split": task.split, "source": task.key,
                        "faces": [f.to_dict() for f in stored_faces],
                        "source_faces": [f.to_dict() for f in src_faces], "transform": transform})
        if gap_faces:
            records[-1]["gap_faces"] = sum(f in gap_faces for f in src_faces)
    return {"key": task.key, "records": records, "faces": len(faces), "dropped": dropped, "fixed": fixed,
            "gap_faces": len(gap_faces)}


def unannotated_faces(detections: list[Face], annotated: list[Face], min_score: float) -> list[Face]:
    """The ``detections`` scoring ≥ ``min_score`` whose centre lies outside every annotated face's box
    grown ``BG_BOX_GROWTH``× about its centre (bg_changed's background, DESIGN.md §4): faces the
    annotators left out.

    Annotations that skip faces (FDDB marks only some faces in a crowd) would otherwise teach a student
    that those faces are background. Only the train split is filled, so val and test stay ground truth.
    """
    from ..evaluate.metrics import BG_BOX_GROWTH

    half = BG_BOX_GROWTH / 2

    def covered(face: Face) -> bool:
        cx, cy = face.center
        return any(abs(cx - a.center[0]) <= half * a.width and abs(cy - a.center[1]) <= half * a.height
                   for a in annotated)
    return [d for d in detections if d.score >= min_score and d.is_valid() and not covered(d)]


# --------------------------------------------------------------------------- planning

def _gather(cfg: BuildConfig) -> tuple[Path, dict[str, list[Face] | None], str, list[dict], list[str]]:
    """Photos to use: (source root, key → faces or None, description of the box source, problems, notes)."""
    src = Path(cfg.source)
    if not src.is_dir():
        raise UnetblurError(f"{src}: source folder not found")
    notes: list[str] = []
    if cfg.detector:
        from ..detectors import open_detector

        det = open_detector(cfg.detector)  # fail early on a bad name, before any work
        images = list_images(src)
        if not images:
            raise UnetblurError(f"{src}: no images found (looked for .jpg .png .bmp .webp .tif under it)")
        return src, {p.relative_to(src).as_posix(): None for p in images}, f"detector:{det.name}", [], notes
    if cfg.annotations:
        ann = read_annotations(cfg.annotations, cfg.format, image_root=src)
    else:
        ann = find_annotations(src)
        if ann is None:
            raise UnetblurError(f"{src}: found no annotations in a known layout (WIDER FACE, FDDB, CelebA, COCO, "
                                "YOLO, VOC, LabelMe); pass --annotations FILE or --detector centerface")
    if not ann.faces:
        raise UnetblurError(f"{ann.source}: the annotations list no images")
    if cfg.fill_gaps:
        from ..detectors import open_detector

        open_detector(cfg.fill_gaps)  # fail early on a bad name, before any work
    problems = list(ann.problems)
    resolved: dict[str, list[Face] | None] = {}
    by_name: dict[str, list[Path]] | None = None
    for key, faces in ann.faces.items():
        path = Path(ann.image_root) / key
        if not path.is_file() and not path.suffix:
            path = next((path.with_suffix(e) for e in (".jpg", ".png", ".jpeg") if path.with_suffix(e).is_file()), path)
        if not path.is_file():
            # Exports often name a file without its folder: find it by name when that is unambiguous.
            if by_name is None:
                by_name = {}
                for p in list_images(src):
                    by_name.setdefault(p.name, []).append(p)
            cands = by_name.get(Path(key).name, [])
            if len(cands) == 1:
                path = cands[0]
            else:
                problems.append({"path": key, "reason": "listed in the annotations but the image is missing"
                                 + (f" (and {len(cands)} files share its name)" if cands else "")})
                continue
        try:
            rel = path.resolve().relative_to(src.resolve()).as_posix()
        except ValueError:
            problems.append({"path": key, "reason": f"image lies outside the source folder {src}; skipped"})
            continue
        resolved[rel] = list(faces)
    unlisted = len(list_images(src)) - len(resolved)
    if unlisted > 0:
        notes.append(f"{unlisted} image(s) under {src} are not in the annotations and were not used")
    return src, resolved, f"annotations:{ann.format}", problems, notes


def _stems(keys: list[str]) -> dict[str, str]:
    """A distinct file-name stem per photo: its own stem when unique, else its path joined with ``__``;
    where that still clashes (``x.jpg`` and ``x.png``, a flattened ``a/b`` equal to a real ``a__b``) the
    extension is added, and a counter as the last resort. Distinct also where case is ignored (macOS,
    Windows), so no photo's pair ever replaces another's."""
    def count(names):
        counts: dict[str, int] = {}
        for n in names:
            counts[n.lower()] = counts.get(n.lower(), 0) + 1
        return counts

    own = count(Path(k).stem for k in keys)
    stems = {k: Path(k).stem if own[Path(k).stem.lower()] == 1 else str(Path(k).with_suffix("")).replace("/", "__")
             for k in keys}
    clash = count(stems.values())
    for k in keys:
        if clash[stems[k].lower()] > 1:
            stems[k] = f"{stems[k]}_{Path(k).suffix.lstrip('.').lower()}"
    used: set[str] = set()
    for k in sorted(keys):
        name, i = stems[k], 2
        while name.lower() in used:
            name, i = f"{stems[k]}-{i}", i + 1
        used.add(name.lower())
        stems[k] = name
    return stems


def assign_splits(keys: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Seeded split of source photos: shuffle the sorted keys, cut at the cumulative shares."""
    keys = sorted(keys)
    order = np.random.default_rng(seed).permutation(len(keys))
    total = float(sum(fractions))
    n = len(keys)
    n_train = int(round(n * fractions[0] / total))
    n_val = int(round(n * fractions[1] / total))
    n_val = min(n_val, n - n_train)
    out = {}
    for rank, idx in enumerate(order):
        out[keys[idx]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


# --------------------------------------------------------------------------- the build

def prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise UnetblurError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UnetblurError(f"{out}: output folder exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_work_dir(out.parent, f".{out.name}.building-")
    for split in SPLITS:
        for d in split_dirs(tmp, split):
            d.mkdir(parents=True, exist_ok=True)
    return tmp


def publish_dataset(tmp: Path, out: Path, records: list[dict], manifest: dict) -> None:
    """Write the dataset's ``faces.jsonl`` and ``manifest.json`` into the finished ``tmp`` folder, then
    replace ``out`` with it (the old one is removed only after the swap)."""
    write_faces_jsonl(tmp / FACES, records)
    write_text_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _zero_pad(tmp: Path, records: list[dict]) -> None:
    """Rename stored images to 00000.png, 00001.png ... per split (records keep their order)."""
    width = max(5, len(str(len(records))))
    counters = {s: 0 for s in SPLITS}
    for rec in records:
        split = rec["split"]
        old_stem = Path(rec["image"]).stem
        new_stem = f"{counters[split]:0{width}d}"
        counters[split] += 1
        for d in split_dirs(tmp, split):
            os.replace(d / f"{old_stem}.png", d / f".{new_stem}.pending.png")
        rec["image"] = f"{split}/{new_stem}.png"
    for split in SPLITS:  # two passes so a new name never overwrites an old one not yet moved
        for d in split_dirs(tmp, split):
            for p in d.glob(".*.pending.png"):
                os.replace(p, d / (p.name[1:].replace(".pending", "")))


def run_parallel(fn, tasks: list, workers: int, init, initargs: tuple, desc: str, progress: bool = True):
    """Run ``fn`` over ``tasks`` in ``workers`` processes (in-process when 1), yielding results as they
    finish, with a tqdm bar on stderr. ``init(*initargs, in_pool)`` prepares each worker."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="img", file=sys.stderr, disable=not progress, leave=False)
    try:
        if workers == 1:
            init(*initargs, False)
            for t in tasks:
                yield fn(t)
                bar.update()
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(workers, initializer=init, initargs=(*initargs, True)) as pool:
                for res in pool.imap_unordered(fn, tasks, chunksize=8):
                    yield res
                    bar.update()
    finally:
        bar.close()


def build_dataset(cfg: BuildConfig) -> BuildReport:
    """Build a paired dataset from ``cfg.source`` into ``cfg.out`` (see the module docstring).

    Raises :class:`UnetblurError` for unusable input (no images, no annotations, output exists).
    Bad single photos are skipped and listed in ``report.skipped``; dropped boxes in ``report.dropped``.
    """
    cfg.validate()
    out = Path(cfg.out)
    # Before anything else: with --overwrite the old output is removed, so it must not hold an input.
    refuse_overlap(out, {"source folder": cfg.source, "annotations": cfg.annotations,
                         **{f"boxes file ({what})": name[5:] for what, name in (("--detector", cfg.detector),
                                                                                ("--fill-gaps", cfg.fill_gaps))
                            if name and name.startswith("file:")}})
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise UnetblurError(f"{out}: output folder exists and is not empty; pass --overwrite to replace it")
    t0 = time.time()
    src, photos, boxes_from, problems, notes = _gather(cfg)
    if not photos:
        reasons = "; ".join(f"{p['path']}: {p['reason']}" for p in problems[:3])
        raise UnetblurError(f"{src}: no usable images ({reasons or 'nothing listed'})")
    keys = sorted(photos)
    if cfg.limit is not None:
        order = np.random.default_rng([cfg.seed, 1]).permutation(len(keys))
        keys = sorted(keys[i] for i in order[:cfg.limit])
    splits = assign_splits(keys, cfg.split, cfg.seed)
    stems = _stems(keys)
    tasks = [_Task(k, str(src / k), None if photos[k] is None else tuple(photos[k]), splits[k], stems[k])
             for k in keys]
    skipped = [p for p in problems if "missing" in p["reason"] or "skipped" in p["reason"]]
    dropped = [p for p in problems if p not in skipped]
    fixed: list[dict] = []
    tmp = prepare_out(out, cfg.overwrite)
    try:
        records: list[dict] = []
        face_count = {s: 0 for s in SPLITS}
        gap_count = 0
        photo_count = {s: 0 for s in SPLITS}
        for res in run_parallel(_process, tasks, cfg.workers, _init_worker, (cfg, str(tmp)),
                                desc=f"data build {cfg.mode}", progress=cfg.progress):
            if "skipped" in res:
                skipped.append({"path": res["key"], "reason": res["skipped"]})
                continue
            records.extend(res["records"])
            dropped.extend(res["dropped"])
            fixed.extend(res["fixed"])
            gap_count += res["gap_faces"]
            split = splits[res["key"]]
            face_count[split] += res["faces"]
            photo_count[split] += 1
        if not records:
            reasons = "; ".join(f"{p['path']}: {p['reason']}" for p in skipped[:3])
            raise UnetblurError(f"{src}: every image was skipped, nothing built ({reasons})")
        order = {k: i for i, k in enumerate(keys)}
        records.sort(key=lambda r: (SPLITS.index(r["split"]), order[r["source"]], r["image"]))
        if cfg.zero_pad:
            _zero_pad(tmp, records)
        counts = {s: sum(1 for r in records if r["split"] == s) for s in SPLITS}
        manifest = {
            "tool": "unetblur data build", "version": __version__,
            "source": str(src.resolve()), "boxes_from": boxes_from,
            "annotation_format": boxes_from.split(":", 1)[1] if boxes_from.startswith("annotations:") else None,
            "detector": cfg.detector,
            "fill_gaps": ({"detector": cfg.fill_gaps, "min_score": cfg.fill_gaps_score, "split": "train",
                           "faces_added": gap_count} if cfg.fill_gaps else None),
            "targets_from": "ground_truth" if cfg.detector is None else f"detector:{boxes_from.split(':', 1)[1]}",
            "blur": cfg.blur_settings().to_dict(), "mode": cfg.mode, "image_size": cfg.size,
            "seed": cfg.seed, "split_fractions": list(cfg.split), "zero_pad": cfg.zero_pad,
            "crops": ({"crops_per_image": cfg.crops_per_image, "empty_share": cfg.empty_share,
                       "scale_jitter": list(cfg.scale_jitter)} if cfg.mode == "crops" else None),
            "counts": counts, "source_images": photo_count, "source_faces": face_count,
            "images_total": sum(counts.values()), "source_images_total": sum(photo_count.values()),
            "faces_total": sum(face_count.values()),
            "stored_faces_total": sum(len(r["faces"]) for r in records),
            "skipped": sorted(skipped, key=lambda p: p["path"]),
            "dropped_boxes": sorted(dropped, key=lambda p: p["path"]),
            "fixed": sorted(fixed, key=lambda p: p["path"]), "notes": notes,
            "seconds": round(time.time() - t0, 1),
        }
        publish_dataset(tmp, out, records, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(out, manifest, manifest["skipped"], manifest["dropped_boxes"])


def summary_lines(report: BuildReport) -> list[str]:
    """The end-of-run summary: counts, then every skipped photo and dropped box with its reason."""
    m = report.manifest
    c = m["counts"]
    lines = [f"built {report.out}: {m['mode']} {m['image_size']}px, train {c['train']} / val {c['val']} / "
             f"test {c['test']} images from {m['source_images_total']} photos with {m['faces_total']} faces "
             f"(boxes from {m['boxes_from']}) in {m['seconds']} s"]
    lines += [f"note: {n}" for n in m.get("notes", [])]
    if m.get("fill_gaps"):
        g = m["fill_gaps"]
        lines.append(f"filled gaps: {g['faces_added']} unannotated face(s) scoring >= {g['min_score']} by "
                     f"{g['detector']} added to the train split's targets (val and test keep the annotations)")
    if m["fixed"]:
        lines.append(f"fixed: {len(m['fixed'])} box(es) clipped to their image (listed in manifest.json)")
    for p in report.skipped:
        lines.append(f"skipped {p['path']}: {p['reason']}")
    for p in report.dropped:
        lines.append(f"dropped a box in {p['path']}: {p['reason']}")
    if report.skipped or report.dropped:
        lines.append(f"summary: {len(report.skipped)} image(s) skipped, {len(report.dropped)} box(es) dropped "
                     "(also listed in manifest.json)")
    return lines
