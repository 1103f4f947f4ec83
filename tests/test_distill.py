"""Distillation: one epoch on tiny synthetic data logs every loss term; the teacher stays frozen and out of
the student's files; students come from a pruned file, a preset, widths or architecture options."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from unetblur.cli import main
from unetblur.config import load_config
from unetblur.errors import UnetblurError
from unetblur.models import UNetSpec, build_model, load_model, save_model
from unetblur.training.distill import DistillConfig, DistillModule, build_student, distill
from unetblur.training.module import METRIC_NAMES

from conftest import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
TEACHER_SPEC = UNetSpec.symmetric((8, 16, 32), mask_channel=True)


def _config(data: Path, teacher: Path, out: Path, **kw) -> DistillConfig:
    base = dict(data=str(data), teacher=str(teacher), out=str(out), model="tiny", mask_channel=True, epochs=1,
                batch_size=4, progress=False, accelerator="cpu", devices=1)
    base.update(kw)
    return DistillConfig(**base)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    torch.manual_seed(0)
    save_model(build_model(TEACHER_SPEC), root / "teacher.pt")
    return write_tiny_dataset(root / "ds"), root / "teacher.pt"


@pytest.fixture(scope="module")
def distilled_run(setup, tmp_path_factory) -> Path:
    """One epoch of a tiny student (narrower than the teacher, so the feature term needs adapters)."""
    data, teacher = setup
    out = tmp_path_factory.mktemp("run") / "student"
    return distill(_config(data, teacher, out, feature_weight=0.5))


def _batch(n: int = 2, side: int = 16) -> dict:
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(n, 1, side, side, generator=g) > 0.7).float()
    return {"image": torch.rand(n, 3, side, side, generator=g), "target": torch.rand(n, 3, side, side, generator=g),
            "mask": mask}


def test_one_epoch_logs_ground_truth_distillation_and_feature_terms_for_train_and_val(distilled_run):
    with (distilled_run / "metrics.csv").open(newline="") as f:
        header = next(csv.reader(f))
    for prefix in ("train", "val"):
        for name in ("loss", "loss_gt", "loss_distill", "loss_feature", *METRIC_NAMES):
            assert f"{prefix}/{name}" in header


def test_the_students_model_file_holds_the_student_alone_and_names_its_teacher(distilled_run, setup):
    model, meta = load_model(distilled_run / "model.pt")
    assert model.spec == build_model("tiny", mask_channel=True).spec
    assert meta["distillation"]["teacher"] == str(setup[1])
    assert meta["distillation"]["alpha"] == 0.7
    assert meta["trained_by"] == "DistillModule"


def test_lightning_checkpoints_hold_no_teacher_weights(distilled_run):
    ckpt = torch.load(distilled_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert {key.split(".")[0] for key in ckpt["state_dict"]} == {"model", "adapters"}
    assert "teacher" not in ckpt["hyper_parameters"]


def test_the_teacher_stays_in_eval_mode_and_out_of_the_optimiser():
    teacher = build_model(TEACHER_SPEC)
    module = DistillModule(build_model("tiny", mask_channel=True), teacher, feature_weight=1.0)
    module.train()
    assert module.model.training and not teacher.training
    optimised = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in teacher.parameters()}
    assert optimised >= {id(p) for p in module.model.parameters()}
    assert not any(p.requires_grad for p in teacher.parameters())


def test_the_loss_is_alpha_times_the_target_term_plus_the_rest_times_the_teacher_term():
    module = DistillModule(build_model("tiny"), build_model(UNetSpec.symmetric((8, 16, 32))), alpha=0.7)
    batch = _batch()
    loss, parts = module.compute_loss(module(batch["image"]), batch)
    assert parts["loss_gt"] > 0 and parts["loss_distill"] > 0
    assert torch.allclose(loss, 0.7 * parts["loss_gt"] + 0.3 * parts["loss_distill"])


def test_a_student_identical_to_its_teacher_has_no_distillation_or_feature_loss():
    spec = TEACHER_SPEC.with_options(mask_channel=False)
    teacher, student = build_model(spec).eval(), build_model(spec).eval()
    student.load_state_dict(teacher.state_dict())
    module = DistillModule(student, teacher, feature_weight=1.0).eval()
    batch = _batch()
    _, parts = module.compute_loss(module(batch["image"]), batch)
    assert parts["loss_distill"].item() == pytest.approx(0.0, abs=1e-7)
    assert parts["loss_feature"].item() == pytest.approx(0.0, abs=1e-7)
    assert parts["loss_gt"].item() > 0


def test_alpha_outside_zero_to_one_is_refused():
    with pytest.raises(UnetblurError, match="alpha must be in"):
        DistillModule(build_model("tiny"), build_model("tiny"), alpha=1.5)


def test_feature_distillation_refuses_a_student_at_other_resolutions():
    student = build_model(UNetSpec.symmetric((8, 16)))
    with pytest.raises(UnetblurError, match="same resolutions"):
        DistillModule(student, build_model(TEACHER_SPEC), feature_weight=1.0)


@pytest.mark.parametrize("option,value", [("upsample", "nearest"), ("block", "dsconv"), ("stem_stride", 2)])
def test_a_fresh_student_takes_architecture_options(option, value):
    student, info = build_student(DistillConfig(model="student_v1", **{option: value}))
    assert getattr(student.spec, option) == value
    assert student.spec.encoder[0] == (16, 16)
    assert info["student_init"] == "student_v1"


def test_widths_build_a_symmetric_student():
    student, _ = build_student(DistillConfig(widths=(12, 24, 48), mask_channel=True))
    assert student.spec == UNetSpec.symmetric((12, 24, 48), mask_channel=True)


def test_a_student_file_refuses_architecture_options(tmp_path):
    save_model(build_model("tiny"), tmp_path / "s.pt")
    with pytest.raises(UnetblurError, match="keeps its own architecture"):
        build_student(DistillConfig(model=str(tmp_path / "s.pt"), upsample="nearest"))


def test_a_pruned_student_is_fine_tuned_by_the_distill_command_within_a_time_budget(setup, tmp_path):
    data, teacher = setup
    pruned = tmp_path / "pruned.pt"
    assert main(["prune", str(teacher), "--ratio", "0.5", "--min-width", "2", "--size", "32", "-o", str(pruned)]) == 0
    out = tmp_path / "ft"
    assert main(["distill", "--data", str(data), "--teacher", str(teacher), "--student", str(pruned),
                 "--out", str(out), "--epochs", "50", "--batch-size", "4", "--max-minutes", "0.002",
                 "--accelerator", "cpu", "--devices", "1", "--no-progress"]) == 0
    model, meta = load_model(out / "model.pt")
    assert model.spec == load_model(pruned)[0].spec
    assert meta["distillation"]["pruning"]["after"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert meta["epochs_completed"] < 50


def test_a_distillation_run_resumes_where_it_stopped(setup, tmp_path):
    data, teacher = setup
    cfg = _config(data, teacher, tmp_path / "run")
    distill(cfg)
    first = load_model(tmp_path / "run" / "model.pt")[1]["global_step"]
    (tmp_path / "run" / "model.pt").unlink()
    distill(_config(data, teacher, tmp_path / "run", epochs=2, resume=True))
    assert load_model(tmp_path / "run" / "model.pt")[1]["global_step"] == 2 * first


def test_distill_without_a_teacher_exits_2_with_a_hint(setup, tmp_path, capsys):
    data, _ = setup
    assert main(["distill", "--data", str(data), "--preset", "tiny", "--out", str(tmp_path / "x")]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["student_v1", "student_v2"])
def test_thesis_student_configs_load(name):
    cfg = load_config(DistillConfig, [ROOT / "experiments" / "thesis" / f"{name}.yaml"])
    assert cfg.model == name and cfg.alpha == 0.7


def test_alpha_one_trains_without_running_the_teacher_but_still_measures_it_on_val():
    teacher = build_model(UNetSpec.symmetric((8, 16, 32)))
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    module = DistillModule(build_model("tiny"), teacher, alpha=1.0)
    batch = _batch()
    loss, parts = module.train().compute_loss(module(batch["image"]), batch)
    assert "loss_distill" not in parts and not calls
    assert torch.equal(loss, parts["loss_gt"])
    _, parts = module.eval().compute_loss(module(batch["image"]), batch)
    assert "loss_distill" in parts and calls
