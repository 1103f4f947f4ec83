"""The comparison harness: every method is a :class:`~unetblur.runtime.base.Blurrer`, scored with
the metrics of DESIGN.md §4 on a dataset split (and on the full-resolution originals when the
manifest points to them), with cost (parameters, MACs, file size, latency).

``compare(config) -> Path`` writes into ``config.out``:

* ``results.csv``   long format: ``method, metric, bucket, value, resolution``
* ``summary.json``  the same numbers nested, plus what was run, where and how
* ``report.md`` / ``report.html`` (self-contained, graphs inlined) and the graph PNGs

Aggregation: whole-image and face/background errors are the mean over images of per-image values
(images whose region is empty are left out, see ``metrics``); PSNR is that of the mean MSE; per-face metrics
(``coverage`` by ``detail_removed``, ``blur_completeness`` and its ``coverage_recall`` (agreement with the target),
``reid_rate`` and the per-bucket ``mse_face``/``mae_face``,
each over that face's own mask) are pooled over faces, by face-width bucket in original-image pixels.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..blur import BlurSettings, blur_faces, face_mask
from ..config import to_dict, versions
from ..machine import machine_info
from ..data.layout import FACES, list_samples, manifest_blur, read_manifest, require_dataset
from ..errors import BadInputError, UnetblurError
from ..faces import Face, iter_faces_lines
from ..fsutil import atomic_path, write_text_atomic
from ..io import read_image, read_mask
from . import metrics as M
from .report import load_summary  # noqa: F401 - the compare folder's reader, where callers look for it
from .reid import REID_MIN_FACE, REID_THRESHOLD, REID_UNAVAILABLE, reid_available

#: Resolution labels: the dataset's stored images, and the originals they were made from.
DATASET, ORIGINAL = "dataset", "original"
#: Whole-image metrics, in report order.
IMAGE_METRICS = ("mse", "mae", "psnr", "ssim", "mse_face", "mae_face", "mse_bg", "mae_bg", "psnr_bg", "false_blur")
#: Per-face metrics, reported for every face-width bucket and for "all".
FACE_METRICS = ("coverage", "blur_completeness", "coverage_recall", "reid_rate", "mse_face", "mae_face", "faces")
#: What the reid column shows when the user turned it off.
REID_OFF = "off (--no-reid)"
#: Bucket label of a value over every image / face.
ALL = "all"


@dataclass(frozen=True)
class CompareConfig:
    """What ``unetblur compare`` runs.

    data:      dataset folder (DESIGN.md §4 layout).
    methods:   ``NAME=SPEC`` or ``SPEC`` each; SPEC = oracle | identity | a detector (centerface, haar) | a .pt/.onnx file.
    split:     which split to score.
    limit:     score at most this many images (0 = all).
    out:       output folder.
    threads:   intra-op threads for models and ONNX Runtime (0 = one per core); stated in the report.
    mode:      how U-Nets produce the image: raw (the thesis) or composite.
    device:    torch device for .pt models.
    full_res:  also score the originals when the manifest names their folder (``source``/``source_root``).
    full_res_limit: at most this many originals (0 = as many as ``limit``).
    reid:      compute ``reid_rate`` when dlib is installed.
    warmup:    untimed runs of each method before timing.
    grid_images: images in the qualitative grid (0 = no grid).
    runs:      training run folders whose curves the report includes.
    progress:  one line per method and resolution on stderr as it finishes.
    """

    data: str = ""
    methods: tuple[str, ...] = ()
    split: str = "test"
    limit: int = 0
    out: str = "runs/compare"
    threads: int = 0
    mode: str = "raw"
    device: str = "cpu"
    full_res: bool = True
    full_res_limit: int = 20
    reid: bool = True
    warmup: int = 2
    grid_images: int = 4
    runs: tuple[str, ...] = ()
    progress: bool = True


@dataclass
class Case:
    """One image to score: input, target, union mask, faces (evaluated pixels) and their original widths."""

    key: str
    image: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    faces: list[Face]
    widths: list[float]


@dataclass
class Scores:
    """Everything measured for one method at one resolution."""

    per_image: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in IMAGE_METRICS})
    completeness: list[float] = field(default_factory=list)
    detail: list[float] = field(default_factory=list)
    face_mse: list[float] = field(default_factory=list)
    face_mae: list[float] = field(default_factory=list)
    reid_distance: list[float] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    megapixels: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- methods

def parse_methods(methods: Sequence[str]) -> list[tuple[str, str]]:
    """``["teacher=runs/t/model.pt", "haar"]`` → ``[("teacher", "runs/t/model.pt"), ("haar", "haar")]``."""
    if not methods:
        raise UnetblurError("no methods to compare; pass --method NAME=SPEC (SPEC: oracle, centerface, haar, "
                            "a .pt or .onnx model file), e.g. --method oracle --method haar")
    parsed: list[tuple[str, str]] = []
    for item in methods:
        name, sep, spec = str(item).partition("=")
        if not sep:
            from ..runtime.factory import is_model_spec

            spec = name
            name = Path(spec).stem if is_model_spec(spec) else spec
        name, spec = name.strip(), spec.strip()
        if not name or not spec:
            raise UnetblurError(f"--method {item!r}: expected NAME=SPEC, e.g. teacher=runs/teacher/model.pt")
        if any(name == n for n, _ in parsed):
            raise UnetblurError(f"--method: the name {name!r} is used twice; give each method its own NAME=")
        parsed.append((name, spec))
    return parsed


def _targets_from(manifest: dict) -> str:
    value = manifest.get("targets_from") or manifest.get("detector") and f"detector ({manifest['detector']})"
    return str(value or "unknown (no manifest.json)")


# --------------------------------------------------------------------------- cases

def _face_records(root: Path) -> dict[tuple[str, str], dict]:
    """faces.jsonl records keyed by (split, stem)."""
    path = root / FACES
    if not path.is_file():
        return {}
    out = {}
    for _, rec in iter_faces_lines(path):
        image = Path(rec["image"])
        split = rec.get("split") or (image.parts[0] if len(image.parts) > 1 else "")
        out[(str(split), image.stem)] = rec
    return out


def _faces_of(rec: dict, key: str) -> list[Face]:
    return [f if isinstance(f, Face) else Face.from_dict(f) for f in (rec.get(key) or [])]


def _original_widths(rec: dict, faces: list[Face]) -> list[float]:
    """Face widths in original-image pixels: from ``source_faces``, else ``scale``, else as stored."""
    source = _faces_of(rec, "source_faces")
    if len(source) == len(faces):
        return [f.width for f in source]
    scale = rec.get("scale")
    if isinstance(scale, (int, float)) and scale > 0:
        return [f.width / float(scale) for f in faces]
    return [f.width for f in faces]


def _dataset_cases(root: Path, split: str, limit: int, records: dict, settings: BlurSettings,
                   skipped: list[str]) -> list[Case]:
    cases = []
    for sample in list_samples(root, split):
        if limit and len(cases) >= limit:
            break
        rec = records.get((split, sample.stem), {})
        faces = _faces_of(rec, "faces")
        try:
            image, target = read_image(sample.image), read_image(sample.target)
            if image.shape != target.shape:
                raise BadInputError(sample.target, f"size {target.shape[1]}x{target.shape[0]} differs from its "
                                                   f"input's {image.shape[1]}x{image.shape[0]}")
            if sample.mask is not None:
                mask = read_mask(sample.mask)
            else:
                mask = blur_faces(image, faces, settings)[1]
        except BadInputError as exc:
            skipped.append(str(exc))
            continue
        cases.append(Case(f"{split}/{sample.stem}", image, target, (mask > 127).astype(np.uint8), faces,
                          _original_widths(rec, faces)))
    return cases


def _original_cases(root: Path, split: str, limit: int, settings: BlurSettings, skipped: list[str]) -> list[Case]:
    """Full-resolution cases: each original (:func:`~unetblur.evaluate.photos.original_photos`) with its
    source faces; target = ``blur_faces`` at full size."""
    from .photos import original_photos

    cases = []
    for photo in original_photos(root, split):
        if limit and len(cases) >= limit:
            break
        if not photo.path.is_file():
            continue
        try:
            image = read_image(photo.path)
        except BadInputError as exc:
            skipped.append(str(exc))
            continue
        target, mask = blur_faces(image, photo.faces, settings)
        cases.append(Case(f"{split}/{photo.path.stem} (original)", image, target, (mask > 127).astype(np.uint8),
                          photo.faces, [f.width for f in photo.faces]))
    return cases


# --------------------------------------------------------------------------- scoring

def _score_case(blurrer, case: Case, settings: BlurSettings, scores: Scores, recognizer, input_embeddings) -> np.ndarray:
    start = time.perf_counter()
    result = blurrer(case.image, case.faces)
    scores.ms.append((time.perf_counter() - start) * 1000.0)
    scores.megapixels.append(case.image.shape[0] * case.image.shape[1] / 1e6)
    out = np.asarray(result.image)
    if out.shape != case.image.shape or out.dtype != np.uint8:
        raise UnetblurError(f"method {blurrer.name!r} returned a {out.dtype} image of shape {out.shape} for "
                            f"{case.key} ({case.image.shape} uint8 expected)")
    o, i, t = (a.astype(np.float64) / 255.0 for a in (out, case.image, case.target))
    m = case.mask
    values = {
        "mse": M.mse(o, t), "mae": M.mae(o, t), "psnr": M.psnr(o, t), "ssim": M.ssim(o, t),
        "mse_face": M.mse_face(o, t, m), "mae_face": M.mae_face(o, t, m),
        "mse_bg": M.mse_bg(o, t, m), "mae_bg": M.mae_bg(o, t, m), "psnr_bg": M.psnr_bg(o, t, m),
        "false_blur": M.false_blur(o, i, m),
    }
    for name, value in values.items():
        scores.per_image[name].append(value)
    for idx, (face, width) in enumerate(zip(case.faces, case.widths)):
        fm = face_mask(case.image.shape[:2], face, settings)
        scores.completeness.append(M.blur_completeness(o, i, t, fm))
        scores.detail.append(M.detail_removed(out, case.image, face))
        scores.face_mse.append(M.mse_face(o, t, fm))
        scores.face_mae.append(M.mae_face(o, t, fm))
        scores.widths.append(width)
        if recognizer is not None and face.width >= REID_MIN_FACE:
            ref = input_embeddings[idx]
            scores.reid_distance.append(float(np.linalg.norm(recognizer.embed(out, face) - ref)))
        else:
            scores.reid_distance.append(math.nan)
    return out


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def _reid_rate(distances: Sequence[float]) -> float:
    eligible = [d for d in distances if not math.isnan(d)]
    return sum(d <= REID_THRESHOLD for d in eligible) / len(eligible) if eligible else math.nan


def _summarise(scores: Scores, reid_off: str | None) -> dict[str, dict[str, Any]]:
    """metric → bucket → value. ``reid_off``: None when reid ran, else the text its column shows."""
    out: dict[str, dict[str, Any]] = {name: {ALL: _nanmean(vals)} for name, vals in scores.per_image.items()}
    # PSNR of the mean MSE: a mean of per-image PSNRs is +inf as soon as one image is exact.
    out["psnr"][ALL] = M.psnr_from_mse(out["mse"][ALL])
    out["psnr_bg"][ALL] = M.psnr_from_mse(out["mse_bg"][ALL])
    buckets = [ALL] + M.bucket_names()
    idx_by_bucket = {b: [] for b in buckets}
    for i, w in enumerate(scores.widths):
        idx_by_bucket[ALL].append(i)
        idx_by_bucket[M.size_bucket(w)].append(i)
    for name in ("coverage", "blur_completeness", "coverage_recall", "reid_rate", "faces"):
        out[name] = {}
    for bucket in buckets:
        idx = idx_by_bucket[bucket]
        comp = [scores.completeness[i] for i in idx]
        out["blur_completeness"][bucket] = _nanmean(comp)
        out["coverage_recall"][bucket] = M.coverage_recall(comp)
        out["coverage"][bucket] = M.coverage([scores.detail[i] for i in idx])
        out["reid_rate"][bucket] = (_reid_rate([scores.reid_distance[i] for i in idx]) if reid_off is None
                                   else reid_off)
        out["faces"][bucket] = len(idx)
        if bucket != ALL:  # "all" keeps the DESIGN definition: inside the union mask, per image
            out["mse_face"][bucket] = _nanmean([scores.face_mse[i] for i in idx])
            out["mae_face"][bucket] = _nanmean([scores.face_mae[i] for i in idx])
    out["images"] = {ALL: len(scores.ms)}
    return out


def _latency(scores: Scores) -> dict[str, float]:
    if not scores.ms:
        return {"ms_per_image": math.nan, "ms_per_megapixel": math.nan}
    return {"ms_per_image": statistics.median(scores.ms),
            "ms_per_megapixel": statistics.median(ms / mp for ms, mp in zip(scores.ms, scores.megapixels))}


def _model_cost(spec: str, blurrer, hw: tuple[int, int] | None) -> dict[str, Any]:
    """Parameters, MACs at the evaluated size and file size of a model method (NaN where unknown)."""
    cost: dict[str, Any] = {"parameters": math.nan, "macs": math.nan, "file_bytes": math.nan}
    path = Path(spec)
    if not path.suffix or not path.is_file():
        return cost
    cost["file_bytes"] = path.stat().st_size
    module = None
    try:
        import torch  # noqa: F401  (cost needs torch; the runtime does not)
        from ..models import build_from_kind, count_parameters

        inner = getattr(blurrer, "model", None)
        module = getattr(inner, "module", None)
        if module is None:
            meta = getattr(inner, "metadata", {}) or {}
            if meta.get("spec"):
                arch = json.loads(meta["spec"])
                module = build_from_kind(arch.pop("kind", "unet"), arch)
        if module is not None:
            cost["parameters"] = count_parameters(module)
            if hw is not None:
                from ..models import model_stride
                from ..models.cost import count_macs

                s = model_stride(module)
                h, w = -(-hw[0] // s) * s, -(-hw[1] // s) * s
                cost["macs"] = count_macs(module, h, w)
                cost["macs_at"] = f"{w}x{h}"
    except (ImportError, ValueError, UnetblurError, TypeError, KeyError):
        pass
    return cost


def _kind(spec: str) -> str:
    from ..runtime.factory import is_model_spec

    if spec in ("oracle", "identity"):
        return "reference"
    return "model" if is_model_spec(spec) else "detector"


# --------------------------------------------------------------------------- outputs

def _json_value(v: Any) -> Any:
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, (np.integer, np.floating)):
        return _json_value(v.item())
    return v


def results_rows(summary: dict) -> list[dict]:
    """The long-format rows of ``results.csv`` from a summary."""
    rows = []
    for name, method in summary["methods"].items():
        for resolution, table in method["metrics"].items():
            for metric, buckets in table.items():
                for bucket, value in buckets.items():
                    rows.append({"method": name, "metric": metric, "bucket": bucket, "value": value,
                                 "resolution": resolution})
        for metric, value in method["cost"].items():
            rows.append({"method": name, "metric": metric, "bucket": ALL, "value": value, "resolution": DATASET})
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["method", "metric", "bucket", "value", "resolution"])
        writer.writeheader()
        for row in rows:
            v = row["value"]
            if v is None:
                v = "nan"
            writer.writerow({**row, "value": v})


# --------------------------------------------------------------------------- the harness

def compare(config: CompareConfig) -> Path:
    """Score every method of ``config`` and write results, summary, report and graphs; returns the output folder.

    Unreadable images are skipped and listed in ``summary.json["skipped"]`` (the CLI then exits 1).
    """
    from ..runtime.factory import open_blurrer

    root, methods = _check_compare_config(config)
    manifest = read_manifest(root)
    settings = manifest_blur(manifest)
    threads = config.threads or os.cpu_count() or 1
    skipped: list[str] = []
    cases = _load_cases(config, root, manifest, settings, skipped)
    reid = _Reid.start(config, cases)

    grid = [{"image": c.image, "target": c.target, "faces": c.faces, "outputs": {}}
            for c in cases[DATASET][:config.grid_images]]
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Open every method before scoring any, so a bad spec fails in seconds, not after an hour of scoring.
    blurrers = [open_blurrer(spec, settings, name=name, mode=config.mode, device=config.device, threads=threads)
                for name, spec in methods]
    summary_methods = {name: _score_method(config, name, spec, blurrer, cases, settings, reid, grid, threads)
                       for (name, spec), blurrer in zip(methods, blurrers)}
    summary = _json_value(_summary(config, root, manifest, settings, cases, threads, reid, skipped, summary_methods))
    _write_outputs(config, summary, out_dir, grid, [n for n, _ in methods])
    return out_dir


def _check_compare_config(config: CompareConfig) -> tuple[Path, list[tuple[str, str]]]:
    """Refuse settings that cannot work; returns the dataset root and the (name, spec) methods."""
    if not config.data:
        raise UnetblurError("no dataset given; pass --data DIR (a folder made by `unetblur data build`)")
    root = require_dataset(config.data, config.split)
    methods = parse_methods(config.methods)
    if config.mode not in ("raw", "composite"):
        raise UnetblurError(f"mode {config.mode!r} is unknown; choose raw or composite")
    if config.limit < 0 or config.full_res_limit < 0 or config.threads < 0 or config.warmup < 0:
        raise UnetblurError("limit, full_res_limit, threads and warmup must be 0 or more")
    return root, methods


def _load_cases(config: CompareConfig, root: Path, manifest: dict, settings: BlurSettings,
                skipped: list[str]) -> dict[str, list[Case]]:
    """The cases per resolution: the dataset images, and (``full_res``) the originals they were cut from."""
    records = _face_records(root)
    cases = {DATASET: _dataset_cases(root, config.split, config.limit, records, settings, skipped)}
    if not cases[DATASET]:
        raise UnetblurError(f"{root}: no readable images in {config.split}/ to compare on")
    if config.full_res:
        originals = _original_cases(root, config.split, config.full_res_limit or config.limit, settings, skipped)
        if originals:
            cases[ORIGINAL] = originals
    return cases


@dataclass
class _Reid:
    """Re-identification for one compare run: on (recognizer + the input faces' embeddings) or off (why)."""
    on: bool
    off_reason: str | None
    recognizer: Any = None
    embeddings: dict = field(default_factory=dict)   # resolution → case index → embedding per face (or None)

    @classmethod
    def start(cls, config: CompareConfig, cases: dict[str, list[Case]]) -> "_Reid":
        if not (config.reid and reid_available()):
            return cls(False, REID_UNAVAILABLE if config.reid else REID_OFF)
        from .reid import default_recognizer

        recognizer = default_recognizer()
        embeddings = {res: {k: [recognizer.embed(c.image, f) if f.width >= REID_MIN_FACE else None
                                for f in c.faces] for k, c in enumerate(items)}
                      for res, items in cases.items()}
        return cls(True, None, recognizer, embeddings)


def _score_method(config: CompareConfig, name: str, spec: str, blurrer, cases: dict[str, list[Case]],
                  settings: BlurSettings, reid: _Reid, grid: list[dict], threads: int) -> dict[str, Any]:
    """Score one method on every case (filling its column of the grid); returns its summary entry."""
    metrics_by_res, latency = {}, {}
    for res, items in cases.items():
        for _ in range(config.warmup):
            blurrer(items[0].image, items[0].faces)
        scores = Scores()
        for k, case in enumerate(items):
            out = _score_case(blurrer, case, settings, scores, reid.recognizer, reid.embeddings.get(res, {}).get(k))
            if res == DATASET and k < len(grid):
                grid[k]["outputs"][name] = out
        metrics_by_res[res] = _summarise(scores, reid.off_reason)
        latency[res] = _latency(scores)
        if config.progress:
            print(f"compare: {name} on {len(items)} {res} images: mse {metrics_by_res[res]['mse'][ALL]:.4g}, "
                  f"coverage {metrics_by_res[res]['coverage'][ALL]:.3g}, "
                  f"{latency[res]['ms_per_image']:.3g} ms/image", file=sys.stderr, flush=True)
    hw = cases[DATASET][0].image.shape[:2]
    cost = _model_cost(spec, blurrer, hw)
    cost.update({"ms_per_image": latency[DATASET]["ms_per_image"],
                 "ms_per_megapixel": latency[DATASET]["ms_per_megapixel"], "threads": threads})
    if ORIGINAL in latency:
        cost.update({"ms_per_image_original": latency[ORIGINAL]["ms_per_image"],
                     "ms_per_megapixel_original": latency[ORIGINAL]["ms_per_megapixel"]})
    return {"spec": spec, "kind": _kind(spec), "metrics": metrics_by_res, "cost": cost}


def _summary(config: CompareConfig, root: Path, manifest: dict, settings: BlurSettings,
             cases: dict[str, list[Case]], threads: int, reid: _Reid, skipped: list[str],
             methods: dict[str, Any]) -> dict[str, Any]:
    """summary.json: what was compared, on what, on which machine, and every method's scores."""
    first = cases[DATASET][0].image.shape
    return {
        "unetblur_version": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "dataset": str(root), "split": config.split,
        "images": {res: len(items) for res, items in cases.items()},
        "image_size": f"{first[1]}x{first[0]}",
        "targets_from": _targets_from(manifest),
        "blur": settings.to_dict(),
        "mode": config.mode,
        "threads": threads,
        "machine": machine_info(),
        "versions": versions(),
        "reid": "dlib face recognition ResNet, threshold 0.6, faces >= 48 px" if reid.on else reid.off_reason,
        "config": to_dict(config),
        "skipped": skipped,
        "methods": methods,
    }


def _write_outputs(config: CompareConfig, summary: dict, out_dir: Path, grid: list[dict], names: list[str]) -> None:
    """summary.json, results.csv, the graphs (the qualitative grid, training curves of ``runs``) and the report."""
    from . import plots, report

    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    _write_csv(out_dir / "results.csv", results_rows(summary))
    graphs = plots.plot_summary(summary, out_dir)
    if grid and grid[0]["outputs"]:
        graphs["Qualitative grid"] = plots.plot_grid(grid, names, out_dir / "grid.png")
    for run in config.runs:
        graphs.update(plots.plot_run(run, out_dir))
    report.write_reports(summary, out_dir, graphs)
