"""ONNX Runtime backend of :class:`~unetblur.runtime.base.ImageModel`: what a Raspberry Pi or Jetson runs.

Imports only NumPy and ONNX Runtime (no torch, no ``onnx`` package). The model's facts (stride,
mask channel, precision) come from the ``metadata_props`` that ``unetblur export`` writes, read
through ``InferenceSession.get_modelmeta()``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import BadInputError, UnetblurError
from ..machine import cpu_has_vnni
from .base import check_image

#: Keys ``unetblur export`` writes into ``metadata_props`` (all values are strings).
META_LAYOUT = "input_layout"          # "NCHW"
META_COLOR = "color_order"            # "RGB"
META_RANGE = "value_range"            # "[0, 1]"
META_STRIDE = "stride"                # input sides must be multiples of this
META_OUTPUT_STRIDE = "output_stride"  # the output is this much smaller than the input (absent: 1)
META_TRAIN_SIZE = "training_size"     # side of the training crops, or "" when unknown
META_SPEC = "spec"                    # the architecture spec as JSON
META_MASK = "mask_channel"            # "true" / "false"
META_VERSION = "unetblur_version"
META_PRECISION = "precision"          # "fp32" / "int8" / "fp16"
META_QUANTIZATION = "quantization"    # JSON: the INT8 settings (unetblur.deploy.quantize.quantize_int8)

#: Stride assumed for an ONNX file without unetblur metadata (every U-Net preset divides it).
FALLBACK_STRIDE = 32

#: Preference order when the caller does not name execution providers.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CoreMLExecutionProvider",
                       "CPUExecutionProvider")


def default_providers() -> list[str]:
    """The available ONNX Runtime execution providers worth using, best first (CPU always last)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]


