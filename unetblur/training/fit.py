"""``fit()``: one training run in a run folder, generic over the LightningModule.

Run folder::

    out/config.yaml        the resolved config + versions (reloadable with --config)
    out/metrics.csv        per-epoch train/ and val/ metrics and lr (CSVLogger)
    out/checkpoints/       best.ckpt (lowest val loss) and last.ckpt (every N steps and every epoch)
    out/model.pt           the best weights as a unetblur model file (spec + state dict + meta)
    out/curves_*.png       training curves (mse, mae, learning rate)
    out/identity_baseline.json  val metrics of output = input: the bar the model must clear
    out/train.log          what happened, including the over-fitting warning

The teacher (``BlurModule``) and the student (``DistillModule``) both go through :func:`fit`: it
only reads the run fields of the config (see :class:`TrainConfig`) and builds the module with the
factory it is given.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Literal

from ..config import save_config, to_dict
from ..errors import BadInputError, UnetblurError
from ..fsutil import write_text_atomic

log = logging.getLogger("unetblur.train")

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
BEST = "best.ckpt"
MODEL_FILE = "model.pt"
IDENTITY_FILE = "identity_baseline.json"


@dataclass(frozen=True)
class TrainConfig:
    """``unetblur train``: every setting of a teacher run. YAML files hold deltas; flags override.

    Units: ``lr`` per step of Adam; ``lr_gamma`` the factor per epoch (exponential) or per plateau;
    ``max_minutes`` wall-clock minutes of training, summed over resumes (None = no budget).
    """

    data: str = ""                       # dataset folder in the DESIGN.md §4 layout, or several as DIR1,DIR2
    model: str = "teacher"               # preset name, smp:<encoder>, a YAML/JSON file holding a UNetSpec, or a model .pt
    mask_channel: bool = False           # extra output channel trained against *_mask with BCE
    mask_loss: Literal["bce", "bce_dice", "bce_dice_balanced"] = "bce"  # bce_dice adds a soft Dice term: background
                                         # pixels outnumber face pixels ~100:1 on whole photos, and Dice is blind to
                                         # that ratio; _balanced weighs each small face as a ~30-px one
    hard_negative_weight: float = 0.0    # background pixels of the mask BCE weigh 1 + this·p² (p: predicted face
                                         # probability): confident false positives cost up to 1 + this times more
                                         # (4 on the whole-photo student traded recall for background at no
                                         # better rate: experiments/full_photo/student_hardneg.yaml)
    mask_balance_area: float | None = None  # bce_dice_balanced weighs a face of fewer mask pixels than this as one of
                                         # this many (at most 8×); None = losses.BALANCE_AREA (700, a ~30-px face)
    mask_peak_weight: float = 0.0        # adds this × losses.face_peak_loss (−log of each face's highest mask
                                         # probability, every face alike): the compositor drops regions whose
                                         # peak is under min_peak; 0 = off
    mask_peak_min_area: float = 0.0      # that term counts only faces of at least this many mask pixels
    mined_negative_weight: float = 0.0   # the mask BCE of pixels in a dataset's train_negative/ maps (false positives
                                         # mined from the training photos: mine_false_blobs.py) weighs 1 + this
    mask_miss_weight: float = 0.0        # each face's mask pixels weigh 1 + this × the share of them predicted
                                         # under 0.5 (losses.face_miss_weights): the faces the model misses
                                         # count most; 0 = off
    mask_weight: float = 0.1             # weight of that BCE in the loss (BCE ≈ 0.5 early vs MSE ≈ 0.02: at 1 the mask
                                         # gradient swamps the RGB one and slows learning the image)
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    lr_decay: Literal["exponential", "plateau", "none"] = "exponential"
    lr_gamma: float = 0.95
    lr_patience: int = 3                 # epochs without val improvement before a plateau decay
    weight_decay: float = 0.0
    loss: Literal["mse", "face_weighted"] = "mse"
    face_weight: float = 5.0             # face_weighted: weight of face pixels (background = 1)
    ssim_weight: float = 0.0             # adds ssim_weight · (1 − SSIM) to the loss
    early_stop_patience: int = 10        # epochs without val improvement before stopping; 0 = never
    seed: int = 0
    out: str = "runs/teacher"
    resume: bool = False                 # continue from out/checkpoints/last.ckpt
    accelerator: str = "auto"            # auto | cpu | gpu | cuda | mps
    devices: str | int = "auto"          # e.g. 1, 2, "auto", "0,1"
    num_nodes: int = 1
    strategy: str = "auto"               # auto | ddp | ddp_spawn | ...
    precision: str = "32-true"           # 32-true | 16-mixed | bf16-mixed
    num_workers: int = 0
    crop_size: int | None = None         # random crops for training, centre crops for val
    augment: bool = True                 # horizontal flips (and crops)
    zoom: float = 1.0                    # with crop_size: random crops zoom in up to this factor (1 = plain crops)
    dim: float = 0.0                     # share of training samples made darker and flatter, input and target alike
                                         # (data.dataset.dim_pair): the dark faces the student misses; 0 = off
    soften: float = 0.0                  # share of training samples given one small Gaussian blur, input and target
                                         # alike (data.dataset.soften_pair): the unsharp faces it misses; 0 = off
    rotate: float = 0.0                  # share of training samples rotated by up to ±30°, input, target and masks
                                         # alike (data.dataset.joint_augmentation): tilted faces; 0 = off
    occlude: float = 0.0                 # share of training samples with one face partly hidden by pixels from
                                         # elsewhere, its mask kept (data.dataset.occlude_pair); 0 = off
    paste: float = 0.0                   # share of training samples given a 0.4-0.8× copy of one of their faces
                                         # elsewhere, input, target and mask (data.dataset.paste_face); 0 = off
    cache_images: bool = False           # keep decoded samples in memory after the first epoch (~1.6 MB per
                                         # 480×480 sample, per loader worker): PNG decoding is a sixth of a step
    limit: int | None = None             # use at most this many images per split
    max_minutes: float | None = None     # stop cleanly after this much training time
    checkpoint_every_n_steps: int = 50   # also write last.ckpt every N optimiser steps (resume mid-epoch)
    progress: bool = True                # progress bar


def check_run_config(cfg) -> None:
    """Refuse settings that cannot work, with the value and what to do (before anything is written)."""
    if not str(cfg.data):
        raise UnetblurError("no dataset given; pass --data DIR (a folder made by `unetblur data build`)")
    checks = [
        (cfg.epochs >= 1, f"epochs must be ≥ 1, got {cfg.epochs}"),
        (cfg.batch_size >= 1, f"batch_size must be ≥ 1, got {cfg.batch_size}"),
        (cfg.num_workers >= 0, f"num_workers must be ≥ 0, got {cfg.num_workers}"),
        (cfg.num_nodes >= 1, f"num_nodes must be ≥ 1, got {cfg.num_nodes}"),
        (cfg.early_stop_patience >= 0, f"early_stop_patience must be ≥ 0 (0 = off), got {cfg.early_stop_patience}"),
        (cfg.checkpoint_every_n_steps >= 0, f"checkpoint_every_n_steps must be ≥ 0, got {cfg.checkpoint_every_n_steps}"),
        (cfg.crop_size is None or cfg.crop_size >= 1, f"crop_size must be ≥ 1, got {cfg.crop_size}"),
        (1.0 <= cfg.zoom <= 8.0, f"zoom must be between 1 (off) and 8, got {cfg.zoom}"),
        *((0.0 <= getattr(cfg, share) <= 1.0,
           f"{share} must be a share of samples in [0, 1] (0 = off), got {getattr(cfg, share)}")
          for share in ("dim", "soften", "rotate", "occlude", "paste")),
        (cfg.limit is None or cfg.limit >= 1, f"limit must be ≥ 1, got {cfg.limit}"),
        (cfg.max_minutes is None or cfg.max_minutes > 0, f"max_minutes must be > 0, got {cfg.max_minutes}"),
        (getattr(cfg, "mask_weight", 0.0) >= 0, f"mask_weight must be ≥ 0, got {getattr(cfg, 'mask_weight', None)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UnetblurError(message)
    from .losses import check_mask_loss_settings  # torch: imported only when a run is checked
    check_mask_loss_settings(getattr(cfg, "hard_negative_weight", 0.0), getattr(cfg, "mask_balance_area", None),
                             getattr(cfg, "mask_peak_weight", 0.0), getattr(cfg, "mask_peak_min_area", 0.0),
                             getattr(cfg, "mined_negative_weight", 0.0), getattr(cfg, "mask_miss_weight", 0.0))
    lr_decay, gamma = getattr(cfg, "lr_decay", "none"), getattr(cfg, "lr_gamma", 1.0)
    if lr_decay == "plateau" and not gamma < 1:
        raise UnetblurError(f"lr_decay plateau needs lr_gamma < 1 (the factor applied on a plateau), got {gamma}")


def load_trainable(path: str, mask_channel: bool) -> tuple["nn.Module", dict]:  # noqa: F821
    """A unetblur model file's model in train mode and its meta, refused when ``mask_channel`` asks
    for a mask head the file's architecture does not have."""
    from ..models import has_mask_channel, load_model

    model, meta = load_model(path)
    if mask_channel and not has_mask_channel(model):
        raise UnetblurError(f"{path}: the model has no mask channel but mask_channel is set; "
                            "drop --mask-channel or start from a model that has one")
    return model.train(), meta


