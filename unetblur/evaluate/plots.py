"""Graphs of a comparison (matplotlib, Agg backend, PNG files).

* ``errors.png``    MSE and MAE per method, split into whole image / face / background
* ``coverage.png``  coverage (detail removed ≥ 0.8) by face-width bucket, one line per method
* :func:`plot_errors_by_size`: face MSE and MAE by face-width bucket, one line per method
* ``pareto.png``    quality (MSE) against latency (ms per megapixel), with the Pareto front
* ``grid.png``      original | target | each method on the same images, ground-truth faces outlined
* training curves of run folders (train vs val MSE and MAE), drawn by ``unetblur.evaluate.curves``

Every function takes the data it draws and the path to write, and returns that path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UnetblurError
from ..fsutil import atomic_path

_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _num(v: Any) -> float:
    """Summary value → float (null → NaN, "inf" → inf, text such as "unavailable" → NaN)."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return math.nan
    return float(v)


def _metric(summary: dict, method: str, metric: str, bucket: str = "all", resolution: str = "dataset") -> float:
    table = summary["methods"][method]["metrics"].get(resolution, {})
    return _num(table.get(metric, {}).get(bucket))


def plot_errors(summary: dict, path: str | os.PathLike, resolution: str = "dataset") -> Path:
    """Grouped bars: MSE (left) and MAE (right) per method, whole image / inside faces / background."""
    plt = _pyplot()
    names = list(summary["methods"])
    parts = (("", "whole image"), ("_face", "faces"), ("_bg", "background"))
    fig, axes = plt.subplots(1, 2, figsize=(max(7, 1.6 * len(names) + 3), 4.2), dpi=100)
    x = np.arange(len(names))
    width = 0.8 / len(parts)
    for ax, base in zip(axes, ("mse", "mae")):
        for j, (suffix, label) in enumerate(parts):
            vals = [_metric(summary, n, base + suffix, resolution=resolution) for n in names]
            bars = ax.bar(x + (j - 1) * width, np.nan_to_num(vals, nan=0.0), width, label=label, color=_COLORS[j])
            for bar, v in zip(bars, vals):
                if math.isnan(v):
                    bar.set_hatch("//")
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel(base.upper() + " (values in [0, 1])")
        ax.set_title(f"{base.upper()} against the target")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_coverage(summary: dict, path: str | os.PathLike, resolution: str = "dataset") -> Path:
    """Coverage recall (share of faces with blur completeness ≥ 0.8) per face-width bucket."""
    from .metrics import bucket_names

    plt = _pyplot()
    buckets = bucket_names()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for k, name in enumerate(summary["methods"]):
        vals = [_metric(summary, name, "coverage", b, resolution) for b in buckets]
        ax.plot(range(len(buckets)), vals, marker="o", label=name, color=_COLORS[k % len(_COLORS)])
    counts = [summary["methods"][next(iter(summary["methods"]))]["metrics"].get(resolution, {})
              .get("faces", {}).get(b) for b in buckets]
    ax.set_xticks(range(len(buckets)), [f"{b}\n(n={c or 0})" for b, c in zip(buckets, counts)])
    ax.set_xlabel("face width, original-image pixels")
    ax.set_ylabel("coverage (detail removed ≥ 0.8)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Faces covered (blur completeness ≥ 0.8) by face size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_errors_by_size(summary: dict, path: str | os.PathLike, resolution: str = "dataset") -> Path:
    """MSE (left) and MAE (right) inside each face's mask, per face-width bucket, one line per method.

    The per-method bars of :func:`plot_errors` hide where the error sits; small and large faces
    fail differently (a fixed kernel under-blurs large faces, a U-Net misses small ones).
    """
    from .metrics import bucket_names

    plt = _pyplot()
    buckets = bucket_names()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    counts = [summary["methods"][next(iter(summary["methods"]))]["metrics"].get(resolution, {})
              .get("faces", {}).get(b) for b in buckets]
    for ax, metric in zip(axes, ("mse_face", "mae_face")):
        for k, name in enumerate(summary["methods"]):
            vals = [_metric(summary, name, metric, b, resolution) for b in buckets]
            ax.plot(range(len(buckets)), vals, marker="o", label=name, color=_COLORS[k % len(_COLORS)])
        ax.set_xticks(range(len(buckets)), [f"{b}\n(n={c or 0})" for b, c in zip(buckets, counts)])
        ax.set_xlabel("face width, original-image pixels")
        ax.set_ylabel(f"{metric.split('_')[0].upper()} inside the face (values in [0, 1])")
        ax.set_title(f"{metric.split('_')[0].upper()} against the target, by face size")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x and lower y are better)."""
    front = []
    for i, (xi, yi) in enumerate(points):
        if any((xj <= xi and yj <= yi) and (xj < xi or yj < yi) for j, (xj, yj) in enumerate(points) if j != i):
            continue
        front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(summary: dict, path: str | os.PathLike, metric: str = "mse") -> Path:
    """Quality (``metric``, lower is better) against latency in ms per megapixel (log scale)."""
    plt = _pyplot()
    names, pts, real = [], [], []
    for name, method in summary["methods"].items():
        x = _num(method["cost"].get("ms_per_megapixel"))
        y = _metric(summary, name, metric)
        if math.isfinite(x) and math.isfinite(y) and x > 0:
            names.append(name)
            pts.append((x, y))
            real.append(method.get("kind") != "reference")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for k, (name, (x, y), is_real) in enumerate(zip(names, pts, real)):
        if is_real:
            ax.scatter([x], [y], color=_COLORS[k % len(_COLORS)], s=40, zorder=3)
        else:  # oracle / identity: reference points, not contenders (the oracle reads the ground truth)
            ax.scatter([x], [y], facecolors="none", edgecolors="grey", s=40, zorder=3)
        # Alternate label offsets so close points (a model and its INT8 export) stay readable.
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4 if k % 2 == 0 else -11), fontsize=8)
    # The front is over real methods only.
    idx = [i for i in range(len(pts)) if real[i]]
    front = [idx[i] for i in pareto_front([pts[i] for i in idx])]
    if len(front) > 1:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="grey", linewidth=1,
                label="Pareto front")
        ax.legend(fontsize=8)
    if pts:
        ax.set_xscale("log")
    ax.set_xlabel(f"latency, ms per megapixel ({summary.get('threads', '?')} thread(s)); hollow: references")
    ax.set_ylabel(f"{metric.upper()} against the target")
    ax.set_title("Quality vs latency (lower-left is better)")
    ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)


def plot_grid(samples: Sequence[dict], methods: Sequence[str], path: str | os.PathLike) -> Path:
    """Rows of original | target | each method, ground-truth faces outlined in green.

    ``samples``: dicts with ``image``, ``target`` (HWC uint8), ``faces`` (list of Face) and
    ``outputs`` (method name → HWC uint8).
    """
    import cv2

    plt = _pyplot()
    if not samples:
        raise UnetblurError("plot_grid: no images to draw")
    cols = ["original", "target"] + list(methods)
    rows = len(samples)
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.9 * len(cols), 1.9 * rows + 0.3), dpi=100, squeeze=False)
    for r, sample in enumerate(samples):
        images = [sample["image"], sample["target"]] + [sample["outputs"].get(m) for m in methods]
        for c, img in enumerate(images):
            ax = axes[r][c]
            ax.axis("off")
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
            if img is None:
                continue
            # Small images are enlarged (nearest) first so a one-pixel outline does not hide the face.
            k = max(1, 256 // max(1, img.shape[1]))
            img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST) if k > 1 else img.copy()
            thick = max(1, img.shape[1] // 250)
            for f in sample["faces"]:
                cv2.rectangle(img, (int(f.x1 * k), int(f.y1 * k)),
                              (int(round(f.x2 * k)) - 1, int(round(f.y2 * k)) - 1), (0, 255, 0), thick)
            ax.imshow(img, interpolation="nearest")
    fig.tight_layout()
    return _save(fig, path)


def plot_summary(summary: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Every graph a summary alone supports; returns title → file."""
    out_dir = Path(out_dir)
    graphs = {
        "MSE and MAE per method": plot_errors(summary, out_dir / "errors.png"),
        "Coverage by face size": plot_coverage(summary, out_dir / "coverage.png"),
        "Quality vs latency": plot_pareto(summary, out_dir / "pareto.png"),
    }
    if any("original" in m["metrics"] for m in summary["methods"].values()):
        graphs["MSE and MAE per method, full-resolution originals"] = plot_errors(
            summary, out_dir / "errors_original.png", resolution="original")
    return graphs


