"""Teacher training: one epoch on tiny synthetic data, resume after a hard kill, the time budget,
losses, the over-fitting check, curves and config errors."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from unetblur.cli import main
from unetblur.config import load_config
from unetblur.errors import UnetblurError
from unetblur.models import load_model
from unetblur.evaluate.curves import detect_overfitting, epoch_history, plot_curves
from unetblur.training.fit import TrainConfig, build_teacher_module, fit, identity_baseline, train
from unetblur.training.losses import (BALANCE_AREA, BALANCE_CAP, ReconstructionLoss, face_balance_weights,
                                      face_miss_weights, face_peak_loss, face_weighted_mse, hard_negative_weights,
                                      mask_loss, MASK_LOSSES, soft_dice_loss)
from unetblur.training.module import METRIC_NAMES

from conftest import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), model="tiny", epochs=1, batch_size=4, progress=False,
                accelerator="cpu", devices=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One epoch of the tiny U-Net on the 32×32 synthetic dataset (a few seconds)."""
    root = tmp_path_factory.mktemp("train")
    data = write_tiny_dataset(root / "ds")
    return train(tiny_config(data, root / "run"))


def read_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


# ------------------------------------------------------------------ one epoch

def test_one_epoch_writes_model_config_metrics_checkpoints_and_curves(trained_run):
    for name in ("model.pt", "config.yaml", "metrics.csv", "train.log", "identity_baseline.json", "checkpoints/best.ckpt",
                 "checkpoints/last.ckpt", "curves_mse.png", "curves_mae.png", "curves_lr.png"):
        assert (trained_run / name).is_file(), name


def test_metrics_csv_has_every_metric_for_train_and_val_and_the_learning_rate(trained_run):
    header = set(read_header(trained_run / "metrics.csv"))
    expected = {f"{split}/{m}" for split in ("train", "val") for m in (*METRIC_NAMES, "loss")} | {"lr"}
    assert expected <= header, expected - header