def resolve_model(name: str, mask_channel: bool):
    """Build the model a config names: a preset, ``smp:<encoder>``, a YAML/JSON file with a UNetSpec,
    or a unetblur model file (``.pt``: its architecture and weights, to fine-tune)."""
    from ..models import build_model
    from ..runtime.factory import model_format

    path = Path(name)
    if model_format(name) == "torch":
        return load_trainable(name, mask_channel)[0]
    if model_format(name) == "onnx":
        raise UnetblurError(f"{name}: an ONNX file cannot be trained; start from the .pt it was exported from")
    if name.endswith((".yaml", ".yml", ".json")):
        if not path.is_file():
            raise UnetblurError(f"model spec file {name!r} not found; give a preset (teacher, student_v1, "
                                "student_v2, tiny), smp:<encoder> or an existing spec file")
        from ..config import read_yaml  # JSON is YAML too
        return build_model(read_yaml(path), mask_channel=mask_channel or None)
    return build_model(name, mask_channel=mask_channel)


def build_teacher_module(cfg):
    """The ``BlurModule`` a :class:`TrainConfig` describes, around a fresh model."""
    from .module import BlurModule

    model = resolve_model(cfg.model, cfg.mask_channel)
    return BlurModule(model, lr=cfg.lr, weight_decay=cfg.weight_decay, lr_decay=cfg.lr_decay,
                      lr_gamma=cfg.lr_gamma, lr_patience=cfg.lr_patience, loss=cfg.loss,
                      face_weight=cfg.face_weight, ssim_weight=cfg.ssim_weight, mask_weight=cfg.mask_weight,
                      mask_loss=cfg.mask_loss, hard_negative_weight=cfg.hard_negative_weight,
                      mask_balance_area=cfg.mask_balance_area, mask_peak_weight=cfg.mask_peak_weight,
                      mask_peak_min_area=cfg.mask_peak_min_area, mined_negative_weight=cfg.mined_negative_weight,
                      mask_miss_weight=cfg.mask_miss_weight)


