"""``unetblur data synth``: the embedded default dataset, drawn procedurally (no downloads).

Each image: a background cut from one of scikit-image's bundled photos (random crop, flip, colour
jitter; only photos with no people in them, so no real face is ever in the data), 0–2 distractors
that must NOT be blurred (skin-coloured hands and plain ovals with no facial features), and 0–5
cartoon faces: varied skin tones and proportions, eyes, brows, nose, mouth, hair, ears, optional
glasses, hat and beard, rotated ±30°, 8 %–60 % of the frame wide, anywhere in it and possibly cut
by the border.

A face is the ellipse of its head (hair and hat are outside it, the blur's mask scale of 1.2
covers their edge): the mask is exact and the target is ``blur_faces`` of the image with those
ellipses. Deterministic: image ``i`` depends only on ``(seed, i)``, whatever the worker count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..blur import BlurFields, blur_faces
from ..errors import UnetblurError
from ..faces import Face
from .build import assign_splits, prepare_out, publish_dataset, quiet_worker_signals, run_parallel
from .layout import SPLITS, split_dirs

#: scikit-image's bundled photos used as backgrounds. Left out on purpose: astronaut and camera
#: (real people's faces), lfw_subset (faces), and images with no texture worth learning from.
BACKGROUNDS = ("brick.png", "chelsea.png", "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png",
               "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
               "page.png", "retina.jpg", "rocket.jpg", "text.png", "clock_motion.png", "chessboard_RGB.png",
               "cell.png", "microaneurysms.png", "logo.png")
EXCLUDED_BACKGROUNDS = ("astronaut.png", "camera.png", "lfw_subset.npy")

# Skin tones from very light to very dark (RGB), jittered per face.
SKIN = np.array([(255, 224, 196), (241, 194, 167), (234, 192, 134), (224, 172, 105), (198, 134, 66),
                 (176, 120, 86), (141, 85, 36), (110, 70, 45), (92, 51, 23), (62, 40, 28)], np.float32)
HAIR = np.array([(20, 16, 14), (45, 30, 20), (90, 60, 35), (150, 110, 60), (215, 185, 120), (160, 70, 30),
                 (170, 170, 170), (235, 235, 230)], np.float32)
IRIS = np.array([(60, 40, 25), (40, 90, 140), (70, 110, 60), (100, 70, 40), (20, 20, 20)], np.float32)


@dataclass(frozen=True)
class SynthConfig(BlurFields):
    """Settings of ``unetblur data synth``."""

    out: str = ""
    count: int = 2000
    size: int = 128
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    max_faces: int = 5
    face_scale: tuple[float, float] = (0.08, 0.6)   # face width as a share of the frame
    max_distractors: int = 2
    workers: int = 1
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        if not self.out:
            raise UnetblurError("data synth: give the output folder with -o OUT")
        if self.count < 1:
            raise UnetblurError(f"--count must be at least 1, got {self.count}")
        if not 16 <= self.size <= 4096:
            raise UnetblurError(f"--size must be between 16 and 4096 pixels, got {self.size}")
        if self.max_faces < 0:
            raise UnetblurError(f"--max-faces must be 0 or more, got {self.max_faces}")
        lo, hi = self.face_scale
        if not 0 < lo <= hi <= 1.5:
            raise UnetblurError(f"face_scale needs 0 < low <= high <= 1.5, got {list(self.face_scale)}")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or sum(self.split) <= 0:
            raise UnetblurError(f"--split needs three non-negative shares, got {list(self.split)}")
        if self.workers < 1:
            raise UnetblurError(f"--workers must be at least 1, got {self.workers}")
        self.blur_settings()


# --------------------------------------------------------------------------- backgrounds

_BACKGROUND_CACHE: list[np.ndarray] = []


def load_backgrounds() -> list[np.ndarray]:
    """The bundled background photos as HWC uint8 RGB (loaded once per process)."""
    if _BACKGROUND_CACHE:
        return _BACKGROUND_CACHE
    try:
        import skimage
    except ImportError:
        raise UnetblurError("`unetblur data synth` needs scikit-image for its bundled background photos "
                            "(pip install scikit-image)") from None
    from ..io import read_image

    folder = Path(skimage.__file__).parent / "data"
    for name in BACKGROUNDS:
        path = folder / name
        if path.is_file():
            img = read_image(path)
            if min(img.shape[:2]) >= 64:
                _BACKGROUND_CACHE.append(img)
    if not _BACKGROUND_CACHE:
        raise UnetblurError(f"{folder}: none of scikit-image's bundled photos were found; reinstall scikit-image")
    return _BACKGROUND_CACHE


_SHRUNK: dict[tuple[int, int], np.ndarray] = {}


def _shrunk(backgrounds: list[np.ndarray], index: int, size: int) -> np.ndarray:
    """Photo ``index`` shrunk once (area filter) so its short side is at most 1.5 × ``size``: a crop
    then needs at most a 1.5× bilinear resize (8× cheaper than an area resize from full size, the
    slowest step of drawing before), with the same fields of view as cropping the full photo."""
    key = (id(backgrounds[index]), size)
    if key not in _SHRUNK:
        src = backgrounds[index]
        f = min(1.0, 1.5 * size / min(src.shape[:2]))
        _SHRUNK[key] = src if f == 1.0 else cv2.resize(
            src, (max(1, round(src.shape[1] * f)), max(1, round(src.shape[0] * f))), interpolation=cv2.INTER_AREA)
    return _SHRUNK[key]


def draw_background(rng: np.random.Generator, size: int, backgrounds: list[np.ndarray]) -> np.ndarray:
    """A random crop of a random photo, resized to size×size, flipped and colour-jittered."""
    src = _shrunk(backgrounds, int(rng.integers(len(backgrounds))), size)
    h, w = src.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    side = max(16, side)
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = cv2.resize(src[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    if rng.random() < 0.3:
        img = cv2.flip(img, 0)
    gain = rng.uniform(0.6, 1.25, 3) * rng.uniform(0.7, 1.2)
    shift = rng.uniform(-25, 25, 3)
    # Per-channel gain and shift through a lookup table: no float copy of the image.
    lut = np.clip(np.arange(256.0)[:, None] * gain + shift, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut.reshape(256, 1, 3))


# --------------------------------------------------------------------------- drawing

def _jitter(rng, base: np.ndarray, amount: float) -> np.ndarray:
    """``base`` colour scaled by 1 ± ``amount`` and shifted by up to ±10 per channel (floats; OpenCV
    saturates them to 0..255 when drawing)."""
    r = rng.random(4)
    return base * (1 - amount + 2 * amount * r[0]) + (r[1:] * 20 - 10)


def _rgb(color) -> tuple:
    """A colour as OpenCV takes it: a tuple (floats are saturated to 0..255 by OpenCV itself)."""
    return color if type(color) is tuple else tuple(color.tolist())


class _Pen:
    """Draws shapes given in an upright local frame (origin at the shape's centre, y down, pixels) onto
    ``image``, rotated by ``angle`` degrees (clockwise on screen: ``cv2.ellipse``'s convention, which
    ``blur_faces`` also uses for a face's ellipse) and moved to (cx, cy). Anti-aliased, sub-pixel."""

    _SHIFT = 4
    _ONE = 1 << _SHIFT

    def __init__(self, image: np.ndarray, cx: float, cy: float, angle: float):
        self.image, self.cx, self.cy, self.angle = image, cx, cy, angle
        t = math.radians(angle)
        self.cos, self.sin = math.cos(t), math.sin(t)

    def _pt(self, u: float, v: float) -> tuple[int, int]:
        x = self.cx + u * self.cos - v * self.sin
        y = self.cy + u * self.sin + v * self.cos
        return int(round(x * self._ONE)), int(round(y * self._ONE))

    def ellipse(self, u, v, au, av, color, a0=0, a1=360, thickness=-1) -> None:
        axes = (max(1, int(round(au * self._ONE))), max(1, int(round(av * self._ONE))))
        cv2.ellipse(self.image, self._pt(u, v), axes, self.angle, a0, a1, _rgb(color), thickness,
                    cv2.LINE_AA, self._SHIFT)

    def line(self, u0, v0, u1, v1, color, thickness: float) -> None:
        cv2.line(self.image, self._pt(u0, v0), self._pt(u1, v1), _rgb(color), max(1, int(round(thickness))),
                 cv2.LINE_AA, self._SHIFT)

    def rect(self, u0, v0, u1, v1, color) -> None:
        pts = np.array([self._pt(u0, v0), self._pt(u1, v0), self._pt(u1, v1), self._pt(u0, v1)], np.int32)
        cv2.fillConvexPoly(self.image, pts, _rgb(color), cv2.LINE_AA, self._SHIFT)


def draw_face(image: np.ndarray, rng: np.random.Generator, cx: float, cy: float, a: float, b: float,
              angle: float) -> None:
    """Draw a cartoon face in place: head ellipse with semi-axes ``a`` (across) and ``b`` (down) pixels,
    centred at (cx, cy), rotated ``angle`` degrees; hair, ears, eyes, brows, nose, mouth, and sometimes a
    beard, glasses or a hat. Only the head ellipse is the face (``Face.from_ellipse(cx, cy, a, b, angle)``)."""
    pen = _Pen(image, cx, cy, angle)
    skin = _jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 0.08)
    hair = _jitter(rng, HAIR[int(rng.integers(len(HAIR)))], 0.1)
    shade = skin * 0.78
    # Hair behind the head (none = bald), ears, then the head itself.
    style = ("none", "short", "long", "bun")[int(np.searchsorted((0.15, 0.6, 0.9), rng.random()))]
    if style == "short":
        pen.ellipse(0, -b * 0.12, a * 1.08, b * 1.0, hair, 180, 360)
        pen.ellipse(0, -b * 0.1, a * 1.08, b * 0.35, hair)
    elif style == "long":
        pen.ellipse(0, b * 0.1, a * 1.25, b * 1.15, hair)
    elif style == "bun":
        pen.ellipse(0, -b * 1.05, a * 0.45, b * 0.3, hair)
        pen.ellipse(0, -b * 0.12, a * 1.06, b * 0.98, hair, 180, 360)
    for side in (-1, 1):
        pen.ellipse(side * a * 0.97, b * 0.02, a * 0.16, b * 0.2, shade)
    pen.ellipse(0, 0, a, b, skin)
    if style in ("short", "bun"):  # fringe over the forehead
        pen.ellipse(0, -b * 0.78, a * rng.uniform(0.6, 0.95), b * rng.uniform(0.2, 0.35), hair)
    # Eyes, irises, brows.
    ey = -b * rng.uniform(0.05, 0.22)
    ex = a * rng.uniform(0.32, 0.45)
    er = a * rng.uniform(0.12, 0.2)
    iris = _jitter(rng, IRIS[int(rng.integers(len(IRIS)))], 0.1)
    brow_t = b * rng.uniform(0.04, 0.08)
    tilt = rng.uniform(-0.6, 0.6)
    white_v = rng.uniform(0.5, 0.7)
    brow_up = rng.uniform(1.0, 1.6)
    for side in (-1, 1):
        x = side * ex
        pen.ellipse(x, ey, er, er * white_v, (245, 245, 240))
        pen.ellipse(x, ey, er * 0.5, er * 0.5, iris)
        pen.ellipse(x, ey, er * 0.22, er * 0.22, (10, 10, 10))
        by = ey - er * brow_up
        pen.line(x - er * 1.1, by + side * tilt * er, x + er * 1.1, by - side * tilt * er, hair * 0.8, brow_t)
    # Nose and mouth.
    ny = b * rng.uniform(0.12, 0.25)
    nw = a * rng.uniform(0.1, 0.18)
    if rng.random() < 0.5:
        pen.line(0, ey + er, -nw * 0.3, ny, shade * 0.85, a * 0.05)
    pen.ellipse(0, ny, nw, nw * 0.55, shade * 0.9)
    my = b * rng.uniform(0.42, 0.58)
    mw = a * rng.uniform(0.25, 0.45)
    lips = _jitter(rng, np.array([170, 60, 70], np.float32), 0.2)
    if rng.random() < 0.6:  # a smile
        pen.ellipse(0, my - b * 0.05, mw, b * rng.uniform(0.06, 0.15), lips, 10, 170, max(1, int(round(b * 0.05))))
    else:
        pen.ellipse(0, my, mw, b * rng.uniform(0.04, 0.1), lips)
    # Beard, glasses, hat.
    if rng.random() < 0.15:
        pen.ellipse(0, b * 0.45, a * 0.9, b * 0.55, hair, 0, 180)
        pen.ellipse(0, my, mw * 0.9, b * 0.06, lips)
    if rng.random() < 0.25:
        frame = rng.uniform(0, 80, 3)
        dark = rng.random() < 0.35
        t = max(1, int(round(a * 0.05)))
        for side in (-1, 1):
            if dark:
                pen.ellipse(side * ex, ey, er * 1.5, er * 1.2, (25, 25, 30))
            pen.ellipse(side * ex, ey, er * 1.5, er * 1.2, frame, thickness=t)
        pen.line(-ex + er * 1.5, ey, ex - er * 1.5, ey, frame, t)
    if rng.random() < 0.2:
        col = rng.uniform(20, 235, 3)
        top = -b * rng.uniform(0.6, 0.8)
        pen.rect(-a * 0.85, top - b * 0.7, a * 0.85, top, col)
        pen.rect(-a * 1.35, top - b * 0.08, a * 1.35, top + b * 0.06, col)


def draw_distractor(image: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float,
                    angle: float) -> None:
    """Draw a skin-coloured hand (palm, four fingers, thumb) or a plain oval: face-like colour and
    shape but no facial features, so the model must learn not to blur it."""
    pen = _Pen(image, cx, cy, angle)
    skin = _jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 0.08)
    if rng.random() < 0.55:
        pen.ellipse(0, r * 0.25, r * 0.55, r * 0.6, skin)
        for k in range(4):
            fx = (k - 1.5) * r * 0.28
            pen.line(fx, 0, fx + (k - 1.5) * r * 0.08, -r * 0.85, skin, r * 0.22)
        pen.line(-r * 0.5, r * 0.35, -r * 0.95, -r * 0.05, skin, r * 0.22)
    else:
        pen.ellipse(0, 0, r * 0.8, r, skin)


