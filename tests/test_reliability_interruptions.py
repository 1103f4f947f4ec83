"""Interruptions: real ``unetblur`` subprocesses are killed (SIGKILL, no chance to clean up) in the middle
of their work; what they leave must never be a corrupt artefact under a final name, and running the
command again must continue (``--resume``) or restart cleanly.

These start torch in subprocesses, so they take seconds each; the long ones are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import badinputs as bad
from conftest import write_tiny_dataset


def _start(argv: list, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*bad.python_cli(), *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when(proc: subprocess.Popen, condition, timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``condition()`` holds. Returns False when the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if condition():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    pytest.fail(f"condition not reached in {timeout}s; output:\n{proc.stdout.read()[-3000:]}")


def _true_for(condition, seconds: float):
    """A condition that holds once ``condition()`` first held ``seconds`` ago."""
    first: list[float] = []

    def check() -> bool:
        if not first and condition():
            first.append(time.monotonic())
        return bool(first) and time.monotonic() - first[0] >= seconds
    return check


def _run(argv: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*bad.python_cli(), *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _visible_files(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)]


# ------------------------------------------------------------------------------ train

@pytest.mark.slow
def test_a_killed_training_run_leaves_a_loadable_checkpoint_and_resumes(tmp_path):
    import torch

    data = write_tiny_dataset(tmp_path / "ds", size=32, counts=(8, 4, 4))
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    common = ["--data", data, "--model", "tiny", "--batch-size", "2", "--out", run, "--accelerator", "cpu",
              "--checkpoint-every-n-steps", "1", "--no-progress", "--num-workers", "0"]
    proc = _start(["train", *common, "--epochs", "500"], tmp_path)
    # Kill a second after the first checkpoint: several saves in, most likely during or between saves.
    assert _kill_when(proc, _true_for(lambda: last.is_file(), seconds=1.0))
    assert not (run / "model.pt").exists()  # the final artefact only appears at the end
    for ckpt in _visible_files(run / "checkpoints"):  # every file under a final name loads
        torch.load(ckpt, map_location="cpu", weights_only=False)
    step_at_kill = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=False)["epoch"]

    fresh = _run(["train", *common, "--epochs", "2"], tmp_path)
    assert fresh.returncode == 2 and "pass --resume" in fresh.stderr  # never silently overwrites

    resumed = _run(["train", *common, "--epochs", str(epoch_at_kill + 2), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    from unetblur.models import load_model

    _, meta = load_model(run / "model.pt")
    assert meta["global_step"] > step_at_kill
    assert bad.leftovers(run / "checkpoints") == []  # the killed run's temporaries were cleaned up


# ------------------------------------------------------------------------------ export

@pytest.fixture
def tiny_model(tmp_path) -> Path:
    from unetblur.models import build_model, save_model

    return save_model(build_model("tiny"), tmp_path / "tiny.pt")


@pytest.mark.slow
def test_a_killed_export_leaves_no_partial_onnx_and_a_rerun_completes(tmp_path, tiny_model):
    import onnx

    out = tmp_path / "export"
    argv = ["export", tiny_model, "-o", out, "--int8", "--calib-count", "4", "--parity-count", "2"]
    proc = _start(argv, tmp_path)
    # Kill once export has begun writing (its hidden working folder has a file in it).
    killed = _kill_when(proc, lambda: out.is_dir() and any(p.is_file() for p in out.rglob("*")))
    if killed:
        for path in _visible_files(out):  # anything under a final name is complete
            if path.suffix == ".onnx":
                onnx.checker.check_model(onnx.load(str(path)))
    rerun = _run(argv, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    names = sorted(p.name for p in _visible_files(out))
    assert names == ["tiny.export.json", "tiny.int8.onnx", "tiny.onnx"]
    report = json.loads((out / "tiny.export.json").read_text())
    assert set(report["files"]) == {"fp32", "int8"}


@pytest.mark.slow
@pytest.mark.xfail(reason="deploy/onnx_export.py: a SIGKILLed export leaves its hidden .export-*/ working folder "
                          "in --out-dir and no later run removes it (reported to the lead)", strict=False)
def test_a_killed_export_leaves_no_hidden_working_folder_after_the_rerun(tmp_path, tiny_model):
    out = tmp_path / "export"
    argv = ["export", tiny_model, "-o", out, "--parity-count", "2"]
    proc = _start(argv, tmp_path)
    _kill_when(proc, lambda: out.is_dir() and any(p.is_file() for p in out.rglob("*")))
    assert _run(argv, tmp_path).returncode == 0
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