def plot_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Training curves (train vs val MSE and MAE, learning rate) of a run folder; title → file.

    Written into ``out_dir/curves_<run name>/`` when ``out_dir`` is given, else into the run folder.
    """
    from .curves import plot_curves

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").is_file():
        raise UnetblurError(f"{run_dir}: no metrics.csv; pass a run folder written by `unetblur train` or `distill`")
    target = Path(out_dir) / f"curves_{run_dir.name}" if out_dir is not None else run_dir
    target.mkdir(parents=True, exist_ok=True)
    files = plot_curves(run_dir, target)
    return {f"Training curves {run_dir.name}: {p.stem.replace('curves_', '').upper()}": p for p in files}


def plot_paths(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> list[Path]:
    """``unetblur plot``: redraw a compare folder's graphs (from its summary.json) and a run folder's curves."""
    from .report import load_summary

    written: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / "summary.json").is_file():
            written += list(plot_summary(load_summary(p), Path(out) if out else p).values())
        elif (p / "metrics.csv").is_file():
            written += list(plot_run(p, out).values())
        else:
            raise UnetblurError(f"{p}: neither a compare folder (summary.json) nor a training run (metrics.csv)")
    return written


def plot_privacy_pareto(methods: dict[str, dict], path: str | os.PathLike) -> Path:
    """Full-photo protocol: coverage of faces ≥ 32 px against ms per photo (log), background damage in the labels.

    ``methods``: name → the summary ``unetblur privacy`` writes per method (``ms_per_photo``,
    ``coverage[">=32"]``, ``bg_changed``). Points that change more than 2 % of the background are drawn
    hollow: a method may not buy coverage by blurring the scene. The front is over the solid points.
    """
    plt = _pyplot()
    names, pts, clean = [], [], []
    for name, r in methods.items():
        x, y = _num(r.get("ms_per_photo")), _num((r.get("coverage") or {}).get(">=32"))
        if math.isfinite(x) and math.isfinite(y) and x > 0:
            names.append(name)
            pts.append((x, y))
            clean.append(_num(r.get("bg_changed")) <= 0.02)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=100)
    for k, (name, (x, y), ok) in enumerate(zip(names, pts, clean)):
        color = _COLORS[k % len(_COLORS)]
        ax.scatter([x], [y], s=45, zorder=3, color=color if ok else "none", edgecolors=color)
        bg = _num(methods[name].get("bg_changed"))
        ax.annotate(f"{name} (bg {100 * bg:.1f} %)", (x, y), textcoords="offset points",
                    xytext=(5, 4 if k % 2 == 0 else -11), fontsize=8)
    # Higher coverage and lower time are better: negate coverage for the shared front helper.
    idx = [i for i in range(len(pts)) if clean[i]]
    front = [idx[i] for i in pareto_front([(pts[i][0], -pts[i][1]) for i in idx])]
    if len(front) > 1:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="grey", linewidth=1,
                label="Pareto front (bg_changed ≤ 2 %)")
        ax.legend(fontsize=8, loc="lower right")
    if pts:
        ax.set_xscale("log")
    ax.set_xlabel("ms per photo, end to end (log); hollow: background changed > 2 %")
    ax.set_ylabel("coverage of faces ≥ 32 px (detail removed ≥ 0.8)")
    ax.set_title("Full photos: coverage vs speed (upper-left is better)")
    ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)
