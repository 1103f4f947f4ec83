"""Which of a composite student's regions damage the background, and what choosing among them could buy.

The compositor keeps every connected region of the student's mask that reaches ``min_peak`` and blurs it
(plus the face ellipse it implies). Each region is labelled against the photo's annotated faces and the
faces full-scale CenterFace finds (score ≥ 0.3):

* ``annotated``: it holds ≥ 30 % of an annotated face's box (keeping it covers that face);
* ``detector only``: it holds ≥ 30 % of a face only CenterFace finds (a real person the annotation lacks,
  or CenterFace's own mistake);
* ``no face``: it touches no face at all (< 5 % of any face's box and of its own box): a false region;
* in between: the rest.

Modes (val only: the test photos are for the final table):

``decompose``  bg_changed of the package's point split by the regions that cause it; the annotated
               faces' share by their width.
``oracle``     each point as it is, and with every ``no face`` region dropped: the most a perfect region
               verifier could buy.
``verifier``   a small CNN trained on the train photos' regions (32-px window, 1.5 face sizes wide, RGB
               and the student's map; ``no face`` = 0, faces = 1) and run in the loop: a region is kept
               when its peak ≥ min_peak and the CNN says ≥ ``cut``.
``extent``     regions implying a face ≥ S px blurred only where the map reaches a higher threshold, and
               over those cores' face ellipses grown by a factor (a large face's fringe is hair, neck and
               shoulders, outside the ruler's 1.5× box).

    python experiments/full_photo/region_study.py decompose
    python experiments/full_photo/region_study.py oracle
    python experiments/full_photo/region_study.py verifier     # collects runs/region_study/*.npz first
    python experiments/full_photo/region_study.py extent
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from unetblur.detectors import open_detector
from unetblur.evaluate import metrics as M
from unetblur.evaluate.photos import TARGET_BUCKETS, held_out_photos
from unetblur.io import read_image
from unetblur.runtime.composite import composite_faces, working_scale
from unetblur.runtime.factory import open_blurrer

DATA = "runs/datasets/wider_lb320,runs/datasets/fddb_lb320"
PACKAGE = "unetblur/assets/student_int8.onnx"
OUT = Path("runs/region_study")
POSITIVE_SHARE = 0.3     # a region holding this share of a face's box keeps that face covered
TOUCH_SHARE = 0.05       # under this share of every face (and of the region) a region touches no face
WINDOW, CONTEXT = 32, 1.5
#: (threshold, min_peak) points searched: the package's, and looser ones that cover more faces.
POINTS = ((0.6, 0.95), (0.6, 0.6), (0.5, 0.95), (0.5, 0.8), (0.45, 0.9))


def label_region(box, annotated, detected) -> tuple[int, float]:
    """``(1 face / 0 no face / -1 in between, width of the widest annotated face it covers or 0)``."""
    x1, y1, x2, y2 = box
    area = max(1.0, (x2 - x1) * (y2 - y1))
    best, width, touches = 0.0, 0.0, False
    for face, is_annotated in [(f, True) for f in annotated] + [(f, False) for f in detected]:
        inter = max(0.0, min(x2, face.x2) - max(x1, face.x1)) * max(0.0, min(y2, face.y2) - max(y1, face.y1))
        share = inter / max(1.0, face.width * face.height)
        best = max(best, share)
        if is_annotated and share >= POSITIVE_SHARE:
            width = max(width, face.width)
        touches |= share >= TOUCH_SHARE or inter / area >= TOUCH_SHARE
    return (1 if best >= POSITIVE_SHARE else -1 if touches else 0), width


class Study:
    """The package with min_peak 0 (every candidate region; each mode sets the threshold) over one split's photos."""

    def __init__(self, split: str = "val"):
        self.blurrer = open_blurrer(PACKAGE, mode="composite", min_peak=0.0)
        self.detector = open_detector("centerface", threshold=0.3)
        self.photos = held_out_photos(DATA, split)

    def regions(self, image, prob, cell, threshold: float):
        self.blurrer.threshold = threshold
        return self.blurrer.components(prob, image.shape[:2], cell)

    def __iter__(self):
        """``(photo, image, prob, cell)`` per photo."""
        for photo in self.photos:
            image = read_image(photo.path)
            yield (photo, image) + self.blurrer.face_map(image)

    def blur(self, image, regions):
        return composite_faces(image, regions, self.blurrer)[0]


class Scores:
    """Coverage per bucket and bg_changed of one variant, accumulated photo by photo."""

    def __init__(self):
        self.bg, self.detail, self.widths = [], [], []

    def add(self, output, image, faces):
        self.bg.append(M.bg_changed(output, image, faces))
        self.detail += [M.detail_removed(output, image, f) for f in faces]
        self.widths += [f.width for f in faces]

    def row(self, name: str) -> str:
        groups = M.group_by_bucket(self.detail, self.widths)
        wide = [d for b in TARGET_BUCKETS for d in groups[b]]
        return (f"| {name} | {M.coverage(wide):.3f} | {M.coverage(groups['16-32']):.3f} | "
                f"{M.coverage(groups['32-64']):.3f} | {M.coverage(groups['64-128']):.3f} | "
                f"{M.coverage(groups['>=128']):.3f} | {100 * np.nanmean(self.bg):.2f} % |")


