"""Knowledge distillation: a student U-Net learns from the blurred targets *and* from a frozen teacher.

    loss = α · L(student, target) + (1 − α) · L(student, teacher) [+ β · Σ_l ‖A_l(s_l) − t_l‖²]

``L`` is the training loss of :class:`~unetblur.training.module.BlurModule` (MSE in the thesis, or
face-weighted; the mask channel's BCE joins the target term, and against the teacher's mask
probabilities the distillation term). α = 0.7 reproduces the thesis. The optional feature term
(β = ``feature_weight``) matches the student's bottleneck (``mid``) and every decoder level (``dec``)
to the teacher's through 1×1 adapters ``A_l`` (identity where the widths agree).

The student can be a pruned model file (fine-tuning after ``unetblur prune``), a preset, explicit
widths or a spec file, with architecture options (``upsample: nearest``, ``block: dsconv``,
``stem_stride: 2``). Training itself is :func:`~unetblur.training.fit.fit`: same run folder,
metrics, curves, resume, time budget and devices as ``unetblur train``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnetblurError
from ..models import has_mask_channel
from .fit import TrainConfig, check_run_config, fit, load_trainable, resolve_model
from .module import BlurModule

#: UNet submodules whose outputs the feature term matches: the bottleneck and each decoder level.
FEATURE_LAYERS = ("mid", "dec")


@dataclass(frozen=True)
class DistillConfig(TrainConfig):
    """``unetblur distill``: every :class:`TrainConfig` field (run folder, data, budget, devices, loss …)
    plus the teacher and how the student is made.

    ``model`` is the student: a model file (``.pt``, e.g. a pruned teacher), a preset name, or a UNetSpec
    YAML/JSON file. ``widths`` (encoder widths then bottleneck, e.g. ``[16, 32, 64, 128]``) builds a fresh
    symmetric student instead. ``upsample``/``block``/``stem_stride`` change a fresh student's
    architecture (None keeps the preset's).
    """

    model: str = "student_v1"
    out: str = "runs/student"
    teacher: str = ""                               # the teacher's model file (unetblur model.pt)
    widths: tuple[int, ...] | None = None
    upsample: Literal["transpose", "nearest"] | None = None
    block: Literal["conv", "dsconv"] | None = None
    stem_stride: int | None = None
    alpha: float = 0.7                              # weight of the ground-truth term (1 − α: the teacher term)
    feature_weight: float = 0.0                     # weight of the bottleneck + decoder feature term; 0 = off


def _unet_features(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """``(name, module, output width)`` of the feature-matching points of a UNet."""
    spec = model.spec
    points = [("mid", model.mid, spec.bottleneck[1])]
    points += [(f"dec{i}", block, spec.decoder[i][1]) for i, block in enumerate(model.dec)]
    return points


class DistillModule(BlurModule):
    """A :class:`BlurModule` whose student (``self.model``) also learns from a frozen ``teacher``.

    The teacher is held outside the module tree: it is not in ``state_dict`` (so neither in Lightning
    checkpoints nor in the student's model.pt), not in the optimiser, and stays in eval mode whatever
    ``train()`` is called with; it follows the student to its device on first use. Logs ``loss_gt``,
    ``loss_distill`` (and ``loss_feature``) besides every metric a teacher run logs.
    """

    def __init__(self, model: nn.Module, teacher: nn.Module, *, alpha: float = 0.7, feature_weight: float = 0.0,
                 **blur_module_kwargs):
        if not 0.0 <= alpha <= 1.0:
            raise UnetblurError(f"alpha must be in [0, 1] (1 = no teacher term), got {alpha}")
        if feature_weight < 0:
            raise UnetblurError(f"feature_weight must be ≥ 0, got {feature_weight}")
        with warnings.catch_warnings():  # Lightning's advice to ignore 'teacher' is taken just below
            warnings.filterwarnings("ignore", message=".*Attribute 'teacher' is an instance of `nn.Module`.*")
            super().__init__(model, **blur_module_kwargs)
        # save_hyperparameters also collects this subclass's arguments: keep the teacher out of them,
        # hyperparameters must stay plain values for weights_only checkpoints.
        for hp in (self._hparams, getattr(self, "_hparams_initial", None)):
            if hp is not None and "teacher" in hp:
                del hp["teacher"]
        teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)  # a tuple hides it from nn.Module registration
        self.alpha = float(alpha)
        self.feature_weight = float(feature_weight)
        self.teacher_has_mask = has_mask_channel(teacher)
        self.adapters = nn.ModuleDict()
        self._features: dict[str, dict[str, torch.Tensor]] = {"student": {}, "teacher": {}}
        if self.feature_weight > 0:
            self._setup_feature_matching(model, teacher)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def _setup_feature_matching(self, student: nn.Module, teacher: nn.Module) -> None:
        if not (hasattr(student, "spec") and hasattr(teacher, "spec") and hasattr(student, "mid")
                and hasattr(teacher, "mid")):
            raise UnetblurError("feature distillation needs a unetblur UNet as teacher and as student "
                                "(set feature_weight 0 for other models)")
        s_pts, t_pts = _unet_features(student), _unet_features(teacher)
        if len(s_pts) != len(t_pts) or student.spec.stem_stride != teacher.spec.stem_stride:
            raise UnetblurError(f"feature distillation needs student and teacher at the same resolutions: student "
                                f"{student.spec.describe()} vs teacher {teacher.spec.describe()} (levels or "
                                "stem_stride differ); set feature_weight 0")
        for (name, s_mod, s_w), (_, t_mod, t_w) in zip(s_pts, t_pts):
            # 1×1 adapter from student width to teacher width; identity where they agree.
            self.adapters[name] = nn.Identity() if s_w == t_w else nn.Conv2d(s_w, t_w, 1, bias=False)
            # partials of a method, not closures: the module stays picklable (ddp_spawn)
            s_mod.register_forward_hook(functools.partial(self._keep_feature, "student", name))
            t_mod.register_forward_hook(functools.partial(self._keep_feature, "teacher", name))

    def _keep_feature(self, who: str, name: str, module, inputs, output) -> None:
        self._features[who][name] = output

    # ------------------------------------------------------------------ modes, devices, parameters

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # BN statistics of the teacher are never updated
        return self

    def trainable_parameters(self):
        return [*self.model.parameters(), *self.adapters.parameters()]

    @torch.no_grad()
    def teacher_output(self, image: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's output for ``image`` (N×3×H×W), moved to ``image``'s device first if needed."""
        first = next(self.teacher.parameters(), None)
        if first is not None and first.device != image.device:
            self.teacher.to(image.device)
        return self.teacher(image)

    # ------------------------------------------------------------------ loss

    def compute_loss(self, output: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_gt, parts = super().compute_loss(output, batch)
        parts["loss_gt"] = loss_gt
        if self.training and self.alpha == 1.0 and self.feature_weight == 0:
            # The no-teacher baseline: skipping the teacher's forward pass gives it the same steps per minute
            # as `unetblur train`, so equal --max-minutes budgets stay fair; val still logs loss_distill.
            return loss_gt, parts
        teacher_out = self.teacher_output(batch["image"]).to(output.dtype)
        rgb, mask_prob = self.split_output(output)
        loss_distill, _ = self.loss_fn(rgb, teacher_out[:, :3], batch["mask"])
        if mask_prob is not None and self.teacher_has_mask:
            with torch.autocast(device_type=mask_prob.device.type, enabled=False):
                soft = F.binary_cross_entropy(mask_prob.float().clamp(1e-6, 1 - 1e-6), teacher_out[:, 3:4].float())
            loss_distill = loss_distill + self.hparams.mask_weight * soft
        parts["loss_distill"] = loss_distill
        loss = self.alpha * loss_gt + (1.0 - self.alpha) * loss_distill
        if self.feature_weight > 0:
            terms = []
            for name, adapter in self.adapters.items():
                s, t = self._features["student"].get(name), self._features["teacher"].get(name)
                if s is None or t is None:
                    raise RuntimeError(f"internal error: no {name} features captured for distillation")
                terms.append(F.mse_loss(adapter(s).float(), t.float()))
            parts["loss_feature"] = torch.stack(terms).mean()
            loss = loss + self.feature_weight * parts["loss_feature"]
            for store in self._features.values():
                store.clear()
        return loss, parts


# ---------------------------------------------------------------------- building the pair


def load_teacher(path: str):
    """The teacher model from its file (weights only), in eval mode with gradients off."""
    from ..models import load_model

    if not path:
        raise UnetblurError("no teacher given; pass --teacher T.pt (a model made by `unetblur train`)")
    teacher, _ = load_model(path)
    return teacher.eval().requires_grad_(False)


def build_student(cfg: DistillConfig) -> tuple[nn.Module, dict]:
    """The student a config describes and facts for its model file's meta (where it came from)."""
    from ..models import UNetSpec, build_model

    options = {k: getattr(cfg, k) for k in ("upsample", "block", "stem_stride") if getattr(cfg, k) is not None}
    from ..runtime.factory import model_format

    if model_format(cfg.model) == "torch":
        if cfg.widths is not None or options:
            raise UnetblurError("a student model file keeps its own architecture; drop --widths/--upsample/--block/"
                                "--stem-stride, or start from a preset (--preset) instead")
        student, meta = load_trainable(cfg.model, cfg.mask_channel)
        info = {"student_init": cfg.model}
        if "pruning" in meta:
            info["pruning"] = {k: meta["pruning"].get(k) for k in ("source", "importance", "scope", "target",
                                                                    "ratio_used", "before", "after")}
        return student, info
    if cfg.widths is not None:
        if len(cfg.widths) < 2:
            raise UnetblurError(f"widths lists encoder widths then the bottleneck (at least two), got {list(cfg.widths)}")
        spec = UNetSpec.symmetric(cfg.widths, mask_channel=cfg.mask_channel)
        student = build_model(spec)
        source = "widths " + ",".join(str(w) for w in cfg.widths)
    else:
        student = resolve_model(cfg.model, cfg.mask_channel)
        source = cfg.model
    if options:
        if not hasattr(student, "spec"):
            raise UnetblurError(f"upsample/block/stem_stride apply to unetblur U-Nets, not to {cfg.model}")
        student = build_model(student.spec.with_options(**options))
    return student, {"student_init": source}


def build_distill_module(cfg: DistillConfig) -> DistillModule:
    """The :class:`DistillModule` a :class:`DistillConfig` describes (teacher loaded, student built)."""
    teacher = load_teacher(cfg.teacher)
    student, _ = build_student(cfg)
    t_out = getattr(getattr(teacher, "spec", None), "out_channels", 3)
    if t_out != 3:
        raise UnetblurError(f"{cfg.teacher}: the teacher must output RGB (3 channels), it has {t_out}")
    return DistillModule(student, teacher, alpha=cfg.alpha, feature_weight=cfg.feature_weight, lr=cfg.lr,
                         weight_decay=cfg.weight_decay, lr_decay=cfg.lr_decay, lr_gamma=cfg.lr_gamma,
                         lr_patience=cfg.lr_patience, loss=cfg.loss, face_weight=cfg.face_weight,
                         ssim_weight=cfg.ssim_weight, mask_weight=cfg.mask_weight, mask_loss=cfg.mask_loss,
                         hard_negative_weight=cfg.hard_negative_weight, mask_balance_area=cfg.mask_balance_area,
                         mask_peak_weight=cfg.mask_peak_weight, mask_peak_min_area=cfg.mask_peak_min_area,
                         mined_negative_weight=cfg.mined_negative_weight, mask_miss_weight=cfg.mask_miss_weight)


def distill(cfg: DistillConfig) -> Path:
    """Train a student by distillation as ``cfg`` says; returns the run folder. What ``unetblur distill`` calls.

    The run folder is the same as ``unetblur train``'s; ``model.pt`` holds the student alone, its meta
    names the teacher, α and the student's origin (and the pruning summary for a pruned student).
    """
    check_run_config(cfg)
    if not cfg.teacher:
        raise UnetblurError("no teacher given; pass --teacher T.pt (a model made by `unetblur train`)")
    if not Path(cfg.teacher).is_file():
        raise UnetblurError(f"teacher model {cfg.teacher!r} not found; pass --teacher with the teacher's model.pt")
    _, info = build_student(cfg)  # early, cheap check of the student's source (and its meta facts)
    extra = {"distillation": {"teacher": cfg.teacher, "alpha": cfg.alpha, "feature_weight": cfg.feature_weight,
                              **info}}
    return fit(cfg, build_distill_module, extra_meta=extra)
