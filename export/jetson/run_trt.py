#!/usr/bin/env python3
"""Blur faces with a TensorRT engine built by ``build_engine.sh`` (Jetson; TensorRT ≥ 8.5).

Needs numpy, opencv, TensorRT's Python bindings (shipped with JetPack) and cuda-python
(``pip install cuda-python``), plus the torch-free ``unetblur`` package for image I/O, padding and
compositing. Same inputs and options as ``export/run_onnx.py``:

    python export/jetson/run_trt.py student.int8.plan INPUT -o OUTPUT --onnx student.int8.onnx

``--onnx`` (the file the engine was built from) supplies the stride and mask channel from its
metadata; without it the input is padded to a multiple of 32 (safe for every preset) and the
mask channel is taken from the engine's output shape.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # export/ (for run_onnx's loops)


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python ≥ 12.6
    except ImportError:
        from cuda import cudart
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class TrtModel:
    """An ``ImageModel`` (``predict(image) -> (rgb uint8, mask float32 | None)``) over a TensorRT engine."""

    def __init__(self, engine_path, stride: int = 32, mask_channel: bool | None = None):
        import tensorrt as trt

        self.cudart = _cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise SystemExit(f"{engine_path}: not a TensorRT engine for this GPU/TensorRT version; rebuild it here")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        out_channels = self.engine.get_tensor_shape(self.output)[1]
        self.mask_channel = (out_channels == 4) if mask_channel is None else mask_channel
        self.stride = stride
        self.name = Path(engine_path).stem
        self.stream = _check(self.cudart.cudaStreamCreate())
        self._buffers: dict[tuple, tuple[int, int, int]] = {}

    def _alloc(self, in_shape, out_shape):
        key = (in_shape, out_shape)
        if key not in self._buffers:
            for d_in, d_out, _ in self._buffers.values():
                self.cudart.cudaFree(d_in), self.cudart.cudaFree(d_out)
            self._buffers = {key: (_check(self.cudart.cudaMalloc(int(np.prod(in_shape)) * 4)),
                                   _check(self.cudart.cudaMalloc(int(np.prod(out_shape)) * 4)), 0)}
        return self._buffers[key][:2]

    def run(self, x: np.ndarray) -> np.ndarray:
        """NCHW float32 [0, 1] (any size; padded to the stride, cropped back) → NCHW float32. An engine
        whose output is smaller than its input (a strided-stem export, `output_stride`) is upsampled here."""
        from unetblur.runtime.onnx import reflect_pad, upsample_output

        cudart = self.cudart
        padded, (h, w) = reflect_pad(np.ascontiguousarray(x, np.float32), self.stride)
        self.context.set_input_shape(self.input, padded.shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output))
        d_in, d_out = self._alloc(padded.shape, out_shape)
        out = np.empty(out_shape, np.float32)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, padded.ctypes.data, padded.nbytes, h2d, self.stream))
        self.context.set_tensor_address(self.input, d_in)
        self.context.set_tensor_address(self.output, d_out)
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return np.stack([upsample_output(y, padded.shape[2] // out.shape[2], (h, w)) for y in out])

    def predict(self, image: np.ndarray):
        y = self.run(image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)[0]
        rgb = (np.clip(y[:3], 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        return rgb, (np.clip(y[3], 0, 1).astype(np.float32) if self.mask_channel and y.shape[0] > 3 else None)


def main(argv=None) -> int:
    from run_onnx import run_images, run_stream

    from unetblur.io import IMAGE_EXTENSIONS, list_images
    from unetblur.runtime.base import ModelBlurrer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("engine", help="TensorRT engine (.plan) from build_engine.sh")
    p.add_argument("input", help="image, folder, video file or camera index")
    p.add_argument("-o", "--output", type=Path)
    p.add_argument("--show", action="store_true")
    p.add_argument("--onnx", help="the ONNX file the engine was built from (stride and mask metadata)")
    p.add_argument("--mode", choices=("composite", "raw"), default="composite")
    p.add_argument("--working-size", type=int, default=640)
    args = p.parse_args(argv)
    if args.output is None and not args.show:
        p.error("give -o OUTPUT or --show")
    stride, mask = 32, None
    if args.onnx:
        from unetblur.runtime.onnx import read_onnx_metadata
        meta = read_onnx_metadata(args.onnx)
        stride, mask = int(meta.get("stride", 32)), meta.get("mask_channel", "false") == "true"
    model = TrtModel(args.engine, stride, mask)
    if args.mode == "raw":
        blurrer = ModelBlurrer(model)
    else:
        from unetblur.runtime.composite import CompositingBlurrer
        blurrer = CompositingBlurrer(model, working_size=args.working_size or None)
    src = Path(args.input)
    if src.is_dir():
        return run_images(blurrer, list_images(src), args.output, args.show)
    if src.suffix.lower() in IMAGE_EXTENSIONS:
        return run_images(blurrer, [src], args.output, args.show)
    return run_stream(blurrer, args.input, args.output, args.show)


if __name__ == "__main__":
    sys.exit(main())
