"""Loading for training: a paired Dataset and a LightningDataModule.

Augmentation (torchvision.transforms.v2) is applied identically to image, target and mask: flips,
rotations of a share ``rotate`` of the samples (the blur is an isotropic Gaussian, so a rotated target is the
blur of the rotated input), and random crops when ``crop_size`` is set. Colour jitter is not used because the
target must stay the blur of exactly this input; ``dim`` changes only gain and offset, which the
blur commutes with (see :func:`dim_pair`), and ``soften`` applies one small Gaussian blur to both, which
commutes with the (Gaussian) face blur away from a face region's edge (see :func:`soften_pair`); ``occlude`` hides
part of one face in both and keeps its mask (see :func:`occlude_pair`); ``paste`` copies one face, smaller, to
another place in all three (see :func:`paste_face`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import BadInputError, UnetblurError
from ..io import read_image, read_mask
from .layout import dataset_folders, list_samples, require_dataset


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 RGB → CHW float32 in [0, 1]."""
    return _unit_float(_chw(image))


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """CHW float in [0, 1] → HWC uint8 RGB (rounded)."""
    return (tensor.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())


class PairedDataset(Dataset):
    """Items are dicts: ``image`` and ``target`` (3×H×W float in [0, 1]), ``mask`` and ``negative``
    (1×H×W, 0/1: faces, mined false positives), ``stem``. A missing mask or negative map reads as all zeros.

    ``cache``: keep each decoded sample in memory after its first read (uint8, about 1.6 MB per 480×480
    sample; per loader worker). Decoding the three PNGs of a sample is a sixth of a training step of
    the whole-photo student on 2 CPU cores (2.04 vs 1.74 steps/s with the cache), paid every epoch without it.
    """

    def __init__(self, root: str | os.PathLike, split: str, transform=None, limit: int | None = None,
                 cache: bool = False, dim: float = 0.0, soften: float = 0.0, occlude: float = 0.0,
                 paste: float = 0.0):
        self.root = Path(root)
        self.split = split
        self.samples = list_samples(root, split)[:limit]
        self.transform = transform
        self.dim = float(dim)
        self.soften = float(soften)
        self.occlude = float(occlude)
        self.paste = float(paste)
        self._decoded: dict[int, tuple[np.ndarray, ...]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        sample = self._decoded.get(i) if self._decoded is not None else None
        if sample is None:
            sample = self._read(s)
            if self._decoded is not None:
                self._decoded[i] = sample
        image, target, mask, negative = sample
        # Augment in uint8, convert the crop: converting the whole stored image to float first was wasted
        # work (a 480-px photo cropped to 192 px: 25 → 22 ms per item on a busy core). Every step below
        # makes new tensors, so a cached sample is never changed.
        item = {"image": tv_tensors.Image(_chw(image)), "target": tv_tensors.Image(_chw(target)),
                "mask": tv_tensors.Mask(torch.from_numpy(mask)[None])}
        if negative is not None:  # most datasets have no maps: no zeros to decode, cache and augment then
            item["negative"] = tv_tensors.Mask(torch.from_numpy(negative)[None])
        if self.paste and float(torch.rand(())) < self.paste:
            # On the whole stored sample, before any crop: crops cut most faces, and only whole ones are copied.
            pasted = paste_face(_unit_float(item["image"]), _unit_float(item["target"]), item["mask"] > 127)
            item.update(image=tv_tensors.Image(_to_uint8(pasted[0])), target=tv_tensors.Image(_to_uint8(pasted[1])),
                        mask=tv_tensors.Mask(pasted[2].to(torch.uint8) * 255))
        if self.transform is not None:
            item = self.transform(item)
        face = (item["mask"].as_subclass(torch.Tensor) > 127).float()
        mined = (item["negative"].as_subclass(torch.Tensor) > 127).float() if "negative" in item \
            else torch.zeros_like(face)
        image, target = _unit_float(item["image"]), _unit_float(item["target"])
        if self.dim and float(torch.rand(())) < self.dim:
            image, target = dim_pair(image, target)
        if self.soften and float(torch.rand(())) < self.soften:
            image, target = soften_pair(image, target)
        if self.occlude and float(torch.rand(())) < self.occlude:
            image, target = occlude_pair(image, target, face)
        return {"image": image, "target": target, "mask": face, "negative": mined, "stem": s.stem}

    def _read(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        image, target = read_image(s.image), read_image(s.target)
        if image.shape != target.shape:
            raise BadInputError(s.target, f"target is {target.shape[1]}x{target.shape[0]} but its input is "
                                          f"{image.shape[1]}x{image.shape[0]}")

        def single_channel(path, role: str) -> np.ndarray:
            m = read_mask(path)
            if m.shape != image.shape[:2]:
                raise BadInputError(path, f"{role} is {m.shape[1]}x{m.shape[0]} but its input is "
                                          f"{image.shape[1]}x{image.shape[0]}")
            return np.ascontiguousarray(m)

        mask = single_channel(s.mask, "mask") if s.mask is not None else np.zeros(image.shape[:2], np.uint8)
        negative = single_channel(s.negative, "negative map") if s.negative is not None else None
        return image, target, mask, negative


#: ``dim``'s darkest gain: a mid-grey face at 0.3 of its brightness and contrast is darker than the faces the
#: student misses most (32-64 px faces of mean grey < 0.25 on val: 0.48 covered against 0.79 for the others).
DIM_MIN_GAIN = 0.3


def dim_pair(image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same darker, flatter exposure for an input and its target (values in [0, 1]): x → g·x + b, gain g
    log-uniform in [DIM_MIN_GAIN, 1], offset b uniform in [0, (1 − g)/4] (a lifted black level; anything
    brighter than a quarter grey ends darker). Values stay in [0, 1], nothing is clipped, and the blur is
    linear with weights summing to 1, so the target stays the blur of the new input (within the stored
    targets' rounding)."""
    gain = math.exp(float(torch.empty(()).uniform_(math.log(DIM_MIN_GAIN), 0.0)))
    offset = float(torch.empty(()).uniform_(0.0, (1.0 - gain) / 4))
    return image * gain + offset, target * gain + offset


#: ``soften``'s range of Gaussian sigmas, in pixels of the stored sample (the working resolution): a mild defocus,
#: because the 32-64 px faces the student misses are half as sharp as those it covers (mean |Laplacian| 0.032
#: against 0.068 on val).
SOFTEN_SIGMA = (0.5, 1.5)


def soften_pair(image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Gaussian blur, sigma uniform in :data:`SOFTEN_SIGMA`, for an input and its target (CHW, [0, 1]):
    an out-of-focus or upscaled photo. Gaussian blurs commute, so inside and outside each face region the
    target stays the blur of the new input; within about 3 sigma of a region's edge the blend of blurred and
    sharp pixels is softened too (the student's mask target, not this, says where the face ends)."""
    sigma = float(torch.empty(()).uniform_(*SOFTEN_SIGMA))

    def blurred(t: torch.Tensor) -> torch.Tensor:
        hwc = np.ascontiguousarray(t.permute(1, 2, 0).numpy())
        return torch.from_numpy(cv2.GaussianBlur(hwc, (0, 0), sigma).reshape(hwc.shape)).permute(2, 0, 1)

    return blurred(image), blurred(target)


#: ``occlude``'s share of a face's box hidden, from one side: a hand, a shoulder or another head in front of it.
OCCLUDE_SHARE = (0.2, 0.5)


def occlude_pair(image: torch.Tensor, target: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One face of ``face`` (1×H×W, 0/1; a sample without faces is returned as it is) partly hidden: a band of
    :data:`OCCLUDE_SHARE` of its box, from a random side, is covered in input and target alike with pixels from
    elsewhere in the same input (their texture, not a flat patch). The mask keeps the whole face: a blurrer
    must still blur a partly hidden face. The occluder stays sharp in the target, where a face's blur would
    blur it, so the lesson is the mask's (composite mode reads only the mask)."""
    count, _, boxes, _ = cv2.connectedComponentsWithStats(face[0].numpy().astype(np.uint8), connectivity=8)
    boxes = [b for b in boxes[1:count] if b[4] >= 16]  # faces of at least 4×4 pixels
    if not boxes:
        return image, target
    x, y, w, h, _ = (int(v) for v in boxes[int(torch.randint(len(boxes), ()))])
    share = float(torch.empty(()).uniform_(*OCCLUDE_SHARE))
    side = int(torch.randint(4, ()))  # left, right, top, bottom
    if side < 2:
        bw, bh = max(1, round(w * share)), h
        bx, by = (x if side == 0 else x + w - bw), y
    else:
        bw, bh = w, max(1, round(h * share))
        bx, by = x, (y if side == 2 else y + h - bh)
    height, width = image.shape[1:]
    sy, sx = int(torch.randint(height - bh + 1, ())), int(torch.randint(width - bw + 1, ()))
    patch = image[:, sy:sy + bh, sx:sx + bw].clone()
    image, target = image.clone(), target.clone()
    image[:, by:by + bh, bx:bx + bw] = patch
    target[:, by:by + bh, bx:bx + bw] = patch
    return image, target


#: ``paste``'s scale of the copied face against the one it is copied from: a copy 0.4–0.8 as wide, so the faces
#: of 40–100 px the student covers well (0.95 on val) also appear at the 20–40 px where it misses them.
PASTE_SCALE = (0.4, 0.8)
#: Tries to find a place for the copy that touches no face (its own mask and every other one stay true).
PASTE_TRIES = 10


def paste_face(image: torch.Tensor, target: torch.Tensor, face: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A smaller copy of one face of ``face`` (1×H×W, 0/1 or bool) pasted elsewhere in the same sample, input
    from the input and target from the target, blended in through the face's own mask (so no rectangular seam
    tells where it was pasted), and added to the mask; ``(image, target, face)``, the mask as 0/1 float.

    The copy is :data:`PASTE_SCALE` as wide as its source and lands where it touches no face; a sample without
    a whole face (one the sample's edge does not cut) of at least 8×8 pixels, or without room for the copy, is
    returned as it is. Copy-paste augmentation: the training photos hold few faces at the size the student
    misses most, and many larger ones."""
    face = face.as_subclass(torch.Tensor).float()
    count, labels, boxes, _ = cv2.connectedComponentsWithStats(face[0].numpy().astype(np.uint8), connectivity=8)
    height, width = image.shape[1:]
    # Whole faces only: a face the crop cuts would be pasted as a stray chin or cheek labelled "face".
    sources = [k for k in range(1, count) if min(boxes[k][2], boxes[k][3]) >= 8 and boxes[k][0] > 0 and
               boxes[k][1] > 0 and boxes[k][0] + boxes[k][2] < width and boxes[k][1] + boxes[k][3] < height]
    if not sources:
        return image, target, face
    k = sources[int(torch.randint(len(sources), ()))]
    x, y, w, h = (int(v) for v in boxes[k][:4])
    scale = float(torch.empty(()).uniform_(*PASTE_SCALE))
    pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
    if pw >= width or ph >= height:
        return image, target, face
    for _ in range(PASTE_TRIES):
        py, px = int(torch.randint(height - ph + 1, ())), int(torch.randint(width - pw + 1, ()))
        if not bool(face[0, py:py + ph, px:px + pw].any()):
            break
    else:
        return image, target, face

    def shrunk(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t[None, :, y:y + h, x:x + w], size=(ph, pw), mode="bilinear", align_corners=False,
                             antialias=True)[0]

    alpha = shrunk((torch.from_numpy(labels) == k).float()[None]).clamp(0.0, 1.0)
    image, target, face = image.clone(), target.clone(), face.clone()
    for out, src in ((image, shrunk(image)), (target, shrunk(target))):
        region = out[:, py:py + ph, px:px + pw]
        region.mul_(1.0 - alpha).add_(alpha * src)
    face[:, py:py + ph, px:px + pw] = (alpha > 0.5).float()
    return image, target, face


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def _unit_float(image: torch.Tensor) -> torch.Tensor:
    return image.as_subclass(torch.Tensor).float().div_(255.0)


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class RandomZoomCrop(v2.Transform):
    """A random square window of side ``size / z`` (z log-uniform in [1, ``zoom``]) resized to ``size``.

    z = 1 is a plain random crop at the stored scale; larger z shows the faces z× larger, as a
    larger working size of ``unetblur blur`` would. Images smaller than the window are padded with
    black first (like ``RandomCrop(pad_if_needed=True)``). Masks are resampled nearest-neighbour.
    """

    def __init__(self, size: int, zoom: float = 1.0):
        super().__init__()
        self.size, self.zoom = int(size), float(zoom)

    def make_params(self, flat_inputs: list) -> dict:
        h, w = v2.query_size(flat_inputs)
        z = math.exp(float(torch.empty(1).uniform_(0.0, math.log(self.zoom)))) if self.zoom > 1 else 1.0
        side = max(1, round(self.size / z))
        top = int(torch.randint(0, max(h - side, 0) + 1, (1,)))
        left = int(torch.randint(0, max(w - side, 0) + 1, (1,)))
        return {"top": top, "left": left, "side": side, "pad": (max(0, side - w), max(0, side - h))}

    def transform(self, inpt, params: dict):
        pad_w, pad_h = params["pad"]
        if pad_w or pad_h:
            inpt = v2.functional.pad(inpt, [0, 0, pad_w, pad_h])
        return v2.functional.resized_crop(inpt, params["top"], params["left"], params["side"], params["side"],
                                          [self.size, self.size], antialias=True)


#: ``rotate``'s range of angles, in degrees either way: heads tilted in crowds and group photos, and the faces
#: the student misses include tilted and turned ones (experiments/full_photo/README.md, "Where the gap is").
ROTATE_DEGREES = 30.0


def joint_augmentation(crop_size: int | None = None, hflip: bool = True, zoom: float = 1.0,
                       rotate: float = 0.0) -> v2.Compose | None:
    """Geometric augmentation applied identically to image, target and mask: random crops of ``crop_size``
    (zoomed in up to ``zoom``×, see :class:`RandomZoomCrop`), for a share ``rotate`` of the samples a rotation
    by up to :data:`ROTATE_DEGREES` (bilinear, masks nearest), and horizontal flips. With ``rotate`` the crop
    is cut large enough to hold a turned crop of ``crop_size`` and its centre kept, so no black corners come in
    (without a crop size the turned sample's corners are black, like a letterbox's bars); turning the crop
    rather than the stored sample costs a sixth as much (7 against 44 ms per 640-px sample on one core)."""
    turn = math.radians(ROTATE_DEGREES)
    window = math.ceil(crop_size * (math.cos(turn) + math.sin(turn))) if crop_size and rotate else crop_size
    ops = []
    if crop_size:
        ops.append(RandomZoomCrop(window, zoom))
    if rotate:
        ops.append(v2.RandomApply([v2.RandomRotation(ROTATE_DEGREES, v2.InterpolationMode.BILINEAR)], p=rotate))
    if window != crop_size:
        ops.append(v2.CenterCrop(crop_size))
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    return v2.Compose(ops) if ops else None


class BlurDataModule(pl.LightningDataModule):
    """Train/val/test loaders over dataset folders in the layout of DESIGN.md §4.

    ``root``: one folder, or several joined by commas (each split is the concatenation of theirs;
    ``limit`` applies per folder).
    """

    def __init__(self, root: str | os.PathLike, batch_size: int = 16, num_workers: int = 0,
                 augment: bool = True, crop_size: int | None = None, limit: int | None = None, seed: int = 0,
                 zoom: float = 1.0, cache: bool = False, dim: float = 0.0, soften: float = 0.0,
                 rotate: float = 0.0, occlude: float = 0.0, paste: float = 0.0):
        super().__init__()
        self.roots = dataset_folders(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.crop_size = crop_size
        self.limit = limit
        self.seed = seed
        self.zoom = zoom
        self.cache = cache
        self.dim = dim
        self.soften = soften
        self.rotate = rotate
        self.occlude = occlude
        self.paste = paste

    def _split(self, split: str, transform, **per_sample: float) -> Dataset:
        parts = [PairedDataset(root, split, transform, self.limit, self.cache, **per_sample) for root in self.roots]
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def setup(self, stage: str | None = None) -> None:
        for root in self.roots:
            require_dataset(root, "train")
        train_tf = joint_augmentation(self.crop_size, zoom=self.zoom, rotate=self.rotate) if self.augment else None
        eval_tf = v2.CenterCrop(self.crop_size) if self.crop_size else None
        per_sample = dict(dim=self.dim, soften=self.soften, occlude=self.occlude, paste=self.paste) \
            if self.augment else {}
        self.train_set = self._split("train", train_tf, **per_sample)  # training samples only
        self.val_set = self._split("val", eval_tf)
        self.test_set = self._split("test", eval_tf)
        if len(self.val_set) == 0:
            raise UnetblurError(f"{','.join(map(str, self.roots))}: the val split is empty; rebuild the dataset "
                                "with a val share > 0")

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, generator=gen if shuffle else None,
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
