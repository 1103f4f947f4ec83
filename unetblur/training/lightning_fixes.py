"""The places where :func:`.fit.fit` changes what pytorch-lightning does, each with the behaviour it
fixes. Checked against pytorch-lightning 2.6.6 / lightning-fabric 2.6.6 (fsspec 2026.9); when
Lightning is upgraded, re-check each one and delete what the new version does by itself.

(The fourth fix, Ctrl-C, lives in ``fit._run_trainer``: it is three lines around ``trainer.fit``.)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


def atomic_checkpoint_io():
    """A CheckpointIO that writes ``torch.save`` into a temporary file beside the target and renames it.

    Fixes: Lightning's ``_atomic_save`` stages the bytes through an fsspec transaction, whose temporary
    file is made in the *system* temp folder and then ``shutil.move``d into place. That is a rename only
    when /tmp and the run folder share a filesystem; otherwise (tmpfs /tmp, a mounted runs disk) it is a
    copy, and a kill mid-copy leaves a truncated ``last.ckpt`` (the file a resume depends on) plus a
    checkpoint-sized orphan in /tmp. It also holds a second copy of the checkpoint in memory.
    """
    import torch
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    from ..fsutil import atomic_path

    class AtomicTorchCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)

    return AtomicTorchCheckpointIO()


def appending_csv_logger(out: Path):
    """A CSVLogger writing ``out/metrics.csv`` that appends on resume, flushing every row.

    Fixes: Lightning's ``ExperimentWriter._check_log_dir_exists`` (private) deletes an existing
    metrics.csv when the logger starts, so a resumed run's curves would begin at the resume. The writer
    instead keeps the rows and reads their header, so later rows are written under the same columns
    (without it, Lightning's first save would rewrite the file under only the new rows' columns and fail
    on the old ones). ``CSVLogger.experiment`` hard-codes its writer class, hence the second override.
    """
    import csv

    from lightning_fabric.loggers.logger import rank_zero_experiment
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.loggers.csv_logs import ExperimentWriter

    class AppendingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            if os.path.isfile(self.metrics_file_path):  # keep the rows, and their columns for the header
                with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
                    self.metrics_keys = list(next(csv.reader(f), []))

    class AppendingCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self):
            if self._experiment is None:
                os.makedirs(self.root_dir, exist_ok=True)
                self._experiment = AppendingWriter(log_dir=self.log_dir)
            return self._experiment

    # Flush every logged row: a killed run keeps its curves up to the kill.
    return AppendingCSVLogger(save_dir=str(out), name="", version="", flush_logs_every_n_steps=1)


#: Lightning warnings that say nothing to a unetblur user, each still raised by 2.6.6:
_SILENCED = (
    # torch (2.14 here) deprecates LeafSpec; pytorch_lightning.utilities._pytree still builds one.
    r".*isinstance\(treespec, LeafSpec\).*",
    # ModelCheckpoint, when --resume reuses the checkpoints folder on purpose.
    r"Checkpoint directory .* exists and is not empty",
    # num_workers 0 on a machine with several CPUs per device: --num-workers is the user's choice.
    r".*does not have many workers.*",
)


def quiet_lightning() -> None:
    """Drop Lightning chatter that says nothing to a unetblur user: the warnings in ``_SILENCED`` and
    the "💡 Tip: install litlogger / litmodels" lines Lightning logs at INFO on every Trainer."""
    import warnings

    for pattern in _SILENCED:
        warnings.filterwarnings("ignore", message=pattern)

    class NoTips(logging.Filter):
        def filter(self, record):
            return "Tip:" not in record.getMessage()

    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(type(f).__name__ == "NoTips" for f in logger.filters):
        logger.addFilter(NoTips())
