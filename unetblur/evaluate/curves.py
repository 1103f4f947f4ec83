"""Training curves like the thesis's (MSE vs val MSE, MAE vs val MAE, learning rate) and the
over-fitting check, both read from a run folder's ``metrics.csv``.

``plot_curves(run_dir)`` is reusable for any run folder written by :func:`unetblur.training.fit.fit`
(teacher or student); ``unetblur plot`` calls it.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from ..errors import UnetblurError
from ..fsutil import atomic_path

#: (file name, title, [(column, label), ...], log-scale y)
CURVES = (
    ("curves_mse.png", "MSE", [("train/mse", "mse"), ("val/mse", "val_mse")], True),
    ("curves_mae.png", "MAE", [("train/mae", "mae"), ("val/mae", "val_mae")], True),
    ("curves_lr.png", "Learning rate", [("lr", "lr")], True),
)


def epoch_history(metrics_csv: str | os.PathLike) -> list[dict]:
    """Per-epoch rows from a Lightning ``metrics.csv``: ``[{"epoch": 0, "train/mse": ..., ...}, ...]``
    sorted by epoch. Lightning writes train and val values of one epoch on separate rows, and a resumed
    run may repeat an epoch: the last non-empty value of each column wins."""
    path = Path(metrics_csv)
    if not path.is_file():
        raise UnetblurError(f"{path}: no metrics.csv (is this a run folder made by `unetblur train`?)")
    by_epoch: dict[int, dict] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(float(row.get("epoch") or ""))
            except ValueError:
                continue
            slot = by_epoch.setdefault(epoch, {"epoch": epoch})
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                try:
                    slot[key] = float(value)
                except ValueError:
                    pass
    return [by_epoch[e] for e in sorted(by_epoch)]


def _read_identity(run_dir: Path) -> dict:
    """Val metrics of output = input, written by fit() (absent for older runs)."""
    import json
    try:
        return json.loads((run_dir / "identity_baseline.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def detect_overfitting(history: list[dict], patience: int = 3, loss: str = "loss") -> dict | None:
    """Where validation loss stopped improving while training loss kept falling.

    Returns ``{"epoch", "best_val", "train_then", "train_now", "last_epoch"}`` when, for at least
    ``patience`` epochs after the best val-loss epoch, val loss stayed above its best and train loss
    fell below its value at that epoch; otherwise None.
    """
    rows = [r for r in history if f"val/{loss}" in r and f"train/{loss}" in r]
    if len(rows) <= patience:
        return None
    best = min(range(len(rows)), key=lambda i: rows[i][f"val/{loss}"])
    after = rows[best + 1:]
    if len(after) < patience:
        return None
    train_then, train_now = rows[best][f"train/{loss}"], after[-1][f"train/{loss}"]
    if train_now < train_then:
        return {"epoch": int(rows[best]["epoch"]), "best_val": rows[best][f"val/{loss}"],
                "train_then": train_then, "train_now": train_now, "last_epoch": int(after[-1]["epoch"])}
    return None


def plot_curves(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                history: list[dict] | None = None, title: str | None = None) -> list[Path]:
    """Write the thesis-style curve PNGs of a run folder (into ``out_dir``, default the run folder).

    Returns the files written; a curve whose columns are absent (e.g. no lr logged) is skipped.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    run_dir = Path(run_dir)
    history = epoch_history(run_dir / "metrics.csv") if history is None else history
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    title = title or run_dir.name
    overfit = detect_overfitting(history)
    identity = _read_identity(run_dir)
    written = []
    for filename, name, series, log_y in CURVES:
        lines = [(label, [(r["epoch"] + 1, r[col]) for r in history if col in r and math.isfinite(r[col])])
                 for col, label in series]
        lines = [(label, pts) for label, pts in lines if pts]
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for label, pts in lines:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        identity_value = identity.get(series[-1][0])
        if identity_value is not None and math.isfinite(identity_value):
            ax.axhline(identity_value, color="black", linestyle=":", linewidth=1, label="identity (val)")
        if log_y and all(y > 0 for _, pts in lines for _, y in pts):
            ax.set_yscale("log")
        if overfit is not None and name != "Learning rate":
            ax.axvline(overfit["epoch"] + 1, color="grey", linestyle="--", linewidth=1,
                       label=f"best val (epoch {overfit['epoch'] + 1})")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: {title}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        target = out_dir / filename
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(target)
    return written
