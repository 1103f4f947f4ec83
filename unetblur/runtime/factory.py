"""Turn a method spec string into a :class:`Blurrer` (or an :class:`ImageModel`). Torch-free at import.

Spec strings (what ``--method NAME=SPEC`` and ``unetblur blur --model`` take):

* ``oracle``                   blur the ground-truth faces (needs ``faces``; reproduces the target)
* ``identity``                 change nothing: the lower bound (coverage 0, every face re-identifiable)
* ``centerface``, ``haar``, …  a face detector from ``unetblur.detectors`` + ``blur_faces``
* ``path/to/model.onnx``       an exported U-Net (FP32, FP16 or INT8) through ONNX Runtime
* ``path/to/model.pt``         a saved torch U-Net (imports torch lazily)

U-Net specs run in ``mode="raw"`` by default (the thesis: the network's output *is* the image);
``mode="composite"`` hands the model to ``unetblur.runtime.composite`` (full-resolution
compositing of a sharp background with the model's face regions), when that module is present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..blur import BlurSettings
from ..errors import UnetblurError
from ..faces import Face
from .base import Blurrer, BlurResult, DetectorBlurrer, ImageModel, ModelBlurrer, OracleBlurrer

#: File suffixes read as torch model files / ONNX files.
TORCH_SUFFIXES = (".pt", ".pth")
ONNX_SUFFIXES = (".onnx",)
#: How a U-Net's output becomes the anonymised image.
MODES = ("raw", "composite")


class IdentityBlurrer:
    """Returns the image unchanged: the do-nothing reference row of a comparison."""

    name = "identity"

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        return BlurResult(image.copy(), np.zeros(image.shape[:2], np.float32), [])


def model_format(spec: str | os.PathLike) -> str | None:
    """``"onnx"`` or ``"torch"`` when ``spec`` names a model file (by suffix, any case), else None (a
    detector, the oracle, a preset name): the one place a spec is classified."""
    suffix = Path(str(spec)).suffix.lower()
    return "onnx" if suffix in ONNX_SUFFIXES else "torch" if suffix in TORCH_SUFFIXES else None


def is_model_spec(spec: str) -> bool:
    """True when ``spec`` names a model file (by suffix) rather than a detector or the oracle."""
    return model_format(spec) is not None


def open_image_model(spec: str | os.PathLike, *, device: str = "cpu", threads: int | None = None,
                     name: str | None = None) -> ImageModel:
    """Load a U-Net file as an :class:`ImageModel`: ``.onnx`` through ONNX Runtime, ``.pt``/``.pth`` through torch.

    ``threads``: intra-op threads of the backend (None = its default).
    """
    path = Path(spec)
    kind = model_format(path)
    if kind is None:
        raise UnetblurError(f"{spec}: not a model file (expected .onnx, .pt or .pth)")
    if not path.is_file():
        raise UnetblurError(f"{spec}: model file not found")
    if kind == "onnx":
        try:
            from .onnx import OnnxModel
        except ImportError as exc:
            raise UnetblurError(f"{spec}: ONNX models need unetblur.runtime.onnx ({exc})") from None
        model = OnnxModel(path, threads=threads) if threads else OnnxModel(path)
    else:
        try:
            import torch
            from ..models.torch_backend import TorchModel
        except ImportError as exc:
            raise UnetblurError(f"{spec}: .pt models need torch (pip install unetblur[train]): {exc}") from None
        if threads:
            torch.set_num_threads(int(threads))
        model = TorchModel(path, device=device)
    if name:
        model.name = name
    return model


def open_blurrer(spec: str, settings: BlurSettings | None = None, *, name: str | None = None,
                 mode: str = "raw", device: str = "cpu", threads: int | None = None, **options: Any) -> Blurrer:
    """Build the :class:`Blurrer` that ``spec`` names (see the module docstring).

    ``settings``: the blur of detector baselines and the oracle (use the dataset's, so the comparison
    is fair). ``mode``: ``raw`` or ``composite`` for U-Nets. ``options`` go to the detector or the
    compositing blurrer.
    """
    spec = str(spec).strip()
    if not spec:
        raise UnetblurError("empty method spec; use oracle, identity, a detector name (centerface, haar) or a model file")
    if spec in ("oracle", "identity"):
        blurrer = OracleBlurrer(settings) if spec == "oracle" else IdentityBlurrer()
        if name:
            blurrer.name = name
        return blurrer
    if is_model_spec(spec):
        if mode not in MODES:
            raise UnetblurError(f"unknown mode {mode!r} for {spec}; choose one of {', '.join(MODES)}")
        model = open_image_model(spec, device=device, threads=threads, name=name)
        if mode == "raw":
            return ModelBlurrer(model, name=name or model.name)
        return _composite_blurrer(model, settings, name, options)
    if threads and spec.split("@")[0] == "centerface":  # the ONNX detector takes a thread count too
        options.setdefault("threads", int(threads))
    return _detector_blurrer(spec, settings, name, options)


def _detector_blurrer(spec: str, settings: BlurSettings | None, name: str | None, options: dict) -> Blurrer:
    try:
        from ..detectors import open_detector
    except ImportError as exc:
        raise UnetblurError(f"{spec!r}: detectors are not available in this installation ({exc})") from None
    detector = open_detector(spec, **options)
    return DetectorBlurrer(detector, settings, name=name or spec)


def _composite_blurrer(model: ImageModel, settings: BlurSettings | None, name: str | None, options: dict) -> Blurrer:
    # Hook for the full-resolution compositing runtime: it owns how a model's mask becomes a blur.
    try:
        from .composite import CompositingBlurrer
    except ImportError as exc:
        raise UnetblurError(f"composite mode is not available in this installation ({exc}); use mode=raw") from None
    from .operating_point import composite_options

    return CompositingBlurrer(model, settings, name=name, **composite_options(model, options))
