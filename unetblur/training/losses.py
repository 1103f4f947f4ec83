"""Training losses. The thesis trained on plain MSE; the face-weighted loss spends more of the
error budget inside the face mask, where anonymisation actually happens, and an optional SSIM
term rewards the blur's structure rather than its mean colour.

Tensors: ``output``/``target`` N×3×H×W float in [0, 1]; ``mask`` N×1×H×W with 1 = face.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UnetblurError
from ..evaluate import metrics

LOSSES = ("mse", "face_weighted")
#: Losses of the face-mask channel (see :func:`mask_loss`).
MASK_LOSSES = ("bce", "bce_dice", "bce_dice_balanced")
#: ``bce_dice_balanced``: a face whose mask covers fewer pixels than this counts as if it covered this
#: many (a face ~30 px wide in its grown ellipse), at most :data:`BALANCE_CAP` times its own pixels.
BALANCE_AREA = 700.0
BALANCE_CAP = 8.0
#: :func:`face_miss_weights`: a face pixel predicted at least this likely counts as covered (the midpoint of
#: the probability; the package composites from 0.6, and a pixel at 0.5 is one small step from it).
MISS_THRESHOLD = 0.5


def face_weighted_mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      face_weight: float) -> torch.Tensor:
    """Weighted mean of (O−T)²: weight ``face_weight`` inside the mask, 1 outside.

    Normalised by the total weight, so ``face_weight=1`` is exactly the thesis's MSE.
    """
    weight = 1.0 + (face_weight - 1.0) * (mask > 0.5).to(output.dtype)
    weight = weight.expand_as(output)
    return ((output - target) ** 2 * weight).sum() / weight.sum()


class ReconstructionLoss:
    """The RGB loss: ``mse`` (thesis) or ``face_weighted``, plus ``ssim_weight · (1 − SSIM)``.

    Calling it returns ``(loss, parts)``, ``parts`` naming each term (for logging).
    """

    def __init__(self, kind: str = "mse", face_weight: float = 5.0, ssim_weight: float = 0.0):
        if kind not in LOSSES:
            raise UnetblurError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
        if face_weight < 1.0:
            raise UnetblurError(f"face_weight must be ≥ 1 (1 = plain MSE), got {face_weight}")
        if ssim_weight < 0.0:
            raise UnetblurError(f"ssim_weight must be ≥ 0, got {ssim_weight}")
        self.kind = kind
        self.face_weight = float(face_weight)
        self.ssim_weight = float(ssim_weight)

    def __call__(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.kind == "mse":
            pixel = F.mse_loss(output, target)
        else:
            pixel = face_weighted_mse(output, target, mask, self.face_weight)
        parts = {f"loss_{self.kind}": pixel}
        loss = pixel
        if self.ssim_weight > 0:
            ssim_term = 1.0 - metrics.ssim(output.float(), target.float())
            parts["loss_ssim"] = ssim_term
            loss = loss + self.ssim_weight * ssim_term
        return loss, parts


def face_components(mask: torch.Tensor) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Each image's faces as connected components (8-connected) of its 0/1 mask (N×1×H×W): per image
    ``(count, labels H×W int32 with 0 = background, pixel areas of labels 1…count)``."""
    binary = (mask > 0.5).to(torch.uint8).cpu().numpy()
    out = []
    for i in range(binary.shape[0]):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary[i, 0], connectivity=8)
        out.append((n - 1, labels, stats[1:, cv2.CC_STAT_AREA]))
    return out


def _per_face_weights(mask: torch.Tensor, components: list | None, weigh) -> torch.Tensor:
    """Per-pixel weights (N×1×H×W, float32): 1 on background, and on the pixels of each face the value
    ``weigh(image index, labels, pixel areas of labels 1…n)`` gives it (an array of n). ``components``:
    :func:`face_components` of ``mask``, or None to label them here."""
    weights = np.ones(mask.shape, np.float32)
    for i, (n, labels, areas) in enumerate(components if components is not None else face_components(mask)):
        if n:
            per_label = np.ones(n + 1, np.float32)
            per_label[1:] = weigh(i, labels, areas)
            weights[i, 0] = per_label[labels]
    return torch.from_numpy(weights).to(mask.device)


def face_balance_weights(mask: torch.Tensor, area: float = BALANCE_AREA, cap: float = BALANCE_CAP,
                         components: list | None = None) -> torch.Tensor:
    """Per-pixel weights (N×1×H×W, float32) that give each small face the weight of a face of ``area`` pixels.

    Pixels of a face (a connected component of the 0/1 mask, see :func:`face_components`) of ``a`` pixels
    weigh ``clip(area / a, 1, cap)``; background and large faces weigh 1. Pooled losses are otherwise ruled
    by the few large faces of a batch, and a missed 15-px face costs almost nothing. ``components``:
    :func:`face_components` of ``mask`` when the caller has them already.
    """
    return _per_face_weights(mask, components, lambda i, labels, areas: np.clip(area / np.maximum(areas, 1), 1.0, cap))


