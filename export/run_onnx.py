#!/usr/bin/env python3
"""Blur faces with an exported unetblur ONNX model on an edge device (Raspberry Pi, Jetson, any PC).

Needs only the runtime's dependencies: numpy, opencv-python(-headless), onnxruntime (or
onnxruntime-gpu / Jetson's onnxruntime wheel) and the torch-free ``unetblur`` package
(``pip install .`` from the repository installs exactly those; no torch).

    python export/run_onnx.py MODEL.onnx INPUT [-o OUTPUT] [--threads 4] [--mode composite --working-size 640]

INPUT: an image, a folder of images, a video file, or a camera index (``0``). OUTPUT: an image or
folder (for image inputs) or a video file (``.mp4``/``.avi``); ``--show`` opens a window instead.
``--mode raw`` uses the network's RGB output as the image (the thesis); ``composite`` (default)
lets the network find faces at ``--working-size`` and blurs them at full resolution with the one
blur definition, leaving the background untouched (cheaper on big frames).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def build_blurrer(args):
    from unetblur.runtime.base import ModelBlurrer
    from unetblur.runtime.onnx import OnnxModel

    providers = [p.strip() for p in args.providers.split(",")] if args.providers else None
    model = OnnxModel(args.model, threads=args.threads, providers=providers)
    print(f"model: {model!r}", file=sys.stderr)
    if args.mode == "raw":
        return ModelBlurrer(model)
    from unetblur.runtime.composite import CompositingBlurrer
    return CompositingBlurrer(model, working_size=args.working_size or None)


def run_images(blurrer, paths, output: Path | None, show: bool) -> int:
    import cv2

    from unetblur.errors import UnetblurError
    from unetblur.io import read_image, write_image

    failed = []
    for path in paths:
        try:
            image = read_image(path)
            t0 = time.perf_counter()
            result = blurrer(image)
            print(f"{path}: {1000 * (time.perf_counter() - t0):.1f} ms", file=sys.stderr)
        except UnetblurError as exc:
            failed.append(f"{path}: {exc}")
            continue
        if show:
            cv2.imshow("unetblur", cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR))
            cv2.waitKey(0)
        elif output is not None:
            target = output / Path(path).name if output.suffix == "" else output
            write_image(target.with_suffix(".png") if output.suffix == "" else target, result.image)
    for line in failed:
        print(f"skipped {line}", file=sys.stderr)
    return 1 if failed else 0


def run_stream(blurrer, source, output: Path | None, show: bool) -> int:
    """Video file or camera: frames are BGR in OpenCV, RGB for the model."""
    import cv2

    cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    if not cap.isOpened():
        print(f"cannot open video source {source}", file=sys.stderr)
        return 2
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer, frames, spent = None, 0, 0.0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            out = blurrer(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).image
            spent += time.perf_counter() - t0
            frames += 1
            bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
            if show:
                cv2.imshow("unetblur", bgr)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            elif output is not None:
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if output.suffix.lower() == ".mp4" else "MJPG"))
                    writer = cv2.VideoWriter(str(output), fourcc, fps, (bgr.shape[1], bgr.shape[0]))
                writer.write(bgr)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if frames:
        print(f"{frames} frames, {1000 * spent / frames:.1f} ms/frame ({frames / spent:.1f} fps) in the blurrer",
              file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="ONNX file from `unetblur export` (FP32, INT8 or FP16)")
    p.add_argument("input", help="image, folder, video file or camera index")
    p.add_argument("-o", "--output", type=Path, help="output image/folder/video")
    p.add_argument("--show", action="store_true", help="show the result in a window instead of writing it")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (Pi 4/5: 4 = one per core)")
    p.add_argument("--providers", help="e.g. TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider")
    p.add_argument("--mode", choices=("composite", "raw"), default="composite")
    p.add_argument("--working-size", type=int, default=640, help="longer side the network sees in composite mode")
    args = p.parse_args(argv)
    if args.output is None and not args.show:
        p.error("give -o OUTPUT or --show")

    from unetblur.errors import UnetblurError
    from unetblur.io import IMAGE_EXTENSIONS, list_images

    try:
        blurrer = build_blurrer(args)
        src = Path(args.input)
        if src.is_dir():
            return run_images(blurrer, list_images(src), args.output, args.show)
        if src.suffix.lower() in IMAGE_EXTENSIONS:
            return run_images(blurrer, [src], args.output, args.show)
        return run_stream(blurrer, args.input, args.output, args.show)
    except UnetblurError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
