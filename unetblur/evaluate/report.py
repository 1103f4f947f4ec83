"""``report.md`` and a self-contained ``report.html`` (graphs inlined as base64) from a compare summary.

Both are built from the same list of sections, so they always hold the same numbers.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import UnetblurError
from ..fsutil import write_text_atomic
from ..machine import describe_machine
from .metrics import bucket_names


def load_summary(out_dir: str | os.PathLike) -> dict:
    """Read a compare folder's ``summary.json`` (NaN is stored as null, ±inf as "inf")."""
    path = Path(out_dir) / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnetblurError(f"{path}: not a compare summary ({exc}); run `unetblur compare` first") from None

Table = tuple[list[str], list[list[str]]]


def fmt(value: Any, digits: int = 4) -> str:
    """A summary value for a table: numbers to ``digits`` significant figures, NaN/None as "–"."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return "∞" if value == "inf" else value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:.{digits}g}"


def _count(value: Any) -> str:
    """Parameters / MACs / bytes with a unit prefix (1.93 M, 4.1 G)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = float(value)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g} {unit}"
    return f"{v:.0f}"


def _get(method: dict, resolution: str, metric: str, bucket: str = "all") -> Any:
    return method["metrics"].get(resolution, {}).get(metric, {}).get(bucket)


def quality_table(summary: dict, resolution: str) -> Table:
    cols = ("mse", "mae", "psnr", "ssim", "mse_face", "mae_face", "mse_bg", "mae_bg", "psnr_bg")
    head = ["method"] + [c.replace("_", " ").upper().replace("FACE", "face").replace("BG", "bg") for c in cols]
    rows = [[name] + [fmt(_get(m, resolution, c)) for c in cols] for name, m in summary["methods"].items()]
    return head, rows


def privacy_table(summary: dict, resolution: str) -> Table:
    head = ["method", "coverage", "agreement", "blur completeness", "false blur", "reid rate", "faces"]
    rows = [[name, fmt(_get(m, resolution, "coverage")), fmt(_get(m, resolution, "coverage_recall")),
             fmt(_get(m, resolution, "blur_completeness")),
             fmt(_get(m, resolution, "false_blur")), fmt(_get(m, resolution, "reid_rate")),
             fmt(_get(m, resolution, "faces"))] for name, m in summary["methods"].items()]
    return head, rows


def bucket_table(summary: dict, resolution: str, metric: str) -> Table:
    buckets = bucket_names()
    first = next(iter(summary["methods"].values()))
    head = ["method"] + [f"{b} px (n={_get(first, resolution, 'faces', b) or 0})" for b in buckets] + ["all"]
    rows = [[name] + [fmt(_get(m, resolution, metric, b)) for b in buckets + ["all"]]
            for name, m in summary["methods"].items()]
    return head, rows


def cost_table(summary: dict) -> Table:
    head = ["method", "kind", "parameters", "MACs", "file size", "ms / image", "ms / megapixel", "threads"]
    has_original = any("ms_per_megapixel_original" in m["cost"] for m in summary["methods"].values())
    if has_original:
        head += ["ms / image (originals)", "ms / megapixel (originals)"]
    rows = []
    for name, m in summary["methods"].items():
        c = m["cost"]
        macs = _count(c.get("macs")) + (f" at {c['macs_at']}" if c.get("macs_at") else "")
        size = c.get("file_bytes")
        row = [name, m["kind"], _count(c.get("parameters")), macs,
               "–" if size is None else f"{float(size) / 1e6:.3g} MB",
               fmt(c.get("ms_per_image"), 3), fmt(c.get("ms_per_megapixel"), 3), fmt(c.get("threads"))]
        if has_original:
            row += [fmt(c.get("ms_per_image_original"), 3), fmt(c.get("ms_per_megapixel_original"), 3)]
        rows.append(row)
    return head, rows