def test_model_file_holds_the_trained_weights_and_the_run_facts(trained_run):
    model, meta = load_model(trained_run / "model.pt")
    assert model.spec.describe() == "4-8 / 16"
    assert meta["train_images"] == 8 and meta["val_images"] == 4 and meta["epochs_completed"] == 1
    assert set(meta["val_metrics"]) >= {f"val/{m}" for m in METRIC_NAMES}
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_lightning_checkpoints_load_with_weights_only(trained_run):
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(trained_run / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 2 and "state_dict" in ckpt


def test_saved_config_reloads_as_the_same_config(trained_run):
    again = load_config(TrainConfig, [trained_run / "config.yaml"])
    assert again == tiny_config(Path(again.data), Path(again.out))


def test_an_existing_run_is_not_overwritten_without_resume(trained_run):
    cfg = load_config(TrainConfig, [trained_run / "config.yaml"])
    with pytest.raises(UnetblurError, match="already holds a training run; pass --resume"):
        train(cfg)


def test_resume_with_another_model_is_refused_before_anything_is_written(trained_run):
    before = (trained_run / "config.yaml").read_text()
    cfg = replace(load_config(TrainConfig, [trained_run / "config.yaml"]), model="student_v1", resume=True)
    with pytest.raises(UnetblurError, match="cannot resume: the checkpoint does not match this model"):
        train(cfg)
    assert (trained_run / "config.yaml").read_text() == before


def test_flags_override_the_yaml_config(tmp_path):
    from unetblur.cli import build_parser
    from unetblur.commands._config import config_from_args

    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text("epochs: 7\nlr: 0.005\n")
    args = build_parser().parse_args(["train", "--data", "d", "--config", str(yaml_file), "--epochs", "2",
                                      "--devices", "2", "--no-augment"])
    cfg = config_from_args(TrainConfig, args)
    assert (cfg.epochs, cfg.lr, cfg.devices, cfg.augment, cfg.batch_size) == (2, 0.005, "2", False, 16)


def test_curves_can_be_plotted_from_a_run_folder_into_another_folder(trained_run, tmp_path):
    written = plot_curves(trained_run, tmp_path)
    assert sorted(p.name for p in written) == ["curves_lr.png", "curves_mae.png", "curves_mse.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_model_meta_records_the_identity_baseline_it_must_beat(trained_run):
    _, meta = load_model(trained_run / "model.pt")
    identity = meta["val_identity_metrics"]
    assert identity["val/mse"] > 0 and identity["val/mse_face"] > identity["val/mse_bg"]


def test_identity_baseline_pools_face_pixels_across_batches():
    image = torch.zeros(1, 3, 16, 16)
    target = torch.zeros(1, 3, 16, 16)
    target[..., 0, 0] = 1.0
    one_face_px, no_face = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    one_face_px[..., 0, 0] = 1
    batches = [{"image": image, "target": target, "mask": one_face_px},
               {"image": image, "target": torch.zeros(1, 3, 16, 16), "mask": no_face}]
    result = identity_baseline(batches)
    assert result["val/mse_face"] == pytest.approx(1.0)      # the face-free batch adds nothing
    assert result["val/mse"] == pytest.approx((1 / 256 + 0.0) / 2)
    assert result["val/mse_bg"] == pytest.approx(0.0)


# ------------------------------------------------------------------ resume, time budget

class RecordStart(pl.Callback):
    def on_train_start(self, trainer, module):
        self.step, self.epoch = trainer.global_step, trainer.current_epoch


def test_resume_after_a_hard_kill_continues_the_global_step(tmp_path):
    data = write_tiny_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "unetblur", "train", "--data", str(data), "--model", "tiny", "--out", str(out),
         "--epochs", "1000", "--batch-size", "2", "--checkpoint-every-n-steps", "1", "--early-stop-patience", "0",
         "--accelerator", "cpu", "--no-progress"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    try:
        while True:  # 4 steps per epoch: wait until the run is inside its second epoch
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "training never reached step 6"
            if last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 6:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = torch.load(last, weights_only=True)
    killed_at = killed["global_step"]
    # On an idle machine the run can pass several epochs between the poll and the kill: resume for
    # two epochs beyond the one it was killed in, whatever that was.
    epochs = killed["epoch"] + 2

    start = RecordStart()
    fit(tiny_config(data, out, epochs=epochs, batch_size=2, resume=True, checkpoint_every_n_steps=1,
                    early_stop_patience=0), build_teacher_module, callbacks=[start])
    _, meta = load_model(out / "model.pt")
    assert start.step == killed_at >= 6 and start.epoch >= 1
    assert meta["global_step"] > killed_at and meta["epochs_completed"] == epochs
    # Rows from before the kill are kept. (The interrupted epoch's own epoch-level values may be
    # missing: Lightning keeps the running epoch means in memory only.)
    logged = [row["epoch"] for row in epoch_history(out / "metrics.csv")]
    assert logged[0] == 0 and logged[-1] == epochs - 1


def test_resume_without_a_checkpoint_says_there_is_nothing_to_resume(tiny_dataset, tmp_path):
    with pytest.raises(UnetblurError, match="nothing to resume"):
        train(tiny_config(tiny_dataset, tmp_path / "run", resume=True))


def test_time_budget_stops_cleanly_and_still_writes_the_model(tiny_dataset, tmp_path):
    out = train(tiny_config(tiny_dataset, tmp_path / "run", epochs=1000, batch_size=1, max_minutes=0.0001))
    _, meta = load_model(out / "model.pt")
    assert meta["stopped_by"] == "time budget" and meta["epochs_completed"] < 1000
    assert meta["val_metrics"]["val/mse"] > 0


def test_training_from_a_model_file_starts_from_its_weights(trained_run, tiny_dataset, tmp_path):
    source, _ = load_model(trained_run / "model.pt")
    module = build_teacher_module(tiny_config(tiny_dataset, tmp_path / "unused", model=str(trained_run / "model.pt")))
    assert module.model.training and module.model.spec == source.spec
    for name, value in source.state_dict().items():
        assert torch.equal(module.model.state_dict()[name], value), name
    out = train(tiny_config(tiny_dataset, tmp_path / "ft", model=str(trained_run / "model.pt")))
    assert load_model(out / "model.pt")[0].spec == source.spec


@pytest.mark.parametrize("model,message", [("run.onnx", "cannot be trained"), ("model.pt", "no mask channel")])
def test_training_from_an_onnx_file_or_without_the_asked_mask_head_is_refused(trained_run, tiny_dataset, model,
                                                                              message, tmp_path):
    name = str(trained_run / model) if model == "model.pt" else str(tmp_path / model)
    with pytest.raises(UnetblurError, match=message):
        build_teacher_module(tiny_config(tiny_dataset, tmp_path / "run", model=name, mask_channel=True))


# ------------------------------------------------------------------ mask channel, losses

def test_mask_channel_is_trained_with_its_own_bce_term(tiny_dataset, tmp_path):
    out = train(tiny_config(tiny_dataset, tmp_path / "run", mask_channel=True))
    assert "train/loss_mask_bce" in read_header(out / "metrics.csv")
    model, _ = load_model(out / "model.pt")
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_bce_dice_mask_loss_adds_a_dice_term_that_is_logged(tiny_dataset, tmp_path):
    out = train(tiny_config(tiny_dataset, tmp_path / "run", mask_channel=True, mask_loss="bce_dice"))
    header = read_header(out / "metrics.csv")
    assert "train/loss_mask_bce" in header and "train/loss_mask_dice" in header


def test_soft_dice_is_zero_for_a_perfect_mask_and_one_for_a_disjoint_one():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:8, 4:8] = 1
    assert soft_dice_loss(mask, mask, eps=0.0) == pytest.approx(0.0)
    assert soft_dice_loss(1 - mask, mask, eps=0.0) == pytest.approx(1.0)


def test_dice_penalises_a_missed_small_face_far_more_than_bce_does():
    # One 4×4 face in a 64×64 photo predicted as background: BCE averages it away, Dice does not.
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 30:34, 30:34] = 1
    missed = torch.full_like(mask, 0.01)
    parts = mask_loss(missed, mask, "bce_dice")
    assert parts["loss_mask_dice"] > 0.9 > 10 * parts["loss_mask_bce"]


def test_balance_weights_lift_each_small_face_to_a_reference_face_and_leave_the_rest_at_one():
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 2:6, 2:6] = 1          # 16 px: capped
    mask[0, :, 20:40, 20:40] = 1      # 400 px: area / 400
    mask[1, :, 10:60, 10:60] = 1      # 2,500 px: larger than the reference, weight 1
    w = face_balance_weights(mask)
    assert w[0, 0, 3, 3] == BALANCE_CAP
    assert w[0, 0, 30, 30] == pytest.approx(BALANCE_AREA / 400)
    assert w[1, 0, 30, 30] == 1.0 and w[0, 0, 10, 50] == 1.0 and w[1, 0, 0, 0] == 1.0


