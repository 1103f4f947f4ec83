"""Models: the U-Net (``UNet`` + ``UNetSpec``), presets, the optional smp U-Net, checkpoints.

``build_model(name_or_spec)`` is the public factory.
"""

from __future__ import annotations

from torch import nn

from ..errors import UnetblurError
from .checkpoint import load_model, read_checkpoint, save_model
from .centerface_unet import CenterFaceUNet
from .unet import PRESETS, UNet, UNetSpec, count_parameters, pad_to_stride

#: Name (in ``build_model``) and checkpoint kind of :class:`.centerface_unet.CenterFaceUNet`.
CENTERFACE_UNET = CenterFaceUNet.kind

__all__ = ["build_model", "build_from_kind", "UNet", "UNetSpec", "PRESETS", "count_parameters", "pad_to_stride",
           "save_model", "load_model", "read_checkpoint", "model_stride",
           "output_stride", "has_mask_channel", "CENTERFACE_UNET"]


def build_model(name_or_spec: str | UNetSpec | dict, *, mask_channel: bool | None = None) -> nn.Module:
    """Build a fresh model.

    ``name_or_spec``: a preset name (``teacher``, ``student_v1``, ``student_v2``, ``tiny``), ``smp:<encoder>``
    (a segmentation-models-pytorch U-Net, e.g. ``smp:resnet18``, random init), ``centerface_unet`` (a mask
    U-Net on CenterFace's trained encoder, :mod:`.centerface_unet`), a :class:`UNetSpec` or its dict.
    ``mask_channel`` overrides the spec's extra mask output when given.
    """
    if name_or_spec == CENTERFACE_UNET:
        if mask_channel is False:
            raise UnetblurError(f"{CENTERFACE_UNET} always has a mask channel; drop mask_channel: false")
        return CenterFaceUNet().centerface_weights()
    if isinstance(name_or_spec, str) and name_or_spec.startswith("smp:"):
        from .smp import SmpUNet
        return SmpUNet(encoder_name=name_or_spec[4:], mask_channel=bool(mask_channel))
    if isinstance(name_or_spec, str):
        if name_or_spec not in PRESETS:
            raise UnetblurError(f"unknown model {name_or_spec!r}; choose a preset ({', '.join(PRESETS)}), "
                                f"{CENTERFACE_UNET} or smp:<encoder>")
        spec = PRESETS[name_or_spec]
    elif isinstance(name_or_spec, dict):
        spec = UNetSpec.from_dict(name_or_spec)
    else:
        spec = name_or_spec
    if mask_channel is not None:
        spec = spec.with_options(mask_channel=mask_channel)
    return UNet(spec)


def build_from_kind(kind: str, spec: dict) -> nn.Module:
    """Rebuild an architecture from a checkpoint's ``kind`` and ``spec``."""
    if kind == "unet":
        return UNet(UNetSpec.from_dict(spec))
    if kind == "smp":
        from .smp import SmpUNet
        return SmpUNet(**spec)
    if kind == CENTERFACE_UNET:
        return CenterFaceUNet(**spec)
    raise UnetblurError(f"unknown model kind {kind!r} in model file")


def output_stride(model: nn.Module) -> int:
    """How much smaller than its input the exported graph's output is: a U-Net with a strided stem
    or a CenterFace U-Net (``coarse_stride``) is exported without its final upsampling (the runtime
    upsamples what it uses); 1 otherwise."""
    if not hasattr(model, "upsample_output"):
        return 1
    return int(getattr(model, "coarse_stride", None) or getattr(getattr(model, "spec", None), "stem_stride", 1))


def has_mask_channel(model: nn.Module) -> bool:
    """Whether ``model`` outputs a face-mask channel after its RGB."""
    return bool(getattr(getattr(model, "spec", None), "mask_channel", getattr(model, "mask_channel", False)))


def model_stride(model: nn.Module) -> int:
    """Input sides must be multiples of this."""
    spec = getattr(model, "spec", None)
    return spec.stride if spec is not None and hasattr(spec, "stride") else int(getattr(model, "stride", 32))