HEADER = "| point | cov ≥ 32 | 16–32 | 32–64 | 64–128 | ≥ 128 | bg |\n|---|---|---|---|---|---|---|"


def print_table(scores: dict) -> None:
    print(HEADER)
    for name, s in sorted(scores.items(), key=lambda kv: np.nanmean(kv[1].bg)):
        print(s.row(name))


def decompose(study: Study) -> None:
    groups = ("all", "annotated", "annotated < 64 px", "annotated 64-128 px", "annotated >= 128 px",
              "detector only", "no face", "in between")
    shares = {g: [] for g in groups}
    for photo, image, prob, cell in study:
        detected = study.detector.detect(image)
        regions = [r for r in study.regions(image, prob, cell, 0.6) if r[2] >= 0.95]
        picked = {g: [] for g in groups}
        for r in regions:
            label, width = label_region(r[1], photo.faces, detected)
            picked["all"].append(r)
            if label == 1 and width:
                picked["annotated"].append(r)
                picked["annotated < 64 px" if width < 64 else "annotated 64-128 px" if width < 128
                       else "annotated >= 128 px"].append(r)
            else:
                picked["detector only" if label == 1 else "no face" if label == 0 else "in between"].append(r)
        background = M.background_mask(image.shape[:2], photo.faces)
        for g, rs in picked.items():
            changed = M.changed_pixels(study.blur(image, rs), image) & background
            shares[g].append(changed.sum() / background.sum() if background.any() else np.nan)
    print("| regions | share of the background they change (mean over photos) |\n|---|---|")
    for g in groups:
        print(f"| {g} | {100 * np.nanmean(shares[g]):.2f} % |")


def oracle(study: Study) -> None:
    scores = {}
    for photo, image, prob, cell in study:
        detected = study.detector.detect(image)
        for t, peak in POINTS:
            regions = [r for r in study.regions(image, prob, cell, t) if r[2] >= peak]
            kept = [r for r in regions if label_region(r[1], photo.faces, detected)[0] != 0]
            for name, rs in ((f"{t} / {peak}", regions), (f"{t} / {peak}, no-face regions dropped", kept)):
                scores.setdefault(name, Scores()).add(study.blur(image, rs), image, photo.faces)
    print_table(scores)


def extent(study: Study) -> None:
    # (tighter threshold, from which implied face width, the tight cores' ellipse grown by)
    variants = ((None, 0, 1.0), (0.8, 64, 1.0), (0.9, 64, 1.0), (0.9, 128, 1.0), (0.9, 64, 1.2), (0.9, 64, 1.3),
                (0.8, 64, 1.2))
    scores = {}
    for photo, image, prob, cell in study:
        tight = {t: study.regions(image, prob, cell, t) for t in (0.8, 0.9)}
        for t, peak in ((0.6, 0.95), (0.5, 0.9), (0.5, 0.8), (0.45, 0.8)):
            regions = [r for r in study.regions(image, prob, cell, t) if r[2] >= peak]
            for tight_t, size, grow in variants:
                small, cores = [], []
                for r in regions:
                    if tight_t is None or study.blurrer.face_from_box(r[1], r[2]).width < size:
                        small.append(r)
                    else:   # the tighter regions whose centre lies in this one
                        x1, y1, x2, y2 = r[1]
                        cores += [q for q in tight[tight_t]
                                  if x1 <= (q[1][0] + q[1][2]) / 2 <= x2 and y1 <= (q[1][1] + q[1][3]) / 2 <= y2]
                output = study.blur(image, small)
                study.blurrer.grow = grow
                output = study.blur(output, cores)
                study.blurrer.grow = 1.0
                name = f"{t} / {peak}" + (f", ≥ {size} px to {tight_t}, grown {grow}" if tight_t else "")
                scores.setdefault(name, Scores()).add(output, image, photo.faces)
    print_table(scores)


# --------------------------------------------------------------------------- the learned verifier

def windows(image, prob, cell, blurrer, faces) -> np.ndarray:
    """N×S×S×4 uint8: per face, the square CONTEXT face sizes wide about its centre, from the photo (RGB) and
    the student's map (×255), each resized to WINDOW (edges repeated outside the frame)."""
    map_per_px = working_scale(*image.shape[:2], blurrer.working_size) / cell
    out = np.empty((len(faces), WINDOW, WINDOW, 4), np.uint8)
    for i, face in enumerate(faces):
        cx, cy = face.center
        half = max(1.0, CONTEXT * face.size / 2)
        out[i, ..., :3] = _square(image, cx, cy, half, 1.0)
        out[i, ..., 3] = np.clip(_square(prob, cx, cy, half, map_per_px) * 255 + 0.5, 0, 255)
    return out


