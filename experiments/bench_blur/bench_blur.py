"""Speed vs coverage of ``unetblur blur``: a student U-Net at several working resolutions against the
CenterFace baseline at several detection scales, on the same machine in the same run.

Speed: frames/s of the blurrer (inference + full-resolution compositing / blur, frames already
decoded) on one 1280×720 video made on the fly by panning across a real WIDER FACE photo (so the
frames hold real faces); with ``--end-to-end`` also the whole ``unetblur blur`` video pipeline
(decode + blur + x264 encode + audio mux). Coverage: DESIGN.md §4 ``coverage_recall`` (blur
completeness ≥ 0.8 against the ``blur_faces`` target of the ground-truth boxes) on real WIDER FACE
photos, for faces ≥ 32 px and ≥ 64 px wide (original pixels).

An operating point is a *scale* s of the frame: the student runs with its longer side at s × the
frame's (working size 1280·s on the video), CenterFace detects at ``input_scale = s``.

Writes (under --out, git-ignored) the video and ``results.json``; and, for the repository,
``results.md`` and ``speed_vs_coverage.png`` beside this script (aggregate numbers only; no image or
anything derived from one is written there).

    .venv/bin/python experiments/bench_blur/bench_blur.py --student PATH.onnx

Research use of WIDER FACE only: the photos are read from --wider, never copied into the repo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_WIDER = ROOT.parent / "shared" / "data" / "wider_face_train_subset"


def parse_floats(text: str) -> list[float]:
    return [float(v) for v in text.replace(",", " ").split()]


def wider_photos(root: Path, count: int, seed: int, min_face: int = 64):
    """(path, faces) of ``count`` WIDER photos that exist on disk and hold at least one face ≥ ``min_face`` px
    wide (so the ≥ 64 px recall has enough faces), sampled with ``seed``."""
    from unetblur.data.annotations import read_wider

    ann_file = root / "wider_face_split" / "wider_face_train_bbx_gt.txt"
    ann = read_wider(ann_file, root / "WIDER_train" / "images")
    items = [(ann.image_root / k, faces) for k, faces in sorted(ann.faces.items())
             if (ann.image_root / k).is_file() and any(f.width >= min_face for f in faces)]
    if not items:
        sys.exit(f"no WIDER photos with faces found under {root}")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(items), size=min(count, len(items)), replace=False))
    return [items[i] for i in pick]


def make_video(photo: Path, faces, out: Path, frames: int, fps: int = 25):
    """A 1280×720 video panning slowly across ``photo`` (scaled to cover 1280 px wide plus the pan).

    Returns ``(path, faces per frame)``: the photo's ground-truth faces moved with the pan, so
    flicker (frames where a face is left uncovered) can be measured on the video too.
    """
    import cv2

    from unetblur.io import read_image
    from unetblur.video import VideoWriter

    img = read_image(photo)
    h, w = img.shape[:2]
    scale = max((1280 + 2 * frames) / w, 720 / h)
    img = cv2.resize(img, (math.ceil(w * scale), math.ceil(h * scale)), interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = VideoWriter(out, 1280, 720, str(fps), crf=18)
    truth = []
    for i in range(frames):
        x = min(2 * i, img.shape[1] - 1280)
        writer.write(np.ascontiguousarray(img[:720, x:x + 1280]))
        moved = (f.scaled(scale, scale, -x, 0).clipped(1280, 720) for f in faces)
        truth.append([f for f in moved if f is not None and f.width >= 8])
    writer.close()
    return out, truth


def make_blurrer(kind: str, scale: float, model, frame_side: int, threads: int):
    from unetblur.detectors import open_detector
    from unetblur.runtime.base import DetectorBlurrer
    from unetblur.runtime.composite import CompositingBlurrer

    if kind == "student":
        return CompositingBlurrer(model, working_size=max(16, round(frame_side * scale)))
    return DetectorBlurrer(open_detector("centerface", input_scale=scale, threads=threads))


def time_frames(blurrer, frames, warmup: int = 2) -> tuple[float, list]:
    """(frames/s, masks) of ``blurrer`` over decoded ``frames`` after ``warmup`` untimed frames."""
    for f in frames[:warmup]:
        blurrer(f)
    masks = []
    start = time.perf_counter()
    for f in frames:
        masks.append(blurrer(f).mask)
    return len(frames) / (time.perf_counter() - start), masks


def network_fps(model, frames, working_side: int, warmup: int = 1) -> float:
    """Frames/s of the network alone at ``working_side`` (downscale + inference, no compositing): the
    student's cost whatever its masks look like (an untrained model's full-frame mask makes the
    compositing, not the network, the bottleneck)."""
    import cv2

    h, w = frames[0].shape[:2]
    f = min(1.0, working_side / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small = [cv2.resize(x, size, interpolation=cv2.INTER_AREA) if f < 1 else x for x in frames]
    for x in small[:warmup]:
        model.predict(x)
    start = time.perf_counter()
    for x in small:
        model.predict(x)
    return len(frames) / (time.perf_counter() - start)


def flicker(masks, truth, min_size: float = 32) -> str:
    """"uncovered frames / frames with faces ≥ min_size" on the video (DESIGN.md mask coverage ≥ 0.8)."""
    from unetblur.runtime.temporal import uncovered_frames

    masks = [m if m is not None else np.zeros((720, 1280), np.float32) for m in masks]
    r = uncovered_frames(masks, truth, min_size=min_size)
    return f"{r['uncovered_frames']}/{r['frames_with_faces']}"


def end_to_end_fps(blurrer, video: Path, out: Path, frames: int) -> float:
    from unetblur.anonymise import BlurConfig, blur_video_file

    cfg = BlurConfig(progress=False, overwrite=True, hold_frames=0)
    start = time.perf_counter()
    blur_video_file(blurrer, video, out, cfg, progress=False)
    return frames / (time.perf_counter() - start)


def coverage(blurrer_for, photos, min_widths=(32, 64)) -> dict:
    """coverage_recall of the faces ≥ each width over ``photos``; ``blurrer_for(image)`` gives the blurrer."""
    from unetblur.blur import BlurSettings, blur_faces, face_mask
    from unetblur.evaluate.metrics import blur_completeness, coverage_recall, false_blur
    from unetblur.io import read_image

    settings = BlurSettings()
    per_width = {w: [] for w in min_widths}
    false = []
    for path, faces in photos:
        image = read_image(path)
        h, w = image.shape[:2]
        faces = [c for c in (f.clipped(w, h) for f in faces) if c is not None and c.width >= min(min_widths)]
        if not faces:
            continue
        target, _ = blur_faces(image, faces, settings)
        out = blurrer_for(image)(image).image
        # Coverage alone rewards blurring everything: the share of background changed keeps it honest.
        false.append(float(false_blur(out, image, blur_faces(image, faces, settings)[1] > 0)))
        for face in faces:
            m = face_mask((h, w), face, settings) > 0
            c = float(blur_completeness(out, image, target, m))
            for mw in min_widths:
                if face.width >= mw:
                    per_width[mw].append(c)
    return {f"recall_{mw}": coverage_recall(v) for mw, v in per_width.items()} | \
           {f"faces_{mw}": len([c for c in v if not math.isnan(c)]) for mw, v in per_width.items()} | \
           {"false_blur": float(np.nanmean(false)) if false else float("nan")}


def plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, key, label in ((axes[0], "recall_64", "faces ≥ 64 px"), (axes[1], "recall_32", "faces ≥ 32 px")):
        for method, marker in (("student", "o-"), ("centerface", "s--")):
            pts = [(r["fps"], r[key], r["label"]) for r in sorted(rows, key=lambda r: r["scale"]) if r["method"] == method]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=method)
            for x, y, text in pts:
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("frames/s at 1280×720 (blurrer only, log scale)")
        ax.set_ylabel(f"coverage recall, {label}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(rows, meta) -> str:
    lines = ["# `unetblur blur`: speed vs coverage", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}; ONNX Runtime threads: {meta['threads']}; "
             f"{meta['frames']} frames of one 1280×720 video (pan across a WIDER photo); coverage on "
             f"{meta['photos']} WIDER FACE train photos (each with a face ≥ 64 px), {meta['date']}.", "",
             f"Student model: `{meta['student']}` ({meta['student_note']}).", "",
             "| method | operating point | frames/s (blurrer) | frames/s (network only) | " + ("frames/s (end-to-end) | " if meta["end_to_end"] else "")
             + "recall ≥ 32 px (faces) | recall ≥ 64 px (faces) | false blur | "
             f"uncovered frames (hold 0 / hold {meta['hold']}) |",
             "|---|---|---|---|" + ("---|" if meta["end_to_end"] else "") + "---|---|---|---|"]
    for r in rows:
        e2e = f" {r['fps_end_to_end']:.2f} |" if meta["end_to_end"] else ""
        net = f"{r['fps_network']:.2f}" if r.get("fps_network") == r.get("fps_network") else "–"
        lines.append(f"| {r['method']} | {r['label']} | {r['fps']:.2f} | {net} |{e2e} {r['recall_32']:.3f} ({r['faces_32']}) | "
                     f"{r['recall_64']:.3f} ({r['faces_64']}) | {r['false_blur']:.3f} | {r['flicker']} / {r['flicker_hold']} |")
    base = [r for r in rows if r["method"] == "centerface"]
    stud = [r for r in rows if r["method"] == "student"]
    if base and stud:
        lines += ["", "Target (issue #7): a student point with ≥ 5× the baseline's frames/s at recall ≥ 64 px within 0.05 "
                      "of the baseline's. Per baseline point, the fastest student point within 0.05:", "",
                  "| baseline point | its frames/s | its recall ≥ 64 | fastest student within 0.05 | speed-up | ≥ 5× |",
                  "|---|---|---|---|---|---|"]
        for b in sorted(base, key=lambda r: r["scale"]):
            ok = [r for r in stud if r["recall_64"] >= b["recall_64"] - 0.05]
            if ok:
                f = max(ok, key=lambda r: r["fps"])
                ratio = f["fps"] / b["fps"]
                lines.append(f"| {b['label']} | {b['fps']:.2f} | {b['recall_64']:.3f} | {f['label']} ({f['fps']:.2f} "
                             f"frames/s, {f['recall_64']:.3f}) | {ratio:.1f}× | {'yes' if ratio >= 5 else 'no'} |")
            else:
                lines.append(f"| {b['label']} | {b['fps']:.2f} | {b['recall_64']:.3f} | none | – | no |")
    lines += ["", "Recall: share of ground-truth faces (width ≥ 32 / ≥ 64 px, original pixels; count in brackets) whose "
              "blur completeness is ≥ 0.8 (DESIGN.md §4). False blur: mean share of background pixels changed by "
              "more than 8/255 (a method that blurs everything has recall 1 and false blur ≈ 1). Uncovered "
              "frames: frames of the video in which some ground-truth face ≥ 32 px (the photo's boxes moved with "
              "the pan) has < 80 % of its blur region blurred, without and with the temporal hold.",
              "", "Network only: the student's downscale + inference alone (what a trained student with small face "
              "masks approaches; an untrained one marks the whole frame, so its compositing blurs every pixel).",
              "", "Frames/s include inference and the full-resolution blur/compositing, not decoding or encoding "
              "(frames decoded once beforehand). The machine is shared, so timings carry noise from other jobs."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True, help="student ONNX file (e.g. unetblur/assets/student_int8.onnx)")
    p.add_argument("--student-scales", type=parse_floats, default=[0.25, 0.375, 0.5, 0.75, 1.0],
                   help="working size as a fraction of the frame's longer side (1280 on the video)")
    p.add_argument("--centerface-scales", type=parse_floats, default=[0.25, 0.5, 0.75, 1.0])
    p.add_argument("--frames", type=int, default=10, help="frames of the 1280×720 video")
    p.add_argument("--photos", type=int, default=20, help="WIDER photos for coverage (each with a face ≥ 64 px)")
    p.add_argument("--wider", type=Path, default=DEFAULT_WIDER)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--end-to-end", action="store_true", help="also time the whole video pipeline (decode+encode)")
    p.add_argument("--hold", type=int, default=3, help="temporal hold (frames) for the flicker column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_blur", help="git-ignored work folder")
    p.add_argument("--report", type=Path, default=HERE, help="folder for results.md and speed_vs_coverage.png")
    p.add_argument("--note", default="", help="what the student is (e.g. 'trained student INT8'), for results.md")
    p.add_argument("--from-json", type=Path, help="only redraw results.md and the plot from a results.json")
    args = p.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write_report(saved["rows"], saved["meta"], args.report)
        return 0

    from unetblur.video import VideoReader
    from unetblur.runtime.onnx import OnnxModel
    from unetblur.runtime.temporal import TemporalBlurrer

    photos = wider_photos(args.wider, args.photos, args.seed)
    video, truth = make_video(photos[0][0], photos[0][1], args.out / "video_1280x720.mp4", args.frames)
    frames = list(VideoReader(video))
    assert frames[0].shape == (720, 1280, 3)
    model = OnnxModel(args.student, threads=args.threads)
    rows = []
    points = [("student", s) for s in args.student_scales] + [("centerface", s) for s in args.centerface_scales]
    for method, s in points:
        t0 = time.perf_counter()
        blurrer = make_blurrer(method, s, model, 1280, args.threads)
        fps, masks = time_frames(blurrer, frames)
        held = TemporalBlurrer(blurrer, args.hold)
        held_masks = [held(f).mask for f in frames]
        row = {"method": method, "scale": s, "fps": fps, "flicker": flicker(masks, truth),
               "flicker_hold": flicker(held_masks, truth),
               "label": f"{round(1280 * s)} px" if method == "student" else f"@{s:g}"}
        row["fps_network"] = network_fps(model, frames, round(1280 * s)) if method == "student" else float("nan")
        if args.end_to_end:
            row["fps_end_to_end"] = end_to_end_fps(blurrer, video, args.out / f"{method}_{s:g}.mp4", len(frames))
        cache = {}

        def blurrer_for(image, method=method, s=s):
            side = max(image.shape[:2])
            if side not in cache:
                cache[side] = make_blurrer(method, s, model, side, args.threads)
            return cache[side]

        row |= coverage(blurrer_for, photos)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"{method:10s} {row['label']:>8s}  {fps:6.2f} frames/s  recall≥32 {row['recall_32']:.3f}  "
              f"recall≥64 {row['recall_64']:.3f}  ({row['seconds']:.0f} s)", flush=True)

    import onnxruntime

    import shlex

    meta = {"command": ".venv/bin/python " + shlex.join([os.path.relpath(__file__, ROOT)] + (argv or sys.argv[1:])),
            "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
                       f"onnxruntime {onnxruntime.__version__}",
            "threads": args.threads, "frames": len(frames), "photos": len(photos),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "student": args.student, "student_note": args.note or f"precision {model.precision}, "
            f"mask channel {'yes' if model.mask_channel else 'no (difference mask)'}",
            "end_to_end": args.end_to_end, "hold": args.hold}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_report(rows, meta, args.report)
    return 0


PERFECT_MASK_NOTE = HERE / "perfect_mask.md"


def write_report(rows, meta, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, meta)
    if PERFECT_MASK_NOTE.is_file():  # the compositing upper bound (perfect_mask.py), kept with the results
        text += "\n" + PERFECT_MASK_NOTE.read_text()
    (folder / "results.md").write_text(text)
    plot(rows, folder / "speed_vs_coverage.png",
         f"{Path(meta['student']).name} vs CenterFace, {meta['machine']}, {meta['date']}")
    print(f"wrote {folder / 'results.md'} and {folder / 'speed_vs_coverage.png'}")


if __name__ == "__main__":
    sys.exit(main())