def test_balanced_loss_costs_a_missed_small_face_more_than_the_pooled_one_does():
    # A large face found and a small one missed: pooled over the batch, Dice barely notices the miss.
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 4:8, 4:8] = 1
    mask[..., 20:60, 20:60] = 1
    pred = mask.clone()
    pred[..., 4:8, 4:8] = 0.01
    pooled, balanced = mask_loss(pred, mask, "bce_dice"), mask_loss(pred, mask, "bce_dice_balanced")
    assert balanced["loss_mask_dice"] > 4 * pooled["loss_mask_dice"]
    assert balanced["loss_mask_bce"] > 4 * pooled["loss_mask_bce"]
    perfect = mask_loss(mask, mask, "bce_dice_balanced")
    assert perfect["loss_mask_dice"] == pytest.approx(0.0, abs=1e-3)


def test_a_larger_balance_area_weighs_a_missed_mid_size_face_up_and_a_bad_one_is_refused():
    # 400 mask pixels: weighed up 700/400 by default, 2500/400 with the larger reference area.
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 2:22, 2:22] = 1
    mask[..., 30:62, 30:62] = 1                                 # 1,024 px: above 700, below 2,500
    pred = mask.clone()
    pred[..., 2:22, 2:22] = 0.01                                # the 20-px face missed
    default, wide = (mask_loss(pred, mask, "bce_dice_balanced", 0.0, area)["loss_mask_dice"]
                     for area in (BALANCE_AREA, 2500.0))
    assert wide > 1.2 * default
    assert float(mask_loss(pred, mask, "bce_dice", 0.0, 2500.0)["loss_mask_dice"]) == pytest.approx(
        float(mask_loss(pred, mask, "bce_dice")["loss_mask_dice"]))  # only the balanced loss reads it
    with pytest.raises(UnetblurError, match="mask_balance_area must be > 0"):
        mask_loss(pred, mask, "bce_dice_balanced", 0.0, 0.0)


def _balanced_mask_bce(tiny_dataset, tmp_path, output, batch, option: str, values) -> list[float]:
    """The training module's mask BCE (bce_dice_balanced) of ``output`` on ``batch``, one per value of ``option``."""
    losses = []
    for value in values:
        cfg = tiny_config(tiny_dataset, tmp_path / "run", mask_channel=True, mask_loss="bce_dice_balanced",
                          **{option: value})
        _, parts = build_teacher_module(cfg).compute_loss(output, batch)
        losses.append(float(parts["loss_mask_bce"]))
    return losses


def test_the_balance_area_reaches_the_training_loss_and_a_bad_one_is_refused_before_the_run(tiny_dataset, tmp_path):
    from unetblur.training.fit import build_teacher_module

    batch = {"image": torch.rand(1, 3, 64, 64), "target": torch.rand(1, 3, 64, 64), "mask": torch.zeros(1, 1, 64, 64)}
    batch["mask"][..., 2:22, 2:22] = 1
    output = torch.cat([batch["target"], torch.full((1, 1, 64, 64), 0.01)], 1)  # every face missed
    losses = _balanced_mask_bce(tiny_dataset, tmp_path, output, batch, "mask_balance_area", (None, 2500.0))
    assert losses[1] > 1.2 * losses[0]
    with pytest.raises(UnetblurError, match="mask_balance_area must be > 0 \\(pixels\\), got -1"):
        train(tiny_config(tiny_dataset, tmp_path / "run", mask_balance_area=-1.0))
    assert not (tmp_path / "run").exists()


def test_the_peak_loss_is_minus_log_of_each_face_s_highest_probability_every_face_alike():
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 2:6, 2:6] = 1                                    # a 16-px face
    mask[0, :, 10:30, 10:30] = 1                                # a 400-px face
    mask[1, :, 4:8, 20:24] = 1
    prob = torch.full((2, 1, 32, 32), 0.99)                     # background at 0.99 does not count
    prob[0, :, 2:6, 2:6] = 0.2
    prob[0, :, 3, 3] = 0.5                                      # the small face's peak
    prob[0, :, 10:30, 10:30] = 0.9
    prob[1, :, 4:8, 20:24] = 0.8
    prob.requires_grad_(True)
    loss = face_peak_loss(prob, mask)
    assert float(loss) == pytest.approx(-(math.log(0.5) + math.log(0.9) + math.log(0.8)) / 3, rel=1e-5)
    loss.backward()
    assert (prob.grad[0, 0, 2:6, 2:6] != 0).sum() == 1 and prob.grad[0, 0, 3, 3] < 0   # only the peak is pushed up
    assert (prob.grad[0, 0, 0, :] == 0).all()                   # background untouched
    assert float(face_peak_loss(prob, torch.zeros_like(mask))) == 0.0
    assert float(face_peak_loss(prob, mask, min_area=100)) == pytest.approx(-math.log(0.9), rel=1e-5)  # the 16-px faces left out
    assert float(face_peak_loss(prob, mask, min_area=1000)) == 0.0
    parts = mask_loss(prob.detach(), mask, "bce_dice_balanced", 0.0, BALANCE_AREA, 2.0)
    assert float(parts["loss_mask_peak"]) == pytest.approx(2 * float(loss), rel=1e-5)
    assert "loss_mask_peak" not in mask_loss(prob.detach(), mask, "bce_dice_balanced")
    with pytest.raises(UnetblurError, match="mask_peak_weight must be ≥ 0"):
        mask_loss(prob.detach(), mask, "bce", 0.0, BALANCE_AREA, -1.0)


