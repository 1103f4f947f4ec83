"""Structured channel pruning of a ``UNet``, with Torch-Pruning behind a narrow wrapper.

What Torch-Pruning does here: its dependency graph finds every layer coupled to a conv's output
channels (batch norm, the next conv, the skip concatenation into the decoder, the transposed conv,
depthwise convs) and removes the same channels from all of them; its importance estimators score
the channels. What it does *not* do here: choose how many channels each layer keeps. We choose
that ourselves, per "slot" of the :class:`UNetSpec` (one conv width), because the library's own
schedule has three pitfalls on this U-Net (see issue #4): the output head's RGB channels get
pruned unless ignored, ``round_to`` rounds the kept channels *down* (16 → 8 at the full-resolution
level at ratio 0.3), and a global parameter-based ranking strips the cheap deep layers while the
expensive high-resolution ones stay. Here the head is never a pruning target, rounding goes *up*
(never removes more than asked), every conv keeps at least ``min_width`` channels, and budgets
are met by searching the ratio against the exact cost of the resulting spec.

The result is rebuilt as an ordinary ``UNet`` from a spec read off the pruned convs and its
output is checked against the pruned module's before it is returned.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..errors import UnetblurError
from ..models.cost import count_macs, format_count
from ..models.unet import UNet, UNetSpec

IMPORTANCES = ("l1", "l2", "taylor")
SCOPES = ("local", "global")


@dataclass(frozen=True)
class PruneConfig:
    """``unetblur prune``: what to prune and how far.

    Exactly one target: ``ratio`` (fraction of channels removed: per conv with ``scope: local``,
    of all channels with ``scope: global``), ``budget_params`` (parameters) or ``budget_macs``
    (multiply-accumulates at ``size``×``size``). A budget picks the smallest ratio whose pruned
    network fits it.
    """

    model: str = ""                      # input model file (unetblur model.pt)
    out: str = ""                        # output model file; the report is written beside it (.json, .md)
    ratio: float | None = None
    budget_params: int | None = None
    budget_macs: int | None = None
    size: int = 128                      # input side in pixels at which MACs are counted and reported
    importance: Literal["l1", "l2", "taylor"] = "l2"  # weight magnitude (L1/L2) or Taylor (|w·∂L/∂w|, needs batches)
    scope: Literal["local", "global"] = "local"      # same ratio for every conv, or one ranking over all convs
    round_to: int = 1                    # keep a multiple of this many channels per conv (rounded up)
    min_width: int = 8                   # never keep fewer channels in a conv (or its original width if smaller)
    max_ratio: float = 0.9               # never remove more than this fraction of one conv's channels
    data: str | None = None              # dataset folder for taylor (train split); synthetic faces if None
    taylor_images: int = 16              # images whose gradients the taylor criterion sums
    seed: int = 0
    overwrite: bool = False              # replace an existing output file


# ---------------------------------------------------------------------------------------------- slots


def _producers(block: nn.Sequential) -> list[nn.Conv2d]:
    """The convs of a double-conv block whose outputs are the block's two widths (the conv before each BN)."""
    out, last_conv = [], None
    for m in block:
        if isinstance(m, nn.Conv2d):
            last_conv = m
        elif isinstance(m, nn.BatchNorm2d):
            out.append(last_conv)
    return out


def _up_conv(up: nn.Module) -> nn.Module:
    if isinstance(up, nn.ConvTranspose2d):
        return up
    return [m for m in up.modules() if isinstance(m, nn.Conv2d)][-1]


def unet_slots(model: UNet) -> list[tuple[str, nn.Module]]:
    """Every prunable width of ``model`` as ``(name, conv producing it)``, in spec order.

    Names: ``encoder0.a`` … (level 0 = full resolution), ``bottleneck.a``, ``up0`` … and ``decoder0.a`` …
    (0 = deepest). The head is not a slot: its output channels are the image.
    """
    slots = []
    for i, block in enumerate(model.enc):
        a, b = _producers(block)
        slots += [(f"encoder{i}.a", a), (f"encoder{i}.b", b)]
    a, b = _producers(model.mid)
    slots += [("bottleneck.a", a), ("bottleneck.b", b)]
    for i, up in enumerate(model.up):
        slots.append((f"up{i}", _up_conv(up)))
    for i, block in enumerate(model.dec):
        a, b = _producers(block)
        slots += [(f"decoder{i}.a", a), (f"decoder{i}.b", b)]
    return slots