def face_peak_loss(mask_prob: torch.Tensor, mask: torch.Tensor, min_area: float = 0.0,
                   components: list | None = None) -> torch.Tensor:
    """Mean over the batch's faces (components of the 0/1 mask of at least ``min_area`` pixels) of
    ``−log(peak)``, ``peak`` the highest predicted probability inside the face; 0 for a batch without such faces.

    The compositor keeps a found region only if its peak reaches ``min_peak`` (0.95 for the package),
    so a small face whose mask rises to 0.9 everywhere is lost although its pixel losses are low. This
    term asks for one confident pixel per face, every face counting the same whatever its size, and
    leaves the background to the pixel losses. ``min_area`` leaves out faces smaller than the ones the
    operating point is judged on (experiments/full_photo/README.md, stages 19–20). ``components``:
    :func:`face_components` of ``mask`` when the caller has them already.
    """
    components = [(labels, areas >= min_area)
                  for _, labels, areas in (components if components is not None else face_components(mask))]
    total = sum(int(kept.sum()) for _, kept in components)
    if total == 0:
        return mask_prob.sum() * 0.0
    ids, offset = [], 0
    for labels, kept in components:
        slot = np.full(len(kept) + 1, total, np.int64)          # background and small faces → a spare slot, dropped
        slot[1:][kept] = offset + np.arange(int(kept.sum()))
        ids.append(slot[labels])
        offset += int(kept.sum())
    index = torch.from_numpy(np.stack(ids).astype(np.int64)).to(mask_prob.device).reshape(-1)
    with torch.autocast(device_type=mask_prob.device.type, enabled=False):
        p = mask_prob.float().reshape(-1)
        peaks = torch.zeros(total + 1, device=p.device).scatter_reduce(0, index, p, "amax", include_self=False)
        return -torch.log(peaks[:total].clamp(1e-6, 1.0)).mean()


def face_miss_weights(mask_prob: torch.Tensor, mask: torch.Tensor, strength: float,
                      components: list | None = None) -> torch.Tensor:
    """Per-pixel weights (N×1×H×W, float32) that make the faces the model misses cost more: the pixels of a
    face (a component of the 0/1 mask) weigh ``1 + strength · (1 − c)``, ``c`` the share of them predicted
    at least :data:`MISS_THRESHOLD` (detached); background pixels weigh 1.

    Online hard-face mining. The balanced loss weighs a face by its size only, so the many faces the
    student already covers pull as hard as the few it misses (profiles, dark and partly hidden faces:
    experiments/full_photo/README.md), and those few are what coverage lacks. ``components``:
    :func:`face_components` of ``mask`` when the caller has them already.
    """
    covered = (mask_prob.detach().float() >= MISS_THRESHOLD).cpu().numpy()

    def weight_by_miss(i: int, labels: np.ndarray, areas: np.ndarray) -> np.ndarray:
        hits = np.bincount(labels.ravel(), weights=covered[i, 0].ravel(), minlength=len(areas) + 1)[1:]
        return 1.0 + strength * (1.0 - hits / np.maximum(areas, 1))

    return _per_face_weights(mask, components, weight_by_miss)


