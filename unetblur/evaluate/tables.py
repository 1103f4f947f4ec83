"""The thesis's tables regenerated from our runs: model sizes, cost, training metrics, KD losses,
and the comparison against the detector+blur baseline.

Inputs are the folders the pipeline already writes: a run folder per model (``model.pt``,
``metrics.csv``), an export folder (``NAME.onnx``, ``NAME.int8.onnx``, ``NAME.export.json``)
and a compare folder (``summary.json``). Optionally (the letterbox recipe): compare folders of the
val split of each dataset version, the thesis's published figures (a YAML file) to set beside
ours, the privacy study (:mod:`.privacy`) and a folder for the MSE/MAE graphs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnetblurError
from ..fsutil import write_text_atomic
from ..machine import describe_machine
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
    from .curves import epoch_history

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
        cost_rows.append([e.name, getattr(model, "spec", model).describe(),
                          f"{cost['parameters']:,}", f"{cost['macs'] / 1e6:.1f}", _size_kb(e.run / "model.pt"),
                          _size_kb(fp32), _size_kb(int8)])
        best = _best_epoch(e.run)
        train_rows.append([e.name, fmt(best.get("epoch"))] + [fmt(best.get(col)) for _, col in TRAINING_COLUMNS])
    return ["model", "best epoch"] + [h for h, _ in TRAINING_COLUMNS], cost_rows, train_rows


def _md(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def load_published(path: str | os.PathLike) -> dict:
    """The thesis's published figures (``experiments/thesis/published.yaml``)."""
    from ..config import read_yaml

    data = read_yaml(path)
    if not isinstance(data.get("models"), dict):
        raise UnetblurError(f"{path}: expected a 'models' mapping (model name → published figures)")
    return data


def _budget(meta: dict) -> str:
    """One line of how much training produced a model.pt (from its meta)."""
    cfg = meta.get("config") or {}
    wall = meta.get("wall_seconds_this_session")
    if wall is None:
        return "–"
    crop = f"{cfg['crop_size']} px crops" if cfg.get("crop_size") else "full images"
    return (f"{wall / 60:.1f} min, {meta.get('epochs_trained', '?')} epochs ({meta.get('global_step', '?')} steps × "
            f"batch {cfg.get('batch_size', '?')}, {crop}), best epoch {meta.get('best_epoch', '?')}")


def _millions(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e6:.2f} M"


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _val(summary: dict, method: str, metric: str) -> float:
    return _num(((summary["methods"].get(method) or {}).get("metrics", {}).get("dataset", {})
                 .get(metric, {}) or {}).get("all"))