def draw_sample(rng: np.random.Generator, size: int, backgrounds: list[np.ndarray], max_faces: int = 5,
                face_scale: tuple[float, float] = (0.08, 0.6), max_distractors: int = 2,
                ) -> tuple[np.ndarray, list[Face], list[Face]]:
    """One synthetic image.

    Returns (HWC uint8 RGB image of size×size, faces with their head ellipses, distractor boxes).
    """
    image = draw_background(rng, size, backgrounds)
    distractors = []
    for _ in range(int(rng.integers(0, max_distractors + 1))):
        r = size * rng.uniform(0.05, 0.25)
        cx, cy = rng.uniform(-0.1, 1.1) * size, rng.uniform(-0.1, 1.1) * size
        draw_distractor(image, rng, cx, cy, r, float(rng.uniform(-60, 60)))
        distractors.append(Face(cx - r, cy - r, cx + r, cy + r))
    faces = []
    lo, hi = math.log(face_scale[0]), math.log(face_scale[1])
    for _ in range(int(rng.integers(0, max_faces + 1))):
        width = size * math.exp(rng.uniform(lo, hi))
        a = width / 2
        b = a * rng.uniform(1.15, 1.45)
        # Off-centre and sometimes cut by the border: the centre may lie up to a third of the face outside.
        cx = rng.uniform(-0.3 * a, size + 0.3 * a)
        cy = rng.uniform(-0.3 * b, size + 0.3 * b)
        angle = float(rng.uniform(-30, 30))
        draw_face(image, rng, cx, cy, a, b, angle)
        face = Face.from_ellipse(cx, cy, a, b, angle)
        if face.clipped(size, size) is not None:
            faces.append(face)
    if rng.random() < 0.3:  # sensor noise
        noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2, 6))
        noise += image
        image = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    return image, faces, distractors


