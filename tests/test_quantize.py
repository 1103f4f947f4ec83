"""INT8 (static QDQ) and FP16 variants: size, fidelity to FP32, metadata, quality report."""

from __future__ import annotations

import pytest

from unetblur.deploy.onnx_export import ExportConfig, export_model, random_calibrated_model
from unetblur.deploy.quantize import resolve_reduce_range
from unetblur.models import save_model
from unetblur.runtime.onnx import OnnxModel


@pytest.fixture(scope="module")
def student_export(tmp_path_factory):
    """Student-sized widths (weights dominate the file) exported FP32 + INT8 + FP16 at 32×32."""
    root = tmp_path_factory.mktemp("student")
    save_model(random_calibrated_model("student_v1"), root / "student.pt")
    report = export_model(ExportConfig(model=str(root / "student.pt"), out_dir=str(root / "out"), int8=True,
                                       fp16=True, calib_count=8, parity_count=4))
    return root / "out", report


def test_int8_file_is_at_least_three_times_smaller_than_fp32(student_export):
    out, _ = student_export
    assert (out / "student.onnx").stat().st_size >= 3 * (out / "student.int8.onnx").stat().st_size


def test_int8_output_stays_within_30_db_of_fp32_on_synthetic_images(student_export):
    _, report = student_export
    assert report["int8"]["vs_fp32"]["mean_psnr_db"] >= 30


def test_int8_file_records_its_precision_and_quantisation_settings(student_export):
    out, _ = student_export
    model = OnnxModel(out / "student.int8.onnx")
    assert model.precision == "int8"
    assert '"calib_method": "minmax"' in model.metadata["quantization"]


def test_fp16_file_keeps_float32_input_and_matches_fp32(student_export):
    out, report = student_export
    model = OnnxModel(out / "student.fp16.onnx")
    assert model.precision == "fp16" and model.input_dtype.__name__ == "float32"
    if report["fp16"]["vs_fp32"] is not None:  # ORT builds without FP16 CPU kernels cannot check it
        assert report["fp16"]["vs_fp32"]["mean_psnr_db"] >= 40


def test_reduce_range_is_forced_by_on_and_off_and_in_auto_follows_per_channel_weights():
    assert resolve_reduce_range("on", per_channel=False) is True
    assert resolve_reduce_range("off", per_channel=True) is False
    assert resolve_reduce_range("auto", per_channel=False) is False
    # The file runs wherever it is copied: auto takes 7 bits whatever CPU exports it.
    assert resolve_reduce_range("auto", per_channel=True) is True


def test_default_int8_export_records_7_bit_weights(student_export):
    out, _ = student_export
    assert '"reduce_range": true' in OnnxModel(out / "student.int8.onnx").metadata["quantization"]


