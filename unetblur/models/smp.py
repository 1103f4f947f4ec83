"""A segmentation-models-pytorch U-Net for users who want a stronger teacher than the thesis's.

Encoders start from random weights (``encoder_weights=None``): nothing is ever downloaded.
Like :class:`~unetblur.models.UNet` it takes NCHW float32 RGB in [0, 1] and returns a sigmoid
output (RGB, then the optional mask channel), so training, saving and export treat both alike.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UnetblurError
from .unet import check_stride


class SmpUNet(nn.Module):
    """``smp.Unet(encoder_name)`` with random init and a sigmoid head.

    ``encoder_depth`` down-sampling steps make the stride ``2 ** encoder_depth`` (32 by default);
    input sides must be multiples of it. ``spec_dict`` holds the keyword arguments that rebuild the
    architecture (what :func:`unetblur.models.save_model` stores).
    """

    kind = "smp"

    def __init__(self, encoder_name: str = "resnet18", mask_channel: bool = False, encoder_depth: int = 5,
                 decoder_channels: tuple[int, ...] | list[int] | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        if not isinstance(encoder_depth, int) or not 3 <= encoder_depth <= 5:
            raise UnetblurError(f"smp encoder_depth must be 3, 4 or 5, got {encoder_depth!r}")
        if decoder_channels is None:
            decoder_channels = (256, 128, 64, 32, 16)[5 - encoder_depth:]
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != encoder_depth:
            raise UnetblurError(f"smp decoder_channels needs {encoder_depth} widths (one per encoder_depth level), "
                                f"got {list(decoder_channels)}")
        known = smp.encoders.get_encoder_names()
        if encoder_name not in known:
            import difflib
            close = difflib.get_close_matches(encoder_name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; e.g. resnet18, resnet34, mobilenet_v2, efficientnet-b0"
            raise UnetblurError(f"unknown smp encoder {encoder_name!r}{hint}")
        self.mask_channel = bool(mask_channel)
        self.net = smp.Unet(encoder_name=encoder_name, encoder_weights=None, encoder_depth=encoder_depth,
                            decoder_channels=decoder_channels, in_channels=3, classes=3 + int(self.mask_channel),
                            activation=None)
        self.stride = 2 ** encoder_depth
        self.spec_dict = {"encoder_name": encoder_name, "mask_channel": self.mask_channel,
                          "encoder_depth": encoder_depth, "decoder_channels": list(decoder_channels)}

    def describe(self) -> str:
        return f"smp Unet {self.spec_dict['encoder_name']}" + (" +mask" if self.mask_channel else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_stride(x, self.stride)
        return torch.sigmoid(self.net(x))
