"""Soak tests (``-m soak``, not in the default run): long runs whose memory must stay flat.

    .venv/bin/python -m pytest tests/test_soak.py -m soak -s

Each test runs the real ``unetblur`` in a subprocess, samples its resident memory (VmRSS of the
Python process; ffmpeg children are separate processes) every 0.25 s and prints peak RSS and the
growth between the first and last thirds of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import badinputs as bad
from conftest import make_face_image

pytestmark = pytest.mark.soak

#: Allowed growth of the median RSS from the first third of a run to its last third.
FLAT_MB = 40


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_sampled(argv: list, cwd: Path, timeout: float = 600) -> dict:
    """Run the CLI, sampling RSS. Returns rc, seconds, peak/first-third/last-third RSS in MB and stderr tail."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen([*bad.python_cli(), *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []
    stderr_chunks = []
    import threading

    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = _rss_mb(proc.pid)
        if rss is not None:
            samples.append(rss)
        if time.monotonic() - start > timeout:
            proc.kill()
            pytest.fail("soak run exceeded its time limit")
        time.sleep(0.25)
    reader.join(timeout=10)
    n = len(samples)
    third = max(n // 3, 1)
    return {"rc": proc.returncode, "seconds": round(time.monotonic() - start, 1),
            "peak_rss_mb": round(max(samples, default=0), 1),
            "first_third_median_mb": round(float(np.median(samples[:third])) if samples else 0, 1),
            "last_third_median_mb": round(float(np.median(samples[-third:])) if samples else 0, 1),
            "samples": n, "stderr_tail": "".join(stderr_chunks)[-1500:]}


def _report(name: str, result: dict) -> None:
    shown = {k: v for k, v in result.items() if k != "stderr_tail"}
    print(f"\nSOAK {name}: {json.dumps(shown)}")


def test_blurring_2000_images_keeps_memory_flat(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    from PIL import Image

    for i in range(2000):
        img, _ = make_face_image(rng, 96, int(rng.integers(0, 3)))
        Image.fromarray(img).save(src / f"img_{i:05d}.jpg", quality=90)
    out = tmp_path / "out"
    result = run_sampled(["blur", src, "-o", out, "--model", "centerface", "--no-progress"], tmp_path)
    _report("2000 images", result)
    assert result["rc"] == 0, result["stderr_tail"]
    assert len(bad.files_under(out)) == 2000 and bad.leftovers(out) == []
    assert result["last_third_median_mb"] - result["first_third_median_mb"] < FLAT_MB


def test_blurring_a_5_minute_video_keeps_memory_flat(tmp_path):
    src = bad.make_video(tmp_path / "in" / "five_minutes.mp4", seconds=300, size=(160, 120), fps=10, audio=True)
    out = tmp_path / "out" / "five_minutes.mp4"
    result = run_sampled(["blur", src, "-o", out, "--model", "centerface", "--no-progress"], tmp_path)
    _report("5-minute video (3000 frames 160x120, audio)", result)
    assert result["rc"] == 0, result["stderr_tail"]
    from test_reliability_media import _streams

    assert _streams(out) == (3000, True)
    assert result["last_third_median_mb"] - result["first_third_median_mb"] < FLAT_MB


@pytest.mark.parametrize("model", [
    "centerface",  # detection capped at 1920 px by default (detectors.DEFAULT_MAX_SIDE)
    "centerface@0.125",
])
def test_a_48_megapixel_photo_is_blurred_within_a_stated_memory_bound(tmp_path, model):
    # 8000×6000 RGB is 144 MB as an array; the bound allows a few working copies plus the runtime.
    h, w = 6000, 8000
    big = np.zeros((h, w, 3), np.uint8)
    big[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    big[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    src = tmp_path / "big.jpg"
    from PIL import Image

    Image.fromarray(big).save(src, quality=85)
    del big
    result = run_sampled(["blur", src, "-o", tmp_path / "big_blurred.jpg", "--model", model, "--no-progress"],
                         tmp_path)
    _report(f"48 MP photo, {model}", result)
    assert result["rc"] == 0, result["stderr_tail"]
    assert result["peak_rss_mb"] < 1500
