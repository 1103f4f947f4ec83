"""``unetblur export``: a saved model → self-describing ONNX files (FP32, optional INT8 / FP16),
checked against torch before anything is written.

One ONNX file serves every size: batch, height and width are dynamic (sides must be multiples of
the stride stored in the metadata; ``unetblur.runtime.onnx.OnnxModel`` pads and crops). Weights
are embedded (one file, no ``.onnx.data``). The TorchScript-based exporter is used: it embeds
weights by default and needs no ``onnxscript`` (which the dynamo exporter would).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from .. import __version__
from ..errors import UnetblurError, first_line
from ..fsutil import make_work_dir, overlaps, same_file
from ..runtime import onnx as rt
from ..runtime.operating_point import META_OPERATING_POINT, parse_operating_point_flag

#: Largest side of dataset images used for parity, calibration and the quality report: bounds the
#: time on a 2-core CPU; bigger photos are shrunk (aspect kept) before use.
MAX_SIDE = 512


@dataclass(frozen=True)
class ExportConfig:
    """Settings of ``unetblur export`` (flags override YAML; see ``unetblur export --help``)."""

    model: str = ""
    out_dir: str = "export/artifacts"
    name: str = ""                       # file stem of the outputs; default: the model file's stem
    opset: int = 17
    simplify: bool = False               # run onnxslim on the FP32 graph
    data: str = ""                       # dataset root: train split calibrates, val split checks
    parity_count: int = 8                # images for the torch vs ONNX Runtime parity check
    tolerance: float = 1e-3              # max abs difference (values in [0, 1]) allowed torch vs ORT FP32
    int8: bool = False
    calib_count: int = 64
    calib_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    reduce_range: Literal["auto", "on", "off"] = "auto"
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    int8_target: Literal["cpu", "tensorrt"] = "cpu"   # tensorrt: symmetric int8 activations (Jetson)
    int8_min_psnr: float = 30.0          # INT8 vs FP32 output PSNR (dB) below this fails the export; 0 disables
    fp16: bool = False
    fp16_min_psnr: float = 40.0
    eval_count: int = 0                  # validation images for the quality report (0: all)
    seed: int = 0
    operating_point: str = ""            # composite settings stored in every file, e.g. "working_size=320,threshold=0.4"


# --------------------------------------------------------------------------- metadata

def set_metadata(model_proto, entries: dict[str, str]) -> None:
    """Replace/insert ``metadata_props`` entries of an in-memory ``onnx.ModelProto``."""
    keep = [p for p in model_proto.metadata_props if p.key not in entries]
    del model_proto.metadata_props[:]
    for p in keep:
        model_proto.metadata_props.add(key=p.key, value=p.value)
    for key, value in entries.items():
        model_proto.metadata_props.add(key=str(key), value=str(value))


def _training_size(meta: dict) -> str:
    """Side of the training images, from what ``train``/``distill`` store in the model's meta
    (the crop size if training cropped, else the dataset's image size); "" when unknown."""
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    manifest = meta.get("dataset_manifest") if isinstance(meta.get("dataset_manifest"), dict) else {}
    for value in (meta.get("training_size"), meta.get("train_size"), config.get("crop_size"),
                  meta.get("crop_size"), manifest.get("image_size"), meta.get("image_size")):
        if value:
            return str(value)
    return ""


def model_metadata(model, meta: dict, precision: str, operating_point: str = "") -> dict[str, str]:
    """The ``metadata_props`` every exported file carries (strings only); ``operating_point`` in the
    ``--operating-point`` form adds the composite settings ``unetblur blur`` then runs the file at."""
    from ..models import has_mask_channel, model_stride, output_stride
    from ..models.checkpoint import model_kind_and_spec

    kind, spec = model_kind_and_spec(model)
    mask = has_mask_channel(model)
    return {rt.META_LAYOUT: "NCHW", rt.META_COLOR: "RGB", rt.META_RANGE: "[0, 1]",
            rt.META_STRIDE: str(model_stride(model)), rt.META_OUTPUT_STRIDE: str(output_stride(model)),
            rt.META_TRAIN_SIZE: _training_size(meta),
            rt.META_SPEC: json.dumps({"kind": kind, **spec}, sort_keys=True), rt.META_MASK: str(mask).lower(),
            rt.META_VERSION: __version__, rt.META_PRECISION: precision,
            "outputs": "RGB then mask" if mask else "RGB",
            **({META_OPERATING_POINT: json.dumps(parse_operating_point_flag(operating_point), sort_keys=True)}
               if operating_point else {})}


# --------------------------------------------------------------------------- FP32 export

def opset_range() -> tuple[int, int]:
    """The ONNX opsets torch's TorchScript exporter (the one used here) can write: (lowest, highest)."""
    try:
        from torch.onnx import _constants as c

        return int(c.ONNX_MIN_OPSET), int(getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", c.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):  # a torch that moved its constants: the range we know works
        return 9, 20


def check_opset(opset) -> None:
    """Refuse an opset torch cannot write, with the range it can (one line, exit 2)."""
    low, high = opset_range()
    if not (isinstance(opset, int) and not isinstance(opset, bool) and low <= opset <= high):
        raise UnetblurError(f"--opset {opset}: this torch exports opsets {low} to {high}; choose one in that range "
                            "(default 17)")


def _shuffle_up(transposed):
    """The 1×1 conv + pixel shuffle equal to a 2×2 stride-2 ``ConvTranspose2d`` (see :func:`shuffle_upsampling`)."""
    import torch

    cin, cout = transposed.in_channels, transposed.out_channels
    conv = torch.nn.Conv2d(cin, cout * 4, 1, bias=transposed.bias is not None)
    with torch.no_grad():
        # out[co, 2h+a, 2w+b] = Σ_ci x[ci, h, w]·W[ci, co, a, b]; PixelShuffle(2) takes output (co, a, b)
        # from channel 4·co + 2·a + b, so that channel's 1×1 weights are W[:, co, a, b].
        conv.weight.copy_(transposed.weight.permute(1, 2, 3, 0).reshape(cout * 4, cin, 1, 1))
        if transposed.bias is not None:
            conv.bias.copy_(transposed.bias.repeat_interleave(4))
    return torch.nn.Sequential(conv, torch.nn.PixelShuffle(2))


def shuffle_upsampling(model):
    """A copy of ``model`` in which every 2×2 stride-2 transposed convolution (the U-Nets' upsampling)
    is a 1×1 convolution to 4× the channels followed by a pixel shuffle (ONNX ``DepthToSpace``).

    The same function (to float rounding), written so that INT8 runs it: ONNX Runtime 1.32's CPU
    backend has no integer ConvTranspose, so a quantised file dequantises around it and transposes
    layouts; as QLinearConv + DepthToSpace the student's INT8 kernels take ~16 % less time (ORT profile,
    448×336, 2 cores; end to end per photo the gain is within run-to-run noise). The original model
    stays the reference of the parity check.
    """
    import copy

    import torch

    rewritten = copy.deepcopy(model)
    for parent in list(rewritten.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, torch.nn.ConvTranspose2d) and child.kernel_size == (2, 2)
                    and child.stride == (2, 2) and child.padding == (0, 0) and child.output_padding == (0, 0)
                    and child.dilation == (1, 1) and child.groups == 1):
                setattr(parent, name, _shuffle_up(child))
    return rewritten


def _onnx_space_to_depth(block: int):
    """A module equal to ONNX ``SpaceToDepth(blocksize=block)``: output channel (i·block + j)·C + c is
    input channel c at offset (i, j) of each block (torch's PixelUnshuffle orders them c·block² + i·block + j).
    Exported as that single node."""
    import torch

    class SpaceToDepthOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            n, c, h, w = x.shape
            x = x.reshape(n, c, h // block, block, w // block, block)
            return x.permute(0, 3, 5, 1, 2, 4).reshape(n, block * block * c, h // block, w // block)

        @staticmethod
        def symbolic(g, x):
            return g.op("SpaceToDepth", x, blocksize_i=block)

    class SpaceToDepth(torch.nn.Module):
        def forward(self, x):
            return SpaceToDepthOp.apply(x)

    return SpaceToDepth()


def _permute_input_channels(convs, order) -> None:
    """Make ``convs`` (the first convolution, and after a depthwise one the pointwise conv it feeds)
    read input channel ``order[k]`` from position k, in place."""
    import torch

    with torch.no_grad():
        for conv in convs:
            if conv.groups == conv.in_channels == conv.out_channels > 1:   # depthwise: outputs move with inputs
                conv.weight.copy_(conv.weight[order])
                if conv.bias is not None:
                    conv.bias.copy_(conv.bias[order])
            else:
                conv.weight.copy_(conv.weight[:, order])
                return


def onnx_space_to_depth_stem(model):
    """``model`` itself, or a copy whose space-to-depth stem is the ONNX ``SpaceToDepth`` node.

    The same function (exactly: only the order of the stem's channels changes, and the first
    convolution's weights are permuted to match). torch exports PixelUnshuffle as a 6-D
    Reshape/Transpose/Reshape that ONNX Runtime runs on the full-resolution float input: 9.3 of the
    student's 55 ms in an ORT profile at 640×448 (2 cores), where SpaceToDepth takes ~2 ms.
    """
    import copy

    import torch

    stem = getattr(model, "stem", None)
    if not isinstance(stem, torch.nn.PixelUnshuffle):
        return model
    rewritten = copy.deepcopy(model)
    block, channels = stem.downscale_factor, rewritten.spec.in_channels
    first = [m for m in rewritten.enc[0].modules() if isinstance(m, torch.nn.Conv2d)][:2]
    # SpaceToDepth's channel k is PixelUnshuffle's channel (k mod C)·block² + k div C.
    order = torch.tensor([(k % channels) * block * block + k // channels for k in range(channels * block * block)])
    _permute_input_channels(first, order)
    rewritten.stem = _onnx_space_to_depth(block)
    return rewritten


def export_onnx(model, path: str | os.PathLike, metadata: dict[str, str], *, opset: int = 17,
                simplify: bool = False, sample_side: int | None = None) -> Path:
    """Export an eval-mode torch model to ``path`` (one file, weights embedded): input ``image``
    N×3×H×W float32, output ``output`` N×C×(H/s)×(W/s) with s = :func:`~unetblur.models.output_stride`
    (the ``output_stride`` metadata), batch/height/width dynamic; checked with ``onnx.checker``;
    optionally simplified with onnxslim; ``metadata`` stored in ``metadata_props``. Transposed-conv
    upsampling and a space-to-depth stem are written as the ONNX operators ONNX Runtime runs fastest
    first (:func:`shuffle_upsampling`, :func:`onnx_space_to_depth_stem`)."""
    import onnx
    import torch

    from ..models import model_stride, output_stride

    stride = model_stride(model)
    side = sample_side or max(2 * stride, 64)
    dummy = torch.rand(1, 3, side, side)
    dyn = {0: "batch", 2: "height", 3: "width"}
    path = Path(path)
    model.eval()
    check_opset(opset)
    graph = onnx_space_to_depth_stem(shuffle_upsampling(model))
    if output_stride(model) > 1:
        graph.upsample_output = False
    out_dyn = dyn if output_stride(model) == 1 else {0: "batch", 2: "out_height", 3: "out_width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(graph, (dummy,), str(path), dynamo=False, input_names=["image"],
                              output_names=["output"], dynamic_axes={"image": dyn, "output": out_dyn},
                              opset_version=opset, do_constant_folding=True)
        except (RuntimeError, ValueError, TypeError) as exc:  # torch.onnx's errors: an operator missing at opset
            raise UnetblurError(f"--opset {opset}: torch could not export this model at that opset "
                                f"({first_line(exc, 160)}); try the default 17") from None
    proto = onnx.load(str(path))
    if simplify:
        import onnxslim
        proto = onnxslim.slim(proto)
    set_metadata(proto, metadata)
    proto.doc_string = "unetblur U-Net: image N×3×H×W RGB [0,1] (H, W multiples of the 'stride' metadata) → output"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


def random_calibrated_model(name_or_spec, side: int = 32, seed: int = 0):
    """A randomly initialised model whose BatchNorm statistics are set from one batch of random
    images, so its output varies across the image like a trained net's does (a fresh net outputs
    ≈ 0.5 everywhere, which makes INT8 look perfect). For latency benchmarks and tests only."""
    import torch

    from ..models import build_model, model_stride

    torch.manual_seed(seed)
    model = build_model(name_or_spec)
    stride = model_stride(model)
    side = -(-max(side, 2 * stride) // stride) * stride
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, side, side, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


# --------------------------------------------------------------------------- images

def _shrink(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def dataset_images(root: str | os.PathLike, split: str, count: int) -> list[np.ndarray]:
    """Up to ``count`` input images of ``split`` (evenly spread over the sorted list), HWC uint8,
    shrunk to ``MAX_SIDE``. Unreadable files are skipped."""
    from ..data.layout import list_samples
    from ..errors import BadInputError
    from ..io import read_image

    samples = list_samples(root, split)
    if count and len(samples) > count:
        idx = np.linspace(0, len(samples) - 1, count).round().astype(int)
        samples = [samples[i] for i in idx]
    images = []
    for s in samples:
        try:
            images.append(_shrink(read_image(s.image)))
        except BadInputError:
            continue
    return images


def synthetic_images(count: int, seed: int = 0, sizes: Sequence[tuple[int, int]] = ((64, 64), (48, 80))) -> list[np.ndarray]:
    """Smooth random HWC uint8 images with bright ellipses (face-like blobs), alternating sizes
    (one of them not a multiple of 16, so padding is exercised)."""
    import cv2

    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img = cv2.GaussianBlur(img, (5, 5), 0)
        for _ in range(2):
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(4, max(5, w // 4))), int(rng.integers(4, max(5, h // 4))))
            cv2.ellipse(img, center, axes, 0, 0, 360, tuple(int(c) for c in rng.integers(120, 255, 3)), -1)
        images.append(img)
    return images


#: Side of the calibration crops when the model does not record its training size.
DEFAULT_CALIB_SIZE = 128


def calibration_batches(images: Sequence[np.ndarray], stride: int, size: int = DEFAULT_CALIB_SIZE) -> list[np.ndarray]:
    """One 1×3×S×S float32 batch per image: shorter side resized to S, centre-cropped (S rounded up
    to the stride). One shape for all: the entropy and percentile calibrators stack their batches."""
    import cv2

    from .parity import image_batch

    side = -(-max(int(size), stride) // stride) * stride
    batches = []
    for im in images:
        h, w = im.shape[:2]
        s = side / min(h, w)
        nh, nw = max(side, round(h * s)), max(side, round(w * s))
        resized = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        y, x = (nh - side) // 2, (nw - side) // 2
        batches.append(image_batch(np.ascontiguousarray(resized[y:y + side, x:x + side])))
    return batches


# --------------------------------------------------------------------------- the command

def _size_kb(path: Path) -> float:
    return round(path.stat().st_size / 1024, 1)


def export_model(cfg: ExportConfig) -> dict:
    """Export ``cfg.model`` to ``cfg.out_dir``: ``NAME.onnx`` (FP32), ``NAME.int8.onnx`` and
    ``NAME.fp16.onnx`` when asked, and ``NAME.export.json`` (parity, quality, sizes, settings).

    Every file is first written to a hidden temporary folder; they are moved into place only when
    all checks pass, so a failed export leaves nothing behind. Raises :class:`UnetblurError` when
    torch and ONNX Runtime disagree beyond ``cfg.tolerance`` or INT8/FP16 fall below their PSNR floor.
    Returns the report dict.
    """
    from ..models import load_model, model_stride
    from .parity import quality_report

    model_path = _check_export_config(cfg)
    model, meta = load_model(model_path)
    stride = model_stride(model)
    name = cfg.name or model_path.stem
    out_dir = Path(cfg.out_dir)
    _refuse_replacing_inputs(cfg, out_dir, name, model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    parity_images, source = _parity_images(cfg)

    report: dict = {"model": str(model_path), "name": name, "unetblur_version": __version__,
                    "config": asdict(cfg), "stride": stride, "parity_images": source, "files": {}}
    tmp = make_work_dir(out_dir, ".export-")
    try:
        fp32 = tmp / f"{name}.onnx"
        fp32_model, report["parity_fp32"] = _export_fp32(cfg, model, meta, fp32, parity_images)
        variants = {"fp32": fp32_model}
        files = {"fp32": fp32}
        if cfg.int8:
            int8 = tmp / f"{name}.int8.onnx"
            variants["int8"], report["int8"] = _export_int8(cfg, model, meta, stride, fp32, fp32_model, int8,
                                                            parity_images)
            files["int8"] = int8
        if cfg.fp16:
            fp16 = tmp / f"{name}.fp16.onnx"
            fp16_model, report["fp16"] = _export_fp16(cfg, model, meta, fp32, fp32_model, fp16, parity_images)
            if fp16_model is not None:
                variants["fp16"] = fp16_model
            files["fp16"] = fp16
        if cfg.data and (cfg.int8 or cfg.fp16):
            report["quality"] = quality_report(variants, cfg.data, "val", cfg.eval_count)

        for key, path in files.items():
            report["files"][key] = {"path": str(out_dir / path.name), "size_kb": _size_kb(path)}
        report["seconds"] = round(time.perf_counter() - started, 1)
        report_tmp = tmp / f"{name}.export.json"
        report_tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        for path in [*files.values(), report_tmp]:
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _check_export_config(cfg: ExportConfig) -> Path:
    """Refuse settings that cannot work before minutes of work; returns the model's path."""
    from ..runtime.factory import model_format

    if not cfg.model:
        raise UnetblurError("no model given: unetblur export MODEL.pt")
    check_opset(cfg.opset)
    model_path = Path(cfg.model)
    if model_format(model_path) == "onnx":
        raise UnetblurError(f"{model_path}: already an ONNX file; export takes a .pt model saved by train/distill/prune")
    if cfg.data and not Path(cfg.data).is_dir():
        raise UnetblurError(f"--calib-data {cfg.data}: no such dataset folder")
    for key in ("parity_count", "calib_count", "eval_count"):
        if getattr(cfg, key) < 0:
            raise UnetblurError(f"{key.replace('_', '-')} must be 0 or more, got {getattr(cfg, key)}")
    if cfg.operating_point:
        parse_operating_point_flag(cfg.operating_point)  # a bad flag fails before any work
    return model_path


def _refuse_replacing_inputs(cfg: ExportConfig, out_dir: Path, name: str, model_path: Path) -> None:
    """The files are moved over whatever has their name: never over the model or the dataset."""
    for suffix in (".onnx", ".int8.onnx", ".fp16.onnx", ".export.json"):
        target = out_dir / f"{name}{suffix}"
        if same_file(target, model_path) or (cfg.data and overlaps(target, cfg.data)):
            raise UnetblurError(f"{target}: would replace an input of this export; choose another -o or --name")


def _parity_images(cfg: ExportConfig) -> tuple[list[np.ndarray], str]:
    """The validation split when a dataset is given (real images), synthetic otherwise; and which."""
    if cfg.data:
        images = dataset_images(cfg.data, "val", cfg.parity_count)
        if images:
            return images, f"{cfg.data} (val split)"
    return synthetic_images(max(cfg.parity_count, 2), cfg.seed), "synthetic"


def _export_fp32(cfg: ExportConfig, model, meta: dict, fp32: Path, parity_images) -> tuple[object, dict]:
    """Write the FP32 file and check it against torch; returns its runtime model and the parity entry."""
    from .parity import parity_check

    export_onnx(model, fp32, model_metadata(model, meta, "fp32", cfg.operating_point), opset=cfg.opset,
                simplify=cfg.simplify)
    fp32_model = rt.OnnxModel(fp32, providers=["CPUExecutionProvider"], name="fp32")
    parity = parity_check(model, fp32_model, parity_images)
    parity["tolerance"] = cfg.tolerance
    if not parity["max_abs_diff"] <= cfg.tolerance:
        raise UnetblurError(f"parity check failed: torch and ONNX Runtime outputs differ by up to "
                            f"{parity['max_abs_diff']:.2e} (tolerance {cfg.tolerance:g}) on {parity['images']} "
                            f"images; nothing was written. Try another --opset or export without --simplify")
    return fp32_model, parity


def _export_int8(cfg: ExportConfig, model, meta: dict, stride: int, fp32: Path, fp32_model, int8: Path,
                 parity_images) -> tuple[object, dict]:
    """Quantise, stamp and check the INT8 file against FP32; returns its runtime model and report entry."""
    from .parity import compare_outputs
    from .quantize import quantize_int8

    calib_source = "synthetic"
    calib = dataset_images(cfg.data, "train", cfg.calib_count) if cfg.data else []
    if calib:
        calib_source = f"{cfg.data} (train split)"
    else:
        calib = synthetic_images(max(cfg.calib_count, 1), cfg.seed + 1)
    trained = _training_size(meta)
    calib_size = min(int(trained), MAX_SIDE) if trained.isdigit() else DEFAULT_CALIB_SIZE
    settings = quantize_int8(fp32, int8, calibration_batches(calib, stride, calib_size), method=cfg.calib_method,
                             per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
                             quant_format=cfg.quant_format, target=cfg.int8_target)
    settings["calibration_source"] = calib_source
    settings["calibration_size"] = calib_size
    _stamp(int8, {**model_metadata(model, meta, "int8", cfg.operating_point),
                  rt.META_QUANTIZATION: json.dumps(settings, sort_keys=True)})
    # The TensorRT flavour (int8 activations, 8-bit weights) saturates in the x86 CPU kernels
    # (≈ 25 dB here) but not in TensorRT: check it as written, in float arithmetic.
    on_cpu = cfg.int8_target == "cpu"
    int8_model = rt.OnnxModel(int8, providers=["CPUExecutionProvider"], name="int8", optimize=on_cpu)
    check = compare_outputs(fp32_model, int8_model, parity_images)
    entry = {**settings, "vs_fp32": check, "min_psnr_db": cfg.int8_min_psnr,
             "checked_as": "onnxruntime CPU int8 kernels" if on_cpu else
             "QDQ arithmetic simulated in float (onnxruntime, graph optimisations off), "
             "as TensorRT computes it; not for ONNX Runtime on x86"}
    _check_floor("INT8", check, cfg.int8_min_psnr, "try --calib-method percentile, --per-tensor, "
                 "or more --calib-count images")
    return int8_model, entry


def _export_fp16(cfg: ExportConfig, model, meta: dict, fp32: Path, fp32_model, fp16: Path,
                 parity_images) -> tuple[object | None, dict]:
    """Convert, stamp and (where ONNX Runtime's CPU can run it) check the FP16 file; returns its
    runtime model (None when unchecked) and report entry."""
    from .parity import compare_outputs
    from .quantize import convert_fp16

    entry = dict(convert_fp16(fp32, fp16))
    _stamp(fp16, model_metadata(model, meta, "fp16", cfg.operating_point))
    try:
        fp16_model = rt.OnnxModel(fp16, providers=["CPUExecutionProvider"], name="fp16")
        entry["vs_fp32"] = compare_outputs(fp32_model, fp16_model, parity_images)
        entry["checked_on"] = "onnxruntime CPUExecutionProvider"
    except Exception as exc:  # some ORT builds lack FP16 CPU kernels; the file is for GPUs
        entry["vs_fp32"] = None
        reason = str(getattr(exc, "problem", exc)).splitlines()[0][:160]
        entry["checked_on"] = f"not checked here: ONNX Runtime's CPU backend cannot run it ({reason})"
        return None, entry
    _check_floor("FP16", entry["vs_fp32"], cfg.fp16_min_psnr, "export FP32 for this model")
    return fp16_model, entry


def _stamp(path: Path, entries: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    set_metadata(proto, entries)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def _check_floor(what: str, check: dict, floor: float, hint: str) -> None:
    if not floor:
        return
    psnr = check["mean_psnr_db"]
    if psnr is not None and psnr < floor:
        raise UnetblurError(f"{what} output is too far from FP32: PSNR {psnr:.1f} dB < {floor:g} dB on "
                            f"{check['images']} images; nothing was written. {hint}")
