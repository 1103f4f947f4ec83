"""The full-photo privacy protocol (DESIGN.md §4): the ruler every privacy claim is made with.

Whole held-out photographs at their native resolution, each method run through exactly what
``unetblur blur`` runs (a method *is* a set of ``blur`` flags: same model, working size, threshold,
scales, compositing), timed end to end in the same run (decode, anonymise, encode to the photo's
own format), and scored per face and per photo:

* ``coverage`` (per face-width bucket, original pixels): share of faces whose ``detail_removed`` ≥ 0.8;
* ``bg_changed`` / ``false_blur_images``: how much of the scene a method damages;
* ``reid_rank1``: each output face (≥ 48 px) against the gallery of ALL original faces of the run,
  re-identified when the nearest is its own original (chance = 1 / gallery size); ``reid_verify``
  (distance to its own original < 0.6) is secondary.

The photos are the ``split`` (default ``test``) of one or more datasets made by ``unetblur data
build``: their records name each source photo and its ground-truth boxes in original pixels, and the
split is by source photo, so none of these photos was seen in training.

``photo_benchmark(config) -> Path`` writes ``results.json``, ``table.md``, ``pareto.png`` and
side-by-side ``sheets/`` (whole photos: derived from the data set, keep them out of git).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..config import to_dict, versions
from ..machine import describe_machine, machine_info
from ..data.layout import FACES, dataset_folders, read_manifest
from ..errors import BadInputError, UnetblurError
from ..faces import Face, iter_faces_jsonl
from ..fsutil import write_text_atomic
from ..runtime.operating_point import COMPOSITE_DEFAULTS
from . import metrics as M
from .reid import REID_MIN_FACE, REID_THRESHOLD, reid_available, reid_rank1

#: Face-width buckets that privacy targets are stated for (the smaller ones are reported too).
TARGET_BUCKETS = ("32-64", "64-128", ">=128")
#: Photos each method runs before the next takes its turn (see photo_benchmark).
INTERLEAVE_BLOCK = 16


@dataclass(frozen=True)
class PhotoBenchConfig:
    """What ``unetblur privacy`` runs.

    data:    dataset folder(s) made by ``data build`` (``DIR`` or ``DIR1,DIR2``): the originals of their
             ``split`` photos are scored, at native resolution.
    methods: ``NAME=BLUR FLAGS`` each (read by the command), the flags exactly as ``unetblur blur`` takes them, e.g.
             ``centerface@0.3=--model centerface@0.3`` or ``student=--model student --threshold 0.4``.
    split:   which split's photos (``test``: held out; ``val``: for choosing an operating point).
    limit:   at most this many photos per dataset folder (0 = all).
    reid:    compute reid_rank1 / reid_verify (needs ``unetblur[reid]``).
    warmup:  untimed runs of each method on the first photo.
    sheets:  photos shown side by side in ``sheets/`` (0 = none).
    """

    data: str = ""
    methods: tuple[str, ...] = ()
    split: str = "test"
    limit: int = 0
    out: str = "runs/privacy"
    reid: bool = True
    warmup: int = 2
    sheets: int = 6
    progress: bool = True


@dataclass
class Photo:
    """One original photo and its ground-truth faces (original pixels)."""

    key: str
    path: Path
    faces: list[Face]


@dataclass
class MethodScores:
    """Per-photo and per-face measurements of one method."""

    ms: list[float] = field(default_factory=list)
    megapixels: list[float] = field(default_factory=list)
    bg_changed: list[float] = field(default_factory=list)
    detail: list[float] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    reid_probe: dict[int, np.ndarray] = field(default_factory=dict)   # gallery row → output embedding


# --------------------------------------------------------------------------- photos

def original_photos(root: Path, split: str) -> list[Photo]:
    """The original photos behind ``split`` of one dataset folder, with their faces in original pixels,
    sorted by source path; [] when the dataset does not name its originals (a hand-made folder).

    A photo that several records come from (crops mode) is listed once, with the union of their faces
    (deduplicated by box); faces are kept unclipped, as the dataset build blurs them.
    """
    manifest = read_manifest(root)
    source_root = manifest.get("source_root") or manifest.get("source")
    if not source_root or not (root / FACES).is_file():
        return []
    source_root = Path(source_root) if Path(source_root).is_absolute() else root / source_root
    by_source: dict[str, dict[tuple, Face]] = {}
    for rec in iter_faces_jsonl(root / FACES):
        if rec.get("split") != split or not rec.get("source"):
            continue
        faces = by_source.setdefault(str(rec["source"]), {})
        for f in rec.get("source_faces") or []:
            face = f if isinstance(f, Face) else Face.from_dict(f)
            if face.is_valid():
                faces.setdefault(tuple(round(v, 1) for v in face.box), face)
    return [Photo(f"{root.name}/{key}", source_root / key, list(faces.values()))
            for key, faces in sorted(by_source.items())]


def held_out_photos(data: str, split: str = "test", limit: int = 0) -> list[Photo]:
    """:func:`original_photos` of each dataset folder in ``data`` (``DIR`` or ``DIR1,DIR2``), at most
    ``limit`` per folder (0 = all)."""
    photos: list[Photo] = []
    for root in dataset_folders(data):
        found = original_photos(root, split)
        if not found and not read_manifest(root).get("source"):
            raise UnetblurError(f"{root}: no manifest source or {FACES}; the full-photo protocol needs a dataset "
                                "made by `unetblur data build` (it names each photo's original)")
        photos += found[:limit] if limit else found
    if not photos:
        raise UnetblurError(f"--data {data}: no photos in the {split!r} split")
    return photos


# --------------------------------------------------------------------------- methods

def time_one_photo(blurrer, photo: Photo, scratch: Path):
    """Decode, anonymise and encode one photo as ``unetblur blur`` does; returns (image, output, ms)."""
    from ..anonymise import anonymised
    from ..io import read_image, write_image

    start = time.perf_counter()
    image = read_image(photo.path)
    result = anonymised(blurrer, image, source=str(photo.path))
    write_image(scratch / f"out{photo.path.suffix.lower() or '.png'}", result.image)
    return image, result.image, (time.perf_counter() - start) * 1000.0


# --------------------------------------------------------------------------- the run

def photo_benchmark(cfg: PhotoBenchConfig, methods: Sequence[tuple[str, Any]]) -> Path:
    """Run every method over the held-out photos; write the table, JSON, Pareto plot and sheets into ``cfg.out``.

    ``methods``: ``(name, BlurConfig)`` pairs, each the configuration ``unetblur blur`` runs (the
    command turns ``cfg.methods``' flags into them with blur's own parser).
    """
    from ..anonymise import open_blurrer_for

    if not methods:
        raise UnetblurError("no methods; pass --method NAME=BLUR FLAGS, e.g. --method \"cf=--model centerface\"")
    names = [n for n, _ in methods]
    if len(set(names)) != len(names):
        raise UnetblurError(f"--method: each NAME must be unique, got {names}")
    photos = held_out_photos(cfg.data, cfg.split, cfg.limit)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    recognizer = _recognizer(cfg.reid)
    gallery, gallery_index, skipped = _gallery(photos, recognizer)
    sheet_photos = _sheet_choice(photos, cfg.sheets)
    sheet_images: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}  # photo → method → (input, output)

    if recognizer is None:
        # Read every photo once before any timing (re-ID's gallery already has): else the first method
        # pays the cold disk reads, ~20 % of centerface@0.3's time per photo on a 401-photo val run.
        for photo in photos:
            photo.path.read_bytes()
    with tempfile.TemporaryDirectory(prefix=".privacy-", dir=out) as scratch:
        scratch = Path(scratch)
        blurrers = {name: open_blurrer_for(bcfg, threads=bcfg.threads) for name, bcfg in methods}
        for blurrer in blurrers.values():
            for _ in range(cfg.warmup):
                time_one_photo(blurrer, photos[0], scratch)
        scores = {name: MethodScores() for name in names}
        # Methods take turns over blocks of photos, each block starting with the next method: the load
        # of a shared machine drifts by ±15 % over a run, and running the methods one after the other
        # gave that drift to whichever ran last. Blocks (not photo by photo) keep one runtime's idle
        # worker threads from spinning into the next method's time.
        for b_idx, start in enumerate(range(0, len(photos), INTERLEAVE_BLOCK)):
            turn = names[b_idx % len(names):] + names[:b_idx % len(names)]
            for name in turn:
                for p_idx in range(start, min(start + INTERLEAVE_BLOCK, len(photos))):
                    photo = photos[p_idx]
                    try:
                        image, output, ms = time_one_photo(blurrers[name], photo, scratch)
                    except BadInputError as exc:
                        skipped.add(f"{photo.key}: {exc}")
                        continue
                    score_photo(scores[name], image, output, photo, p_idx, gallery_index, recognizer)
                    scores[name].ms.append(ms)
                    scores[name].megapixels.append(image.shape[0] * image.shape[1] / 1e6)
                    if photo.key in sheet_photos:
                        sheet_images.setdefault(photo.key, {})[name] = (image, output)
    results: dict[str, dict] = {}
    for name, bcfg in methods:
        results[name] = summarise_scores(scores[name], gallery, bcfg)
        if cfg.progress:
            r = results[name]
            print(f"privacy: {name}: {r['ms_per_photo']:.0f} ms/photo, coverage≥32 {r['coverage']['>=32']:.3f}, "
                  f"bg_changed {100 * r['bg_changed']:.2f} %", file=sys.stderr)
    summary = {
        "protocol": "full photos at native resolution; each method = `unetblur blur` flags; time = decode + "
                    "anonymise + encode, median and mean over photos after warm-up; methods take turns "
                    f"over blocks of {INTERLEAVE_BLOCK} photos",
        "data": cfg.data, "split": cfg.split, "photos": len(photos),
        "faces": sum(len(p.faces) for p in photos),
        "gallery_size": len(gallery) if recognizer is not None else None,
        "reid": "on" if recognizer is not None else ("off" if not cfg.reid else "unavailable (install unetblur[reid])"),
        "machine": machine_info(),
        "versions": {"unetblur": __version__, **versions()},
        "config": to_dict(cfg),
        "skipped": sorted(skipped),
        "methods": results,
    }
    write_text_atomic(out / "results.json", json.dumps(summary, indent=1, default=_json_default) + "\n")
    write_text_atomic(out / "table.md", render_table(summary))
    from .plots import plot_privacy_pareto

    plot_privacy_pareto(results, out / "pareto.png")
    _write_sheets(out / "sheets", sheet_images, names)
    return out


def _recognizer(wanted: bool):
    if not wanted or not reid_available():
        return None
    from .reid import default_recognizer

    return default_recognizer()


def _gallery(photos: list[Photo], recognizer):
    """Embeddings of every original face ≥ REID_MIN_FACE px wide: (G×128 array, {(photo, face): row}, skipped)."""
    rows, index, skipped = [], {}, set()
    if recognizer is None:
        return np.zeros((0, 128)), index, skipped
    from ..io import read_image

    for p_idx, photo in enumerate(photos):
        eligible = [(f_idx, f) for f_idx, f in enumerate(photo.faces) if f.width >= REID_MIN_FACE]
        if not eligible:
            continue
        try:
            image = read_image(photo.path)
        except BadInputError as exc:
            skipped.add(f"{photo.key}: {exc}")
            continue
        for f_idx, face in eligible:
            index[(p_idx, f_idx)] = len(rows)
            rows.append(recognizer.embed(image, face))
    return (np.stack(rows) if rows else np.zeros((0, 128))), index, skipped


def score_photo(scores: MethodScores, image, output, photo: Photo, p_idx: int, gallery_index, recognizer) -> None:
    """Add one anonymised photo to ``scores``: its background change, each face's detail_removed and width,
    and the re-ID probe of each face that has a gallery row."""
    scores.bg_changed.append(M.bg_changed(output, image, photo.faces))
    for f_idx, face in enumerate(photo.faces):
        scores.detail.append(M.detail_removed(output, image, face))
        scores.widths.append(face.width)
        row = gallery_index.get((p_idx, f_idx))
        if row is not None and recognizer is not None:
            scores.reid_probe[row] = recognizer.embed(output, face)


def summarise_scores(scores: MethodScores, gallery: np.ndarray, bcfg) -> dict:
    """One method's table row: coverage by face-size bucket, bg_changed, re-ID and time, with its settings."""
    buckets: dict[str, list[float]] = {name: [] for name in M.bucket_names()}
    for value, width in zip(scores.detail, scores.widths):
        buckets[M.size_bucket(width)].append(value)
    coverage = {name: M.coverage(values) for name, values in buckets.items()}
    targets = [v for b in TARGET_BUCKETS for v in buckets[b]]
    coverage[">=32"] = M.coverage(targets)
    coverage["all"] = M.coverage(scores.detail)
    faces = {name: sum(not math.isnan(v) for v in values) for name, values in buckets.items()}
    rows = sorted(scores.reid_probe)
    probes = np.stack([scores.reid_probe[r] for r in rows]) if rows else np.zeros((0, 128))
    rank1 = reid_rank1(probes, gallery, rows) if rows else math.nan
    verify = (float(np.mean(np.linalg.norm(probes - gallery[rows], axis=1) < REID_THRESHOLD)) if rows else math.nan)
    mean_ms = statistics.fmean(scores.ms) if scores.ms else math.nan
    return {
        # Every composite setting (COMPOSITE_DEFAULTS' keys), so no operating-point key is left unreported.
        "flags": {k: v for k, v in to_dict(bcfg).items() if k in ("model", "mode", *COMPOSITE_DEFAULTS, "style",
                                                                     "shape", "threads")}
                 | {"mask_scale": bcfg.method_mask_scale()},
        "ms_per_photo": statistics.median(scores.ms) if scores.ms else math.nan,
        "ms_per_photo_mean": mean_ms,
        "photos_per_s": 1000.0 / mean_ms if scores.ms else math.nan,
        "ms_per_megapixel": (sum(scores.ms) / sum(scores.megapixels)) if scores.megapixels else math.nan,
        "coverage": coverage,
        "coverage_ci95": {name: M.coverage_interval(values)
                          for name, values in {**buckets, ">=32": targets, "all": scores.detail}.items()},
        "faces": faces,
        "bg_changed": _nanmean(scores.bg_changed),
        "false_blur_images": M.false_blur_images(scores.bg_changed),
        "reid_rank1": rank1,
        "reid_verify": verify,
        "reid_faces": len(rows),
    }


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


