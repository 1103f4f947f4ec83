"""The U-Net: a plain ``nn.Module`` built from an explicit spec that lists every conv width.

Because the spec names every width, a pruned network is still an ordinary ``UNet``: pruning
changes numbers in the spec, never the code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import UnetblurError

Pair = tuple[int, int]

#: Bounds on a spec, checked before anything is allocated: a hand-edited or tampered spec (one width
#: of 10^7) must be one error line, not gigabytes. Far above any U-Net this project trains (≤ 256).
MAX_WIDTH = 4096
MAX_LEVELS = 8
MAX_PARAMETERS = 200_000_000


@dataclass(frozen=True)
class UNetSpec:
    """Every conv width of a U-Net.

    encoder:    per level, top (full resolution) first: widths of its two 3×3 convs.
    bottleneck: widths of the two convs at the lowest resolution.
    up:         per upsampling step, deepest first: its output width.
    decoder:    per level, deepest first: widths of its two convs (input = up width + skip width).
    upsample:   "transpose" (2×2 transposed conv, the thesis) or "nearest" (nearest ×2 then 3×3
                conv; ONNX Runtime runs it fully in INT8, where ConvTranspose stays FP32).
    block:      "conv" (3×3 conv + BN + ReLU, the thesis) or "dsconv" (depthwise 3×3 + pointwise 1×1).
    stem_stride: 1, or s > 1 to run the net at 1/s resolution; its output is upsampled bilinearly
                (cheap full-resolution masks for compositing).
    stem:       how a stem_stride > 1 reduces the input: "conv" (the first 3×3 conv is strided; at s = 4
                its windows never read one row and one column in four) or "space_to_depth" (each s×s block
                becomes s²·3 channels, every pixel is seen, then an unstrided first conv).
    mask_channel: an extra output channel predicting the face mask.
    """

    encoder: tuple[Pair, ...]
    bottleneck: Pair
    up: tuple[int, ...]
    decoder: tuple[Pair, ...]
    in_channels: int = 3
    out_channels: int = 3
    mask_channel: bool = False
    upsample: str = "transpose"
    block: str = "conv"
    stem_stride: int = 1
    stem: str = "conv"

    def __post_init__(self):
        levels = len(self.encoder)
        if levels < 1 or len(self.up) != levels or len(self.decoder) != levels:
            raise UnetblurError(f"U-Net spec needs as many up steps and decoder levels as encoder levels "
                                f"(got {levels} encoder, {len(self.up)} up, {len(self.decoder)} decoder)")
        widths = [w for pair in (*self.encoder, self.bottleneck, *self.decoder) for w in pair] + list(self.up)
        if any((not isinstance(w, int)) or isinstance(w, bool) or w < 1 for w in widths):
            raise UnetblurError(f"U-Net widths must be positive integers, got {widths}")
        if levels > MAX_LEVELS or max(widths) > MAX_WIDTH:
            raise UnetblurError(f"U-Net spec too large: {levels} levels, widest conv {max(widths)} (limits: "
                                f"{MAX_LEVELS} levels, width {MAX_WIDTH}); the spec may be damaged")
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4:
                raise UnetblurError(f"U-Net {name} must be 1 to 4, got {value!r}")
        if self.approx_parameters() > MAX_PARAMETERS:
            raise UnetblurError(f"U-Net spec asks for about {self.approx_parameters():,} parameters, above the "
                                f"limit of {MAX_PARAMETERS:,}; the spec may be damaged")
        if self.upsample not in ("transpose", "nearest"):
            raise UnetblurError(f"upsample must be 'transpose' or 'nearest', got {self.upsample!r}")
        if self.block not in ("conv", "dsconv"):
            raise UnetblurError(f"block must be 'conv' or 'dsconv', got {self.block!r}")
        if self.stem_stride not in (1, 2, 4, 8):
            raise UnetblurError(f"stem_stride must be 1, 2, 4 or 8, got {self.stem_stride}")
        if self.stem not in ("conv", "space_to_depth"):
            raise UnetblurError(f"stem must be 'conv' or 'space_to_depth', got {self.stem!r}")

    def approx_parameters(self) -> int:
        """Upper estimate of the conv weights (3×3 full convs everywhere), computed from the spec alone."""
        total, cin = 0, self.stem_channels
        skips = []
        for a, b in self.encoder:
            total += 9 * (cin * a + a * b)
            cin = b
            skips.append(b)
        total += 9 * (cin * self.bottleneck[0] + self.bottleneck[0] * self.bottleneck[1])
        cin = self.bottleneck[1]
        for up, (a, b), skip in zip(self.up, self.decoder, reversed(skips)):
            total += 9 * cin * up + 9 * ((up + skip) * a + a * b)
            cin = b
        return total + cin * (self.out_channels + 1)

    @property
    def stem_channels(self) -> int:
        """Channels the first conv reads."""
        return self.in_channels * (self.stem_stride ** 2 if self.stem == "space_to_depth" else 1)

    @property
    def levels(self) -> int:
        return len(self.encoder)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return self.stem_stride * 2 ** self.levels

    @property
    def total_out_channels(self) -> int:
        return self.out_channels + int(self.mask_channel)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder"] = [list(p) for p in self.encoder]
        d["decoder"] = [list(p) for p in self.decoder]
        d["bottleneck"] = list(self.bottleneck)
        d["up"] = list(self.up)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetSpec":
        try:
            d = dict(d)
            d["encoder"] = tuple(tuple(int(w) for w in p) for p in d["encoder"])
            d["decoder"] = tuple(tuple(int(w) for w in p) for p in d["decoder"])
            d["bottleneck"] = tuple(int(w) for w in d["bottleneck"])
            d["up"] = tuple(int(w) for w in d["up"])
            return cls(**d)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnetblurError(f"not a valid U-Net spec ({exc})") from None

    @classmethod
    def symmetric(cls, widths: tuple[int, ...] | list[int], **kw) -> "UNetSpec":
        """The thesis's shape from encoder widths and bottleneck, e.g. (32, 64, 128, 256)."""
        *enc, mid = (int(w) for w in widths)
        return cls(encoder=tuple((w, w) for w in enc), bottleneck=(mid, mid), up=tuple(reversed(enc)),
                   decoder=tuple((w, w) for w in reversed(enc)), **kw)

    def with_options(self, **kw) -> "UNetSpec":
        return replace(self, **kw)

    def describe(self) -> str:
        enc = "-".join(str(a if a == b else f"{a}/{b}") for a, b in self.encoder)
        return f"{enc} / {self.bottleneck[0]}" + ("" if self.block == "conv" else f" {self.block}") + (
            "" if self.upsample == "transpose" else f" {self.upsample}-up") + (
            "" if self.stem_stride == 1 else f" stem/{self.stem_stride}" + (
                "" if self.stem == "conv" else " s2d")) + (" +mask" if self.mask_channel else "")