def spec_widths(spec: UNetSpec) -> list[int]:
    """The spec's widths in :func:`unet_slots` order."""
    return ([w for pair in spec.encoder for w in pair] + list(spec.bottleneck) + list(spec.up)
            + [w for pair in spec.decoder for w in pair])


def spec_with_widths(spec: UNetSpec, widths: list[int]) -> UNetSpec:
    """``spec`` with its widths replaced (in :func:`unet_slots` order); options are kept."""
    n = spec.levels
    it = iter(int(w) for w in widths)
    enc = tuple((next(it), next(it)) for _ in range(n))
    mid = (next(it), next(it))
    up = tuple(next(it) for _ in range(n))
    dec = tuple((next(it), next(it)) for _ in range(n))
    return spec.with_options(encoder=enc, bottleneck=mid, up=up, decoder=dec)


def spec_from_module(model: UNet) -> UNetSpec:
    """The spec that describes ``model``'s actual conv shapes (after pruning they differ from ``model.spec``)."""
    return spec_with_widths(model.spec, [conv.out_channels for _, conv in unet_slots(model)])


def rebuild(model: UNet) -> UNet:
    """An ordinary ``UNet`` built from :func:`spec_from_module` with ``model``'s weights copied in."""
    fresh = UNet(spec_from_module(model))
    fresh.load_state_dict(model.state_dict())
    return fresh.train(model.training)


# ---------------------------------------------------------------------------------------------- cost


def spec_cost(spec: UNetSpec, size: int, *, macs: bool = True) -> dict:
    """Parameters and MACs (at ``size``×``size``; skipped when ``macs`` is False) of a spec, measured on a
    meta-device model (no memory, no arithmetic)."""
    with torch.device("meta"):
        model = UNet(spec)
    cost = {"parameters": sum(p.numel() for p in model.parameters())}
    if macs:
        cost["macs"] = count_macs(model, size, size)
    return cost


# ---------------------------------------------------------------------------------------------- importance


