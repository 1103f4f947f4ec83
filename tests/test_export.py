"""``unetblur export``: FP32 ONNX with metadata, dynamic sizes, parity against torch, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unetblur.cli import main
from unetblur.deploy.onnx_export import (ExportConfig, export_model, onnx_space_to_depth_stem, random_calibrated_model,
                                         shuffle_upsampling)
from unetblur.errors import UnetblurError
from unetblur.models import save_model
from unetblur.runtime.onnx import OnnxModel


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(random_calibrated_model("tiny"), path, {"training_size": 32})
    return path


@pytest.fixture(scope="module")
def exported(tiny_model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    report = export_model(ExportConfig(model=str(tiny_model_file), out_dir=str(out), parity_count=2))
    return out, report


def test_export_writes_an_onnx_file_that_matches_torch(exported):
    out, report = exported
    assert (out / "tiny.onnx").is_file()
    assert report["parity_fp32"]["images"] == 2
    assert report["parity_fp32"]["max_abs_diff"] < 1e-4


def test_transposed_conv_upsampling_is_exported_as_an_equal_conv_and_pixel_shuffle(exported):
    import onnx
    import torch

    torch.manual_seed(0)
    model = random_calibrated_model("tiny")
    for up in model.up:  # random biases too, so a wrong channel order cannot hide behind zeros
        torch.nn.init.normal_(up.bias)
    x = torch.rand(2, 3, 32, 48)
    rewritten = shuffle_upsampling(model)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in rewritten.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())  # the original is untouched
    with torch.no_grad():
        assert torch.allclose(rewritten(x), model(x), atol=1e-5)
    ops = {node.op_type for node in onnx.load(str(exported[0] / "tiny.onnx")).graph.node}
    assert "DepthToSpace" in ops and "ConvTranspose" not in ops


@pytest.mark.parametrize("block", ["conv", "dsconv"])
def test_a_space_to_depth_student_exports_to_int8_with_parity(tmp_path, block):
    import onnx

    from unetblur.models import PRESETS

    spec = PRESETS["tiny"].with_options(stem_stride=4, stem="space_to_depth", mask_channel=True, block=block)
    save_model(random_calibrated_model(spec), tmp_path / "s2d.pt")
    report = export_model(ExportConfig(model=str(tmp_path / "s2d.pt"), out_dir=str(tmp_path / "out"), int8=True,
                                       calib_count=3, parity_count=2))
    assert report["parity_fp32"]["max_abs_diff"] < 1e-4
    assert report["int8"]["vs_fp32"]["min_psnr_db"] >= 30 and (tmp_path / "out" / "s2d.int8.onnx").is_file()
    ops = [node.op_type for node in onnx.load(str(tmp_path / "out" / "s2d.onnx")).graph.node]
    assert "SpaceToDepth" in ops and "Transpose" not in ops


@pytest.mark.parametrize("block", ["conv", "dsconv"])
def test_the_onnx_space_to_depth_stem_computes_the_same_function(block):
    import torch

    from unetblur.models import PRESETS

    torch.manual_seed(0)
    spec = PRESETS["tiny"].with_options(stem_stride=4, stem="space_to_depth", mask_channel=True, block=block)
    model = random_calibrated_model(spec).eval()
    # An image whose channels and block offsets all differ, so a wrong channel order changes the output.
    x = torch.rand(2, 3, 64, 96)
    rewritten = onnx_space_to_depth_stem(model)
    assert isinstance(model.stem, torch.nn.PixelUnshuffle)  # the original is untouched
    assert not isinstance(rewritten.stem, torch.nn.PixelUnshuffle)
    with torch.no_grad():
        assert torch.allclose(rewritten(x), model(x), atol=1e-5)
        # The rewritten stem is ONNX SpaceToDepth's order: offset-major, colour-minor.
        assert torch.equal(rewritten.stem(x)[:, :3], x[:, :, ::4, ::4])
    plain = random_calibrated_model("tiny")
    assert onnx_space_to_depth_stem(plain) is plain


def test_a_strided_stem_is_exported_without_its_final_upsampling_which_the_runtime_does(tmp_path):
    import onnxruntime as ort
    import torch

    from unetblur.models import PRESETS

    spec = PRESETS["tiny"].with_options(stem_stride=4, stem="space_to_depth", mask_channel=True)
    model = random_calibrated_model(spec)
    save_model(model, tmp_path / "s2d.pt")
    export_model(ExportConfig(model=str(tmp_path / "s2d.pt"), out_dir=str(tmp_path / "out"), parity_count=1))
    path = tmp_path / "out" / "s2d.onnx"
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    graph_out = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    assert graph_out.shape == (1, 4, 16, 24)  # a quarter of the input: no full-resolution work in the graph
    runtime = OnnxModel(path)
    assert runtime.output_stride == 4 and runtime.metadata["output_stride"] == "4"
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(runtime.run(x) - reference).max() < 1e-4  # the same bilinear ×4 as the network's own
    assert model.upsample_output  # the exported copy was changed, not the model
    # Sides that are not multiples of the stride: padded, upsampled, cropped back to the input's size.
    image = (np.random.default_rng(1).random((50, 70, 3)) * 255).astype(np.uint8)
    rgb, mask = runtime.predict(image)
    assert rgb.shape == (50, 70, 3) and mask.shape == (50, 70) and mask.flags.c_contiguous


def test_export_report_is_written_as_json_beside_the_model(exported):
    out, report = exported
    on_disk = json.loads((out / "tiny.export.json").read_text())
    assert on_disk["files"]["fp32"]["size_kb"] == report["files"]["fp32"]["size_kb"] > 0


def test_exported_file_embeds_its_weights_and_leaves_no_temporaries(exported):
    out, _ = exported
    assert sorted(p.name for p in out.iterdir()) == ["tiny.export.json", "tiny.onnx"]


def test_exported_file_carries_the_deployment_metadata(exported):
    out, _ = exported
    meta = OnnxModel(out / "tiny.onnx").metadata
    assert meta["input_layout"] == "NCHW" and meta["color_order"] == "RGB" and meta["value_range"] == "[0, 1]"
    assert meta["stride"] == "4" and meta["training_size"] == "32" and meta["precision"] == "fp32"
    assert meta["mask_channel"] == "false" and meta["unetblur_version"]
    assert json.loads(meta["spec"])["encoder"] == [[4, 4], [8, 8]]


def test_an_operating_point_given_at_export_is_what_blur_runs_the_file_at(tiny_model_file, tmp_path):
    from unetblur.runtime.operating_point import model_operating_point

    export_model(ExportConfig(model=str(tiny_model_file), out_dir=str(tmp_path), parity_count=1,
                              operating_point="working_size=320,threshold=0.35"))
    assert model_operating_point(OnnxModel(tmp_path / "tiny.onnx")) == {"working_size": 320, "threshold": 0.35}


def test_a_bad_operating_point_fails_before_anything_is_written(tiny_model_file, tmp_path):
    with pytest.raises(UnetblurError, match="unknown key"):
        export_model(ExportConfig(model=str(tiny_model_file), out_dir=str(tmp_path / "x"), operating_point="size=3"))
    assert not (tmp_path / "x").exists()


def test_one_exported_file_serves_two_image_sizes(exported):
    out, _ = exported
    model = OnnxModel(out / "tiny.onnx")
    small, _ = model.predict(np.zeros((32, 32, 3), np.uint8))
    odd, _ = model.predict(np.full((30, 70, 3), 128, np.uint8))
    assert small.shape == (32, 32, 3) and odd.shape == (30, 70, 3)


def test_export_checks_parity_on_the_validation_split_when_given_a_dataset(tiny_model_file, tiny_dataset, tmp_path):
    report = export_model(ExportConfig(model=str(tiny_model_file), out_dir=str(tmp_path), data=str(tiny_dataset),
                                       parity_count=2))
    assert "val split" in report["parity_images"]


def test_export_fails_and_writes_nothing_when_parity_is_beyond_tolerance(tiny_model_file, tmp_path, monkeypatch,
                                                                         capsys):
    import unetblur.deploy.parity as parity

    monkeypatch.setattr(parity, "parity_check", lambda *a, **k: {"images": 1, "max_abs_diff": 0.5,
                                                                 "min_psnr_db": 6.0, "mean_psnr_db": 6.0})
    code = main(["export", str(tiny_model_file), "-o", str(tmp_path / "out"), "--parity-count", "1"])
    assert code == 2
    assert "parity check failed" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_export_refuses_an_onnx_file_as_input(tmp_path):
    with pytest.raises(UnetblurError, match="already an ONNX file"):
        export_model(ExportConfig(model=str(tmp_path / "m.onnx"), out_dir=str(tmp_path)))


def test_export_command_prints_the_written_file(tiny_model_file, tmp_path, capsys):
    assert main(["export", str(tiny_model_file), "-o", str(tmp_path), "--parity-count", "1"]) == 0
    assert "tiny.onnx" in capsys.readouterr().out


def test_a_simplified_export_keeps_parity_and_metadata(tiny_model_file, tmp_path):
    report = export_model(ExportConfig(model=str(tiny_model_file), out_dir=str(tmp_path), simplify=True, parity_count=1))
    assert report["parity_fp32"]["max_abs_diff"] < 1e-4
    assert OnnxModel(tmp_path / "tiny.onnx").metadata["stride"] == "4"


def test_arch_speed_times_a_spec_as_an_int8_net_at_each_working_size(tmp_path, experiment_script, capsys):
    import yaml

    from unetblur.models import PRESETS

    spec_file = tmp_path / "tiny_s2d.yaml"
    spec_file.write_text(yaml.safe_dump(PRESETS["tiny"].with_options(stem_stride=4, stem="space_to_depth",
                                                                     mask_channel=True).to_dict()))
    arch_speed = experiment_script("full_photo/arch_speed.py")
    assert arch_speed.main([str(spec_file), "--sizes", "64,96", "--repeat", "1", "--threads", "1"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| tiny_s2d (4-8 / 16 stem/4 s2d +mask) |") and row.count(" ms") == 2


@pytest.mark.parametrize("value", ["3", "x"])
def test_an_output_stride_that_cannot_be_right_is_refused_at_load_in_one_line(tiny_model_file, tmp_path, value):
    import onnx

    from unetblur.deploy.onnx_export import set_metadata
    from unetblur.errors import BadInputError

    export_model(ExportConfig(model=str(tiny_model_file), out_dir=str(tmp_path), parity_count=1))
    proto = onnx.load(str(tmp_path / "tiny.onnx"))
    set_metadata(proto, {"output_stride": value})
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(BadInputError, match="output_stride") as err:
        OnnxModel(tmp_path / "bad.onnx")
    assert "\n" not in str(err.value)


def test_coarse_output_rewrites_an_export_made_before_output_stride_to_the_same_function(
        tmp_path, experiment_script, monkeypatch, capsys):
    import onnx
    import onnxruntime as ort

    import unetblur.models as models
    from unetblur.deploy.onnx_export import export_onnx, model_metadata
    from unetblur.models import PRESETS

    model = random_calibrated_model(PRESETS["tiny"].with_options(stem_stride=4, stem="space_to_depth",
                                                                 mask_channel=True))
    monkeypatch.setattr(models, "output_stride", lambda m: 1)  # export as before: upsampling in the graph
    metadata = model_metadata(model, {}, "fp32")
    export_onnx(model, tmp_path / "old.onnx", {k: v for k, v in metadata.items() if k != "output_stride"})
    monkeypatch.undo()
    coarse_output = experiment_script("full_photo/coarse_output.py")
    assert coarse_output.main([str(tmp_path / "old.onnx"), str(tmp_path / "new.onnx")]) == 0
    old, new = OnnxModel(tmp_path / "old.onnx"), OnnxModel(tmp_path / "new.onnx")
    assert (old.output_stride, new.output_stride) == (1, 4)
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    assert ort.InferenceSession(str(tmp_path / "new.onnx")).run(None, {"image": x})[0].shape == (1, 4, 16, 24)
    assert np.abs(old.run(x) - new.run(x)).max() < 1e-4
    assert "Resize" not in {n.op_type for n in onnx.load(str(tmp_path / "new.onnx")).graph.node}
    # Nothing to do twice, and never over its input.
    assert coarse_output.main([str(tmp_path / "new.onnx"), str(tmp_path / "again.onnx")]) == 2
    assert coarse_output.main([str(tmp_path / "old.onnx"), str(tmp_path / "old.onnx")]) == 2
    assert "already has output_stride" in capsys.readouterr().err and not (tmp_path / "again.onnx").exists()
