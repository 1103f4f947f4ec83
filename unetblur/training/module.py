"""``BlurModule``: the Lightning system around a U-Net (model ≠ system ≠ data).

It owns the loss, the metrics of DESIGN.md §4 and the optimiser. Subclasses (``DistillModule``)
change only :meth:`BlurModule.compute_loss`; :meth:`BlurModule.shared_step` and
:meth:`BlurModule.log_metrics` are reused as they are, so a teacher and a student log the same
columns and their curves compare directly.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn

from ..errors import UnetblurError
from ..evaluate import metrics
from ..models import has_mask_channel
from .losses import BALANCE_AREA, MASK_LOSSES, ReconstructionLoss, mask_loss

#: Whole-image metrics logged for train/ and val/ every epoch, weighted by images.
IMAGE_METRICS = ("mse", "mae", "psnr", "ssim")
#: Masked metrics (DESIGN.md §4), weighted by the pixels of their region so the epoch value pools pixels.
FACE_METRICS = ("mse_face", "mae_face")
BACKGROUND_METRICS = ("mse_bg", "mae_bg", "psnr_bg")
METRIC_NAMES = IMAGE_METRICS + FACE_METRICS + BACKGROUND_METRICS
LR_DECAYS = ("exponential", "plateau", "none")


class BlurModule(pl.LightningModule):
    """Trains ``model`` (input N×3×H×W in [0, 1] → output N×C×H×W, RGB first, then the optional mask)
    to reproduce the blurred target.

    ``lr_decay``: ``exponential`` (multiply the rate by ``lr_gamma`` every epoch), ``plateau``
    (multiply by ``lr_gamma`` when val loss has not improved for ``lr_patience`` epochs) or ``none``.
    ``mask_weight`` scales the mask channel's loss (``mask_loss``: one of ``losses.MASK_LOSSES``) when the model has one;
    ``hard_negative_weight`` makes its confident false positives cost more (``losses.hard_negative_weights``);
    ``mask_balance_area`` is the face area (pixels) below which ``bce_dice_balanced`` weighs a face up
    (None: ``losses.BALANCE_AREA``); ``mask_peak_weight`` weighs ``losses.face_peak_loss`` (0 = off) over faces of
    ≥ ``mask_peak_min_area`` mask pixels; ``mined_negative_weight`` weighs the batch's mined false positives
    (its ``negative`` maps, ``losses.mask_loss``); ``mask_miss_weight`` weighs up the faces the model misses
    (``losses.face_miss_weights``, 0 = off).
    """

    def __init__(self, model: nn.Module, *, lr: float = 1e-3, weight_decay: float = 0.0,
                 lr_decay: str = "exponential", lr_gamma: float = 0.95, lr_patience: int = 3,
                 loss: str = "mse", face_weight: float = 5.0, ssim_weight: float = 0.0, mask_weight: float = 0.1,
                 mask_loss: str = "bce", hard_negative_weight: float = 0.0,
                 mask_balance_area: float | None = None, mask_peak_weight: float = 0.0,
                 mask_peak_min_area: float = 0.0, mined_negative_weight: float = 0.0,
                 mask_miss_weight: float = 0.0):
        super().__init__()
        if mask_loss not in MASK_LOSSES:
            raise UnetblurError(f"unknown mask_loss {mask_loss!r}; choose one of {', '.join(MASK_LOSSES)}")
        if lr_decay not in LR_DECAYS:
            raise UnetblurError(f"unknown lr_decay {lr_decay!r}; choose one of {', '.join(LR_DECAYS)}")
        if not lr > 0:
            raise UnetblurError(f"lr must be > 0, got {lr}")
        if not 0 < lr_gamma <= 1:
            raise UnetblurError(f"lr_gamma must be in (0, 1], got {lr_gamma}")
        # Plain values only, so Lightning checkpoints load with weights_only=True.
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.loss_fn = ReconstructionLoss(loss, face_weight, ssim_weight)
        self.has_mask_channel = has_mask_channel(model)

    # ------------------------------------------------------------------ forward / loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def split_output(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(RGB N×3×H×W, mask probability N×1×H×W or None)."""
        if self.has_mask_channel:
            return output[:, :3], output[:, 3:4]
        return output, None

    def compute_loss(self, output: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training objective for one batch: ``(loss, parts)``. ``output`` is the raw model output.

        Override in subclasses (distillation adds a term against the teacher); the metrics stay the same.
        """
        rgb, mask_prob = self.split_output(output)
        loss, parts = self.loss_fn(rgb, batch["target"], batch["mask"])
        if mask_prob is not None:
            # .get: checkpoints saved before an option existed lack its hyperparameter.
            h = self.hparams
            terms = mask_loss(mask_prob, batch["mask"], h.get("mask_loss", "bce"),
                              hard_negative_weight=h.get("hard_negative_weight", 0.0),
                              balance_area=h.get("mask_balance_area") or BALANCE_AREA,
                              peak_weight=h.get("mask_peak_weight", 0.0),
                              peak_min_area=h.get("mask_peak_min_area", 0.0), negative=batch.get("negative"),
                              mined_negative_weight=h.get("mined_negative_weight", 0.0),
                              miss_weight=h.get("mask_miss_weight", 0.0))
            parts.update(terms)
            loss = loss + self.hparams.mask_weight * sum(terms.values())
        return loss, parts

    # ------------------------------------------------------------------ steps

    def shared_step(self, batch: dict, prefix: str) -> torch.Tensor:
        """Forward, loss and every metric for one batch, logged under ``prefix`` (``train`` / ``val`` / ``test``)."""
        output = self(batch["image"])
        loss, parts = self.compute_loss(output, batch)
        n = batch["image"].shape[0]
        self.log(f"{prefix}/loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True,
                 prog_bar=prefix == "val")
        for name, value in parts.items():
            self.log(f"{prefix}/{name}", value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log_metrics(prefix, output, batch)
        return loss

    @torch.no_grad()
    def log_metrics(self, prefix: str, output: torch.Tensor, batch: dict) -> None:
        """Log the DESIGN.md §4 metrics of ``output`` against the batch's target.

        Lightning averages each over the epoch weighted by ``batch_size``: images for the whole-image
        metrics, region pixels for the masked ones (so an epoch's ``mse_face`` pools all face pixels,
        and a batch without faces simply adds nothing to it).
        """
        rgb, _ = self.split_output(output.detach())
        for name, (value, weight) in batch_metrics(rgb, batch["target"], batch["mask"]).items():
            self.log(f"{prefix}/{name}", value, on_step=False, on_epoch=True, batch_size=weight, sync_dist=True)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def on_train_epoch_start(self) -> None:
        if self._trainer is not None and self.trainer.optimizers:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("lr", lr, on_step=False, on_epoch=True, batch_size=1, sync_dist=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The val metrics at save time travel with the checkpoint, so fit() can put the best epoch's
        # numbers into model.pt without validating again. Plain floats: weights_only loading still works.
        if self._trainer is not None:
            checkpoint["unetblur_val_metrics"] = {k: finite_or_none(v) for k, v in self.trainer.callback_metrics.items()
                                                  if k.startswith("val/")}

    # ------------------------------------------------------------------ optimiser

    def trainable_parameters(self):
        """Parameters the optimiser updates (a distillation subclass leaves the frozen teacher out)."""
        return self.model.parameters()

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.trainable_parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_decay == "exponential" and hp.lr_gamma < 1:
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=hp.lr_gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if hp.lr_decay == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=hp.lr_gamma,
                                                               patience=hp.lr_patience)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss", "interval": "epoch"}}
        return opt


@torch.no_grad()
def batch_metrics(rgb: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    """Every metric of :data:`METRIC_NAMES` for one batch, with the weight that pools it over batches.

    ``rgb``/``target`` N×3×H×W in [0, 1], ``mask`` N×1×H×W (1 = face). Weights: images for whole-image
    metrics, face or background pixels for the masked ones; a masked metric whose region is empty in
    this batch is left out (it is NaN: not measurable). PSNR of identical images is capped at 100 dB.
    """
    rgb, target = rgb.float(), target.float()
    n = rgb.shape[0]
    face_pixels = int((mask > 0.5).sum())
    bg_pixels = int(mask[:, :1].numel()) - face_pixels
    out = {}
    for name in METRIC_NAMES:
        fn = getattr(metrics, name)
        if name in IMAGE_METRICS:
            value, weight = fn(rgb, target), n
        else:
            weight = face_pixels if name in FACE_METRICS else bg_pixels
            if weight == 0:
                continue
            value = fn(rgb, target, mask)
        if name.startswith("psnr") and not torch.isfinite(value):
            value = torch.full_like(value, 100.0)
        out[name] = (value, weight)
    return out


class MetricPool:
    """Pools :func:`batch_metrics` over batches the way the epoch logs do (weighted means)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, per_batch: dict[str, tuple[torch.Tensor, int]]) -> None:
        for name, (value, weight) in per_batch.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * weight
            self.weights[name] = self.weights.get(name, 0.0) + weight

    def result(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def finite_or_none(value) -> float | None:
    """A logged metric as a plain float for JSON/YAML, None when missing or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