@pytest.mark.parametrize("vnni, reduce_range, precision, target, warned", [
    (False, False, "int8", "cpu", "saturate"),    # 8-bit per-channel weights on AVX2: they saturate
    (False, True, "int8", "cpu", None),           # 7-bit weights: safe everywhere
    (True, False, "int8", "cpu", None),           # VNNI (or ARM): 8-bit weights are fine
    (False, False, "fp32", "cpu", None),
    (True, False, "int8", "tensorrt", "TensorRT"),  # int8 activations for TensorRT: meant for TensorRT, not CPU kernels
])
def test_int8_files_that_give_wrong_masks_on_this_cpu_are_flagged(
        monkeypatch, vnni, reduce_range, precision, target, warned):
    import json

    import unetblur.runtime.onnx as rt

    monkeypatch.setattr(rt, "cpu_has_vnni", lambda: vnni)
    meta = {rt.META_PRECISION: precision, rt.META_QUANTIZATION: json.dumps(
        {"per_channel": True, "reduce_range": reduce_range, "target": target})}
    problem = rt.int8_cpu_warning(meta, ["CPUExecutionProvider"])
    assert (problem is None) if warned is None else (warned in problem)
    assert rt.int8_cpu_warning(meta, ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None


def test_the_int8_warning_reaches_stderr_in_one_line_when_such_a_file_is_opened(student_export, monkeypatch,
                                                                                capsys):
    import unetblur.runtime.onnx as rt

    monkeypatch.setattr(rt, "cpu_has_vnni", lambda: False)
    path = student_export[0] / "student.int8.onnx"
    OnnxModel(path)
    assert capsys.readouterr().err == ""           # the default export: 7-bit weights, nothing to say
    monkeypatch.setattr(rt, "int8_cpu_warning", lambda metadata, providers: "gives wrong masks")
    OnnxModel(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["unetblur: warning: student.int8.onnx gives wrong masks"]


def test_int8_quality_report_on_the_validation_split(tiny_dataset, tmp_path):
    save_model(random_calibrated_model("tiny"), tmp_path / "tiny.pt")
    report = export_model(ExportConfig(model=str(tmp_path / "tiny.pt"), out_dir=str(tmp_path / "out"), int8=True,
                                       data=str(tiny_dataset), calib_count=4, parity_count=2, int8_min_psnr=0))
    quality = report["quality"]
    assert quality["images"] == 4
    assert set(quality["int8"]) >= {"psnr_vs_fp32_db", "psnr_vs_target_db", "mse_face", "coverage_recall"}
    assert "train split" in report["int8"]["calibration_source"]


def test_an_int8_floor_above_what_is_reached_fails_the_export(tmp_path):
    from unetblur.errors import UnetblurError

    save_model(random_calibrated_model("tiny"), tmp_path / "tiny.pt")
    with pytest.raises(UnetblurError, match="INT8 output is too far from FP32"):
        export_model(ExportConfig(model=str(tmp_path / "tiny.pt"), out_dir=str(tmp_path / "out"), int8=True,
                                  calib_count=2, parity_count=2, int8_min_psnr=500))
    assert list((tmp_path / "out").iterdir()) == []


def test_tensorrt_target_quantises_activations_symmetrically_with_zero_points_of_zero(tmp_path):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    save_model(random_calibrated_model("tiny"), tmp_path / "tiny.pt")
    report = export_model(ExportConfig(model=str(tmp_path / "tiny.pt"), out_dir=str(tmp_path / "out"), int8=True,
                                       int8_target="tensorrt", calib_count=2, parity_count=2))
    assert report["int8"]["activations"] == "int8 symmetric" and report["int8"]["reduce_range"] is False
    assert "simulated in float" in report["int8"]["checked_as"]
    graph = onnx.load(str(tmp_path / "out" / "tiny.int8.onnx")).graph
    zero_points = {n.input[2] for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    assert zero_points and all(inits[z].dtype == np.int8 and not inits[z].any() for z in zero_points)


def test_fp16_export_of_a_net_with_resize_layers_is_a_valid_checked_graph(tmp_path):
    from unetblur.models import PRESETS

    spec = PRESETS["tiny"].with_options(upsample="nearest", stem_stride=2, mask_channel=True)
    save_model(random_calibrated_model(spec), tmp_path / "resize.pt")
    report = export_model(ExportConfig(model=str(tmp_path / "resize.pt"), out_dir=str(tmp_path / "out"), fp16=True,
                                       parity_count=2))
    assert report["fp16"]["vs_fp32"]["mean_psnr_db"] >= 40


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_works_with_images_of_different_sizes(tmp_path, method):
    save_model(random_calibrated_model("tiny"), tmp_path / "tiny.pt")
    report = export_model(ExportConfig(model=str(tmp_path / "tiny.pt"), out_dir=str(tmp_path / "out"), int8=True,
                                       calib_method=method, calib_count=3, parity_count=2, int8_min_psnr=0))
    assert report["int8"]["calib_method"] == method and report["int8"]["calibration_size"] == 128


def test_tensorrt_target_of_a_student_sized_net_passes_the_30_db_floor_as_tensorrt_computes_it(tmp_path, capsys):
    save_model(random_calibrated_model("student_v1"), tmp_path / "student.pt")
    report = export_model(ExportConfig(model=str(tmp_path / "student.pt"), out_dir=str(tmp_path / "out"), int8=True,
                                       int8_target="tensorrt", calib_count=4, parity_count=2))
    assert report["int8"]["vs_fp32"]["mean_psnr_db"] >= 30
    assert "TensorRT" not in capsys.readouterr().err   # its own float-arithmetic check is not the CPU kernels
    OnnxModel(tmp_path / "out" / "student.int8.onnx")
    assert "exported for TensorRT" in capsys.readouterr().err


def test_the_packaged_student_has_weights_that_saturate_on_no_cpu(monkeypatch):
    # Its 8-bit predecessor, exported on a VNNI machine, gave wrong masks on AVX2 ones (25.7 dB vs FP32).
    import unetblur.runtime.onnx as rt
    from unetblur.anonymise import PACKAGED_MODEL

    monkeypatch.setattr(rt, "cpu_has_vnni", lambda: False)
    meta = rt.read_onnx_metadata(PACKAGED_MODEL)
    assert meta[rt.META_PRECISION] == "int8"
    assert rt.int8_cpu_warning(meta, ["CPUExecutionProvider"]) is None