def _square(plane, cx, cy, half, per_px):
    h, w = plane.shape[:2]
    x1, x2 = int(np.floor((cx - half) * per_px)), int(np.ceil((cx + half) * per_px))
    y1, y2 = int(np.floor((cy - half) * per_px)), int(np.ceil((cy + half) * per_px))
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    window = plane[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if window.size == 0:
        return np.zeros((WINDOW, WINDOW) + plane.shape[2:], plane.dtype)
    pads = (max(0, -y1), max(0, y2 - h), max(0, -x1), max(0, x2 - w))
    if any(pads):
        window = cv2.copyMakeBorder(window, *pads, cv2.BORDER_REPLICATE)
    shrink = window.shape[0] > WINDOW
    return cv2.resize(window, (WINDOW, WINDOW), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def collect(split: str) -> dict:
    """Every region at threshold 0.6 (no min_peak) of ``split``'s photos: windows, labels and peaks (cached)."""
    path = OUT / f"{split}.npz"
    if path.is_file():
        return dict(np.load(path))
    study = Study(split)
    cols = {"window": [], "label": [], "peak": []}
    for photo, image, prob, cell in study:
        detected = study.detector.detect(image)
        regions = study.regions(image, prob, cell, 0.6)
        faces = [study.blurrer.face_from_box(r[1], r[2]) for r in regions]
        cols["window"] += list(windows(image, prob, cell, study.blurrer, faces))
        cols["label"] += [label_region(r[1], photo.faces, detected)[0] for r in regions]
        cols["peak"] += [r[2] for r in regions]
    OUT.mkdir(parents=True, exist_ok=True)
    data = {k: np.asarray(v) for k, v in cols.items()}
    np.savez_compressed(path, **data)
    return data


def _network(width: int = 16):
    import torch.nn as nn

    def block(i, o, s):
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
    return nn.Sequential(block(4, width, 1), block(width, width, 2), block(width, 2 * width, 2),
                         block(2 * width, 3 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3 * width, 1))


def _tensor(window):
    import torch
    return torch.from_numpy(np.ascontiguousarray(window)).permute(0, 3, 1, 2).float() / 255.0


def train_verifier(data: dict, epochs: int = 30):
    """The CNN fitted to the labelled (0/1) regions, with flips and brightness jitter."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    keep = data["label"] >= 0
    x_all, y_all = _tensor(data["window"][keep]), torch.from_numpy(data["label"][keep]).float()
    net = _network()
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    steps = epochs * -(-len(x_all) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x_all)).split(128):
            x = x_all[idx].clone()
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(3)
            gain, shift = 0.7 + 0.6 * torch.rand(len(x), 1, 1, 1), 0.1 * (torch.rand(len(x), 1, 1, 1) - 0.5)
            x[:, :3] = (x[:, :3] * gain + shift).clamp(0, 1)
            loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def auc(labels, scores) -> float:
    """Area under the ROC curve of ``scores`` for labels 1 vs 0 (rank statistic)."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def verifier(study: Study) -> None:
    import torch

    net = train_verifier(collect("train"))
    val = collect("val")
    with torch.no_grad():
        score = torch.sigmoid(net(_tensor(val["window"])).squeeze(1)).numpy()
    known = val["label"] >= 0
    print(f"val regions at 0.6: {known.sum()} labelled; AUC of the CNN {auc(val['label'][known], score[known]):.3f}, "
          f"of the peak alone {auc(val['label'][known], val['peak'][known]):.3f}\n")
    scores = {}
    for photo, image, prob, cell in study:
        for t in (0.5, 0.55, 0.6):
            regions = study.regions(image, prob, cell, t)
            faces = [study.blurrer.face_from_box(r[1], r[2]) for r in regions]
            with torch.no_grad():
                says = torch.sigmoid(net(_tensor(windows(image, prob, cell, study.blurrer, faces))).squeeze(1)).numpy() \
                    if regions else np.zeros(0)
            for peak in (0.8, 0.9, 0.95):
                for cut in (0.0, 0.1, 0.2, 0.3, 0.4):
                    kept = [r for r, s in zip(regions, says) if r[2] >= peak and s >= cut]
                    scores.setdefault(f"{t} / {peak}, CNN ≥ {cut}", Scores()).add(study.blur(image, kept), image,
                                                                                  photo.faces)
    print_table(scores)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("decompose", "oracle", "verifier", "extent"))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)   # the student's ONNX Runtime session takes the other core
    {"decompose": decompose, "oracle": oracle, "verifier": verifier, "extent": extent}[args.mode](Study("val"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