def test_the_balanced_loss_with_the_peak_term_labels_the_faces_once_and_scores_as_each_term_alone(monkeypatch):
    import unetblur.training.losses as L

    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 2:6, 2:6] = 1
    mask[1, :, 10:30, 10:30] = 1
    prob = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01
    calls = []
    labelled = L.face_components
    monkeypatch.setattr(L, "face_components", lambda m: calls.append(1) or labelled(m))
    parts = mask_loss(prob, mask, "bce_dice_balanced", 0.0, BALANCE_AREA, 2.0)
    assert len(calls) == 1
    monkeypatch.setattr(L, "face_components", labelled)
    weight = face_balance_weights(mask)
    assert float(parts["loss_mask_bce"]) == pytest.approx(float(L.mask_bce(prob, mask, weight)), rel=1e-6)
    assert float(parts["loss_mask_peak"]) == pytest.approx(2 * float(face_peak_loss(prob, mask)), rel=1e-6)


def test_the_peak_weight_reaches_the_training_loss_and_a_bad_one_is_refused_before_the_run(tiny_dataset, tmp_path):
    batch = {"image": torch.rand(1, 3, 64, 64), "target": torch.rand(1, 3, 64, 64), "mask": torch.zeros(1, 1, 64, 64)}
    batch["mask"][..., 2:22, 2:22] = 1
    output = torch.cat([batch["target"], torch.full((1, 1, 64, 64), 0.5)], 1)
    cfg = tiny_config(tiny_dataset, tmp_path / "run", mask_channel=True, mask_peak_weight=1.5)
    _, parts = build_teacher_module(cfg).compute_loss(output, batch)
    assert float(parts["loss_mask_peak"]) == pytest.approx(-1.5 * math.log(0.5), rel=1e-5)
    cfg = tiny_config(tiny_dataset, tmp_path / "run", mask_channel=True, mask_peak_weight=1.5, mask_peak_min_area=500)
    _, parts = build_teacher_module(cfg).compute_loss(output, batch)
    assert float(parts["loss_mask_peak"]) == 0.0                # the one face has 400 pixels
    with pytest.raises(UnetblurError, match="mask_peak_weight must be ≥ 0"):
        train(tiny_config(tiny_dataset, tmp_path / "run", mask_peak_weight=-0.5))
    with pytest.raises(UnetblurError, match="mask_peak_min_area must be ≥ 0"):
        train(tiny_config(tiny_dataset, tmp_path / "run", mask_peak_min_area=-1.0))
    assert not (tmp_path / "run").exists()


def test_miss_weights_lift_each_face_by_the_share_of_it_the_model_misses_and_leave_the_background_at_one():
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 2:6, 2:6] = 1                                    # 16 px, all predicted face
    mask[0, :, 10:30, 10:30] = 1                                # 400 px, a quarter predicted face
    mask[1, :, 4:8, 20:24] = 1                                  # 16 px, missed
    prob = torch.full((2, 1, 32, 32), 0.9)                      # the background's confidence does not count
    prob[0, :, 10:30, 10:30] = 0.3
    prob[0, :, 10:30, 10:15] = 0.5                              # 100 of its 400 px at the threshold
    prob[1, :, 4:8, 20:24] = 0.1
    w = face_miss_weights(prob, mask, 4.0)
    assert w[0, 0, 3, 3] == 1.0                                 # covered: no extra weight
    assert float(w[0, 0, 20, 20]) == pytest.approx(1 + 4.0 * 0.75)
    assert float(w[1, 0, 5, 21]) == pytest.approx(5.0)
    assert w[0, 0, 0, 31] == 1.0 and w[1, 0, 31, 0] == 1.0
    assert bool((face_miss_weights(prob, torch.zeros_like(mask), 4.0) == 1).all())


def test_the_miss_weight_charges_a_missed_face_more_and_reaches_the_training_loss(tiny_dataset, tmp_path):
    # Two 16-px faces, one found and one missed: weighing the miss up raises both terms, a found face alone
    # costs the same with or without it.
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 2:6, 2:6] = 1
    mask[..., 20:24, 20:24] = 1
    pred = mask * 0.98 + 0.01
    pred[..., 20:24, 20:24] = 0.05
    plain = mask_loss(pred, mask, "bce_dice_balanced")
    mined = mask_loss(pred, mask, "bce_dice_balanced", miss_weight=3.0)
    assert mined["loss_mask_bce"] > 1.5 * plain["loss_mask_bce"]
    assert mined["loss_mask_dice"] > 1.5 * plain["loss_mask_dice"]
    found = mask.clone()
    found[..., 20:24, 20:24] = 0
    assert float(mask_loss(pred, found, "bce_dice", miss_weight=3.0)["loss_mask_bce"]) == pytest.approx(
        float(mask_loss(pred, found, "bce_dice")["loss_mask_bce"]))
    with pytest.raises(UnetblurError, match="mask_miss_weight must be ≥ 0"):
        mask_loss(pred, mask, "bce", miss_weight=-1.0)
    batch = {"image": torch.rand(1, 3, 32, 32), "target": torch.rand(1, 3, 32, 32), "mask": mask}
    output = torch.cat([batch["target"], pred], 1)
    losses = _balanced_mask_bce(tiny_dataset, tmp_path, output, batch, "mask_miss_weight", (0.0, 3.0))
    assert losses[1] > 1.5 * losses[0]
    with pytest.raises(UnetblurError, match="mask_miss_weight must be ≥ 0 \\(0 = off\\), got -0.5"):
        train(tiny_config(tiny_dataset, tmp_path / "run", mask_miss_weight=-0.5))
    assert not (tmp_path / "run").exists()


