"""Sample media for the demo and for tests: a synthetic photo and a short panning video with an
audio track, both with ground-truth faces, made on the spot (no downloads)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from ..errors import UnetblurError
from ..faces import write_faces_jsonl
from ..fsutil import atomic_path
from ..io import write_image


def write_sample_media(out_dir: str | os.PathLike, seed: int = 0, frames: int = 48, fps: int = 24,
                       frame_size: tuple[int, int] = (640, 360)) -> dict[str, Path]:
    """Write ``sample.jpg`` (a 960×960 synthetic scene), ``sample.mp4`` (``frames`` frames of a
    ``frame_size`` window panning across it, with a 440 Hz audio track) and ``sample_faces.jsonl``
    (ground truth: the photo's faces and each video frame's faces). Returns the paths."""
    from .synth import draw_sample, load_backgrounds
    from ..video import ffmpeg_exe

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scene, faces, _ = draw_sample(rng, 960, load_backgrounds(), max_faces=5, face_scale=(0.06, 0.25))
    write_image(out / "sample.jpg", scene, quality=92)
    w, h = frame_size
    xs = np.linspace(0, scene.shape[1] - w, frames).round().astype(int)
    ys = np.linspace(0, scene.shape[0] - h, frames).round().astype(int)
    records = [{"image": "sample.jpg", "faces": faces}]
    video = out / "sample.mp4"
    with atomic_path(video) as tmp:
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-", "-f", "lavfi", "-i", f"sine=frequency=440:duration={frames / fps}",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", "-c:a", "aac", "-shortest", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        for i, (x, y) in enumerate(zip(xs, ys)):
            proc.stdin.write(np.ascontiguousarray(scene[y:y + h, x:x + w]).tobytes())
            shifted = [f.scaled(1.0, 1.0, -x, -y).clipped(w, h) for f in faces]
            records.append({"image": f"sample.mp4#{i}", "frame": i, "faces": [f for f in shifted if f is not None]})
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise UnetblurError(f"{video}: ffmpeg could not write the sample video ({err.splitlines()[-1] if err else 'no message'})")
    write_faces_jsonl(out / "sample_faces.jsonl", records)
    return {"image": out / "sample.jpg", "video": video, "faces": out / "sample_faces.jsonl"}