# --------------------------------------------------------------------------- the dataset

_STATE: dict = {}
# zlib level 1 + RLE + the SUB filter: lossless, 0.6 ms for a 128×128 RGB image against 1.7 ms with
# PIL's level 1, at about the same file size (≈26 kB).
_PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    _PNG_FLAGS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def _write_png(path: Path, array: np.ndarray) -> None:
    """Lossless PNG through OpenCV's encoder (writing is the largest cost per image). No temp-and-rename
    per file: the whole dataset is built in a temporary folder and renamed at the end."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array, _PNG_FLAGS)
    if not ok:
        raise UnetblurError(f"{path}: PNG encoding failed")
    path.write_bytes(data.tobytes())


def _init(cfg: SynthConfig, root: str, in_pool: bool) -> None:
    if in_pool:
        quiet_worker_signals()
    # One OpenCV thread per worker: on 128 px images its thread pool costs more than it gains
    # (blur_faces ≈ 25 % cheaper in CPU time), and parallelism comes from --workers.
    cv2.setNumThreads(1)
    _STATE.update(cfg=cfg, root=Path(root), settings=cfg.blur_settings(), backgrounds=load_backgrounds())


def _make(task: tuple[int, str]) -> dict:
    index, split = task
    cfg: SynthConfig = _STATE["cfg"]
    rng = np.random.default_rng([cfg.seed, index])
    image, faces, distractors = draw_sample(rng, cfg.size, _STATE["backgrounds"], cfg.max_faces, cfg.face_scale,
                                            cfg.max_distractors)
    # Blur with the faces as faces.jsonl will hold them (rounded), so the oracle reproduces the target exactly.
    faces = [f.as_stored() for f in faces]
    blurred, mask = blur_faces(image, faces, _STATE["settings"])
    stem = f"{index:05d}"
    img_dir, blur_dir, mask_dir = split_dirs(_STATE["root"], split)
    _write_png(img_dir / f"{stem}.png", image)
    _write_png(blur_dir / f"{stem}.png", blurred)
    _write_png(mask_dir / f"{stem}.png", mask)
    return {"image": f"{split}/{stem}.png", "split": split, "source": f"synth:{cfg.seed}:{index}",
            "faces": faces, "distractors": [d.to_dict() for d in distractors], "index": index}


def synthesize_dataset(cfg: SynthConfig) -> dict:
    """Write a synthetic dataset to ``cfg.out`` (layout of DESIGN.md §4); returns its manifest."""
    cfg.validate()
    out = Path(cfg.out)
    t0 = time.time()
    tmp = prepare_out(out, cfg.overwrite)
    threads = cv2.getNumThreads()
    try:
        keys = [f"{i:05d}" for i in range(cfg.count)]
        splits = assign_splits(keys, cfg.split, cfg.seed)
        tasks = [(i, splits[k]) for i, k in enumerate(keys)]
        records = sorted(run_parallel(_make, tasks, cfg.workers, _init, (cfg, str(tmp)), "data synth", cfg.progress),
                         key=lambda r: r["index"])
        for r in records:
            del r["index"]
        counts = {s: sum(1 for r in records if r["split"] == s) for s in SPLITS}
        manifest = {
            "tool": "unetblur data synth", "version": __version__, "source": "synthetic",
            "boxes_from": "synthetic", "annotation_format": None, "detector": None, "targets_from": "ground_truth",
            "blur": cfg.blur_settings().to_dict(), "mode": "synthetic", "image_size": cfg.size, "seed": cfg.seed,
            "split_fractions": list(cfg.split), "counts": counts, "images_total": cfg.count,
            "faces_total": sum(len(r["faces"]) for r in records),
            "distractors_total": sum(len(r["distractors"]) for r in records),
            "synth": {"max_faces": cfg.max_faces, "face_scale": list(cfg.face_scale),
                      "max_distractors": cfg.max_distractors, "backgrounds": list(BACKGROUNDS)},
            "skipped": [], "dropped_boxes": [], "seconds": round(time.time() - t0, 1),
        }
        publish_dataset(tmp, out, records, manifest)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        cv2.setNumThreads(threads)
    return manifest


def synthesize(out: str | Path, count: int = 2000, size: int = 128, seed: int = 0, **options) -> dict:
    """Convenience entry for tests and the demo: ``synthesize(out, count, size, seed)`` → manifest."""
    return synthesize_dataset(SynthConfig(out=str(out), count=count, size=size, seed=seed, **options))