def test_hard_negative_weights_grow_with_a_false_positive_s_confidence_and_leave_faces_alone():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1
    prob = torch.full_like(mask, 0.9)
    prob[..., 0, 7] = 0.2
    w = hard_negative_weights(prob, mask, 4.0)
    assert w[0, 0, 0, 0] == 1.0                                 # a face pixel, however confident
    assert w[0, 0, 7, 7] == pytest.approx(1 + 4 * 0.81)         # a confident false positive
    assert w[0, 0, 0, 7] == pytest.approx(1 + 4 * 0.04)         # an undecided background pixel


def test_hard_negative_weight_raises_the_cost_of_confident_false_positives_only():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:12, 4:12] = 1
    clean = mask * 0.95 + 0.02                                  # faces found, background quiet
    spotted = clean.clone()
    spotted[..., 20:24, 20:24] = 0.95                           # plus a confident blob on background
    for kind in ("bce", "bce_dice_balanced"):
        plain, hard = (mask_loss(spotted, mask, kind, w)["loss_mask_bce"] for w in (0.0, 8.0))
        assert hard > 3 * plain
        quiet_plain, quiet_hard = (mask_loss(clean, mask, kind, w)["loss_mask_bce"] for w in (0.0, 8.0))
        assert float(quiet_hard) == pytest.approx(float(quiet_plain), rel=0.05)
    with pytest.raises(UnetblurError, match="hard_negative_weight"):
        mask_loss(clean, mask, "bce", -1.0)


def test_unknown_mask_loss_is_refused_with_the_choices():
    with pytest.raises(UnetblurError, match="bce_dice"):
        mask_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), "focal")


def test_train_flag_offers_exactly_the_mask_losses_the_trainer_knows():
    # The CLI lists them literally (building the parser must not import torch); this keeps the two in step.
    from unetblur.cli import build_parser
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    flag = next(a for a in train_parser._actions if "--mask-loss" in a.option_strings)
    assert tuple(flag.choices) == MASK_LOSSES


def test_several_dataset_folders_train_together(tmp_path):
    a = write_tiny_dataset(tmp_path / "a", counts=(8, 4, 4), seed=1)
    b = write_tiny_dataset(tmp_path / "b", counts=(4, 2, 2), seed=2)
    out = train(tiny_config(f"{a},{b}", tmp_path / "run"))
    _, meta = load_model(out / "model.pt")
    assert (meta["train_images"], meta["val_images"]) == (12, 6)


def test_zoom_one_is_a_plain_crop_at_the_stored_scale_and_zoom_two_magnifies():
    from torchvision import tv_tensors

    from unetblur.data.dataset import RandomZoomCrop

    image = tv_tensors.Image(torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64))
    torch.manual_seed(0)
    plain = RandomZoomCrop(16, zoom=1.0)(image)
    assert plain.shape[-2:] == (16, 16)
    assert torch.all(plain[0, 0, 1:] - plain[0, 0, :-1] == 1)  # neighbours stay neighbours: no resampling
    zoomed = [RandomZoomCrop(16, zoom=2.0)(image) for _ in range(20)]
    slopes = [float((z[0, 8, 9] - z[0, 8, 7]) / 2) for z in zoomed]
    assert all(0.45 <= s <= 1.0 for s in slopes) and min(slopes) < 0.8  # 1/z pixels per output pixel


def test_zoom_crops_keep_the_crop_size_and_the_mask_aligned_with_the_image():
    from unetblur.data.dataset import joint_augmentation
    from torchvision import tv_tensors

    image = torch.zeros(3, 64, 64)
    image[:, 16:48, 16:48] = 1.0
    item = {"image": tv_tensors.Image(image), "target": tv_tensors.Image(image.clone()),
            "mask": tv_tensors.Mask(image[:1].clone())}
    torch.manual_seed(0)
    for _ in range(5):
        out = joint_augmentation(32, zoom=2.0)(item)
        assert out["image"].shape == (3, 32, 32) and out["mask"].shape == (1, 32, 32)
        # Nearest (mask) and bilinear (image) resampling may disagree on the square's edge pixels only.
        disagree = ((out["mask"][0] > 0.5) != (out["image"][0] > 0.5)).float().mean()
        assert disagree < 0.1


def test_face_weighted_loss_with_weight_one_is_plain_mse(rng):
    o, t = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert torch.allclose(face_weighted_mse(o, t, mask, 1.0), torch.nn.functional.mse_loss(o, t))


def test_face_weighted_loss_counts_errors_inside_the_face_more():
    t = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    face_err, bg_err = t.clone(), t.clone()
    face_err[..., 0, 0] = 1
    bg_err[..., 3, 3] = 1
    assert torch.isclose(face_weighted_mse(face_err, t, mask, 5.0), 5 * face_weighted_mse(bg_err, t, mask, 5.0))


