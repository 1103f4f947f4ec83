"""Does the exported file compute what the torch model computes, and what does INT8/FP16 cost?

* :func:`parity_check`: torch vs ONNX Runtime on the same images (max abs difference, PSNR).
* :func:`compare_outputs`: one ONNX file against another (INT8 or FP16 vs FP32) on the same images.
* :func:`quality_report`: every variant on a validation split, with the metric definitions of
  ``unetblur.evaluate.metrics`` (PSNR vs FP32, PSNR vs target, ``mse_face``, ``coverage_recall``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..evaluate import metrics


def image_batch(image: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB → 1×3×H×W float32 in [0, 1]."""
    return (image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


def torch_forward(model, x: np.ndarray) -> np.ndarray:
    """Run a torch U-Net on an NCHW float32 array of any size (reflect-padded to its stride and
    cropped back, exactly as the ONNX runtime does) → NCHW float32."""
    import torch

    from ..models import model_stride, pad_to_stride

    with torch.no_grad():
        t, (h, w) = pad_to_stride(torch.from_numpy(np.ascontiguousarray(x)), model_stride(model))
        return model(t)[..., :h, :w].numpy().astype(np.float32)


def _finite(value: float) -> float | None:
    """JSON has no infinity/NaN: identical outputs give PSNR ∞, stored as None (read: 'identical')."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _summary(diffs: list[float], psnrs: list[float]) -> dict:
    return {"images": len(diffs), "max_abs_diff": float(max(diffs)) if diffs else None,
            "min_psnr_db": _finite(min(psnrs)) if psnrs else None,
            "mean_psnr_db": _finite(float(np.mean(psnrs))) if psnrs else None}


def parity_check(torch_model, onnx_model, images: Sequence[np.ndarray]) -> dict:
    """Torch vs ONNX Runtime on ``images`` (HWC uint8 RGB, any sizes), all output channels.
    Returns ``{"images", "max_abs_diff" (in [0, 1] units), "min_psnr_db", "mean_psnr_db"}``;
    a PSNR of None means the outputs were identical."""
    diffs, psnrs = [], []
    for image in images:
        x = image_batch(image)
        ref, out = torch_forward(torch_model, x), onnx_model.run(x)
        diffs.append(float(np.abs(ref - out).max()))
        psnrs.append(float(metrics.psnr(out.astype(np.float64), ref.astype(np.float64))))
    return _summary(diffs, psnrs)


def compare_outputs(reference, candidate, images: Sequence[np.ndarray]) -> dict:
    """One ONNX model against another (e.g. INT8 vs FP32) on ``images``; same keys as :func:`parity_check`."""
    diffs, psnrs = [], []
    for image in images:
        x = image_batch(image)
        ref, out = reference.run(x), candidate.run(x)
        diffs.append(float(np.abs(ref - out).max()))
        psnrs.append(float(metrics.psnr(out.astype(np.float64), ref.astype(np.float64))))
    return _summary(diffs, psnrs)


def _face_settings(root: Path):
    """The blur settings the dataset's targets were made with (for per-face masks), else the default."""
    from ..blur import DEFAULT_BLUR
    from ..data.layout import manifest_blur, read_manifest
    from ..errors import UnetblurError

    manifest = read_manifest(root)
    try:
        return manifest_blur(manifest)
    except UnetblurError:  # an unusable recorded blur: fall back to the default definition
        return DEFAULT_BLUR


def quality_report(models: Mapping[str, object], root: str | os.PathLike, split: str = "val", limit: int = 0,
                   reference: str = "fp32") -> dict:
    """Each model (name → OnnxModel) on the ``split`` of the dataset at ``root``.

    Per model: ``psnr_vs_<reference>`` (output vs the reference model's output, RGB, pooled over
    all pixels of all images), ``psnr_vs_target``, ``mse_face`` (mean over images, NaN-free),
    ``coverage_recall`` over the ground-truth faces, and the number of images.
    """
    from ..blur import face_mask
    from ..data.layout import FACES, list_samples
    from ..faces import read_faces_jsonl
    from ..io import read_image, read_mask

    root = Path(root)
    samples = list_samples(root, split)
    if limit:
        samples = samples[:limit]
    faces_file = root / FACES
    faces_by_key = read_faces_jsonl(faces_file) if faces_file.is_file() else {}
    settings = _face_settings(root)
    acc = {name: {"sq_ref": [], "sq_target": [], "mse_face": [], "completeness": []} for name in models}
    for sample in samples:
        image, target = read_image(sample.image), read_image(sample.target)
        mask = read_mask(sample.mask) if sample.mask is not None else None
        faces = faces_by_key.get(f"{split}/{sample.image.name}", [])
        outputs = {name: model.predict(image)[0] for name, model in models.items()}
        ref = outputs.get(reference)
        for name, out in outputs.items():
            a = acc[name]
            if ref is not None:
                a["sq_ref"].append(metrics.mse(out, ref))
            a["sq_target"].append(metrics.mse(out, target))
            if mask is not None:
                value = metrics.mse_face(out, target, mask)
                if not math.isnan(value):
                    a["mse_face"].append(value)
            for face in faces:
                a["completeness"].append(metrics.blur_completeness(out, image, target,
                                                                   face_mask(image.shape[:2], face, settings)))
    report = {"split": split, "images": len(samples)}
    for name, a in acc.items():
        entry = {"psnr_vs_target_db": _finite(metrics.psnr_from_mse(float(np.mean(a["sq_target"]))))
                 if a["sq_target"] else None,
                 "mse_face": round(float(np.mean(a["mse_face"])), 6) if a["mse_face"] else None,
                 "coverage_recall": _finite(metrics.coverage_recall(a["completeness"])),
                 "faces": len(a["completeness"])}
        if name != reference and a["sq_ref"]:
            entry[f"psnr_vs_{reference}_db"] = _finite(metrics.psnr_from_mse(float(np.mean(a["sq_ref"]))))
        report[name] = entry
    return report
