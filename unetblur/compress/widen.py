"""Warm-start a U-Net of another width from a trained one (the inverse of pruning, for growing a student).

:func:`widen` builds a ``UNet`` whose every width is at least the trained model's and that computes
exactly what the trained model computes: each trained channel is copied to its place (the leading
channels of its layer; in a decoder's concatenated input, the leading channels of each part), every
new channel starts from the fresh initialisation and feeds nothing (its weight in every layer that
reads it is zero), so training grows it from where the trained model stands instead of from scratch.
:func:`resize` first prunes the layers that get narrower (by weight magnitude, as ``unetblur prune``
does) and then widens the rest.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import UnetblurError
from ..models.unet import UNet, UNetSpec
from .prune import (_up_conv, dependency_graph, least_important, prune_channels, slot_scores, spec_widths,
                    unet_slots)

# Options that must match: widening changes widths only.
_SHAPE_OPTIONS = ("in_channels", "out_channels", "mask_channel", "stem_stride", "stem", "upsample", "block")


def _check_same_options(old: UNetSpec, new: UNetSpec) -> None:
    differ = [k for k in _SHAPE_OPTIONS if getattr(old, k) != getattr(new, k)]
    if old.levels != new.levels:
        differ.append("levels")
    if differ:
        raise UnetblurError(f"cannot resize between specs that differ in {', '.join(differ)}: only widths may change")


def _copy_layer(old: nn.Module, new: nn.Module, in_pos: torch.Tensor, out_pos: torch.Tensor) -> None:
    """Copy ``old``'s weights into ``new``: old output channel k goes to ``out_pos[k]``, old input j to
    ``in_pos[j]``; the copied outputs read nothing from ``new``'s other inputs (weight 0)."""
    if isinstance(old, nn.BatchNorm2d):
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name)[out_pos] = getattr(old, name)
        new.num_batches_tracked.copy_(old.num_batches_tracked)
        return
    w_old, w_new = old.weight, new.weight
    if isinstance(old, nn.ConvTranspose2d):  # weight is in × out × k × k
        w_new[:, out_pos] = 0
        w_new[in_pos[:, None], out_pos[None, :]] = w_old
    elif old.groups > 1:  # depthwise: output channel k reads input channel k only
        w_new[out_pos] = w_old
    else:
        w_new[out_pos] = 0
        w_new[out_pos[:, None], in_pos[None, :]] = w_old
    if old.bias is not None:
        new.bias[out_pos] = old.bias


def _copy_block(old: nn.Sequential, new: nn.Sequential, pos: torch.Tensor) -> torch.Tensor:
    """Copy a double-conv block; ``pos`` places its input channels, the return value its output channels."""
    for m_old, m_new in zip(old, new):
        if isinstance(m_old, nn.Conv2d):
            out_pos = pos if m_old.groups > 1 else torch.arange(m_old.out_channels)
            _copy_layer(m_old, m_new, pos, out_pos)
            pos = out_pos
        elif isinstance(m_old, nn.BatchNorm2d):
            _copy_layer(m_old, m_new, pos, pos)
    return pos


def widen(model: UNet, spec: UNetSpec, seed: int = 0) -> UNet:
    """A ``UNet(spec)`` (eval mode, CPU) that gives ``model``'s output; every width of ``spec`` must be ≥
    ``model``'s. New channels get the fresh initialisation drawn with ``seed``."""
    _check_same_options(model.spec, spec)
    old_widths, new_widths = spec_widths(model.spec), spec_widths(spec)
    narrower = [name for (name, _), a, b in zip(unet_slots(model), old_widths, new_widths) if b < a]
    if narrower:
        raise UnetblurError(f"widen cannot narrow {', '.join(narrower)}; use resize (it prunes those first)")
    old = copy.deepcopy(model).cpu().float().eval()
    torch.manual_seed(seed)
    new = UNet(spec).eval()
    with torch.no_grad():
        pos = torch.arange(old.spec.stem_channels)
        skips = []
        for b_old, b_new in zip(old.enc, new.enc):
            pos = _copy_block(b_old, b_new, pos)
            skips.append(pos)
        pos = _copy_block(old.mid, new.mid, pos)
        for up_old, up_new, d_old, d_new, skip in zip(old.up, new.up, old.dec, new.dec, reversed(skips)):
            c_old, c_new = _up_conv(up_old), _up_conv(up_new)
            up_pos = torch.arange(c_old.out_channels)
            _copy_layer(c_old, c_new, pos, up_pos)
            # The decoder reads cat([up, skip]): the skip part starts after all of the new up channels.
            pos = _copy_block(d_old, d_new, torch.cat([up_pos, c_new.out_channels + skip]))
        _copy_layer(old.head, new.head, pos, torch.arange(old.head.out_channels))
        x = torch.rand(2, spec.in_channels, 2 * spec.stride, 2 * spec.stride, generator=torch.Generator().manual_seed(0))
        if not torch.allclose(new(x), old(x), atol=1e-5):
            raise RuntimeError("internal error: the widened U-Net does not reproduce the model's output")
    return new


def resize(model: UNet, spec: UNetSpec, importance: str = "l2", seed: int = 0) -> UNet:
    """``model`` brought to ``spec``'s widths: the layers that get narrower keep their most important
    channels (``importance`` as in ``unetblur prune``), then :func:`widen` grows the others. Only the
    pruned channels change the output."""
    _check_same_options(model.spec, spec)
    work = copy.deepcopy(model).cpu().float().eval()
    scores = slot_scores(work, dependency_graph(work), importance)
    drop = least_important(unet_slots(work), scores, spec_widths(spec))
    if drop:
        work = prune_channels(work, drop)
    return widen(work, spec, seed)