def test_ssim_term_is_added_and_reported_when_weighted():
    loss_fn = ReconstructionLoss("mse", ssim_weight=0.5)
    o, t = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    loss, parts = loss_fn(o, t, torch.zeros(1, 1, 16, 16))
    assert torch.allclose(loss, parts["loss_mse"] + 0.5 * parts["loss_ssim"])


# ------------------------------------------------------------------ over-fitting check

def history(train_losses, val_losses):
    return [{"epoch": i, "train/loss": a, "val/loss": b} for i, (a, b) in enumerate(zip(train_losses, val_losses))]


def test_overfitting_is_reported_at_the_epoch_val_loss_stopped_improving():
    found = detect_overfitting(history([5, 4, 3, 2, 1, 0.5], [5, 4, 3.5, 3.6, 3.8, 4.0]))
    assert found["epoch"] == 2 and found["train_now"] == 0.5


def test_no_overfitting_while_val_loss_keeps_improving():
    assert detect_overfitting(history([5, 4, 3, 2, 1], [5, 4, 3, 2, 1])) is None


# ------------------------------------------------------------------ config errors

def test_unknown_key_in_a_config_file_suggests_the_right_one(tmp_path):
    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text("epoch: 3\n")
    with pytest.raises(UnetblurError, match="unknown key 'epoch'; did you mean 'epochs'"):
        load_config(TrainConfig, [yaml_file])


def test_unknown_model_is_refused_before_the_run_folder_is_written(tiny_dataset, tmp_path):
    with pytest.raises(UnetblurError, match="unknown model 'teacher2'"):
        train(tiny_config(tiny_dataset, tmp_path / "run", model="teacher2"))
    assert not (tmp_path / "run").exists()


def test_zero_epochs_is_refused_with_the_value(tiny_dataset, tmp_path):
    with pytest.raises(UnetblurError, match="epochs must be ≥ 1, got 0"):
        train(tiny_config(tiny_dataset, tmp_path / "run", epochs=0))


def test_train_command_without_data_exits_2(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "pass --data DIR" in capsys.readouterr().err


def test_experiment_configs_load(tmp_path):
    for path in ("experiments/thesis/teacher.yaml", "experiments/demo/teacher.yaml"):
        cfg = load_config(TrainConfig, [ROOT / path])
        assert cfg.epochs >= 1


# ------------------------------------------------------------------ multi-process

@pytest.mark.slow
def test_ddp_with_two_cpu_processes_trains_and_writes_one_model(tmp_path):
    data = write_tiny_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "unetblur", "train", "--data", str(data), "--model", "tiny", "--out", str(out),
         "--epochs", "2", "--batch-size", "2", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _, meta = load_model(out / "model.pt")
    # 8 images, 2 per batch, split over 2 processes: 2 steps per epoch each.
    assert meta["global_step"] == 4 and meta["epochs_completed"] == 2


def test_cached_samples_are_decoded_once_and_served_unchanged_by_augmentation(tiny_dataset):
    import shutil

    from unetblur.data.dataset import PairedDataset, joint_augmentation

    expected = [PairedDataset(tiny_dataset, "train")[i] for i in range(8)]
    cached = PairedDataset(tiny_dataset, "train", transform=joint_augmentation(16, zoom=2.0), cache=True)
    for i in range(len(cached)):
        cached[i]  # first epoch: decode and keep; the augmented crops must not write into what is kept
    for split in ("train", "train_blur", "train_mask"):
        shutil.rmtree(tiny_dataset / split)  # later epochs never read the files again
    cached.transform = None
    for i, want in enumerate(expected):
        got = cached[i]
        for key in ("image", "target", "mask"):
            assert torch.equal(got[key], want[key]), key


def test_dimming_keeps_the_target_the_blur_of_the_dimmed_input():
    import numpy as np

    from unetblur.blur import blur_faces
    from unetblur.data.dataset import DIM_MIN_GAIN, dim_pair
    from unetblur.faces import Face

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    faces = [Face(10, 8, 40, 44), Face(50, 20, 74, 50)]
    target, _ = blur_faces(image, faces)
    as_float = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255
    torch.manual_seed(0)
    for _ in range(10):
        dim_image, dim_target = dim_pair(as_float(image), as_float(target))
        assert 0.0 <= float(dim_image.min()) and float(dim_image.max()) <= 1.0
        assert float(dim_image.std()) >= DIM_MIN_GAIN * float(as_float(image).std()) - 1e-6
        redone, _ = blur_faces((dim_image * 255).round().byte().permute(1, 2, 0).numpy(), faces)
        # what the dataset would hold for the dimmed photo, within the two roundings (image and target)
        assert float((as_float(redone) - dim_target).abs().max()) <= 2.5 / 255


def test_softening_keeps_the_target_the_blur_of_the_softened_input_away_from_region_edges():
    import cv2
    import numpy as np

    from unetblur.blur import blur_faces
    from unetblur.data.dataset import soften_pair
    from unetblur.faces import Face

    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.integers(0, 256, (96, 120, 3), dtype=np.uint8), (0, 0), 1.0)  # photo-like detail
    faces = [Face(12, 10, 52, 60), Face(70, 30, 108, 80)]
    target, region = blur_faces(image, faces)
    edge_band = cv2.morphologyEx(region, cv2.MORPH_GRADIENT, np.ones((11, 11), np.uint8)) > 0  # ±5 px of an edge
    as_float = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255
    laplacian = lambda t: float(np.abs(cv2.Laplacian(t.permute(1, 2, 0).numpy(), cv2.CV_32F)).mean())
    torch.manual_seed(0)
    for _ in range(6):
        soft_image, soft_target = soften_pair(as_float(image), as_float(target))
        assert soft_image.shape == (3, 96, 120) and soft_target.shape == (3, 96, 120)
        assert laplacian(soft_image) < 0.9 * laplacian(as_float(image))  # less fine detail: a softer photo
        redone, _ = blur_faces((soft_image * 255).round().byte().permute(1, 2, 0).numpy(), faces)
        # what the dataset would hold for the softened photo, within the roundings, except near a region's edge
        error = (as_float(redone) - soft_target).abs().amax(0).numpy()
        assert float(error[~edge_band].max()) <= 3.0 / 255