def hard_negative_weights(mask_prob: torch.Tensor, mask: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-pixel weights (N×1×H×W) that make a background pixel the mask calls face cost more:
    ``1 + strength · p²`` where the target is background (``p`` the predicted probability, detached),
    1 on faces.

    Confident false positives (bushes, wheels, a face's blob running on over neck and body) are a
    small share of the background, so a plain mean lets them survive; they are what holds the
    compositor's threshold high. Squared, so a background pixel at 0.9 weighs ``1 + 0.81·strength``
    while the undecided ones near 0.2 barely change.
    """
    p = mask_prob.detach().float()
    return 1.0 + strength * p * p * (mask <= 0.5).float()


def mask_bce(mask_prob: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of the predicted face-mask channel (sigmoid probabilities, N×1×H×W), the
    mean weighted by ``weight`` (N×1×H×W) when given.

    Computed in float32 outside autocast: BCE on probabilities is not safe in half precision.
    """
    with torch.autocast(device_type=mask_prob.device.type, enabled=False):
        bce = F.binary_cross_entropy(mask_prob.float().clamp(1e-6, 1 - 1e-6), (mask > 0.5).float(),
                                     reduction="none")
        return bce.mean() if weight is None else (bce * weight).sum() / weight.sum()


def soft_dice_loss(mask_prob: torch.Tensor, mask: torch.Tensor, eps: float = 1.0,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 − soft Dice of the predicted mask against the 0/1 mask, pooled over the batch (N×1×H×W),
    each pixel counted ``weight`` times when given.

    Pooled, not per image, so a face-free image adds only its false positives; ``eps`` keeps an
    all-background batch at a finite, small loss.
    """
    with torch.autocast(device_type=mask_prob.device.type, enabled=False):
        p, m = mask_prob.float(), (mask > 0.5).float()
        w = torch.ones_like(m) if weight is None else weight.float()
        return 1.0 - (2.0 * (w * p * m).sum() + eps) / ((w * p).sum() + (w * m).sum() + eps)


def check_mask_loss_settings(hard_negative_weight: float = 0.0, balance_area: float | None = None,
                             peak_weight: float = 0.0, peak_min_area: float = 0.0,
                             mined_negative_weight: float = 0.0, miss_weight: float = 0.0) -> None:
    """Refuse mask-loss settings that cannot work (``balance_area`` None: the default, :data:`BALANCE_AREA`);
    the training configs call it before anything is written, :func:`mask_loss` on every call."""
    if hard_negative_weight < 0:
        raise UnetblurError(f"hard_negative_weight must be ≥ 0 (0 = off), got {hard_negative_weight}")
    if balance_area is not None and not balance_area > 0:
        raise UnetblurError(f"mask_balance_area must be > 0 (pixels), got {balance_area}")
    if peak_weight < 0:
        raise UnetblurError(f"mask_peak_weight must be ≥ 0 (0 = off), got {peak_weight}")
    if peak_min_area < 0:
        raise UnetblurError(f"mask_peak_min_area must be ≥ 0 (pixels), got {peak_min_area}")
    if mined_negative_weight < 0:
        raise UnetblurError(f"mined_negative_weight must be ≥ 0 (0 = off), got {mined_negative_weight}")
    if miss_weight < 0:
        raise UnetblurError(f"mask_miss_weight must be ≥ 0 (0 = off), got {miss_weight}")


def mask_loss(mask_prob: torch.Tensor, mask: torch.Tensor, kind: str = "bce",
              hard_negative_weight: float = 0.0, balance_area: float = BALANCE_AREA,
              peak_weight: float = 0.0, peak_min_area: float = 0.0, negative: torch.Tensor | None = None,
              mined_negative_weight: float = 0.0, miss_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """The face-mask channel's loss terms by name: ``bce`` alone, ``bce_dice`` (BCE + soft Dice, equal
    weight), or ``bce_dice_balanced`` (both with each face smaller than ``balance_area`` pixels weighted
    as one of that area, see :func:`face_balance_weights`). ``hard_negative_weight`` > 0 also weighs the
    BCE of background pixels by :func:`hard_negative_weights` (Dice already counts every false positive);
    ``peak_weight`` > 0 adds ``peak_weight`` × :func:`face_peak_loss` over faces of ≥ ``peak_min_area`` pixels
    (logged already weighted). ``negative`` (N×1×H×W, 1 on mined false positives, see unetblur/data/layout.py)
    weighs those pixels' BCE ``1 + mined_negative_weight``: unlike ``hard_negative_weight`` it charges only
    where a model was seen to fire on the training photo, not every confident background pixel.
    ``miss_weight`` > 0 weighs each face's pixels in both terms by :func:`face_miss_weights` (the faces the
    model misses count up to ``1 + miss_weight`` times).

    BCE on whole photos is dominated by the ~99 % background pixels, so a small face costs little when
    missed; Dice scores the overlap with the faces whatever their share of the image, but pooled over
    a batch it is still ruled by the large faces in it.
    """
    if kind not in MASK_LOSSES:
        raise UnetblurError(f"unknown mask loss {kind!r}; choose one of {', '.join(MASK_LOSSES)}")
    check_mask_loss_settings(hard_negative_weight, balance_area, peak_weight, peak_min_area, mined_negative_weight,
                             miss_weight)
    balanced = kind == "bce_dice_balanced"
    # Three terms need the faces as components; label them once per batch.
    components = face_components(mask) if balanced or peak_weight > 0 or miss_weight > 0 else None
    weight = face_balance_weights(mask, balance_area, components=components) if balanced else None
    if miss_weight > 0:
        missed = face_miss_weights(mask_prob, mask, miss_weight, components)
        weight = missed if weight is None else weight * missed
    bce_weight = weight
    if hard_negative_weight > 0:
        negatives = hard_negative_weights(mask_prob, mask, hard_negative_weight)
        bce_weight = negatives if bce_weight is None else bce_weight * negatives
    if mined_negative_weight > 0 and negative is not None:
        mined = 1.0 + mined_negative_weight * (negative > 0.5).float() * (mask <= 0.5).float()
        bce_weight = mined if bce_weight is None else bce_weight * mined
    parts = {"loss_mask_bce": mask_bce(mask_prob, mask, bce_weight)}
    if kind != "bce":
        parts["loss_mask_dice"] = soft_dice_loss(mask_prob, mask, weight=weight)
    if peak_weight > 0:
        parts["loss_mask_peak"] = peak_weight * face_peak_loss(mask_prob, mask, peak_min_area, components)
    return parts
