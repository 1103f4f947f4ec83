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

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..blur import BlurSettings, blur_faces
from ..errors import UnetblurError
from ..faces import Face, write_faces_jsonl
from ..fsutil import write_text_atomic
from ..io import write_image
from .build import assign_splits, finish_out, prepare_out, quiet_worker_signals, run_parallel
from .layout import FACES, MANIFEST, SPLITS, split_dirs

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
class SynthConfig:
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
    blur_style: str = "gaussian"
    blur_shape: str = "ellipse"
    mask_scale: float = 1.2
    blur_kernel: int | None = None
    blur_strength: float = 1.0

    def blur_settings(self) -> BlurSettings:
        return BlurSettings(style=self.blur_style, shape=self.blur_shape, mask_scale=self.mask_scale,
                            kernel=self.blur_kernel, strength=self.blur_strength)

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


def draw_background(rng: np.random.Generator, size: int, backgrounds: list[np.ndarray]) -> np.ndarray:
    """A random crop of a random photo, resized to size×size, flipped and colour-jittered."""
    src = backgrounds[int(rng.integers(len(backgrounds)))]
    h, w = src.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    side = max(16, side)
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = cv2.resize(src[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.3:
        img = img[::-1]
    gain = rng.uniform(0.6, 1.25, 3) * rng.uniform(0.7, 1.2)
    shift = rng.uniform(-25, 25, 3)
    out = img.astype(np.float32) * gain + shift
    return np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- drawing

def _color(c) -> tuple:
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _jitter(rng, base: np.ndarray, amount: float) -> np.ndarray:
    return base * rng.uniform(1 - amount, 1 + amount) + rng.uniform(-10, 10, 3)


def _face_patch(rng: np.random.Generator, a: float, b: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw an upright face with head semi-axes ``a`` (x) and ``b`` (y) pixels on an RGBA patch.

    Returns (RGB patch, alpha HW uint8, patch side); the head ellipse is centred in the patch.
    """
    P = int(math.ceil(max(a, b) * 2 * 1.6)) + 4
    P += P % 2
    c = P / 2
    rgb = np.zeros((P, P, 3), np.uint8)
    alpha = np.zeros((P, P), np.uint8)
    S, AA = 4, cv2.LINE_AA  # 4 bits of sub-pixel precision
    one = 1 << S

    def pt(x, y):
        return int(round(x * one)), int(round(y * one))

    def ax(u, v):
        return max(1, int(round(u * one))), max(1, int(round(v * one)))

    def ell(x, y, u, v, col, ang=0.0, a0=0, a1=360, th=-1, on_alpha=True):
        cv2.ellipse(rgb, pt(x, y), ax(u, v), ang, a0, a1, _color(col), th, AA, S)
        if on_alpha:
            cv2.ellipse(alpha, pt(x, y), ax(u, v), ang, a0, a1, 255, th, AA, S)

    skin = _jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 0.08)
    hair = _jitter(rng, HAIR[int(rng.integers(len(HAIR)))], 0.1)
    shade = skin * 0.78
    # Hair behind the head (none = bald), ears, then the head itself.
    style = rng.choice(["none", "short", "long", "bun"], p=[0.15, 0.45, 0.3, 0.1])
    if style == "short":
        ell(c, c - b * 0.12, a * 1.08, b * 1.0, hair, a0=180, a1=360)
        ell(c, c - b * 0.1, a * 1.08, b * 0.35, hair)
    elif style == "long":
        ell(c, c + b * 0.1, a * 1.25, b * 1.15, hair)
    elif style == "bun":
        ell(c, c - b * 1.05, a * 0.45, b * 0.3, hair)
        ell(c, c - b * 0.12, a * 1.06, b * 0.98, hair, a0=180, a1=360)
    for side in (-1, 1):
        ell(c + side * a * 0.97, c + b * 0.02, a * 0.16, b * 0.2, shade)
    ell(c, c, a, b, skin)
    if style in ("short", "bun"):  # fringe over the forehead
        ell(c, c - b * 0.78, a * rng.uniform(0.6, 0.95), b * rng.uniform(0.2, 0.35), hair)
    # Eyes, irises, brows.
    ey = c - b * rng.uniform(0.05, 0.22)
    ex = a * rng.uniform(0.32, 0.45)
    er = a * rng.uniform(0.12, 0.2)
    iris = _jitter(rng, IRIS[int(rng.integers(len(IRIS)))], 0.1)
    brow_t = max(1, int(round(b * rng.uniform(0.04, 0.08))))
    tilt = rng.uniform(-12, 12)
    for side in (-1, 1):
        x = c + side * ex
        ell(x, ey, er, er * rng.uniform(0.5, 0.7), (245, 245, 240), on_alpha=False)
        ell(x, ey, er * 0.5, er * 0.5, iris, on_alpha=False)
        ell(x, ey, er * 0.22, er * 0.22, (10, 10, 10), on_alpha=False)
        by = ey - er * rng.uniform(1.0, 1.6)
        cv2.line(rgb, pt(x - er * 1.1, by + side * tilt * 0.05 * er), pt(x + er * 1.1, by - side * tilt * 0.05 * er),
                 _color(hair * 0.8), brow_t, AA, S)
    # Nose and mouth.
    ny = c + b * rng.uniform(0.12, 0.25)
    nw = a * rng.uniform(0.1, 0.18)
    if rng.random() < 0.5:
        cv2.line(rgb, pt(c, ey + er), pt(c - nw * 0.3, ny), _color(shade * 0.85), max(1, int(a * 0.05)), AA, S)
    ell(c, ny, nw, nw * 0.55, shade * 0.9, on_alpha=False)
    my = c + b * rng.uniform(0.42, 0.58)
    mw = a * rng.uniform(0.25, 0.45)
    lips = _jitter(rng, np.array([170, 60, 70], np.float32), 0.2)
    if rng.random() < 0.6:
        ell(c, my - b * 0.05, mw, b * rng.uniform(0.06, 0.15), lips, a0=10, a1=170,
            th=max(1, int(round(b * 0.05))), on_alpha=False)
    else:
        ell(c, my, mw, b * rng.uniform(0.04, 0.1), lips, on_alpha=False)
    # Beard, glasses, hat.
    if rng.random() < 0.15:
        ell(c, c + b * 0.45, a * 0.9, b * 0.55, hair, a0=0, a1=180)
        ell(c, my, mw * 0.9, b * 0.06, lips, on_alpha=False)
    if rng.random() < 0.25:
        frame = _color(rng.uniform(0, 80, 3))
        dark = rng.random() < 0.35
        t = max(1, int(round(a * 0.05)))
        for side in (-1, 1):
            x = c + side * ex
            if dark:
                ell(x, ey, er * 1.5, er * 1.2, (25, 25, 30), on_alpha=False)
            cv2.ellipse(rgb, pt(x, ey), ax(er * 1.5, er * 1.2), 0, 0, 360, frame, t, AA, S)
        cv2.line(rgb, pt(c - ex + er * 1.5, ey), pt(c + ex - er * 1.5, ey), frame, t, AA, S)
    if rng.random() < 0.2:
        col = _color(rng.uniform(20, 235, 3))
        top = c - b * rng.uniform(0.6, 0.8)
        cv2.rectangle(rgb, pt(c - a * 0.85, top - b * 0.7), pt(c + a * 0.85, top), col, -1, AA, S)
        cv2.rectangle(alpha, pt(c - a * 0.85, top - b * 0.7), pt(c + a * 0.85, top), 255, -1, AA, S)
        cv2.rectangle(rgb, pt(c - a * 1.35, top - b * 0.08), pt(c + a * 1.35, top + b * 0.06), col, -1, AA, S)
        cv2.rectangle(alpha, pt(c - a * 1.35, top - b * 0.08), pt(c + a * 1.35, top + b * 0.06), 255, -1, AA, S)
    return rgb, alpha, P


def _distractor_patch(rng: np.random.Generator, r: float) -> tuple[np.ndarray, np.ndarray, int]:
    """A skin-coloured hand (palm and fingers) or plain oval, with no facial features."""
    P = int(math.ceil(r * 2 * 1.9)) + 4
    P += P % 2
    c = P / 2
    rgb = np.zeros((P, P, 3), np.uint8)
    alpha = np.zeros((P, P), np.uint8)
    skin = _color(_jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 0.08))
    S, one = 4, 16
    pt = lambda x, y: (int(round(x * one)), int(round(y * one)))  # noqa: E731
    axes = lambda u, v: (max(1, int(round(u * one))), max(1, int(round(v * one))))  # noqa: E731
    if rng.random() < 0.55:  # hand: palm plus four fingers and a thumb
        palm = (r * 0.55, r * 0.6)
        for im in (rgb, alpha):
            col = skin if im is rgb else 255
            cv2.ellipse(im, pt(c, c + r * 0.25), axes(*palm), 0, 0, 360, col, -1, cv2.LINE_AA, S)
            for k in range(4):
                fx = c + (k - 1.5) * r * 0.28
                cv2.line(im, pt(fx, c), pt(fx + (k - 1.5) * r * 0.08, c - r * 0.85), col,
                         max(1, int(r * 0.22)), cv2.LINE_AA, S)
            cv2.line(im, pt(c - r * 0.5, c + r * 0.35), pt(c - r * 0.95, c - r * 0.05), col,
                     max(1, int(r * 0.22)), cv2.LINE_AA, S)
    else:  # a plain oval, like a head seen without a face
        for im, col in ((rgb, skin), (alpha, 255)):
            cv2.ellipse(im, pt(c, c), axes(r * 0.8, r), 0, 0, 360, col, -1, cv2.LINE_AA, S)
    return rgb, alpha, P


def _paste(image: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, cx: float, cy: float, angle: float) -> None:
    """Rotate the patch by ``angle`` degrees about its centre and alpha-blend it centred at (cx, cy)."""
    P = rgb.shape[0]
    m = cv2.getRotationMatrix2D((P / 2, P / 2), angle, 1.0)
    m[0, 2] += cx - P / 2
    m[1, 2] += cy - P / 2
    h, w = image.shape[:2]
    # Warp only the part of the frame the patch can reach.
    x0, y0 = max(0, int(cx - P)), max(0, int(cy - P))
    x1, y1 = min(w, int(cx + P) + 1), min(h, int(cy + P) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    m[0, 2] -= x0
    m[1, 2] -= y0
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderValue=0).astype(np.float32)[..., None] / 255.0
    region = image[y0:y1, x0:x1]
    region[...] = (warped * a + region * (1 - a) + 0.5).astype(np.uint8)


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
        rgb, alpha, _ = _distractor_patch(rng, r)
        _paste(image, rgb, alpha, cx, cy, rng.uniform(-60, 60))
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
        rgb, alpha, _ = _face_patch(rng, a, b)
        _paste(image, rgb, alpha, cx, cy, angle)
        # cv2 rotates counter-clockwise for positive angles in image coordinates; the ellipse angle is clockwise.
        face = Face.from_ellipse(cx, cy, a, b, -angle)
        if face.clipped(size, size) is not None:
            faces.append(face)
    if rng.random() < 0.3:  # sensor noise
        noise = rng.normal(0, rng.uniform(2, 6), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, faces, distractors


# --------------------------------------------------------------------------- the dataset

_STATE: dict = {}


def _init(cfg: SynthConfig, root: str, in_pool: bool) -> None:
    if in_pool:
        quiet_worker_signals()
    _STATE.update(cfg=cfg, root=Path(root), settings=cfg.blur_settings(), backgrounds=load_backgrounds())


def _make(task: tuple[int, str]) -> dict:
    index, split = task
    cfg: SynthConfig = _STATE["cfg"]
    rng = np.random.default_rng([cfg.seed, index])
    image, faces, distractors = draw_sample(rng, cfg.size, _STATE["backgrounds"], cfg.max_faces, cfg.face_scale,
                                            cfg.max_distractors)
    blurred, mask = blur_faces(image, faces, _STATE["settings"])
    stem = f"{index:05d}"
    img_dir, blur_dir, mask_dir = split_dirs(_STATE["root"], split)
    write_image(img_dir / f"{stem}.png", image)
    write_image(blur_dir / f"{stem}.png", blurred)
    write_image(mask_dir / f"{stem}.png", mask)
    return {"image": f"{split}/{stem}.png", "split": split, "source": f"synth:{cfg.seed}:{index}",
            "faces": faces, "distractors": [d.to_dict() for d in distractors], "index": index}


def synthesize_dataset(cfg: SynthConfig) -> dict:
    """Write a synthetic dataset to ``cfg.out`` (layout of DESIGN.md §4); returns its manifest."""
    cfg.validate()
    out = Path(cfg.out)
    t0 = time.time()
    tmp = prepare_out(out, cfg.overwrite)
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
        write_faces_jsonl(tmp / FACES, records)
        write_text_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        finish_out(tmp, out)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def synthesize(out: str | Path, count: int = 2000, size: int = 128, seed: int = 0, **options) -> dict:
    """Convenience entry for tests and the demo: ``synthesize(out, count, size, seed)`` → manifest."""
    return synthesize_dataset(SynthConfig(out=str(out), count=count, size=size, seed=seed, **options))
