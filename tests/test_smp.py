"""The segmentation-models-pytorch U-Net option: random init (no download), sigmoid output, save/load."""

import socket

import pytest
import torch

from unetblur.errors import UnetblurError
from unetblur.models import build_model, load_model, model_stride, save_model


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the smp model tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_smp_unet_builds_without_any_download_and_outputs_unit_range_rgb(no_network):
    model = build_model("smp:resnet18").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64) and out.min() >= 0 and out.max() <= 1


def test_smp_unet_mask_channel_adds_a_fourth_output():
    model = build_model("smp:resnet18", mask_channel=True).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_smp_unet_stride_is_32_and_bad_sides_say_how_to_pad():
    model = build_model("smp:resnet18").eval()
    assert model.stride == 32 and model_stride(model) == 32
    with pytest.raises(UnetblurError, match="not a multiple of the network stride 32; pad it to 64x64"):
        model(torch.rand(1, 3, 40, 50))


def test_unknown_smp_encoder_suggests_close_names():
    with pytest.raises(UnetblurError, match="unknown smp encoder 'resnet19'.*resnet1"):
        build_model("smp:resnet19")


def test_smp_unet_saves_and_loads_with_identical_outputs(tmp_path):
    model = build_model("smp:resnet18", mask_channel=True).eval()
    save_model(model, tmp_path / "m.pt", {"note": "x"})
    loaded, meta = load_model(tmp_path / "m.pt")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.kind == "smp" and loaded.spec_dict == model.spec_dict and meta["note"] == "x"
