"""Configuration: one frozen dataclass per command, YAML files hold deltas, flags override YAML.

Unknown keys fail with a did-you-mean; values are checked against the field types, so a typo in
an experiment file is an error, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import platform
import sys
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from .errors import UnetblurError
from .fsutil import write_text_atomic

C = TypeVar("C")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently convert: int → float, list → tuple) ``value`` against a field type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UnetblurError as exc:
                errors.append(str(exc))
        raise UnetblurError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise UnetblurError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise UnetblurError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise UnetblurError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        seq = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise UnetblurError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UnetblurError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnetblurError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UnetblurError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, Path):
        if not isinstance(value, (str, os.PathLike)) or isinstance(value, bool):
            raise UnetblurError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if tp is str:
        if not isinstance(value, str):
            raise UnetblurError(f"{where}: expected text, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise UnetblurError(f"{where}: expected a mapping for {_type_name(tp)}, got {value!r}")
        return from_dict(tp, value, where)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise UnetblurError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types.

    Older spellings of a field (``blur_kernel`` for ``kernel``: :func:`aliases`) are read as that field."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    renamed = aliases(cls)
    kwargs = {}
    for key, value in data.items():
        if key in renamed:
            if renamed[key] in data:
                raise UnetblurError(f"{where}: {key!r} and {renamed[key]!r} are two spellings of one setting; "
                                    f"keep {renamed[key]!r}")
            key = renamed[key]
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise UnetblurError(f"{where}: unknown key {key!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # missing required fields, or a __post_init__ range check
        raise UnetblurError(f"{where}: {exc}") from None


def aliases(cls: type) -> dict[str, str]:
    """Older spelling → field name, for the fields of config dataclass ``cls``."""
    from .blur import BLUR_ALIASES, BlurFields

    return dict(BLUR_ALIASES) if isinstance(cls, type) and issubclass(cls, BlurFields) else {}


#: Bounds on a YAML file: its size, and the values it expands to once aliases are followed. Aliases
#: share objects when loaded, but anything that walks or prints the result pays for every copy, so a
#: 500-byte file of nested aliases ("billion laughs") would cost gigabytes.
MAX_YAML_BYTES = 4_000_000
MAX_YAML_VALUES = 200_000


def safe_load_bounded(text: str, where: str) -> Any:
    """``yaml.safe_load`` of ``text``, refused (one line, :class:`UnetblurError`) when ``text`` is larger than
    :data:`MAX_YAML_BYTES` or expands to more than :data:`MAX_YAML_VALUES` values (also for aliases that
    refer to themselves)."""
    if len(text) > MAX_YAML_BYTES:
        raise UnetblurError(f"{where}: YAML file of {len(text):,} characters, above the limit of {MAX_YAML_BYTES:,}")
    data = yaml.safe_load(text)
    budget, stack = MAX_YAML_VALUES, [data]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise UnetblurError(f"{where}: YAML expands to more than {MAX_YAML_VALUES:,} values (nested or "
                                "recursive aliases?); refused")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return data


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        data = safe_load_bounded(path.read_text(encoding="utf-8"), str(path)) or {}
    except OSError as exc:
        raise UnetblurError(f"{path}: cannot read config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UnetblurError(f"{path}: not a text file (config files are UTF-8 YAML)") from None
    except yaml.YAMLError as exc:
        raise UnetblurError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UnetblurError(f"{path}: a config file must be a mapping of keys to values")
    return data


def load_config(cls: type[C], yaml_paths: list[str | os.PathLike] | tuple = (), overrides: Mapping | None = None) -> C:
    """Defaults in code ← each YAML delta in order ← ``overrides`` (flags given on the command line).

    ``overrides`` entries whose value is None are ignored (a flag the user did not pass).
    A YAML file may name a ``base:`` file (relative to itself) that it extends.
    """
    merged: dict = {}
    for p in yaml_paths:
        merged.update(_read_with_bases(Path(p), seen=()))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, merged, where=" + ".join(str(p) for p in yaml_paths) or "config")


def _read_with_bases(path: Path, seen: tuple) -> dict:
    if path.resolve() in seen:
        raise UnetblurError(f"{path}: 'base' files form a loop")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    merged = _read_with_bases(path.parent / str(base), seen + (path.resolve(),))
    merged.update(data)
    return merged


def to_dict(cfg: Any) -> dict:
    """Plain-YAML form of a config dataclass (tuples become lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {k: plain(x) for k, x in dataclasses.asdict(v).items()}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(cfg)


def versions() -> dict:
    """Versions of what a run used, stored beside its resolved config."""
    from . import __version__
    out = {"unetblur": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for mod in ("numpy", "torch", "torchvision", "pytorch_lightning", "onnx", "onnxruntime", "cv2"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config, reloadable as a YAML delta, headed by the versions it ran with
    (as comments, so the file stays a valid config)."""
    header = "".join(f"# {k}: {v}\n" for k, v in versions().items())
    write_text_atomic(path, header + yaml.safe_dump(to_dict(cfg), sort_keys=False))