def _synthetic_batches(n: int, size: int, seed: int, mask_channel: bool):
    """Data-free Taylor batches: smooth random scenes with random face boxes, blurred by THE blur definition."""
    import cv2

    from ..blur import blur_faces
    from ..data.dataset import to_tensor
    from ..faces import Face

    rng = np.random.default_rng(seed)
    for _ in range(n):
        low = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
        image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        faces = []
        for _ in range(int(rng.integers(1, 4))):
            fw = int(rng.integers(size // 8, size // 3))
            x1, y1 = (int(v) for v in rng.integers(0, size - fw, 2))
            faces.append(Face(x1, y1, x1 + fw, min(size, y1 + int(fw * 1.25))))
        target, mask = blur_faces(image, faces)
        yield (to_tensor(image)[None], to_tensor(target)[None],
               torch.from_numpy((mask > 127).astype(np.float32))[None, None])


def _dataset_batches(root: str, n: int, stride: int):
    from ..data.dataset import PairedDataset
    from ..data.layout import require_dataset
    from ..models.unet import pad_to_stride

    require_dataset(root, "train")
    data = PairedDataset(root, "train", limit=n)
    if len(data) == 0:
        raise UnetblurError(f"{root}: the train split has no images for the taylor criterion")
    for item in data:
        image, _ = pad_to_stride(item["image"][None], stride)
        target, _ = pad_to_stride(item["target"][None], stride)
        mask, _ = pad_to_stride(item["mask"][None], stride)
        yield image, target, mask


def _accumulate_gradients(model: UNet, cfg: PruneConfig) -> None:
    """Sum ∂L/∂w over a few images into ``.grad`` (what Taylor importance reads). BN stays in eval mode so
    its running statistics are not disturbed by these batches."""
    import torch.nn.functional as F

    model.eval()
    model.zero_grad(set_to_none=True)
    if cfg.data:
        batches = _dataset_batches(cfg.data, cfg.taylor_images, model.spec.stride)
    else:
        size = max(model.spec.stride, -(-cfg.size // model.spec.stride) * model.spec.stride)
        batches = _synthetic_batches(cfg.taylor_images, size, cfg.seed, model.spec.mask_channel)
    device = next(model.parameters()).device
    for image, target, mask in batches:
        out = model(image.to(device))
        loss = F.mse_loss(out[:, :3], target.to(device))
        if model.spec.mask_channel:
            loss = loss + F.binary_cross_entropy(out[:, 3:4].clamp(1e-6, 1 - 1e-6), mask.to(device))
        loss.backward()


def _importance_fn(name: str):
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1, normalizer="mean")
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2, normalizer="mean")
    if name == "taylor":
        return tp.importance.GroupTaylorImportance(normalizer="mean")
    raise UnetblurError(f"unknown importance {name!r}; choose one of {', '.join(IMPORTANCES)}")


def dependency_graph(work: UNet):
    """Torch-Pruning's dependency graph of ``work`` (traced through autograd, even under no_grad)."""
    import torch_pruning as tp

    example = torch.rand(1, work.spec.in_channels, 2 * work.spec.stride, 2 * work.spec.stride)
    with torch.enable_grad():
        return tp.DependencyGraph().build_dependency(work, example_inputs=example)


def slot_scores(work: UNet, graph, importance_name: str) -> list[torch.Tensor]:
    """Every output channel's importance, per slot of :func:`unet_slots` (higher = keep)."""
    import torch_pruning as tp

    importance = _importance_fn(importance_name)
    scores = []
    for name, conv in unet_slots(work):
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(range(conv.out_channels)))
        score = importance(group)
        if score is None:
            raise UnetblurError(f"importance {importance_name!r} gave no score for {name} "
                                "(taylor needs gradients: check the batches)")
        scores.append(torch.nan_to_num(score.detach().float().cpu(), nan=0.0))
    return scores


def least_important(slots: list[tuple[str, nn.Module]], scores: list[torch.Tensor],
                    widths: list[int]) -> dict[str, list[int]]:
    """The channels to drop so that each slot keeps its ``widths`` most important ones (as
    :func:`prune_channels` takes them); slots already that narrow are left out."""
    return {name: sorted(torch.argsort(score)[: conv.out_channels - keep].tolist())
            for (name, conv), score, keep in zip(slots, scores, widths) if keep < conv.out_channels}


# ---------------------------------------------------------------------------------------------- widths


def _keep_count(want: float, n: int, cfg: PruneConfig) -> int:
    """Channels a conv of ``n`` keeps when ``want`` are asked for: at least ``min_width`` (or n), at least
    ``(1 − max_ratio)·n``, rounded *up* to ``round_to``, at most n."""
    k = max(int(round(want)), min(cfg.min_width, n), math.ceil(n * (1 - cfg.max_ratio)), 1)
    if cfg.round_to > 1:
        k = -(-k // cfg.round_to) * cfg.round_to
    return min(k, n)


def _widths_for(ratio: float, scores: list[torch.Tensor], cfg: PruneConfig) -> list[int]:
    if ratio <= 0:
        return [len(s) for s in scores]
    if cfg.scope == "local":
        return [_keep_count(len(s) * (1 - ratio), len(s), cfg) for s in scores]
    allscores = torch.cat(scores)
    n_remove = int(round(ratio * len(allscores)))
    if n_remove <= 0:
        return [len(s) for s in scores]
    threshold = torch.kthvalue(allscores, n_remove).values
    return [_keep_count(int((s > threshold).sum()), len(s), cfg) for s in scores]


def _check_config(cfg: PruneConfig) -> None:
    targets = [name for name in ("ratio", "budget_params", "budget_macs") if getattr(cfg, name) is not None]
    if len(targets) != 1:
        raise UnetblurError("give exactly one pruning target: --ratio R, --budget-params N or --budget-macs N"
                            + (f" (got {', '.join(targets)})" if targets else ""))
    if cfg.ratio is not None and not 0 <= cfg.ratio < 1:
        raise UnetblurError(f"ratio is the fraction of channels removed, in [0, 1); got {cfg.ratio}")
    for name in ("budget_params", "budget_macs"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UnetblurError(f"{name} must be a positive count, got {value}")
    if cfg.importance not in IMPORTANCES:
        raise UnetblurError(f"unknown importance {cfg.importance!r}; choose one of {', '.join(IMPORTANCES)}")
    if cfg.scope not in SCOPES:
        raise UnetblurError(f"unknown scope {cfg.scope!r}; choose local or global")
    if cfg.round_to < 1 or cfg.min_width < 1:
        raise UnetblurError(f"round_to and min_width must be ≥ 1, got {cfg.round_to} and {cfg.min_width}")
    if not 0 < cfg.max_ratio < 1:
        raise UnetblurError(f"max_ratio must be in (0, 1), got {cfg.max_ratio}")
    if cfg.size < 1:
        raise UnetblurError(f"size must be a positive number of pixels, got {cfg.size}")
    if cfg.importance == "taylor" and cfg.taylor_images < 1:
        raise UnetblurError(f"taylor_images must be ≥ 1, got {cfg.taylor_images}")


def _search_ratio(spec: UNetSpec, scores: list[torch.Tensor], cfg: PruneConfig, size: int) -> tuple[float, list[int]]:
    """The smallest ratio whose widths fit the budget (bisection; cost only falls as the ratio grows)."""
    key, budget = ("parameters", cfg.budget_params) if cfg.budget_params is not None else ("macs", cfg.budget_macs)
    cost = lambda r: spec_cost(spec_with_widths(spec, _widths_for(r, scores, cfg)), size,  # noqa: E731
                               macs=key == "macs")[key]
    if cost(0.0) <= budget:
        return 0.0, _widths_for(0.0, scores, cfg)
    hi = cfg.max_ratio if cfg.scope == "local" else 1.0 - 1e-9
    smallest = cost(hi)
    if smallest > budget:
        unit = "parameters" if key == "parameters" else f"MACs at {size}x{size}"
        raise UnetblurError(f"budget of {budget:,} {unit} is out of reach: the smallest network these limits allow "
                            f"has {smallest:,} (min_width {cfg.min_width}, round_to {cfg.round_to}, max_ratio "
                            f"{cfg.max_ratio}); lower min_width or round_to, or raise the budget")
    lo = 0.0
    for _ in range(20):
        mid = (lo + hi) / 2
        if cost(mid) <= budget:
            hi = mid
        else:
            lo = mid
    return hi, _widths_for(hi, scores, cfg)


# ---------------------------------------------------------------------------------------------- prune


def pruned_module(model: UNet, drop: dict[str, list[int]]) -> UNet:
    """A copy of ``model`` with output channels ``drop[slot]`` removed from the named slots (see
    :func:`unet_slots`) and from every layer coupled to them, by Torch-Pruning's dependency graph.

    The copy's ``spec`` still names the old widths: use :func:`rebuild` (or :func:`prune_channels`).
    """
    import torch_pruning as tp

    work = copy.deepcopy(model).cpu().float().eval()
    unknown = set(drop) - {name for name, _ in unet_slots(work)}
    if unknown:
        raise UnetblurError(f"no such layer(s) to prune: {', '.join(sorted(unknown))}")
    head_channels = work.head.out_channels
    graph = dependency_graph(work)
    with torch.no_grad():
        for name, conv in unet_slots(work):
            idxs = sorted(set(int(i) for i in drop.get(name, ())))
            if not idxs:
                continue
            if len(idxs) >= conv.out_channels or idxs[0] < 0 or idxs[-1] >= conv.out_channels:
                raise UnetblurError(f"cannot remove channels {idxs} from {name} ({conv.out_channels} channels)")
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs).prune()
    if work.head.out_channels != head_channels:  # the head is the image: pruning it would be a silent bug
        raise RuntimeError("internal error: pruning changed the output head's channels")
    return work


def prune_channels(model: UNet, drop: dict[str, list[int]]) -> UNet:
    """:func:`pruned_module` rebuilt as an ordinary ``UNet`` (eval mode, CPU), checked to give the same output."""
    work = pruned_module(model, drop)
    rebuilt = rebuild(work).eval()
    spec = rebuilt.spec
    with torch.no_grad():
        x = torch.rand(2, spec.in_channels, 2 * spec.stride, 2 * spec.stride, generator=torch.Generator().manual_seed(0))
        if not torch.allclose(rebuilt(x), work(x), atol=1e-5):
            raise RuntimeError("internal error: the rebuilt U-Net does not reproduce the pruned module's output")
    return rebuilt


def prune(model: nn.Module, cfg: PruneConfig) -> tuple[UNet, dict]:
    """Prune a copy of ``model`` (a ``UNet``; it is not modified) as ``cfg`` says.

    Returns ``(pruned, report)``: ``pruned`` is a fresh ``UNet`` built from its own spec, in eval mode on
    the CPU; ``report`` holds parameters and MACs (at ``cfg.size``²) before and after and every width
    before → after (see :func:`report_markdown`).
    """
    import torch_pruning as tp

    _check_config(cfg)
    if not isinstance(model, UNet):
        raise UnetblurError(f"pruning works on unetblur U-Nets; this model is a {type(model).__name__} "
                            "(smp models are not supported)")
    torch.manual_seed(cfg.seed)
    work = copy.deepcopy(model).cpu().float().eval()
    spec = work.spec
    size = -(-cfg.size // spec.stride) * spec.stride
    if size != cfg.size:
        raise UnetblurError(f"size {cfg.size} is not a multiple of the model's stride {spec.stride}; use {size}")

    graph = dependency_graph(work)
    slots = unet_slots(work)
    if cfg.importance == "taylor":
        with torch.enable_grad():
            _accumulate_gradients(work, cfg)
    scores = slot_scores(work, graph, cfg.importance)
    work.zero_grad(set_to_none=True)

    if cfg.ratio is not None:
        ratio, widths = cfg.ratio, _widths_for(cfg.ratio, scores, cfg)
    else:
        ratio, widths = _search_ratio(spec, scores, cfg, size)

    pruned = prune_channels(model, least_important(slots, scores, widths))

    before = spec_cost(spec, size)
    after = spec_cost(pruned.spec, size)
    report = {
        "importance": cfg.importance, "scope": cfg.scope,
        "target": {k: getattr(cfg, k) for k in ("ratio", "budget_params", "budget_macs") if getattr(cfg, k) is not None},
        "ratio_used": round(float(ratio), 6), "round_to": cfg.round_to, "min_width": cfg.min_width,
        "max_ratio": cfg.max_ratio, "size": size,
        "taylor_data": (cfg.data or "synthetic") if cfg.importance == "taylor" else None,
        "before": before, "after": after,
        "kept": {k: after[k] / before[k] for k in ("parameters", "macs")},
        "widths": [{"layer": name, "before": len(s), "after": w} for (name, _), s, w in zip(slots, scores, widths)],
        "spec_before": spec.to_dict(), "spec_after": pruned.spec.to_dict(),
        "describe_before": spec.describe(), "describe_after": pruned.spec.describe(),
        "torch_pruning_version": getattr(tp, "__version__", "unknown"),
    }
    return pruned, report


def report_markdown(report: dict) -> str:
    """The report as a short markdown page (cost table and every width before → after)."""
    b, a, s = report["before"], report["after"], report["size"]
    target = ", ".join(f"{k} {v}" for k, v in report["target"].items())
    lines = [
        "# Pruning report", "",
        f"Target: {target}; importance {report['importance']}, scope {report['scope']}, ratio used "
        f"{report['ratio_used']:.3f}, round_to {report['round_to']}, min_width {report['min_width']}.", "",
        f"Architecture: `{report['describe_before']}` → `{report['describe_after']}`", "",
        "| | before | after | kept |", "|---|---:|---:|---:|",
        f"| parameters | {b['parameters']:,} | {a['parameters']:,} | {report['kept']['parameters']:.1%} |",
        f"| MACs at {s}×{s} | {format_count(b['macs'])} | {format_count(a['macs'])} | {report['kept']['macs']:.1%} |",
        "", "| layer | before | after |", "|---|---:|---:|",
    ]
    lines += [f"| {w['layer']} | {w['before']} | {w['after']} |" for w in report["widths"]]
    return "\n".join(lines) + "\n"


def prune_file(cfg: PruneConfig) -> Path:
    """What ``unetblur prune`` calls: load ``cfg.model``, prune, save ``cfg.out`` and the report beside it
    (``<out>.json`` and ``<out>.md``). Returns the output path."""
    from ..fsutil import same_file, write_text_atomic
    from ..models import load_model, save_model

    if not cfg.model:
        raise UnetblurError("no model given; pass the model file to prune (e.g. runs/teacher/model.pt)")
    if not cfg.out:
        raise UnetblurError("no output given; pass -o OUT.pt")
    src, out = Path(cfg.model), Path(cfg.out)
    if out.suffix != ".pt":
        raise UnetblurError(f"output {out} should end in .pt (the report is written beside it as .json and .md)")
    if out.exists() and (same_file(src, out) if src.exists() else False):
        raise UnetblurError(f"output {out} is the input model; choose another -o (inputs are never overwritten)")
    if out.exists() and not cfg.overwrite:
        raise UnetblurError(f"output {out} already exists; choose another -o or pass --overwrite")
    model, meta = load_model(src)
    pruned, report = prune(model, cfg)
    report = {"source": str(src), **report}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(pruned, out, {"pruning": {k: v for k, v in report.items() if k not in ("spec_before", "spec_after")},
                             "parent": meta})
    write_text_atomic(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), report_markdown(report))
    print(f"pruned {src} → {out}: {report['describe_before']} → {report['describe_after']}; parameters "
          f"{report['before']['parameters']:,} → {report['after']['parameters']:,} "
          f"({report['kept']['parameters']:.1%}), MACs at {report['size']}² {format_count(report['before']['macs'])} → "
          f"{format_count(report['after']['macs'])} ({report['kept']['macs']:.1%}); report {out.with_suffix('.md')}")
    return out
