import pytest
import torch

from unetblur.compress.prune import spec_widths, spec_with_widths
from unetblur.compress.widen import resize, widen
from unetblur.errors import UnetblurError
from unetblur.models import UNet

from test_prune import VARIANTS, _input, _randomised


def _wider(spec, extra=(3, 0, 5, 2)):
    """``spec`` with some widths grown (cycling through ``extra``), so some slots change and some do not."""
    widths = spec_widths(spec)
    return spec_with_widths(spec, [w + extra[i % len(extra)] for i, w in enumerate(widths)])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_widen_keeps_the_output_and_the_new_spec(variant):
    spec = VARIANTS[variant]
    model = _randomised(spec)
    target = _wider(spec)
    grown = widen(model, target)
    assert isinstance(grown, UNet) and spec_widths(grown.spec) == spec_widths(target)
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in model.parameters())
    x = _input(spec)
    with torch.no_grad():
        assert torch.allclose(grown(x), model(x), atol=1e-5)


def test_new_channels_learn_after_a_step():
    """New channels feed nothing at first, but the weights that read them get a gradient, so they grow."""
    spec = VARIANTS["mask_channel"]
    grown = widen(_randomised(spec), _wider(spec)).train()
    grown(_input(spec)).mean().backward()
    first_new = spec.decoder[-1][1]  # the head reads the last decoder level: its channels past the old width are new
    assert torch.all(grown.head.weight[:, first_new:] == 0)
    assert grown.head.weight.grad[:, first_new:].abs().sum() > 0


def test_resize_narrows_by_importance_then_widens():
    spec = VARIANTS["uneven"]
    model = _randomised(spec)
    widths = spec_widths(spec)
    widths[4] -= 8   # bottleneck.a 24 -> 16 (two levels: four encoder widths come first): pruned
    widths[0] += 4   # encoder0.a 6 -> 10: widened
    target = spec_with_widths(spec, widths)
    resized = resize(model, target)
    assert spec_widths(resized.spec) == widths
    x = _input(spec)
    with torch.no_grad():
        assert resized(x).shape == model(x).shape


def test_widen_refuses_narrower_or_other_options():
    spec = VARIANTS["transpose"]
    model = _randomised(spec)
    widths = spec_widths(spec)
    widths[0] -= 1
    with pytest.raises(UnetblurError, match="cannot narrow encoder0.a"):
        widen(model, spec_with_widths(spec, widths))
    with pytest.raises(UnetblurError, match="differ in mask_channel"):
        widen(model, _wider(spec).with_options(mask_channel=True))
