"""The thesis's tables regenerated from our runs: model sizes, cost, training metrics, KD losses,
and the comparison against the detector+blur baseline.

Inputs are the folders the pipeline already writes: a run folder per model (``model.pt``,
``metrics.csv``), an export folder (``NAME.onnx``, ``NAME.int8.onnx``, ``NAME.export.json``)
and a compare folder (``summary.json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnetblurError
from ..fsutil import write_text_atomic
from .report import fmt, privacy_table, quality_table

#: Training columns of the thesis tables: (header, metrics.csv column).
TRAINING_COLUMNS = (
    ("train MSE", "train/mse"), ("val MSE", "val/mse"), ("train MAE", "train/mae"), ("val MAE", "val/mae"),
    ("val SSIM", "val/ssim"), ("val PSNR", "val/psnr"), ("val MSE face", "val/mse_face"),
    ("KD loss_gt", "val/loss_gt"), ("KD loss_distill", "val/loss_distill"),
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    run: Path                 # run folder with model.pt and metrics.csv
    export: Path | None       # folder with <export_name>.onnx / .int8.onnx
    export_name: str


def parse_model_entry(text: str) -> ModelEntry:
    """``NAME=RUN_DIR[,EXPORT_DIR[,EXPORT_NAME]]`` (export name defaults to ``model``)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise UnetblurError(f"--model {text!r}: expected NAME=RUN_DIR[,EXPORT_DIR[,EXPORT_NAME]]")
    parts = rest.split(",")
    return ModelEntry(name, Path(parts[0]), Path(parts[1]) if len(parts) > 1 and parts[1] else None,
                      parts[2] if len(parts) > 2 and parts[2] else "model")


def _size_kb(path: Path) -> str:
    return f"{path.stat().st_size / 1024:.0f}" if path.is_file() else "–"


def _best_epoch(run: Path) -> dict:
    """The epoch row with the lowest val loss (the weights ``model.pt`` holds)."""
    from ..training.curves import epoch_history

    rows = [r for r in epoch_history(run / "metrics.csv") if "val/loss" in r]
    if not rows:
        return {}
    return min(rows, key=lambda r: r["val/loss"])


def model_rows(entries: list[ModelEntry], size: int = 128) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header of the training table, rows of the size/cost table, rows of the training table)."""
    from ..models import load_model
    from ..models.cost import model_cost

    cost_rows, train_rows = [], []
    for e in entries:
        model, _ = load_model(e.run / "model.pt")
        cost = model_cost(model, size)
        fp32 = e.export / f"{e.export_name}.onnx" if e.export else Path("-")
        int8 = e.export / f"{e.export_name}.int8.onnx" if e.export else Path("-")
        cost_rows.append([e.name, getattr(getattr(model, "spec", None), "describe", lambda: "smp")(),
                          f"{cost['parameters']:,}", f"{cost['macs'] / 1e6:.1f}", _size_kb(e.run / "model.pt"),
                          _size_kb(fp32), _size_kb(int8)])
        best = _best_epoch(e.run)
        train_rows.append([e.name, fmt(best.get("epoch"))] + [fmt(best.get(col)) for _, col in TRAINING_COLUMNS])
    return ["model", "best epoch"] + [h for h, _ in TRAINING_COLUMNS], cost_rows, train_rows


def _md(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def write_tables(entries: list[ModelEntry], compare_dir: str | os.PathLike | None, out: str | os.PathLike,
                 size: int = 128) -> Path:
    """Write the thesis tables as Markdown to ``out``; returns its path."""
    train_head, cost_rows, train_rows = model_rows(entries, size)
    parts = ["# Thesis tables, regenerated", "",
             f"## Model size and cost (MACs at {size}×{size}; sizes in KB)", "",
             _md(["model", "architecture", "parameters", "MMAC", ".pt KB", "ONNX FP32 KB", "ONNX INT8 KB"], cost_rows),
             "", "## Training (epoch with the best validation loss)", "", _md(train_head, train_rows), ""]
    if compare_dir:
        from .compare import load_summary

        summary = load_summary(compare_dir)
        targets = summary.get("targets_from", "unknown")
        parts += [f"## Comparison with the detector+blur baseline ({summary.get('split', 'test')} split; "
                  f"targets from {targets})", "", _md(*quality_table(summary, "dataset")), "",
                  _md(*privacy_table(summary, "dataset")), "",
                  f"Graphs and the full report: `{Path(compare_dir) / 'report.md'}`.", ""]
    path = Path(out)
    write_text_atomic(path, "\n".join(parts))
    return path
