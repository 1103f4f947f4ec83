"""Compute cost of a model: parameters and multiply-accumulates (MACs) at a given input size.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on a real forward pass and
halved (one MAC = two FLOPs). Only convolutions and matrix products count: batch norm, ReLU,
pooling, sigmoid and interpolation are a rounding error next to them and vanish once BN is folded
at export. ``FlopCounterMode`` counts a ``ConvTranspose2d`` correctly (H·W·Cin·Cout·k² for an
H×W input), where thop and Torch-Pruning's counter over-count it about 4×: use this module, not
those, for every MAC number the project reports.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UnetblurError


def _input_channels(model: nn.Module) -> int:
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "in_channels"):
        return int(spec.in_channels)
    return int(getattr(model, "in_channels", 3))


def _size_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a 1×C×``height``×``width`` input.

    The model is run once in eval mode without gradients (its training mode is restored after).
    Sides must be multiples of the model's stride.
    """
    from . import model_stride

    stride = model_stride(model)
    if height < 1 or width < 1 or height % stride or width % stride:
        raise UnetblurError(f"cannot count MACs at {width}x{height}: sides must be positive multiples of the "
                            f"model's stride {stride}")
    from torch.utils.flop_counter import FlopCounterMode

    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = torch.zeros(1, _input_channels(model), height, width, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def model_cost(model: nn.Module, size: int | tuple[int, int] = 128) -> dict:
    """Cost summary of ``model`` at input ``size`` (an int for square inputs, or ``(height, width)``).

    Returns ``{"parameters", "macs", "height", "width", "macs_per_pixel", "weights_mb"}``;
    ``weights_mb`` is the float32 weight size in MiB (parameters and buffers), i.e. before any quantisation.
    """
    height, width = _size_pair(size)
    macs = count_macs(model, height, width)
    parameters = sum(p.numel() for p in model.parameters())
    nbytes = sum(t.numel() * 4 for t in (*model.parameters(), *model.buffers()) if t.is_floating_point())
    return {
        "parameters": int(parameters),
        "macs": int(macs),
        "height": height,
        "width": width,
        "macs_per_pixel": macs / (height * width),
        "weights_mb": nbytes / 2 ** 20,
    }


def format_count(n: float) -> str:
    """``1234567`` → ``'1.23 M'`` (parameters, MACs) for reports."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)}"