PRESETS: dict[str, UNetSpec] = {
    # The thesis's networks: encoder widths / bottleneck, decoder mirrored.
    "teacher": UNetSpec.symmetric((32, 64, 128, 256)),       # ≈ 1.93 M parameters
    "student_v1": UNetSpec.symmetric((16, 32, 64, 128)),     # ≈ 0.48 M
    "student_v2": UNetSpec.symmetric((24, 48, 96, 192)),     # ≈ 1.08 M
    # Tiny net for tests and smoke runs.
    "tiny": UNetSpec.symmetric((4, 8, 16)),
}


def _conv_bn_relu(cin: int, cout: int, block: str, stride: int = 1) -> list[nn.Module]:
    if block == "dsconv" and cin > 1:
        convs = [nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
                 nn.Conv2d(cin, cout, 1, bias=False)]
    else:
        convs = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)]
    return [*convs, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _double_conv(cin: int, widths: Pair, block: str, stride: int = 1) -> nn.Sequential:
    a, b = widths
    return nn.Sequential(*_conv_bn_relu(cin, a, block, stride), *_conv_bn_relu(a, b, block))


class UNet(nn.Module):
    """U-Net from a :class:`UNetSpec`. Input NCHW float32 RGB in [0, 1], sides multiples of
    ``spec.stride``; output N×C×H×W in [0, 1] (sigmoid): RGB, then the mask if ``mask_channel``.

    ``upsample_output = False`` (set on the copy that ``unetblur export`` writes) leaves the output at
    1/``stem_stride`` of the input: the runtime then upsamples only what it uses. In an INT8 graph the
    bilinear ×4 of four channels, quantised, took as long as the whole network before it.
    """

    def __init__(self, spec: UNetSpec):
        super().__init__()
        self.spec = spec
        self.upsample_output = True
        s2d = spec.stem == "space_to_depth" and spec.stem_stride > 1
        self.stem = nn.PixelUnshuffle(spec.stem_stride) if s2d else nn.Identity()
        self.enc = nn.ModuleList()
        cin = spec.stem_channels
        for i, widths in enumerate(spec.encoder):
            stride = spec.stem_stride if i == 0 and not s2d else 1
            self.enc.append(_double_conv(cin, widths, spec.block, stride=stride))
            cin = widths[1]
        self.pool = nn.MaxPool2d(2)
        self.mid = _double_conv(cin, spec.bottleneck, spec.block)
        cin = spec.bottleneck[1]
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        skips = [w[1] for w in reversed(spec.encoder)]
        for up_w, dec_w, skip_w in zip(spec.up, spec.decoder, skips):
            if spec.upsample == "transpose":
                self.up.append(nn.ConvTranspose2d(cin, up_w, 2, stride=2))
            else:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(cin, up_w, 3, padding=1)))
            self.dec.append(_double_conv(up_w + skip_w, dec_w, spec.block))
            cin = dec_w[1]
        self.head = nn.Conv2d(cin, spec.total_out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_stride(x, self.spec.stride)
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.mid(self.pool(x))
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        x = torch.sigmoid(self.head(x))
        if self.spec.stem_stride > 1 and self.upsample_output:
            x = F.interpolate(x, scale_factor=self.spec.stem_stride, mode="bilinear", align_corners=False)
        return x


def check_stride(x: torch.Tensor, stride: int) -> None:
    """Refuse inputs whose sides are not multiples of ``stride``, saying how to pad them.
    Skipped while tracing/exporting, where the sides are symbolic."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
        raise UnetblurError(f"input {w}x{h} is not a multiple of the network stride {stride}; pad it to {pw}x{ph} "
                            "(unetblur.models.pad_to_stride does this)")


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad an NCHW tensor at the bottom/right to multiples of ``stride``.
    Returns the padded tensor and the original ``(H, W)`` to crop back to."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