def thesis_side_by_side(entries: list[ModelEntry], val: dict[str, dict], published: dict,
                        size: int = 128) -> list[str]:
    """Markdown: size and speed, then val quality, each model's published figure beside ours, plus why they differ.

    ``val``: dataset name (v1, v2) → compare summary of that dataset's val split (whole images).
    Latency: ``ms_per_image`` at ``size`` from the first summary that timed the method (all ran with
    the first one's thread count, which the header states).
    """
    from ..models import load_model
    from ..models.cost import model_cost

    pub_models = published.get("models") or {}
    why = published.get("why") or {}
    first = next(iter(val.values()))
    threads = first.get("threads", "?")
    cpu = describe_machine(first.get("machine") or {})
    size_rows, quality_rows, notes = [], [], []
    for e in entries:
        model, meta = load_model(e.run / "model.pt")
        pub = pub_models.get(e.name, {})
        params = model_cost(model, size)["parameters"]
        int8 = e.export / f"{e.export_name}.int8.onnx" if e.export else Path("-")
        lat = [next((c for c in ((v["methods"].get(n) or {}).get("cost", {}).get("ms_per_image") for v in val.values())
                     if c is not None), None) for n in (e.name, f"{e.name}_int8")]
        size_rows.append([e.name, str(pub.get("widths", "–")), getattr(getattr(model, "spec", None), "describe", str)(),
                          _millions(pub.get("params")), f"{_millions(params)} ({params:,})",
                          fmt(pub.get("int8_kb")), _size_kb(int8),
                          " / ".join(fmt(v, 3) for v in lat), fmt(pub.get("mcu_ms"))])
        row = [e.name, fmt(pub.get("val_psnr_db"))]
        for summary in val.values():
            row += [fmt(_val(summary, e.name, "psnr"), 4), fmt(_val(summary, e.name, "mse")),
                    fmt(_val(summary, e.name, "mae")), fmt(_val(summary, f"{e.name}_int8", "psnr"), 4)]
        quality_rows.append(row + [_budget(meta)])
        reasons = []  # (what differs, why): only what differs gets a clause
        ours_psnr = [_val(s, e.name, "psnr") for s in val.values()]
        if pub.get("val_psnr_db") is not None and not any(abs(p - pub["val_psnr_db"]) < 0.5 for p in ours_psnr):
            reasons.append((f"PSNR {' / '.join(fmt(p, 4) for p in ours_psnr)} vs {pub['val_psnr_db']} dB",
                            ", ".join(w for w in (why.get("budget"), why.get("data")) if w)))
        if pub.get("int8_kb") and int8.is_file() and abs(int8.stat().st_size / 1024 / pub["int8_kb"] - 1) > 0.02:
            reasons.append((f"INT8 {_size_kb(int8)} vs {pub['int8_kb']} KB", why.get("framework")))
        if pub.get("mcu_ms") is not None:
            reasons.append((f"latency {fmt(lat[1] if lat[1] is not None else lat[0], 3)} vs {pub['mcu_ms']} ms",
                            why.get("latency")))
        if reasons:
            notes.append(f"- **{e.name}**: " + "; ".join(f"{what}: {w}" if w else what for what, w in reasons) + ".")
    identity = ["identity (output = input)", "–"]
    for summary in val.values():
        identity += [fmt(_val(summary, "identity", "psnr"), 4), fmt(_val(summary, "identity", "mse")),
                     fmt(_val(summary, "identity", "mae")), "–"]
    quality_rows.append(identity + ["no training"])
    quality_head = ["model", "thesis val PSNR dB"]
    for name in val:
        quality_head += [f"ours PSNR dB ({name})", f"MSE ({name})", f"MAE ({name})", f"INT8 PSNR dB ({name})"]
    quality_head.append("our training budget")
    mcu = published.get("mcu", "MCU")
    size_head = ["model", "thesis widths", "our widths", "thesis params", "our params",
                 f"thesis {published.get('int8_format', 'INT8')} KB", "our ONNX QDQ INT8 KB",
                 f"our latency ms, {size}×{size}, torch FP32 / ONNX INT8, {threads} thread(s), {cpu}",
                 f"thesis latency ms, {mcu} (quoted)"]
    images = first.get("images", {}).get("dataset", "?")
    return [f"## Ours beside the thesis (val split, whole {size}×{size} letterboxed images, {images} per dataset)",
            "", f"Thesis figures are quoted from {published.get('source', 'the thesis')}; KD α = "
            f"{published.get('kd_alpha', '–')} in both. Dataset v1 = fixed Gaussian kernel 41, v2 = kernel "
            "scaled to the face; our models were trained on the dataset named in their run (see the recipe).", "",
            "### Size and speed", "", _md(size_head, size_rows), "",
            "### Quality against the target (whole image; identity = the bar a model must clear)", "",
            _md(quality_head, quality_rows), ""] + (["Where ours differ, and why:", ""] + notes + [""] if notes else [])


def privacy_section(study: dict, published: dict | None = None) -> list[str]:
    """Markdown table of :func:`.privacy.privacy_study`'s result, the thesis's figure beside the teacher."""
    pub = (published or {}).get("privacy") or {}
    rows = []
    for name, r in study["methods"].items():
        verify = _num(r.get("reid_verify"))
        rows.append([name, fmt(verify), fmt(1 - verify), fmt(r.get("reid_rank1")), fmt(r.get("median_distance")),
                     f"{pub['deidentified_share'] * 100:.2f} % de-identified (ArcFace)"
                     if name == pub.get("model") and "deidentified_share" in pub else "–"])
    head = ["method", f"within {study['threshold']} of own original (reid_verify)", "de-identified (1 − verify)",
            "reid_rank1", "median distance", "thesis"]
    return [f"## Privacy study ({study['split']} split, faces ≥ {study['min_face']:g} px wide in the stored image)", "",
            f"{study['faces_eligible']} faces in {study['images']} images; gallery = all {study['gallery']} original "
            f"faces, so chance reid_rank1 = {fmt(study['chance'])}. Recogniser: dlib ResNet, same-person threshold "
            f"{study['threshold']} (Euclidean). Thesis: {pub.get('text', '–')}: a different recogniser, "
            "measure and face set, quoted for orientation only.", "", _md(head, rows), ""] + _privacy_why(study, pub, published)


