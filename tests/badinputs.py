"""The bad-input corpus, made on the fly by the tests (no committed binaries).

Each ``make_*`` function writes one troublesome input under the folder it is given and returns its
path (some return extra facts the test needs, documented per function). The reliability tests feed
these to the library and to the ``unetblur`` command line and check that nothing crashes, nothing is
half-written and no input is modified.

Helpers at the bottom (:func:`snapshot`, :func:`leftovers`, :func:`run_cli`) are the shared
assertions: hash a folder before and after, list stray temporaries, run the CLI and capture stderr.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: A stream address nothing listens on (port 9 is "discard"; connecting fails at once).
UNREADABLE_STREAM = "rtsp://127.0.0.1:9/none"

#: Annotation paths that try to leave the image root.
ESCAPING_PATHS = ("../../etc/passwd", "/etc/passwd", "sub/../../../outside.jpg")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def photo(size: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """A smooth HWC uint8 RGB test picture of ``size`` = (height, width); compresses well, looks natural."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 127 // max(h + w - 2, 1)], -1)
    noise = _rng(seed).integers(0, 20, size=(h, w, 3))
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _save(arr_or_img, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(path, **params)
    return path


# --------------------------------------------------------------------------------------------- images

def make_zero_byte(folder: Path, name: str = "empty.jpg") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_truncated_jpeg(folder: Path, name: str = "truncated.jpg") -> Path:
    """A JPEG cut to 40% of its bytes (the header is intact, the scan data stops)."""
    buf = io.BytesIO()
    Image.fromarray(photo((96, 96))).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


def make_truncated_png(folder: Path, name: str = "truncated.png") -> Path:
    """A PNG cut inside its IDAT chunk."""
    buf = io.BytesIO()
    Image.fromarray(photo((96, 96))).save(buf, format="PNG")
    data = buf.getvalue()
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def make_text_as_jpg(folder: Path, name: str = "notes.jpg") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a picture\n" * 20)
    return path


def make_png16(folder: Path, name: str = "deep16.png") -> tuple[Path, np.ndarray]:
    """A 16-bit grayscale PNG. Returns (path, expected 8-bit gray HW array)."""
    gray16 = (np.linspace(0, 65535, 32 * 48).reshape(32, 48)).astype(np.uint16)
    path = _save(Image.fromarray(gray16), Path(folder) / name)
    return path, np.round(gray16 / 65535.0 * 255).astype(np.uint8)


def make_grayscale(folder: Path, name: str = "gray.png") -> Path:
    return _save(Image.fromarray(photo()[..., 0]), Path(folder) / name)


def make_rgba(folder: Path, name: str = "rgba.png") -> Path:
    arr = photo()
    alpha = np.full(arr.shape[:2], 255, np.uint8)
    alpha[:, : arr.shape[1] // 2] = 0  # left half transparent
    return _save(Image.fromarray(np.dstack([arr, alpha]), "RGBA"), Path(folder) / name)


def make_palette(folder: Path, name: str = "palette.png") -> Path:
    return _save(Image.fromarray(photo()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), Path(folder) / name)


def make_cmyk_jpeg(folder: Path, name: str = "cmyk.jpg") -> Path:
    return _save(Image.fromarray(photo()).convert("CMYK"), Path(folder) / name, quality=95)


def make_exif_rotated(folder: Path, name: str = "rotated.jpg") -> tuple[Path, tuple[int, int]]:
    """A 40×60 (h×w) JPEG stored sideways with EXIF orientation 6 (rotate 90° clockwise to view).

    Returns (path, upright (height, width)) = (path, (60, 40)). The top-left of the stored pixels is
    marked red, so after the rotation the red corner must be the top-right.
    """
    arr = np.full((40, 60, 3), 90, np.uint8)
    arr[:8, :8] = (255, 0, 0)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(img, Path(folder) / name, exif=exif.tobytes(), quality=95)
    return path, (60, 40)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_decompression_bomb(folder: Path, name: str = "bomb.png", side: int = 60_000) -> Path:
    """A ~100-byte PNG whose header declares ``side``×``side`` RGB pixels (10.8 GB when decoded)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_one_pixel(folder: Path, name: str = "one.png") -> Path:
    return _save(np.array([[[200, 10, 10]]], np.uint8), Path(folder) / name)


def make_smaller_than_stride(folder: Path, name: str = "tiny.png", side: int = 5) -> Path:
    """A ``side``×``side`` picture, smaller than any U-Net's stride (8–32)."""
    return _save(photo((side, side)), Path(folder) / name)


def make_odd_sized(folder: Path, name: str = "odd.png", size: tuple[int, int] = (37, 53)) -> Path:
    """Sides that are not multiples of any stride: models must pad and crop back."""
    return _save(photo(size), Path(folder) / name)


# --------------------------------------------------------------------------------------------- video

def ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_video(path: Path, *, seconds: float = 1.0, size: tuple[int, int] = (64, 48), fps: int = 10,
               audio: bool = False) -> Path:
    """An H.264 MP4 test pattern of ``size`` = (width, height); with a 440 Hz tone when ``audio``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={fps}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def make_video_without_audio(folder: Path, name: str = "silent.mp4", **kw) -> Path:
    return make_video(Path(folder) / name, audio=False, **kw)


def make_video_with_audio(folder: Path, name: str = "talking.mp4", **kw) -> Path:
    return make_video(Path(folder) / name, audio=True, **kw)


def make_video_corrupt_middle(folder: Path, name: str = "corrupt.mp4", **kw) -> Path:
    """A video whose middle third of bytes is overwritten with noise (header and index intact)."""
    path = make_video(Path(folder) / name, **{"seconds": 2.0, **kw})
    data = bytearray(path.read_bytes())
    a, b = len(data) // 3, 2 * len(data) // 3
    data[a:b] = _rng(7).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def make_text_as_mp4(folder: Path, name: str = "notvideo.mp4") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a video\n" * 50)
    return path


# --------------------------------------------------------------------------------------------- datasets

def break_stems(dataset_root: Path, split: str = "train") -> tuple[str, str]:
    """Rename one target in ``<split>_blur/`` so its stem no longer matches. Returns (old stem, new stem)."""
    blur_dir = Path(dataset_root) / f"{split}_blur"
    first = sorted(blur_dir.glob("*.png"))[0]
    new = first.with_name(f"zz_orphan_{first.name}")
    first.rename(new)
    return first.stem, new.stem


def shrink_mask(dataset_root: Path, split: str = "train") -> Path:
    """Replace one mask with one of half the size. Returns its path."""
    mask_dir = Path(dataset_root) / f"{split}_mask"
    first = sorted(mask_dir.glob("*.png"))[0]
    with Image.open(first) as m:
        small = m.resize((max(1, m.width // 2), max(1, m.height // 2)))
    small.save(first)
    return first


# --------------------------------------------------------------------------------------------- annotations

def make_wider_annotations(folder: Path, entries: list[tuple[str, list[tuple]]],
                           name: str = "wider_face_train_bbx_gt.txt") -> Path:
    """A WIDER FACE ground-truth file: for each image its relative path, the face count, then one line
    ``x y w h blur expression illumination invalid occlusion pose`` per face (values as given, so NaN
    and negatives can be written)."""
    lines = []
    for rel, boxes in entries:
        lines.append(rel)
        lines.append(str(len(boxes)))
        for b in boxes or [(0, 0, 0, 0)]:
            lines.append(" ".join(str(v) for v in b) + " 0 0 0 0 0 0")
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def make_coco_annotations(folder: Path, images: list[tuple[str, int, int, list[tuple]]],
                          name: str = "instances.json") -> Path:
    """A COCO detection file: ``images`` = [(file_name, width, height, [(x, y, w, h), ...])]."""
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "face"}]}
    ann_id = 1
    for i, (file_name, w, h, boxes) in enumerate(images, start=1):
        data["images"].append({"id": i, "file_name": file_name, "width": w, "height": h})
        for box in boxes:
            data["annotations"].append({"id": ann_id, "image_id": i, "category_id": 1, "bbox": list(box),
                                        "area": float(box[2]) * float(box[3]) if all(np.isfinite(box)) else 0,
                                        "iscrowd": 0})
            ann_id += 1
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))  # NaN stays NaN (allow_nan)
    return path


def make_unknown_annotations(folder: Path, name: str = "labels.xyz") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("face 1 2 3 4\nsomething else entirely\n")
    return path


# --------------------------------------------------------------------------------------------- configs

def make_yaml(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------- models

def make_foreign_checkpoint(folder: Path, name: str = "foreign.pt") -> Path:
    """A plain torch file that is not ours: a bare state dict of some other network."""
    import torch

    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3), "conv.bias": torch.zeros(4)}, path)
    return path


class _Payload:
    """Pickling this object records a call that creates ``marker`` when unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def make_pickle_payload(folder: Path, name: str = "evil.pt") -> tuple[Path, Path]:
    """A torch file whose unpickling would run ``os.mkdir(marker)``. Returns (path, marker).

    The marker must still be missing after any unetblur command has looked at the file.
    """
    import torch

    path = Path(folder) / name
    marker = Path(folder) / f"{name}.payload-ran"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "unetblur-model", "format_version": 1, "kind": "unet", "spec": _Payload(marker),
                "state_dict": {}}, path)
    return path, marker


