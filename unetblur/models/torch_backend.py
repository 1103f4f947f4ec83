"""A torch U-Net seen as an :class:`~unetblur.runtime.base.ImageModel`: arrays in, arrays out.

``TorchModel`` is what ``compare``/``blur`` use for a ``.pt`` file; it imports torch, so the
torch-free runtime only reaches it through a lazy import in ``unetblur.runtime.factory``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import count_parameters, has_mask_channel, load_model, model_stride, pad_to_stride


class TorchModel:
    """Wraps a U-Net (a model file or an ``nn.Module``) behind ``predict(image) -> (rgb, mask | None)``.

    ``image``: HWC uint8 RGB of any size; it is reflect-padded at the bottom/right to the model's
    stride and the output cropped back, so the network runs fully convolutionally at any resolution.
    """

    def __init__(self, path_or_module: str | os.PathLike | nn.Module, device: str = "cpu", name: str | None = None):
        if isinstance(path_or_module, nn.Module):
            self.module, self.meta, self.path = path_or_module, {}, None
        else:
            self.path = Path(path_or_module)
            self.module, self.meta = load_model(self.path)
        self.device = torch.device(device)
        self.module = self.module.to(self.device).eval()
        self.stride = model_stride(self.module)
        self.name = name or (self.path.stem if self.path else type(self.module).__name__)
        self.mask_channel = has_mask_channel(self.module)

    @property
    def parameters(self) -> int:
        return count_parameters(self.module)

    @torch.inference_mode()
    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW float32 [0, 1] → the network's NCHW output (RGB, then the mask channel if any), same H×W."""
        padded, (h, w) = pad_to_stride(x.to(self.device), self.stride)
        return self.module(padded)[..., :h, :w]

    def predict(self, image: np.ndarray, rgb: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """HWC uint8 RGB → (HWC uint8 RGB output, HW float32 mask in [0, 1] or None); ``rgb=False``
        leaves the RGB output out (None), for callers that need only the mask."""
        x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).unsqueeze(0).div_(255.0)
        y = self.predict_tensor(x)[0].float().cpu()
        from ..runtime.base import check_model_output

        check_model_output(y.numpy(), self.name, self.mask_channel)  # NaN / out of range: fail closed, never clip
        mask = y[3].clamp(0, 1).numpy().astype(np.float32) if self.mask_channel and y.shape[0] > 3 else None
        if not rgb:
            return None, mask
        image_out = (y[:3].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return np.ascontiguousarray(image_out), mask