def test_rotation_keeps_the_target_the_blur_of_the_rotated_input_and_the_mask_on_it(tiny_dataset):
    import cv2
    import numpy as np
    from torchvision import tv_tensors

    from unetblur.blur import blur_faces
    from unetblur.data.dataset import BlurDataModule, PairedDataset, joint_augmentation
    from unetblur.faces import Face

    rng = np.random.default_rng(6)
    image = cv2.GaussianBlur(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), (0, 0), 1.0)  # photo-like detail
    face = Face(28, 24, 68, 72)  # centred: rotation turns it about its own centre, so its box stays the face's
    target, region = blur_faces(image, [face])
    chw = lambda a: tv_tensors.Image(torch.from_numpy(a).permute(2, 0, 1))
    item = {"image": chw(image), "target": chw(target), "mask": tv_tensors.Mask(torch.from_numpy(region)[None])}
    torch.manual_seed(0)
    for _ in range(5):
        out = joint_augmentation(hflip=False, rotate=1.0)(item)
        rotated, rotated_target = (out[k].permute(1, 2, 0).numpy() for k in ("image", "target"))
        mask = out["mask"][0].numpy()
        assert not np.array_equal(rotated, image)  # turned
        assert set(np.unique(mask)) == {0, 255} and abs(int((mask > 0).sum()) - int((region > 0).sum())) < 40
        error = np.abs(rotated_target.astype(int) - blur_faces(rotated, [face])[0]).max(2)
        near = cv2.dilate(mask, np.ones((7, 7), np.uint8)) > 0
        inside = cv2.erode(mask, np.ones((17, 17), np.uint8)) > 0
        assert error[~near].max() == 0  # outside the turned face: the turned photo itself
        assert error[inside].max() <= 2  # inside it: the blur of the turned photo (the blur is isotropic)
        cropped = joint_augmentation(48, rotate=1.0)(item)["image"]
        assert cropped.shape == (3, 48, 48) and int(cropped.amax(0).min()) > 0  # a turned crop: no black corners
    data = BlurDataModule(tiny_dataset, rotate=1.0)
    data.setup()
    plain = PairedDataset(tiny_dataset, "train")
    torch.manual_seed(0)
    for i in range(len(plain)):  # every training sample turned: its corners fall outside the photo and turn black
        assert float(plain[i]["image"][:, 0, 0].sum()) > 0 and float(data.train_set[i]["image"][:, 0, 0].sum()) == 0
    assert torch.equal(data.val_set[0]["image"], PairedDataset(tiny_dataset, "val")[0]["image"])
    with pytest.raises(UnetblurError, match="rotate must be"):
        train(tiny_config(tiny_dataset, tiny_dataset.parent / "bad_rotate", rotate=1.5))


def _dimmed_alike(plain: dict, changed: dict) -> None:
    """One exposure change x → g·x + b for image and target, within dim's range."""
    from unetblur.data.dataset import DIM_MIN_GAIN

    gain = float(changed["image"].std() / plain["image"].std())
    offset = float(changed["image"].mean()) - gain * float(plain["image"].mean())
    assert DIM_MIN_GAIN - 1e-4 <= gain < 1 and -1e-4 <= offset <= (1 - gain) / 4 + 1e-4
    for key in ("image", "target"):
        assert torch.allclose(changed[key], plain[key] * gain + offset, atol=1e-4), key


def _softened_alike(plain: dict, changed: dict) -> None:
    """Image and target both blurred: changed, their mean kept (not re-exposed)."""
    for key in ("image", "target"):
        assert not torch.equal(plain[key], changed[key]), key
        assert abs(float(plain[key].mean()) - float(changed[key].mean())) < 0.01, key


