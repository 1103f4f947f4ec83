"""A composite model's operating point: the settings it was calibrated to run at.

The mask threshold that holds background damage down, the working size it was trained for and the
extra scales are properties of a trained model, not of the user's command line: they travel inside the
model file (ONNX ``metadata_props`` key :data:`META_OPERATING_POINT`, or ``meta["operating_point"]`` of a
``.pt`` file) and ``unetblur blur`` / ``compare --mode composite`` use them for every setting the
user did not give. Without one, :data:`COMPOSITE_DEFAULTS` apply (the same for every verb).
Torch-free.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..errors import UnetblurError

#: ONNX metadata key holding the operating point as JSON.
META_OPERATING_POINT = "operating_point"
#: Composite settings of a model without an operating point. working_size 0 = native resolution.
COMPOSITE_DEFAULTS: dict[str, Any] = {"working_size": 1920, "threshold": 0.5, "scales": (1.0,), "dilate": 0,
                                      "grow": 1.0, "min_peak": 0.0,
                                      "small_area": 0, "small_peak": 0.0}


def parse_operating_point(value: Any, where: str = "operating point") -> dict[str, Any]:
    """A validated operating point (a subset of :data:`COMPOSITE_DEFAULTS`'s keys) from a dict or JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise UnetblurError(f"{where}: not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise UnetblurError(f"{where}: expected a mapping of {', '.join(COMPOSITE_DEFAULTS)}, got {type(value).__name__}")
    unknown = set(value) - set(COMPOSITE_DEFAULTS)
    if unknown:
        raise UnetblurError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(COMPOSITE_DEFAULTS)}")
    point = dict(value)
    if "scales" in point:
        point["scales"] = tuple(float(s) for s in point["scales"])
    return point


def model_operating_point(model: Any) -> dict[str, Any]:
    """The operating point a loaded model carries ({} when none): ONNX metadata or ``.pt`` meta."""
    metadata = getattr(model, "metadata", None) or {}
    if META_OPERATING_POINT in metadata:
        return parse_operating_point(metadata[META_OPERATING_POINT], f"{getattr(model, 'path', 'model')}: operating point")
    meta = getattr(model, "meta", None) or {}
    if meta.get("operating_point"):
        return parse_operating_point(meta["operating_point"], f"{getattr(model, 'path', 'model')}: operating point")
    return {}


def composite_options(model: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Composite settings for ``model``: the user's ``options`` (None = not given) ← the model's operating
    point ← :data:`COMPOSITE_DEFAULTS`. ``working_size`` 0 becomes None (native) for the blurrer."""
    merged = {**COMPOSITE_DEFAULTS, **model_operating_point(model),
              **{k: v for k, v in options.items() if v is not None}}
    merged["working_size"] = merged["working_size"] or None
    return merged


def parse_operating_point_flag(text: str) -> dict[str, Any]:
    """``"working_size=320,threshold=0.4,grow=1.3,scales=1/0.5"`` (the ``--operating-point`` flag) → a validated point."""
    point: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise UnetblurError(f"--operating-point {text!r}: expected KEY=VALUE pairs, e.g. working_size=320,threshold=0.4")
        try:
            # Each key's type is its default's, so a new setting needs no change here.
            point[key.strip()] = ([float(v) for v in value.split("/")] if key.strip() == "scales"
                                  else float(value) if isinstance(COMPOSITE_DEFAULTS.get(key.strip()), float)
                                  else int(value))
        except ValueError:
            raise UnetblurError(f"--operating-point: {item!r} is not a number") from None
    return parse_operating_point(point, "--operating-point")

