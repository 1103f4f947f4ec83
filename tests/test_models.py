import pickle

import pytest
import torch

from unetblur.errors import BadInputError, UnetblurError
from unetblur.models import PRESETS, UNet, UNetSpec, build_model, count_parameters, load_model, pad_to_stride, save_model


@pytest.mark.parametrize("name, expected", [("teacher", 1.93e6), ("student_v1", 0.48e6), ("student_v2", 1.08e6)])
def test_thesis_presets_have_the_thesis_parameter_counts(name, expected):
    assert abs(count_parameters(build_model(name)) - expected) / expected < 0.01


def test_unet_is_fully_convolutional_and_keeps_the_input_size():
    model = build_model("tiny").eval()
    for h, w in [(32, 32), (64, 96), (8, 200)]:
        assert model(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


def test_output_is_in_unit_range_with_optional_mask_channel():
    out = build_model("tiny", mask_channel=True).eval()(torch.rand(1, 3, 16, 16))
    assert out.shape[1] == 4 and out.min() >= 0 and out.max() <= 1


def test_input_not_a_multiple_of_the_stride_says_how_to_pad():
    with pytest.raises(UnetblurError, match="not a multiple of the network stride 4; pad it to 32x36"):
        build_model("tiny")(torch.rand(1, 3, 33, 30))


def test_pad_to_stride_pads_and_reports_the_original_size():
    x, (h, w) = pad_to_stride(torch.rand(1, 3, 33, 30), 8)
    assert x.shape[-2:] == (40, 32) and (h, w) == (33, 30)


@pytest.mark.parametrize("options", [dict(upsample="nearest"), dict(block="dsconv"), dict(stem_stride=2),
                                     dict(stem_stride=4, stem="space_to_depth")])
def test_student_variants_build_and_run(options):
    model = UNet(PRESETS["tiny"].with_options(**options)).eval()
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("stem,sees_it", [("conv", False), ("space_to_depth", True)])
def test_only_a_space_to_depth_stem_sees_every_pixel(stem, sees_it):
    # A 3×3 stride-4 conv (padding 1) centred on rows/columns 0, 4, 8, ... reads 3 of every 4: a face
    # edge on row 2 is invisible to it. Space-to-depth hands every pixel to the first conv.
    torch.manual_seed(0)
    model = UNet(PRESETS["tiny"].with_options(stem_stride=4, stem=stem)).eval()
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[..., 2::4, :] = 0
    y[..., :, 2::4] = 0
    with torch.no_grad():
        changed = not torch.equal(model(x), model(y))
    assert changed == sees_it


def test_a_spec_saved_before_stems_had_a_kind_loads_with_the_strided_conv_stem():
    d = PRESETS["tiny"].with_options(stem_stride=2).to_dict()
    del d["stem"]
    assert UNetSpec.from_dict(d).stem == "conv"


def test_an_unknown_stem_is_refused():
    with pytest.raises(UnetblurError, match="stem must be"):
        PRESETS["tiny"].with_options(stem_stride=2, stem="pixel")


def test_saved_model_reloads_with_identical_output(tmp_path):
    model = build_model("tiny").eval()
    path = save_model(model, tmp_path / "m.pt", meta={"train_size": 32})
    again, meta = load_model(path)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model(x), again(x)) and meta["train_size"] == 32


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickle_with_a_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "unetblur-model", "x": Payload()}, path)
    with pytest.raises(BadInputError, match="refused to load"):
        load_model(path)


def test_a_checkpoint_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(BadInputError, match="not a unetblur model file"):
        load_model(path)
