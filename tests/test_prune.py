import json

import pytest
import torch
from torch import nn

from unetblur.cli import main
from unetblur.compress.prune import (PruneConfig, prune, prune_channels, pruned_module, rebuild, spec_widths,
                                     unet_slots)
from unetblur.errors import UnetblurError
from unetblur.models import PRESETS, UNet, UNetSpec, load_model, save_model

SMALL = UNetSpec.symmetric((8, 16, 32))
VARIANTS = {
    "transpose": SMALL,
    "mask_channel": SMALL.with_options(mask_channel=True),
    "nearest": SMALL.with_options(upsample="nearest"),
    "dsconv": SMALL.with_options(block="dsconv"),
    "stem_stride": SMALL.with_options(stem_stride=2),
    "space_to_depth": SMALL.with_options(stem_stride=4, stem="space_to_depth", mask_channel=True),
    "all_options": SMALL.with_options(block="dsconv", upsample="nearest", mask_channel=True, stem_stride=2),
    "uneven": UNetSpec(encoder=((6, 8), (12, 16)), bottleneck=(24, 20), up=(10, 6), decoder=((14, 12), (8, 6))),
}


def _randomised(spec: UNetSpec, seed: int = 0) -> UNet:
    """A U-Net whose BN statistics are not the identity, so a wrong channel mapping changes the output."""
    torch.manual_seed(seed)
    model = UNet(spec)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _input(spec: UNetSpec, n: int = 2) -> torch.Tensor:
    side = 2 * spec.stride
    return torch.rand(n, spec.in_channels, side, side, generator=torch.Generator().manual_seed(1))


def _kill_channels(model: UNet, drop: dict) -> None:
    """Make the listed channels output exactly zero (so removing them must not change anything)."""
    with torch.no_grad():
        for name, conv in unet_slots(model):
            idx = drop.get(name)
            if not idx:
                continue
            if name.startswith("up"):
                if isinstance(conv, nn.ConvTranspose2d):
                    conv.weight[:, idx] = 0
                else:
                    conv.weight[idx] = 0
                conv.bias[idx] = 0
            else:
                blocks = {"encoder": model.enc, "decoder": model.dec}
                part, which = name.split(".")
                block = model.mid if part == "bottleneck" else blocks[part.rstrip("0123456789")][int(part[-1])]
                bn = [m for m in block if isinstance(m, nn.BatchNorm2d)]["ab".index(which)]
                bn.weight[idx] = 0
                bn.bias[idx] = 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_removing_dead_channels_leaves_the_output_unchanged(variant):
    model = _randomised(VARIANTS[variant])
    drop = {name: list(range(0, conv.out_channels, 2)) for name, conv in unet_slots(model)}
    _kill_channels(model, drop)
    x = _input(model.spec)
    with torch.no_grad():
        expected = model(x)
        got = prune_channels(model, drop)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_rebuilt_unet_gives_the_pruned_modules_output(variant):
    model = _randomised(VARIANTS[variant])
    drop = {name: [0, conv.out_channels - 1] for name, conv in unet_slots(model)}
    work = pruned_module(model, drop)
    fresh = rebuild(work).eval()
    assert type(fresh) is UNet
    assert spec_widths(fresh.spec) == [conv.out_channels - 2 for _, conv in unet_slots(model)]
    x = _input(model.spec)
    with torch.no_grad():
        assert torch.equal(fresh(x), work(x))


@pytest.mark.parametrize("variant", ["transpose", "all_options"])
def test_a_pruned_model_round_trips_through_a_weights_only_model_file(variant, tmp_path):
    pruned, _ = prune(_randomised(VARIANTS[variant]), PruneConfig(ratio=0.5, min_width=1, size=64))
    save_model(pruned, tmp_path / "p.pt")
    loaded, _ = load_model(tmp_path / "p.pt")  # load_model reads with weights_only=True
    x = _input(pruned.spec)
    assert loaded.spec == pruned.spec
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


def test_pruning_the_teacher_at_half_ratio_cuts_parameters_by_at_least_40_percent_and_keeps_output_shape():
    teacher = _randomised(PRESETS["teacher"])
    pruned, report = prune(teacher, PruneConfig(ratio=0.5))
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(pruned) <= 0.6 * params(teacher)
    assert report["after"]["parameters"] == params(pruned)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert pruned(x).shape == teacher(x).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("preset", ["student_v1", "student_v2"])
def test_student_presets_prune_and_keep_their_output_channels(preset):
    model = _randomised(PRESETS[preset].with_options(mask_channel=True))
    pruned, report = prune(model, PruneConfig(ratio=0.4, importance="l1"))
    assert pruned.head.out_channels == 4
    assert report["after"]["parameters"] < report["before"]["parameters"]


