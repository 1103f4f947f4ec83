"""INT8 (static post-training quantisation, ONNX Runtime QDQ) and FP16 variants of an FP32 ONNX file.

Measured pitfalls this code answers (issue #5, x86 without VNNI, onnxruntime 1.31):

* per-channel INT8 weights on x86 without VNNI lose ~14 dB through int16 accumulation saturation
  unless weights use 7 bits (``reduce_range``). The file runs where it is copied, not where it was
  exported: the package exported on a VNNI machine with 8-bit weights fell from 45 to 25.7 dB on an
  AVX2 one. So ``reduce_range="auto"`` uses 7 bits for every per-channel CPU file (about 0.5 dB on
  CPUs that would not have saturated); ``"off"`` is for a file that only ever runs on ARM or VNNI x86;
* ``quant_pre_process`` fails on symbolic height/width, so symbolic shape inference is skipped;
* ``quantize_dynamic`` is ~5× slower than FP32 for convolutions, so only static quantisation is offered.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Literal

import numpy as np

from ..errors import UnetblurError

CalibMethod = Literal["minmax", "entropy", "percentile"]
QuantFormat = Literal["qdq", "qoperator"]
ReduceRange = Literal["auto", "on", "off"]
Int8Target = Literal["cpu", "tensorrt"]


def resolve_reduce_range(setting: ReduceRange, per_channel: bool) -> bool:
    """``auto``: 7-bit weights wherever the weights are per channel, the form that saturates on x86
    without VNNI, whichever CPU exports the file (see the module docstring)."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    return per_channel


class _ArrayReader:
    """``CalibrationDataReader`` over NCHW float32 batches (already padded to the stride)."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]):
        self.input_name = input_name
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration: Iterable[np.ndarray], *,
                  method: CalibMethod = "minmax", per_channel: bool = True, reduce_range: ReduceRange = "auto",
                  quant_format: QuantFormat = "qdq", target: Int8Target = "cpu") -> dict:
    """Static INT8 quantisation of ``fp32_path`` into ``out_path`` (weights embedded, one file).

    ``calibration``: NCHW float32 [0, 1] batches whose sides are multiples of the model stride
    (images from the dataset's train split, never the evaluation split).
    Weights are signed INT8 (per output channel if ``per_channel``). ``target="cpu"`` (ONNX Runtime
    CPU/ARM): unsigned INT8 activations with zero points. ``target="tensorrt"``: signed INT8 symmetric
    activations (zero point 0, the only form TensorRT's explicit quantisation accepts) and no
    ``reduce_range``; ONNX Runtime's CPU backend still runs such a file (used for the checks here).
    Returns the settings used (recorded in the file's metadata and the export report).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat as OrtQuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise UnetblurError(f"calibration method must be one of {', '.join(methods)}, got {method!r}")
    formats = {"qdq": OrtQuantFormat.QDQ, "qoperator": OrtQuantFormat.QOperator}
    if quant_format not in formats:
        raise UnetblurError(f"quantisation format must be 'qdq' or 'qoperator', got {quant_format!r}")
    if target not in ("cpu", "tensorrt"):
        raise UnetblurError(f"INT8 target must be 'cpu' or 'tensorrt', got {target!r}")
    if target == "tensorrt" and quant_format != "qdq":
        raise UnetblurError("TensorRT reads only QDQ graphs; use quant_format 'qdq' with the tensorrt target")
    reduce = False if target == "tensorrt" else resolve_reduce_range(reduce_range, per_channel)
    symmetric_acts = target == "tensorrt"
    model = onnx.load(str(fp32_path))
    input_name = model.graph.input[0].name
    batches = list(calibration)
    if not batches:
        raise UnetblurError("INT8 calibration needs at least one image; pass --calib-data DIR with a train split")
    with tempfile.TemporaryDirectory(prefix="unetblur-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Symbolic shape inference cannot follow symbolic H/W through pooling and concat: skip it
        # (ONNX shape inference and ORT's graph optimisation still run).
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        extra = {"ActivationSymmetric": symmetric_acts, "WeightSymmetric": True}
        if method == "percentile":
            extra["CalibPercentile"] = 99.999
        quantize_static(str(pre), str(out_path), _ArrayReader(input_name, batches),
                        quant_format=formats[quant_format], per_channel=per_channel, reduce_range=reduce,
                        activation_type=QuantType.QInt8 if symmetric_acts else QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], use_external_data_format=False, extra_options=extra)
    return {"calib_method": method, "calib_images": int(sum(b.shape[0] for b in batches)),
            "per_channel": per_channel, "reduce_range": reduce, "quant_format": quant_format,
            "target": target, "weights": "int8 symmetric",
            "activations": "int8 symmetric" if symmetric_acts else "uint8 asymmetric"}


def convert_fp16(fp32_path: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """FP16 weights and arithmetic with float32 inputs/outputs kept (callers need no change).
    Uses the float16 converter ONNX Runtime ships (``onnxruntime.transformers.float16``).

    ``Resize`` stays in float32 (ORT's CPU backend has no float16 Resize), and the constants feeding
    its ``roi``/``scales`` inputs, which the converter turns into float16, are restored to float32
    (float16 there is an invalid graph). The converter appends its casts at the
    end of the node list, so nodes are re-sorted topologically (``onnx.checker`` and TensorRT's
    parser require it) and the result is checked."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(fp32_path))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                    op_block_list=[*DEFAULT_OP_BLOCK_LIST, "Resize"])
    _restore_float32_resize_constants(half.graph)
    _topological_sort(half.graph)
    del half.graph.value_info[:]  # stale intermediate types from before the conversion; re-inferred on load
    try:
        onnx.checker.check_model(half, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise UnetblurError(f"FP16 conversion produced an invalid graph ({str(exc).splitlines()[0][:200]}); "
                            "export without --fp16") from None
    onnx.save_model(half, str(out_path))
    return {"io": "float32", "compute": "float16", "kept_float32": "Resize"}


def _restore_float32_resize_constants(graph) -> None:
    """Resize's roi (input 1) and scales (input 2) must be float32 whatever the data type."""
    import onnx
    from onnx import numpy_helper

    wanted = {name for n in graph.node if n.op_type == "Resize" for name in list(n.input)[1:3] if name}
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in wanted:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == onnx.TensorProto.FLOAT16:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
    for init in graph.initializer:
        if init.name in wanted and init.data_type == onnx.TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))


def _topological_sort(graph) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn's algorithm)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise UnetblurError("FP16 conversion produced a graph with a cycle or a missing input; export FP32 instead")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for copy, n in zip(copies, ordered):
        copy.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