def _privacy_why(study: dict, pub: dict, published: dict | None) -> list[str]:
    """One line of why, when our de-identified share of the thesis's model is off its published one."""
    ours = (study["methods"].get(pub.get("model")) or {}).get("reid_verify")
    why = ((published or {}).get("why") or {}).get("privacy")
    if ours is None or "deidentified_share" not in pub or not why or abs(1 - _num(ours) - pub["deidentified_share"]) < 0.05:
        return []
    return [f"Where ours differ ({fmt(1 - _num(ours))} vs {pub['deidentified_share']:g} de-identified): {why}.", ""]


def write_graphs(compare_summary: dict | None, val: dict[str, dict], out_dir: str | os.PathLike) -> dict[str, Path]:
    """MSE/MAE per method and per face-size bucket for every protocol given; returns title → PNG."""
    from . import plots

    out_dir = Path(out_dir)
    graphs = {}
    for name, summary in val.items():
        graphs[f"val, dataset {name}: per method"] = plots.plot_errors(summary, out_dir / f"errors_val_{name}.png")
        graphs[f"val, dataset {name}: per face size"] = plots.plot_errors_by_size(
            summary, out_dir / f"errors_by_size_val_{name}.png")
    if compare_summary:
        graphs["test, letterboxed images (thesis protocol): per method"] = plots.plot_errors(
            compare_summary, out_dir / "errors_test_letterbox.png")
        graphs["test, letterboxed images (thesis protocol): per face size"] = plots.plot_errors_by_size(
            compare_summary, out_dir / "errors_by_size_test_letterbox.png")
        if any("original" in m["metrics"] for m in compare_summary["methods"].values()):
            graphs["test, full-resolution photos (full-photo protocol): per method"] = plots.plot_errors(
                compare_summary, out_dir / "errors_test_fullphoto.png", resolution="original")
            graphs["test, full-resolution photos (full-photo protocol): per face size"] = plots.plot_errors_by_size(
                compare_summary, out_dir / "errors_by_size_test_fullphoto.png", resolution="original")
    return graphs


def write_tables(entries: list[ModelEntry], compare_dir: str | os.PathLike | None, out: str | os.PathLike,
                 size: int = 128, *, val: dict[str, str | os.PathLike] | None = None,
                 published: str | os.PathLike | None = None, privacy: dict | None = None,
                 graphs: str | os.PathLike | None = None) -> Path:
    """Write the thesis tables as Markdown to ``out``; returns its path.

    ``val``: dataset name → compare folder of its val split; with ``published`` (the YAML of the
    thesis's figures) they add the side-by-side tables. ``privacy``: a :func:`.privacy.privacy_study`
    result. ``graphs``: folder for the MSE/MAE graphs, linked from the tables.
    """
    from .compare import load_summary

    path = Path(out)
    val_summaries = {k: load_summary(d) for k, d in (val or {}).items()}
    pub = load_published(published) if published else {}
    parts = ["# Thesis tables, regenerated", ""]
    if val_summaries:
        parts += thesis_side_by_side(entries, val_summaries, pub, size)
    if privacy:
        parts += privacy_section(privacy, pub)
    train_head, cost_rows, train_rows = model_rows(entries, size)
    parts += [f"## Model size and cost (MACs at {size}×{size}; sizes in KB)", "",
              _md(["model", "architecture", "parameters", "MMAC", ".pt KB", "ONNX FP32 KB", "ONNX INT8 KB"], cost_rows),
              "", "## Training (epoch with the best validation loss)", "", _md(train_head, train_rows), ""]
    summary = load_summary(compare_dir) if compare_dir else None
    if summary:
        targets = summary.get("targets_from", "unknown")
        parts += [f"## Comparison with the detector+blur baseline ({summary.get('split', 'test')} split; "
                  f"targets from {targets})", "", _md(*quality_table(summary, "dataset")), "",
                  _md(*privacy_table(summary, "dataset")), "",
                  f"Graphs and the full report: `{Path(compare_dir) / 'report.md'}`.", ""]
    if graphs:
        drawn = write_graphs(summary, val_summaries, graphs)
        parts += ["## MSE and MAE graphs", ""] + [
            f"- {title}: ![{title}]({Path(os.path.relpath(p, path.parent)).as_posix()})" for title, p in drawn.items()]
        parts.append("")
    write_text_atomic(path, "\n".join(parts))
    return path