def test_rounding_never_drops_the_full_resolution_level_below_its_rounded_width():
    # Torch-Pruning's own round_to takes 16 channels to 8 at ratio 0.3; we round up instead.
    pruned, report = prune(_randomised(PRESETS["student_v1"]), PruneConfig(ratio=0.3, round_to=8))
    assert pruned.spec.encoder[0] == (16, 16)
    assert all(w["after"] % 8 == 0 or w["after"] == w["before"] for w in report["widths"])


def test_no_conv_keeps_fewer_than_min_width_channels():
    pruned, _ = prune(_randomised(SMALL), PruneConfig(ratio=0.85, min_width=6, max_ratio=0.95, size=64))
    assert min(spec_widths(pruned.spec)) == 6


@pytest.mark.parametrize("budget", ["budget_params", "budget_macs"])
def test_a_budget_is_met_by_the_largest_network_that_fits(budget):
    model = _randomised(SMALL)
    key = "parameters" if budget == "budget_params" else "macs"
    full = prune(model, PruneConfig(ratio=0.0, size=64))[1]["before"][key]
    _, report = prune(model, PruneConfig(**{budget: full // 2}, min_width=1, size=64))
    assert report["after"][key] <= full // 2
    assert report["after"][key] > full // 4  # not pruned far past the budget


def test_an_unreachable_budget_says_what_the_smallest_network_is():
    with pytest.raises(UnetblurError, match="out of reach: the smallest network"):
        prune(_randomised(SMALL), PruneConfig(budget_params=100, size=64))


def test_global_scope_prunes_convs_by_different_amounts():
    _, report = prune(_randomised(VARIANTS["uneven"]), PruneConfig(ratio=0.5, scope="global", min_width=1, size=64))
    kept = {round(w["after"] / w["before"], 2) for w in report["widths"]}
    assert len(kept) > 1


def test_taylor_importance_works_without_data():
    pruned, report = prune(_randomised(SMALL), PruneConfig(ratio=0.5, importance="taylor", taylor_images=2,
                                                            min_width=1, size=64))
    assert report["taylor_data"] == "synthetic"
    assert report["after"]["parameters"] < report["before"]["parameters"]


def test_taylor_importance_reads_gradients_from_a_dataset(tiny_dataset):
    model = _randomised(UNetSpec.symmetric((8, 16, 32)))
    _, with_data = prune(model, PruneConfig(ratio=0.5, importance="taylor", data=str(tiny_dataset), taylor_images=3,
                                            min_width=1, size=32))
    assert with_data["taylor_data"] == str(tiny_dataset)


def test_importance_criteria_choose_different_channels():
    model = _randomised(SMALL)
    a, _ = prune(model, PruneConfig(ratio=0.5, importance="l1", min_width=1, size=64))
    b, _ = prune(model, PruneConfig(ratio=0.5, importance="taylor", taylor_images=2, min_width=1, size=64))
    assert a.spec == b.spec
    assert not torch.equal(a.enc[0][0].weight, b.enc[0][0].weight)


def test_pruning_leaves_the_input_model_untouched():
    model = _randomised(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune(model, PruneConfig(ratio=0.5, size=64))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_two_targets_at_once_are_refused():
    with pytest.raises(UnetblurError, match="exactly one pruning target"):
        prune(_randomised(SMALL), PruneConfig(ratio=0.5, budget_params=1000))


def test_the_prune_command_writes_the_model_and_a_report_of_every_width(tmp_path):
    save_model(_randomised(SMALL), tmp_path / "t.pt")
    out = tmp_path / "s.pt"
    assert main(["prune", str(tmp_path / "t.pt"), "--ratio", "0.5", "--min-width", "2", "--size", "64",
                 "-o", str(out)]) == 0
    model, meta = load_model(out)
    report = json.loads(out.with_suffix(".json").read_text())
    assert [w["after"] for w in report["widths"]] == spec_widths(model.spec)
    assert meta["pruning"]["after"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert "encoder0.a" in out.with_suffix(".md").read_text()


def test_the_prune_command_refuses_to_overwrite_an_existing_output(tmp_path, capsys):
    save_model(_randomised(SMALL), tmp_path / "t.pt")
    (tmp_path / "s.pt").write_bytes(b"keep me")
    assert main(["prune", str(tmp_path / "t.pt"), "--ratio", "0.5", "-o", str(tmp_path / "s.pt")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "s.pt").read_bytes() == b"keep me"
