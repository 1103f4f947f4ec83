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
def test_a_killed_export_leaves_no_hidden_working_folder_after_the_rerun(tmp_path, tiny_model):
    out = tmp_path / "export"
    argv = ["export", tiny_model, "-o", out, "--parity-count", "2"]
    proc = _start(argv, tmp_path)
    _kill_when(proc, lambda: out.is_dir() and any(p.is_file() for p in out.rglob("*")))
    assert _run(argv, tmp_path).returncode == 0
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------------------ data build

def _photo_source(tmp_path: Path, n: int) -> tuple[Path, Path]:
    import numpy as np

    from conftest import make_face_image
    from unetblur.io import write_image

    rng = np.random.default_rng(5)
    src = tmp_path / "src"
    entries = []
    for i in range(n):
        img, faces = make_face_image(rng, 128, 2)
        write_image(src / f"p{i:03d}.jpg", img)
        entries.append((f"p{i:03d}.jpg", [(f.x1, f.y1, f.width, f.height) for f in faces]))
    return src, bad.make_wider_annotations(tmp_path, entries, "wider.txt")


def test_a_killed_data_build_leaves_no_dataset_and_a_rerun_builds_it(tmp_path):
    src, ann = _photo_source(tmp_path, 60)
    out = tmp_path / "ds"
    argv = ["data", "build", src, "-o", out, "--annotations", ann, "--size", "64", "--no-progress"]
    proc = _start(argv, tmp_path)
    # Kill while the hidden build folder is filling up.
    building = lambda: any(p.name.startswith(".ds.") and any(p.rglob("*.png")) for p in tmp_path.iterdir())
    killed = _kill_when(proc, building)
    if killed:
        assert not out.exists()  # never a half-built dataset under the final name
    rerun = _run(argv, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    check = _run(["data", "check", out], tmp_path)
    assert check.returncode == 0, check.stderr


def test_a_killed_data_build_leaves_no_hidden_folder_after_the_rerun(tmp_path):
    src, ann = _photo_source(tmp_path, 60)
    out = tmp_path / "ds"
    argv = ["data", "build", src, "-o", out, "--annotations", ann, "--size", "64", "--no-progress"]
    proc = _start(argv, tmp_path)
    _kill_when(proc, lambda: any(p.name.startswith(".ds.") and any(p.rglob("*.png")) for p in tmp_path.iterdir()))
    assert _run(argv, tmp_path).returncode == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------------------ blur (video)

def test_a_killed_video_blur_leaves_no_output_and_a_rerun_completes(tmp_path):
    src = bad.make_video(tmp_path / "in" / "long.mp4", seconds=12, size=(160, 120), fps=10)
    out_dir = tmp_path / "out"
    out = out_dir / "long.mp4"
    argv = ["blur", src, "-o", out, "--model", "centerface", "--no-progress"]
    proc = _start(argv, tmp_path)
    started = _true_for(lambda: out_dir.is_dir() and any(p.name.startswith(".long.") for p in out_dir.iterdir()),
                        seconds=0.3)
    killed = _kill_when(proc, started)
    assert killed, "the blur finished before it could be interrupted; make the video longer"
    assert not out.exists()  # a half-encoded video never appears under the final name
    time.sleep(0.5)  # the orphaned ffmpeg encoder sees EOF and exits
    rerun = _run(argv, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert bad.leftovers(out_dir) == []  # the killed run's temporaries were removed
    from test_reliability_media import _streams

    assert _streams(out) == (120, False)