def _occluded_alike(plain: dict, changed: dict) -> None:
    """One band inside the faces' box covered in image and target alike; nothing else changed (nothing at all
    without a face)."""
    moved = (plain["image"] != changed["image"]).any(0) | (plain["target"] != changed["target"]).any(0)
    if not plain["mask"].any():
        assert not moved.any()
        return
    ys, xs = torch.nonzero(moved, as_tuple=True)
    fy, fx = torch.nonzero(plain["mask"][0] > 0, as_tuple=True)
    assert len(ys) and fy.min() <= ys.min() and ys.max() <= fy.max() and fx.min() <= xs.min() and xs.max() <= fx.max()
    band = (slice(None), slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    assert torch.equal(changed["image"][band], changed["target"][band])


def test_occlusion_hides_a_band_of_one_face_from_one_side_in_input_and_target_alike():
    from unetblur.data.dataset import OCCLUDE_SHARE, occlude_pair

    image = torch.rand(3, 96, 120)
    target = image * 0.5
    face = torch.zeros(1, 96, 120)
    face[:, 20:60, 30:70] = 1  # one 40×40 face
    torch.manual_seed(1)
    sides = set()
    for _ in range(20):
        hidden, hidden_target = occlude_pair(image, target, face)
        moved = (hidden != image).any(0)
        ys, xs = torch.nonzero(moved, as_tuple=True)
        y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        assert 20 <= y1 and y2 <= 60 and 30 <= x1 and x2 <= 70  # inside the face's box
        across, deep = ((y2 - y1), (x2 - x1)) if (y1, y2) == (20, 60) else ((x2 - x1), (y2 - y1))
        assert across == 40 and OCCLUDE_SHARE[0] * 40 - 1 <= deep <= OCCLUDE_SHARE[1] * 40 + 1  # a band from a side
        sides.add((x1 == 30, x2 == 70, y1 == 20, y2 == 60))
        assert torch.equal(hidden[:, y1:y2, x1:x2], hidden_target[:, y1:y2, x1:x2])  # alike in input and target
        assert torch.equal(hidden_target[:, ~moved], target[:, ~moved])  # nothing else changed
    assert len(sides) == 4  # from every side
    no_face = torch.zeros_like(face)
    assert occlude_pair(image, target, no_face)[0] is image


def test_a_pasted_face_is_a_smaller_copy_of_one_face_where_no_face_was_in_input_target_and_mask_alike(tiny_dataset):
    import cv2
    import numpy as np

    from unetblur.data.dataset import BlurDataModule, PairedDataset, PASTE_SCALE, paste_face

    image = torch.rand(3, 96, 120) * 0.4                       # dark background
    face = torch.zeros(1, 96, 120)
    face[:, 20:60, 30:70] = 1                                    # one bright 40×40 face
    image[:, 20:60, 30:70] = 0.9
    target = image * 0.5
    torch.manual_seed(2)
    for _ in range(10):
        new_image, new_target, new_face = paste_face(image, target, face)
        assert torch.equal(new_face[:, 20:60, 30:70], face[:, 20:60, 30:70])       # the source face stays
        count, _, boxes, _ = cv2.connectedComponentsWithStats(new_face[0].numpy().astype(np.uint8), connectivity=8)
        assert count == 3                                                          # and a second one came
        x, y, w, h = (int(v) for v in boxes[1 + int(boxes[1][0] == 30)][:4])
        assert PASTE_SCALE[0] * 40 - 1 <= w <= PASTE_SCALE[1] * 40 + 1 and abs(w - h) <= 1
        assert not bool(face[0, y:y + h, x:x + w].any())                          # where no face was
        copy = new_image[:, y:y + h, x:x + w][:, new_face[0, y:y + h, x:x + w] > 0]
        assert float(copy.mean()) > 0.8                                            # it is the bright face
        moved = (new_image != image).any(0)
        ys, xs = torch.nonzero(moved, as_tuple=True)
        assert y <= int(ys.min()) and int(ys.max()) < y + h and x <= int(xs.min()) and int(xs.max()) < x + w
        assert torch.allclose(new_target, new_image * 0.5, atol=1e-6)             # the target's copy from the target
    small = torch.zeros_like(face)
    small[:, 10:16, 10:16] = 1                                   # 6×6: too small to copy
    cut = torch.zeros_like(face)
    cut[:, 0:30, 40:80] = 1                                      # cut by the sample's edge: not a whole face
    for no_source in (small, cut, torch.zeros_like(face)):
        assert paste_face(image, target, no_source)[0] is image
    plain, pasted = PairedDataset(tiny_dataset, "train"), PairedDataset(tiny_dataset, "train", paste=1.0)
    gained = [float(pasted[i]["mask"].sum() - plain[i]["mask"].sum()) for i in range(len(plain))]
    assert max(gained) > 0 and min(gained) >= 0
    data = BlurDataModule(tiny_dataset, paste=1.0)
    data.setup()
    assert torch.equal(data.val_set[0]["mask"], PairedDataset(tiny_dataset, "val")[0]["mask"])
    with pytest.raises(UnetblurError, match="paste must be"):
        train(tiny_config(tiny_dataset, tiny_dataset.parent / "bad_paste", paste=1.5))


@pytest.mark.parametrize("augmentation, changed_alike", [("dim", _dimmed_alike), ("soften", _softened_alike),
                                                         ("occlude", _occluded_alike)])
def test_per_sample_augmentation_changes_training_samples_only_and_leaves_the_masks(tiny_dataset, augmentation,
                                                                                  changed_alike):
    from unetblur.data.dataset import BlurDataModule, PairedDataset

    plain = PairedDataset(tiny_dataset, "train")
    changed = PairedDataset(tiny_dataset, "train", **{augmentation: 1.0})
    torch.manual_seed(0)
    for i in range(len(plain)):
        a, b = plain[i], changed[i]
        changed_alike(a, b)
        assert torch.equal(a["mask"], b["mask"])
    data = BlurDataModule(tiny_dataset, **{augmentation: 1.0})
    data.setup()
    assert torch.equal(data.val_set[0]["image"], PairedDataset(tiny_dataset, "val")[0]["image"])
    with pytest.raises(UnetblurError, match=f"{augmentation} must be"):
        train(tiny_config(tiny_dataset, tiny_dataset.parent / f"bad_{augmentation}", **{augmentation: 1.5}))
