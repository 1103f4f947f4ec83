import pytest
import torch
from torch import nn

from unetblur.errors import UnetblurError
from unetblur.models import PRESETS, UNet
from unetblur.models.cost import count_macs, model_cost


class _Wrap(nn.Module):
    """A bare module with no spec: stride falls back to the module's ``stride`` attribute."""

    stride = 1

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def test_a_single_conv_costs_pixels_times_in_times_out_times_kernel():
    conv = _Wrap(nn.Conv2d(3, 8, 3, padding=1))
    assert count_macs(conv, 16, 20) == 16 * 20 * 3 * 8 * 9


def test_a_transposed_conv_is_counted_once_per_input_pixel_not_four_times():
    wrap = _Wrap(nn.ConvTranspose2d(8, 4, 2, stride=2))
    wrap.in_channels = 8  # the dummy input's channels
    assert count_macs(wrap, 16, 16) == 16 * 16 * 8 * 4 * 2 * 2


def test_unet_macs_match_the_sum_over_its_convolutions():
    model = UNet(PRESETS["tiny"])
    expected = 0
    hooks = []

    def add(module, inputs, output):
        nonlocal expected
        if isinstance(module, nn.ConvTranspose2d):
            h, w = inputs[0].shape[-2:]
        else:
            h, w = output.shape[-2:]
        k = module.weight.shape[-2] * module.weight.shape[-1]
        expected += h * w * module.in_channels * module.out_channels * k // module.groups

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(add))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert count_macs(model, 32, 32) == expected


def test_model_cost_reports_parameters_and_macs_and_keeps_training_mode():
    model = UNet(PRESETS["tiny"]).train()
    cost = model_cost(model, 32)
    assert cost["parameters"] == sum(p.numel() for p in model.parameters())
    assert cost["macs"] == count_macs(model, 32, 32) > 0
    assert model.training


def test_macs_scale_with_the_number_of_pixels():
    model = UNet(PRESETS["tiny"])
    assert count_macs(model, 64, 64) == 4 * count_macs(model, 32, 32)


def test_a_size_that_is_not_a_multiple_of_the_stride_is_refused():
    model = UNet(PRESETS["tiny"])
    with pytest.raises(UnetblurError, match=f"multiples of the model's stride {model.spec.stride}"):
        count_macs(model, model.spec.stride * 8 - 2, 32)