def make_truncated_checkpoint(folder: Path, name: str = "truncated.pt") -> Path:
    """One of our model files cut in half."""
    from unetblur.models import build_model, save_model

    path = Path(folder) / name
    save_model(build_model("tiny"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_onnx_identity(path: Path) -> Path:
    """A valid one-node ONNX model (Identity on a 1×3×H×W float input)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["output"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


#: Raw outputs a broken or foreign model can give instead of an image in [0, 1] (name → factor the
#: input is multiplied by): each must make every command fail closed.
BROKEN_OUTPUTS = {"nan": float("nan"), "inf": float("inf"), "too_large": 5.0, "negative": -3.0}


def make_broken_onnx(path: Path, factor: float = float("nan"), channels: int = 4) -> Path:
    """An ONNX file with unetblur's export metadata (mask channel declared) whose output is the input
    times ``factor`` with ``channels`` channels: NaN, inf or out-of-range values, or (channels=3) a
    missing mask channel."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Mul", ["image", "factor"], ["scaled"]),
             helper.make_node("Slice", ["scaled", "zero", "one", "axis"], ["first"])]
    nodes.append(helper.make_node("Concat", ["scaled", "first"] if channels == 4 else ["scaled"], ["output"], axis=1))
    init = [helper.make_tensor("factor", TensorProto.FLOAT, [], [factor]),
            *(helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("zero", 0), ("one", 1), ("axis", 1)))]
    graph = helper.make_graph(nodes, "broken", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", channels, "H", "W"])],
                              initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"stride": "1", "mask_channel": "true", "precision": "fp32"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_truncated_onnx(folder: Path, name: str = "truncated.onnx", source: Path | None = None) -> Path:
    """An ONNX file cut in half (from ``source`` when given, else a one-node model padded with weights)."""
    path = Path(folder) / name
    if source is not None:
        data = Path(source).read_bytes()
    else:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        w = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, "h", "w"])
        node = helper.make_node("Conv", ["image", "w"], ["output"], pads=[1, 1, 1, 1])
        model = helper.make_model(helper.make_graph([node], "conv", [x], [y], initializer=[w]),
                                  opset_imports=[helper.make_opsetid("", 17)])
        data = model.SerializeToString()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


# --------------------------------------------------------------------------------------------- checks

def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path → digest): compare before and after a command."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary or partial files under ``root``: hidden files, ``*.part*``, ``*.tmp``, ``*~``."""
    root = Path(root)
    if not root.exists():
        return []
    bad = []
    for p in root.rglob("*"):
        name = p.name
        if p.is_file() and (name.startswith(".") or ".part" in name or name.endswith((".tmp", "~"))):
            bad.append(str(p.relative_to(root)))
    return sorted(bad)


def files_under(root: Path) -> list[str]:
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``unetblur.cli.main(argv)`` in-process. Returns (exit code, stdout, stderr).

    argparse exits through SystemExit; that is turned into its code so tests see one shape.
    """
    from unetblur.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors and --help
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_line(err: str, *needles: str) -> None:
    """stderr holds an ``unetblur: error`` line naming every needle, and no traceback."""
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if "error" in ln.lower()]
    assert error_lines, f"no error line on stderr: {err!r}"
    for needle in needles:
        assert any(needle in ln for ln in error_lines), f"{needle!r} not named in {error_lines}"


def python_cli() -> list[str]:
    """Command prefix to run the CLI in a subprocess with this interpreter."""
    return [sys.executable, "-m", "unetblur"]
