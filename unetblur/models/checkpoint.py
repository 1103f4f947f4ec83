"""Model files: architecture spec + state dict + metadata, loaded with ``weights_only=True``.

Format (a plain dict, no pickled classes)::

    {"format": "unetblur-model", "format_version": 1, "kind": "unet" | "smp",
     "spec": {...}, "state_dict": {...}, "meta": {...}}
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..errors import BadInputError, UnetblurError
from ..fsutil import atomic_path

FORMAT = "unetblur-model"
FORMAT_VERSION = 1


def model_kind_and_spec(model: nn.Module) -> tuple[str, dict]:
    from .unet import UNet

    if isinstance(model, UNet):
        return "unet", model.spec.to_dict()
    kind = getattr(model, "kind", None)
    spec = getattr(model, "spec_dict", None)
    if kind is None or spec is None:
        raise TypeError(f"cannot save {type(model).__name__}: it is not a unetblur model")
    return kind, dict(spec)


def save_model(model: nn.Module, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Save ``model`` atomically as spec + state dict; ``meta`` holds JSON-like extras (training size, metrics)."""
    kind, spec = model_kind_and_spec(model)
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "spec": spec,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": {"unetblur_version": __version__, **(meta or {})},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a model file's dict with ``weights_only=True`` (no code runs on load)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "model file not found")
    if path.stat().st_size == 0:
        raise BadInputError(path, "model file is empty (0 bytes)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise BadInputError(path, f"refused to load: not a plain weights file ({first[:160]})") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises IndexError, KeyError... on garbage
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BadInputError(path, f"not a readable PyTorch file ({detail})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BadInputError(path, "not a unetblur model file (no 'format: unetblur-model'); "
                                  "models are made by `unetblur train`, `distill` or `prune`")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadInputError(path, f"model file has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise BadInputError(path, f"model format {version} is newer than this unetblur "
                                  f"understands ({FORMAT_VERSION}); upgrade unetblur")
    for key in ("kind", "spec", "state_dict"):
        if key not in payload:
            raise BadInputError(path, f"model file is missing {key!r}")
    if not isinstance(payload["spec"], dict) or not isinstance(payload["state_dict"], dict):
        raise BadInputError(path, "model file is damaged: 'spec' and 'state_dict' must be mappings")
    if not all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise BadInputError(path, "model file is damaged: 'state_dict' holds values that are not tensors")
    return payload


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a saved model in eval mode. Returns ``(model, meta)``."""
    from . import build_from_kind

    payload = read_checkpoint(path)
    try:
        # Built on the meta device first (no memory): the architecture a file describes may never need
        # more weights than the file holds, so an edited spec cannot make us allocate gigabytes.
        with torch.device("meta"):
            skeleton = build_from_kind(payload["kind"], payload["spec"])
    except (UnetblurError, TypeError, ValueError, KeyError) as exc:
        raise BadInputError(path, f"model file holds an invalid architecture ({str(exc).splitlines()[0][:200]})") from None
    need = sum(t.numel() for t in skeleton.state_dict().values())
    have = sum(t.numel() for t in payload["state_dict"].values())
    if need != have:
        raise BadInputError(path, f"weights do not match the stored architecture (it needs {need:,} values, "
                                  f"the file holds {have:,}); the file is damaged or was edited")
    del skeleton
    try:
        model = build_from_kind(payload["kind"], payload["spec"])
    except (UnetblurError, TypeError, ValueError, KeyError) as exc:
        raise BadInputError(path, f"model file holds an invalid architecture ({str(exc).splitlines()[0][:200]})") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise BadInputError(path, f"weights do not match the stored architecture ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, dict(payload.get("meta") or {})