def int8_cpu_warning(metadata: dict[str, str], providers: Sequence[str]) -> str | None:
    """Why an INT8 file described by ``metadata`` gives wrong masks when ONNX Runtime's CPU kernels run it
    here, or None. Two kinds: a TensorRT-flavoured file (symmetric int8 activations; the one from
    ``--int8-target tensorrt`` measured 15 dB PSNR from its FP32 network on an AVX2 CPU), and 8-bit
    per-channel weights on x86 without VNNI, whose int16 sums saturate (the package's own output fell
    from 45 to 25.7 dB that way). Either is wrong masks, not a slowdown."""
    if metadata.get(META_PRECISION) != "int8" or "CPUExecutionProvider" not in providers[:1]:
        return None
    try:
        settings = json.loads(metadata.get(META_QUANTIZATION, "{}"))
    except ValueError:
        return None
    if not isinstance(settings, dict):
        return None
    if settings.get("target", "cpu") == "tensorrt":
        return ("was exported for TensorRT (--int8-target tensorrt); ONNX Runtime's CPU kernels gave wrong "
                "masks with such a file (15 dB from FP32 on AVX2); use `unetblur export --int8` (target cpu) "
                "or the FP32 file")
    if settings.get("per_channel") and settings.get("reduce_range") is False and not cpu_has_vnni():
        return ("has 8-bit per-channel INT8 weights, which saturate on this x86 CPU without VNNI and give wrong "
                "masks; re-export it with `unetblur export --int8 --reduce-range on` or use the FP32 file")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def open_session(path: str | os.PathLike, threads: int | None = None, providers: Sequence[str] | None = None,
                 profile_prefix: str | None = None, optimize: bool = True):
    """An ``onnxruntime.InferenceSession`` for ``path``; a missing, truncated or invalid file raises
    :class:`BadInputError` with one line. ``threads`` sets intra-op threads (None: ORT's default,
    one per core). ``profile_prefix`` turns on ORT's per-operator profiling. ``optimize=False``
    turns ORT's graph optimisations off: a QDQ graph then runs as written (quantise, dequantise,
    float convolution), i.e. the quantised arithmetic without the CPU's int8 kernels (a reference
    for what TensorRT computes)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "model file not found")
    if path.stat().st_size == 0:
        raise BadInputError(path, "model file is empty; re-export it with `unetblur export`")
    opts = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise UnetblurError(f"threads must be at least 1, got {threads}")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    # A provider is a name or a (name, options) pair, e.g. ("TensorrtExecutionProvider", {"trt_fp16_enable": True}).
    chosen = list(providers) if providers else default_providers()
    unknown = [p if isinstance(p, str) else p[0] for p in chosen
               if (p if isinstance(p, str) else p[0]) not in ort.get_available_providers()]
    if unknown:
        raise UnetblurError(f"execution provider(s) {', '.join(unknown)} not available in this onnxruntime; "
                            f"available: {', '.join(ort.get_available_providers())}")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
        raise BadInputError(path, f"not a usable ONNX model ({_first_line(exc)}); the file may be truncated "
                                  "or corrupt: re-export it with `unetblur export`") from None


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict of strings (torch-free)."""
    session = open_session(path, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def reflect_pad(x: np.ndarray, stride: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad an NCHW array at the bottom/right to multiples of ``stride`` (reflect, like
    ``unetblur.models.pad_to_stride``; edge replication when a side is too small to reflect).
    Returns the padded array and the original ``(H, W)``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "edge"
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
    return x, (h, w)


def image_tensor(images: Sequence[np.ndarray], stride: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Same-sized HWC uint8 RGB images → (N×3×H'×W' float32 in [0, 1] padded to multiples of ``stride``,
    the images' ``(H, W)``): the values of :func:`reflect_pad` on ``image / 255``, but padded in uint8
    and converted in one pass (a 640×420 frame: 1.9 ms instead of 3.6 for ``np.pad`` on float32)."""
    import cv2

    h, w = images[0].shape[:2]
    ph, pw = (-h) % stride, (-w) % stride
    border = cv2.BORDER_REFLECT_101 if ph < h and pw < w else cv2.BORDER_REPLICATE  # reflect_pad's rule
    out = np.empty((len(images), 3, h + ph, w + pw), np.float32)
    for image, x in zip(images, out):
        if ph or pw:
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, border)
        np.divide(image.transpose(2, 0, 1), np.float32(255.0), out=x)
    return out, (h, w)


def upsample_output(y: np.ndarray, output_stride: int, hw: tuple[int, int]) -> np.ndarray:
    """A C×h×w network output of ``output_stride`` s (see ``unetblur export``) → C×H×W at the input's
    size ``hw``: bilinear ×s with half-pixel centres (what the network's own ``F.interpolate(...,
    align_corners=False)`` computes), then the padding cropped. Also for other runtimes (TensorRT)."""
    h, w = hw
    if output_stride > 1:
        import cv2

        s = output_stride
        up = cv2.resize(np.ascontiguousarray(y.transpose(1, 2, 0)), (y.shape[2] * s, y.shape[1] * s),
                        interpolation=cv2.INTER_LINEAR)
        y = up.reshape(up.shape[0], up.shape[1], -1).transpose(2, 0, 1)
    return y[:, :h, :w]


class OnnxModel:
    """An exported U-Net run by ONNX Runtime, seen as arrays (the ``ImageModel`` protocol).

    ``path``: an ONNX file written by ``unetblur export`` (FP32, FP16 or INT8; IO is float32).
    ``threads``: ONNX Runtime intra-op threads (None: one per core).
    ``providers``: execution providers, best first, names or ``(name, options)`` pairs
    (None: the available ones, CPU last).
    ``optimize``: False runs the graph as written (see :func:`open_session`); for checks only.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: Sequence[str] | None = None,
                 name: str | None = None, optimize: bool = True):
        self.path = Path(path)
        self.threads = threads
        self.session = open_session(self.path, threads, providers, optimize=optimize)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise BadInputError(self.path, f"expected one image input, found {len(inputs)} inputs; "
                                           "not a unetblur export")
        shape = list(inputs[0].shape)
        # Refuse at load what every image would fail on later (one line here, not one per file).
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3) \
                or any(isinstance(d, int) for d in shape[2:]):
            raise BadInputError(self.path, f"takes input of shape {shape}; unetblur models take N×3×H×W with "
                                           "any H and W (re-export with `unetblur export`)")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_dtype = np.float16 if "float16" in inputs[0].type else np.float32
        try:
            self.stride = int(self.metadata.get(META_STRIDE, FALLBACK_STRIDE))
        except ValueError:
            raise BadInputError(self.path, f"metadata stride {self.metadata[META_STRIDE]!r} is not an integer") from None
        try:
            self.output_stride = int(self.metadata.get(META_OUTPUT_STRIDE, 1))
        except ValueError:
            raise BadInputError(self.path, f"metadata output_stride {self.metadata[META_OUTPUT_STRIDE]!r} is not "
                                           "an integer") from None
        if self.output_stride < 1 or self.stride % self.output_stride:
            raise BadInputError(self.path, f"metadata output_stride {self.output_stride} does not divide the stride "
                                           f"{self.stride}; re-export it with `unetblur export`")
        if META_MASK in self.metadata:
            self.mask_channel = self.metadata[META_MASK].lower() == "true"
        else:  # a foreign file: trust the output's channel count when it is static
            channels = outputs[0].shape[1] if len(outputs[0].shape) == 4 else None
            self.mask_channel = channels == 4
        self.precision = self.metadata.get(META_PRECISION, "fp32")
        self.providers = self.session.get_providers()
        self.name = name or self.path.stem
        # Unoptimised, ORT dequantises and computes in float, so neither problem arises.
        problem = int8_cpu_warning(self.metadata, self.providers) if optimize else None
        if problem:
            print(f"unetblur: warning: {self.path.name} {problem}", file=sys.stderr)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, precision={self.precision}, stride={self.stride}, " \
               f"providers={self.providers})"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw network call: NCHW float32 RGB in [0, 1], any H and W (padded to the stride and
        cropped back here) → NCHW float32 in [0, 1] (RGB, then the mask channel if any)."""
        out, (h, w) = self._run_native(x)
        return np.stack([upsample_output(y, self.output_stride, (h, w)) for y in out])

    def _run_native(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The graph's own output for ``x`` (1/``output_stride`` of the padded input) and the input's (H, W)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise UnetblurError(f"expected an N×3×H×W array, got shape {tuple(x.shape)}")
        padded, hw = reflect_pad(np.ascontiguousarray(x, dtype=np.float32), self.stride)
        return self._run_padded(padded), hw

    def _run_padded(self, padded: np.ndarray) -> np.ndarray:
        """The graph's own output for an input already padded to the stride."""
        out = self.session.run([self.output_name], {self.input_name: padded.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)

    def predict(self, image: np.ndarray, rgb: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """HWC uint8 RGB image of any size → (HWC uint8 RGB output, HW float32 mask in [0, 1] or None).
        ``rgb=False``: the RGB output is not converted (None), for callers that need only the mask."""
        return self.predict_batch([image], rgb)[0]

    def predict_batch(self, images: Sequence[np.ndarray], rgb: bool = True
                      ) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        """``predict`` for several images in one network call when they share a size (one call
        per image otherwise). Returns one ``(rgb, mask)`` pair per image, in order."""
        images = list(images)
        for image in images:
            check_image(image)
        if not images:
            return []
        if len({im.shape for im in images}) > 1:
            return [pair for im in images for pair in self.predict_batch([im], rgb)]
        padded, hw = image_tensor(images, self.stride)
        out = self._run_padded(padded)
        from .base import check_model_output

        check_model_output(out, self.name, self.mask_channel)  # NaN / out of range: fail closed, never clip
        results = []
        for y in np.clip(out, 0.0, 1.0):
            # Upsampled and converted only when wanted: the uint8 RGB is ~1 ms at 640×480, and a
            # compositing caller needs the mask alone.
            image_out = None
            if rgb:
                image_out = (upsample_output(y[:3], self.output_stride, hw).transpose(1, 2, 0) * 255.0 + 0.5)
                image_out = image_out.astype(np.uint8)
            mask = None
            if self.mask_channel and y.shape[0] > 3:
                mask = np.ascontiguousarray(upsample_output(y[3:4], self.output_stride, hw)[0])
            results.append((image_out, mask))
        return results

    def coarse_mask(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """The mask channel as the graph makes it: (⌈H/s⌉×⌈W/s⌉ float32 in [0, 1], s), s = ``output_stride``.
        Cell (i, j) covers input pixels [s·i, s·i + s) × [s·j, s·j + s). For callers that find regions on
        the coarse grid and upsample only those (:class:`~unetblur.runtime.composite.CompositingBlurrer`)."""
        if not self.mask_channel:
            raise UnetblurError(f"model {self.name} has no mask channel")
        check_image(image)
        padded, (h, w) = image_tensor([image], self.stride)
        out = self._run_padded(padded)
        from .base import check_model_output

        check_model_output(out, self.name, self.mask_channel)
        s = self.output_stride
        return np.clip(out[0, 3, :-(-h // s), :-(-w // s)], 0.0, 1.0), s

    def spec(self) -> dict | None:
        """The architecture spec stored at export, or None."""
        text = self.metadata.get(META_SPEC)
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return None