# --------------------------------------------------------------------------- outputs

def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def render_table(summary: dict) -> str:
    """The Markdown table of a run (what README and MODEL_CARD quote)."""
    bucket_cols = M.bucket_names()
    methods = summary["methods"]
    any_faces = next(iter(methods.values()))["faces"] if methods else {}
    head = (["method", "ms/photo", "photos/s"] + [f"cov {b} ({any_faces.get(b, 0)})" for b in bucket_cols]
            + [f"cov ≥32 ({sum(any_faces.get(b, 0) for b in TARGET_BUCKETS)}), 95 % CI", "bg_changed",
               "false-blur photos", "reid_rank1", "reid_verify"])
    lines = [
        f"# Full-photo privacy table ({summary['split']} split)",
        "",
        f"{summary['photos']} whole photos at native resolution ({summary['faces']} faces) from `{summary['data']}`; "
        f"each method run as `unetblur blur` runs it; {describe_machine(summary['machine'])}, backend "
        "default threads; time = decode + anonymise + encode (median per photo after warm-up).",
        "coverage = share of faces with detail_removed ≥ 0.8, by face width in original pixels (faces per bucket "
        "in brackets); the interval of the faces ≥ 32 px is Wilson's, so rows whose intervals overlap "
        "are not told apart by this many faces. "
        + (f"reid_rank1: gallery of {summary['gallery_size']} original faces ≥ {REID_MIN_FACE} px "
           f"(chance {_fmt(1 / summary['gallery_size'], 4)})." if summary["gallery_size"]
           else f"reid: {summary['reid']}."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, r in methods.items():
        cells = [f"`{name}`", _fmt(r["ms_per_photo"], 0), _fmt(r["photos_per_s"], 2)]
        cells += [_fmt(r["coverage"].get(b)) for b in bucket_cols]
        lo, hi = r.get("coverage_ci95", {}).get(">=32", (math.nan, math.nan))
        cells.append(f"{_fmt(r['coverage'].get('>=32'))} ({_fmt(lo)}–{_fmt(hi)})")
        cells += [f"{100 * r['bg_changed']:.2f} %" if not math.isnan(r["bg_changed"]) else "—",
                  f"{100 * r['false_blur_images']:.0f} %" if not math.isnan(r["false_blur_images"]) else "—",
                  _fmt(r["reid_rank1"]), _fmt(r["reid_verify"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Methods (the `unetblur blur` settings each row ran):", ""]
    for name, r in methods.items():
        flags = ", ".join(f"{k}={v}" for k, v in r["flags"].items() if v is not None)
        lines.append(f"- `{name}`: {flags}")
    if summary["skipped"]:
        lines += ["", f"Skipped: {len(summary['skipped'])} photo(s): " + "; ".join(summary["skipped"][:5])]
    return "\n".join(lines) + "\n"


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _sheet_choice(photos: list[Photo], count: int) -> set[str]:
    """The photos shown side by side: spread evenly over the list (deterministic)."""
    if count <= 0:
        return set()
    step = max(1, len(photos) // count)
    return {p.key for p in photos[::step][:count]}


def _write_sheets(folder: Path, sheet_images: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
                  names: list[str]) -> None:
    """One JPEG per photo: the original, then each method's output, side by side at 480 px wide each."""
    import cv2

    from ..io import write_image

    if not sheet_images:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i, (key, by_method) in enumerate(sorted(sheet_images.items())):
        shown = [n for n in names if n in by_method]
        images = [by_method[shown[0]][0], *(by_method[n][1] for n in shown)]
        panels = []
        for label, img in zip(["input", *shown], images):
            scale = 480 / img.shape[1]
            small = cv2.resize(img, (480, max(1, round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            small = small.copy()
            cv2.putText(small, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
            panels.append(small)
        height = max(p.shape[0] for p in panels)
        row = np.zeros((height, 480 * len(panels), 3), np.uint8)
        for j, p in enumerate(panels):
            row[:p.shape[0], 480 * j:480 * (j + 1)] = p
        write_image(folder / f"sheet_{i:02d}.jpg", row, quality=85)
