"""Deployment: ONNX export with metadata, INT8 (static QDQ) and FP16 variants, parity and quality
checks against torch, and the latency benchmark.

``export_model(ExportConfig)`` is what ``unetblur export`` calls; ``benchmark(BenchConfig)`` is what
``unetblur bench`` calls. The torch-free runtime that runs the files lives in ``unetblur.runtime.onnx``.
Importing this package is cheap; torch is imported only by the functions that need it.
"""

from .bench import BenchConfig, benchmark, format_table, profile_operators
from .onnx_export import ExportConfig, export_model, export_onnx, random_calibrated_model, set_metadata
from .parity import parity_check, quality_report
from .quantize import convert_fp16, quantize_int8

__all__ = ["ExportConfig", "export_model", "export_onnx", "random_calibrated_model", "set_metadata", "quantize_int8", "convert_fp16",
           "parity_check", "quality_report", "BenchConfig", "benchmark", "format_table", "profile_operators"]