def train(cfg: TrainConfig) -> Path:
    """Train a teacher as ``cfg`` says; returns the run folder. What ``unetblur train`` calls."""
    return fit(cfg, build_teacher_module)


def _parse_devices(devices):
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    return devices


def _open_run_folder(cfg, out: Path) -> Path | None:
    """Create or check the run folder; return the checkpoint to resume from (None for a fresh run)."""
    last = out / CHECKPOINT_DIR / LAST
    if cfg.resume:
        if not last.is_file():
            raise UnetblurError(f"{out}: nothing to resume (no {CHECKPOINT_DIR}/{LAST}); "
                                "drop --resume to start a new run")
        return last
    if (out / CHECKPOINT_DIR).is_dir() and any((out / CHECKPOINT_DIR).iterdir()) or (out / MODEL_FILE).exists():
        raise UnetblurError(f"{out}: already holds a training run; pass --resume to continue it "
                            "or choose another --out")
    return None


def _check_resumable(module, ckpt_path: Path, out: Path) -> None:
    """Refuse (before anything is written) a resume whose checkpoint cannot load into this module."""
    import pickle
    import torch

    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        # An empty file raises a bare EOFError (no message): say what it is instead.
        reason = _first_line(exc) or ("the file is empty" if ckpt_path.stat().st_size == 0 else type(exc).__name__)
        raise BadInputError(ckpt_path, f"cannot resume: not a readable checkpoint ({reason}); "
                                       "start a new run with another --out") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict", {}), dict):
        raise BadInputError(ckpt_path, "cannot resume: not a Lightning checkpoint (no state_dict); "
                                       "start a new run with another --out")
    try:
        module.load_state_dict(ckpt.get("state_dict", {}))
    except RuntimeError as exc:
        raise UnetblurError(f"{ckpt_path}: cannot resume: the checkpoint does not match this model "
                            f"({_first_line(exc)}); resume with the run's own settings "
                            f"(--config {out / 'config.yaml'})") from None


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (empty when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else ""


def identity_baseline(loader) -> dict[str, float]:
    """The metrics of the identity mapping (output = input) over ``loader``, pooled like the epoch logs:
    the bar a trained model must clear (``val/mse``, ``val/mse_face``, ``val/psnr``, ...)."""
    from .module import MetricPool, batch_metrics

    pool = MetricPool()
    for batch in loader:
        pool.add(batch_metrics(batch["image"], batch["target"], batch["mask"]))
    return pool.result("val/")


def throughput_meter():
    """A Lightning callback measuring training images per second across all processes: time between
    consecutive training batches (data loading, step, metrics, step checkpoints), validation left out,
    the first ``WARMUP`` batches of each epoch skipped."""
    import pytorch_lightning as pl

    class ThroughputMeter(pl.Callback):
        WARMUP = 2

        def __init__(self):
            self.images = 0
            self.seconds = 0.0
            self.shape: tuple | None = None
            self._last, self._batches = time.perf_counter(), 0

        def on_train_epoch_start(self, trainer, module):  # (not called for an epoch a resume lands inside)
            self._last, self._batches = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            now = time.perf_counter()
            self._batches += 1
            if self._batches > self.WARMUP:
                self.seconds += now - self._last
                self.images += int(batch["image"].shape[0]) * trainer.world_size
                self.shape = tuple(batch["image"].shape[-2:])
            self._last = now

        @property
        def images_per_second(self) -> float | None:
            return self.images / self.seconds if self.seconds > 0 else None

    return ThroughputMeter()


class _StderrHandler(logging.StreamHandler):
    """Console handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain StreamHandler keeps the stream it was created with; the handler outlives one ``fit``
    call, so a later in-process run (tests, notebooks) whose sys.stderr was replaced would write to
    a closed stream ("--- Logging error ---")."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__/setStream assign it; the live sys.stderr wins
        pass


def _setup_file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in log.handlers):
        console = _StderrHandler()
        console.setFormatter(logging.Formatter("unetblur: %(message)s"))
        log.addHandler(console)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


def fit(cfg, make_module: Callable[[object], "pl.LightningModule"], *,  # noqa: F821
        export_model: Callable[[object], object] | None = None, extra_meta: dict | None = None,
        callbacks: list | None = None) -> Path:
    """Run one training in ``cfg.out`` and return that folder.

    ``cfg``: a :class:`TrainConfig`, or any config dataclass with the same run fields (``data``,
    ``epochs``, ``batch_size``, ``seed``, ``out``, ``resume``, ``accelerator``, ``devices``,
    ``num_nodes``, ``strategy``, ``precision``, ``num_workers``, ``crop_size``, ``augment``, ``limit``,
    ``max_minutes``, ``early_stop_patience``, ``checkpoint_every_n_steps``, ``progress``).
    ``make_module(cfg)`` builds the LightningModule (called once, also on resume: the weights then
    come from last.ckpt). ``export_model(module)`` picks the nn.Module saved as ``model.pt``
    (default ``module.model``). ``extra_meta`` is added to the model file's meta.
    """
    import pytorch_lightning as pl

    from ..data.dataset import BlurDataModule
    from ..data.layout import dataset_folders, require_dataset
    from .lightning_fixes import quiet_lightning

    check_run_config(cfg)
    quiet_lightning()
    folders = dataset_folders(cfg.data)
    for folder in folders:
        require_dataset(folder, "train")
    out = Path(cfg.out)
    resume_from = _open_run_folder(cfg, out)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    module = make_module(cfg)  # before touching the folder: a bad model name writes nothing
    if resume_from is not None:
        _check_resumable(module, resume_from, out)
    datamodule = BlurDataModule(cfg.data, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                augment=cfg.augment, crop_size=cfg.crop_size, limit=cfg.limit, seed=cfg.seed,
                                zoom=cfg.zoom, cache=cfg.cache_images, dim=cfg.dim,
                                soften=cfg.soften, rotate=cfg.rotate, occlude=cfg.occlude, paste=cfg.paste)

    rank_zero = int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
    out.mkdir(parents=True, exist_ok=True)
    handler = _setup_file_log(out) if rank_zero else None
    try:
        if rank_zero:
            if resume_from is None:  # a fresh run: rows of an earlier attempt killed before its first checkpoint go
                (out / "metrics.csv").unlink(missing_ok=True)
            save_config(cfg, out / "config.yaml")
            log.info("%s %s in %s (data %s)", "resuming" if resume_from else "training",
                     type(module).__name__, out, cfg.data)
        session = _train(cfg, out, module, datamodule, resume_from, callbacks or [])
        if session.trainer.is_global_zero:
            _finish_run(cfg, out, module, datamodule, session, folders, export_model, extra_meta)
        return out
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


@dataclass
class _Session:
    """What a finished ``trainer.fit`` leaves for the run's ending."""
    trainer: object
    best: object            # the ModelCheckpoint that keeps best.ckpt
    meter: object           # the throughput meter
    wall_seconds: float


def _train(cfg, out: Path, module, datamodule, resume_from: Path | None, callbacks: list) -> _Session:
    """Build the Trainer (checkpoints, early stopping, loggers, time budget) and run it."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from .lightning_fixes import atomic_checkpoint_io

    ckpt_dir = out / CHECKPOINT_DIR
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min",
                           save_top_k=1, save_last=True, auto_insert_metric_name=False,
                           enable_version_counter=False)
    meter = throughput_meter()
    cbs = [best, meter]
    if cfg.checkpoint_every_n_steps:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=cfg.checkpoint_every_n_steps,
                                   save_top_k=0, save_last=True, enable_version_counter=False))
    if cfg.early_stop_patience:
        cbs.append(EarlyStopping(monitor="val/loss", mode="min", patience=cfg.early_stop_patience))
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes else None,
        accelerator=cfg.accelerator, devices=_parse_devices(cfg.devices), num_nodes=cfg.num_nodes,
        strategy=cfg.strategy, precision=cfg.precision,
        callbacks=cbs + callbacks, logger=_loggers(out), default_root_dir=str(out),
        plugins=[atomic_checkpoint_io()],
        log_every_n_steps=1, enable_progress_bar=cfg.progress, enable_model_summary=cfg.progress,
        deterministic=False,
    )
    started = time.monotonic()
    _run_trainer(trainer, module, datamodule, resume_from)
    return _Session(trainer, best, meter, time.monotonic() - started)


def _loggers(out: Path) -> list:
    """metrics.csv (appending on resume), plus TensorBoard when it is installed."""
    from .lightning_fixes import appending_csv_logger

    loggers = [appending_csv_logger(out)]
    try:
        from pytorch_lightning.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401  (optional)
        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers


def _run_trainer(trainer, module, datamodule, resume_from: Path | None) -> None:
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None,
                    weights_only=True)
    except SystemExit:
        # Lightning fix (2.6.6, trainer/call.py): on Ctrl-C Lightning shuts down gracefully, then calls
        # sys.exit(1), so the CLI would end with exit 1 and no word on how to go on. Turn it back into
        # KeyboardInterrupt (exit 130) after saying how to resume.
        if not trainer.interrupted:
            raise
        log.info("interrupted at step %d; continue with the same command plus --resume (model.pt not written)",
                 trainer.global_step)
        raise KeyboardInterrupt from None


def _finish_run(cfg, out: Path, module, datamodule, session: _Session, folders: list,
                export_model: Callable | None, extra_meta: dict | None) -> None:
    """The ending, on the global-zero process: model.pt (best weights + meta), the identity baseline,
    the summary lines in train.log, the over-fitting warning and the curves."""
    from ..evaluate.curves import epoch_history, plot_curves
    from ..models import save_model

    best_epoch, val_metrics = _best_weights(cfg, module, datamodule, session)
    identity = identity_baseline(datamodule.val_dataloader())
    write_text_atomic(out / IDENTITY_FILE, json.dumps(identity, indent=2) + "\n")
    history = epoch_history(out / "metrics.csv")
    meta = _run_meta(cfg, module, datamodule, session, folders, best_epoch, val_metrics, identity)
    meta.update(extra_meta or {})
    model = export_model(module) if export_model else module.model
    save_model(model.cpu().eval(), out / MODEL_FILE, meta)
    log.info("saved %s (best epoch %d, val loss %s, %d images/epoch, stopped by %s)", out / MODEL_FILE,
             best_epoch, val_metrics.get("val/loss"), meta["train_images"], meta["stopped_by"])
    _log_summary(cfg, session, history, best_epoch, val_metrics, identity)
    for png in plot_curves(out, history=history):
        log.info("curves: %s", png)


def _best_weights(cfg, module, datamodule, session: _Session) -> tuple[int, dict]:
    """Load the best weights into ``module``; returns (best epoch, 1-based; its val metrics)."""
    import pytorch_lightning as pl
    import torch

    from .module import finite_or_none

    # The best weights become model.pt; their val metrics were stored in best.ckpt when it was saved.
    best_path = Path(session.best.best_model_path) if session.best.best_model_path else None
    if best_path is not None and best_path.is_file():
        ckpt = torch.load(best_path, map_location="cpu", weights_only=True)
        module.load_state_dict(ckpt["state_dict"])
        return int(ckpt.get("epoch", -1)) + 1, dict(ckpt.get("unetblur_val_metrics") or {})
    # Stopped (time budget) before the first validation: keep the current weights, measure them.
    log.info("no validation ran before training stopped; validating the current weights once")
    res = pl.Trainer(accelerator=cfg.accelerator, devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, precision=cfg.precision).validate(
        module, datamodule=datamodule, verbose=False)
    val_metrics = {k: finite_or_none(v) for k, v in (res[0] if res else {}).items()}
    return int(session.trainer.current_epoch) + 1, val_metrics


def _stopped_by(cfg, trainer) -> str:
    """Why training ended: "time budget", "early stopping" or "epochs"."""
    if cfg.max_minutes and any(type(c).__name__ == "Timer" and c.time_remaining() is not None
                               and c.time_remaining() <= 0 for c in trainer.callbacks):
        return "time budget"
    return "early stopping" if trainer.should_stop and trainer.current_epoch < cfg.epochs else "epochs"


def _run_meta(cfg, module, datamodule, session: _Session, folders: list, best_epoch: int, val_metrics: dict,
              identity: dict) -> dict:
    """The facts of the run stored in model.pt's meta."""
    from ..data.layout import read_manifest

    trainer, speed = session.trainer, session.meter.images_per_second
    manifests = [_manifest_summary(read_manifest(f)) for f in folders]
    return {
        "trained_by": type(module).__name__,
        "dataset": str(cfg.data), "dataset_manifest": manifests if len(folders) > 1 else manifests[0],
        "train_images": len(datamodule.train_set), "val_images": len(datamodule.val_set),
        "epochs_completed": int(trainer.current_epoch), "best_epoch": best_epoch,
        "epochs_trained": round(trainer.global_step / max(1, trainer.num_training_batches), 2),
        "global_step": int(trainer.global_step), "stopped_by": _stopped_by(cfg, trainer),
        "wall_seconds_this_session": round(session.wall_seconds, 1),
        "train_images_per_second": round(speed, 2) if speed else None,
        "val_metrics": val_metrics, "val_identity_metrics": identity, "config": to_dict(cfg),
    }


def _log_summary(cfg, session: _Session, history, best_epoch: int, val_metrics: dict, identity: dict) -> None:
    """train.log: val vs identity, throughput, and the over-fitting warning."""
    import torch

    from ..evaluate.curves import detect_overfitting

    trainer, meter = session.trainer, session.meter
    log.info("val vs identity (output = input): %s", ", ".join(
        f"{k} {val_metrics[f'val/{k}']:.5g} vs {identity[f'val/{k}']:.5g}" for k in ("mse", "psnr", "mse_face", "mae_face")
        if val_metrics.get(f"val/{k}") is not None and f"val/{k}" in identity))
    if meter.images_per_second:
        log.info("training throughput: %.1f images/s (batch %d, %s px, %s, %d process(es), %d torch threads)",
                 meter.images_per_second, cfg.batch_size, "x".join(map(str, meter.shape or ())),
                 trainer.strategy.root_device, trainer.world_size, torch.get_num_threads())
    overfit = detect_overfitting(history)
    if overfit is not None:
        log.warning("over-fitting from epoch %d: val loss has not improved since then (%.5g) while train loss "
                    "kept falling (%.5g → %.5g by epoch %d); model.pt holds the best (epoch %d) weights",
                    overfit["epoch"] + 1, overfit["best_val"], overfit["train_then"], overfit["train_now"],
                    overfit["last_epoch"] + 1, best_epoch)


def _manifest_summary(manifest: dict) -> dict:
    keep = ("source", "targets_from", "image_size", "counts", "blur", "mode", "version")
    return {k: manifest[k] for k in keep if k in manifest}