def sections(summary: dict) -> list[tuple[str, str, list[Table]]]:
    """(title, explanatory text, tables) in report order."""
    out = []
    for res, label in (("dataset", f"at the dataset's resolution ({summary.get('image_size', '?')})"),
                       ("original", "on the full-resolution originals")):
        if not any(res in m["metrics"] for m in summary["methods"].values()):
            continue
        n = summary.get("images", {}).get(res, "?")
        out.append((f"Quality {label}",
                    f"{n} images. Errors against the target (mean over images), values in [0, 1]; PSNR in dB of the mean "
                    "MSE (∞: identical). "
                    "face = inside the ground-truth face mask, bg = outside it. Lower is better except PSNR and SSIM.",
                    [quality_table(summary, res)]))
        out.append((f"Privacy {label}",
                    "coverage: share of faces with detail_removed ≥ 0.8 (the fine detail of the original that the "
                    "output no longer carries); agreement: share with blur completeness ≥ 0.8 (‖O−I‖² / ‖T−I‖² inside "
                    "the face: agreement with the reference blur, not privacy); false blur: share of background pixels changed by more than 8/255; reid rate: share of "
                    f"faces ≥ 48 px still re-identified ({summary.get('reid', '?')}; lower is better). The thesis protocol: "
                    "crops centred on faces say nothing of false blur or of faces at the scale a blurrer sees, so "
                    "privacy claims come from `unetblur privacy` on whole photos (DESIGN.md §4).",
                    [privacy_table(summary, res)]))
        out.append((f"By face size {label}",
                    "Face width buckets in original-image pixels. Coverage (detail removed ≥ 0.8), then MSE inside each face's "
                    "own mask, then reid rate.",
                    [bucket_table(summary, res, "coverage"), bucket_table(summary, res, "mse_face"),
                     bucket_table(summary, res, "reid_rate")]))
    out.append(("Cost",
                f"Latency: median over the images after {summary.get('config', {}).get('warmup', '?')} warm-up runs, "
                f"{summary.get('threads', '?')} thread(s), on {describe_machine(summary.get('machine', {}))}. "
                "Detector latency includes the blur.",
                [cost_table(summary)]))
    return out


def _intro(summary: dict) -> list[str]:
    blur = summary.get("blur", {})
    return [
        f"Dataset `{summary.get('dataset')}`, split `{summary.get('split')}`: "
        f"{summary.get('images', {}).get('dataset', '?')} images of {summary.get('image_size', '?')}"
        + (f", plus {summary['images']['original']} full-resolution originals" if "original" in summary.get("images", {})
           else "") + ".",
        f"**Targets came from: {summary.get('targets_from')}.** With ground-truth boxes the oracle is the reference "
        "and detector baselines are scored on what they miss; with detector targets a baseline using that detector "
        "scores perfectly by construction.",
        f"Blur: {blur.get('style')} / {blur.get('shape')}, mask scale {blur.get('mask_scale')}, "
        f"kernel {blur.get('kernel') or 'scaled to the face'}. U-Net mode: {summary.get('mode')}.",
        f"unetblur {summary.get('unetblur_version')}, {summary.get('created')}, "
        f"{summary.get('machine', {}).get('platform', '')}.",
    ]


def _md_table(table: Table) -> str:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(summary: dict, graphs: dict[str, Path], base: Path) -> str:
    parts = ["# Comparison report", ""] + [line + "\n" for line in _intro(summary)]
    for title, text, tables in sections(summary):
        parts += [f"## {title}", "", text, ""]
        for t in tables:
            parts += [_md_table(t), ""]
    if graphs:
        parts += ["## Graphs", ""]
        for title, path in graphs.items():
            parts += [f"![{title}]({Path(os.path.relpath(path, base)).as_posix()})", ""]
    if summary.get("skipped"):
        parts += ["## Skipped inputs", ""] + [f"- {s}" for s in summary["skipped"]] + [""]
    return "\n".join(parts)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%;border:1px solid #eee;margin:0.5em 0}.note{color:#555}")


def _inline(text: str) -> str:
    """Markdown-ish inline text to HTML (escapes; **bold** and `code`)."""
    out = html.escape(text)
    while out.count("**") >= 2:
        out = out.replace("**", "<b>", 1).replace("**", "</b>", 1)
    while out.count("`") >= 2:
        out = out.replace("`", "<code>", 1).replace("`", "</code>", 1)
    return out


def render_html(summary: dict, graphs: dict[str, Path]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>unetblur comparison</title>",
             f"<style>{_CSS}</style></head><body><h1>Comparison report</h1>"]
    parts += [f"<p>{_inline(line)}</p>" for line in _intro(summary)]
    for title, text, tables in sections(summary):
        parts.append(f"<h2>{html.escape(title)}</h2><p class='note'>{_inline(text)}</p>")
        for head, rows in tables:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            parts.append("</table>")
    if graphs:
        parts.append("<h2>Graphs</h2>")
        for title, path in graphs.items():
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                         f"src='data:image/png;base64,{data}'>")
    if summary.get("skipped"):
        parts.append("<h2>Skipped inputs</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary["skipped"])
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(summary: dict, out_dir: str | os.PathLike, graphs: dict[str, Path]) -> tuple[Path, Path]:
    """Write ``report.md`` (graphs linked) and ``report.html`` (graphs inlined) into ``out_dir``."""
    out_dir = Path(out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md, render_markdown(summary, graphs, out_dir))
    write_text_atomic(page, render_html(summary, graphs))
    return md, page
