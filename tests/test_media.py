"""The video edge of ``unetblur blur`` (``unetblur/video.py``): ffmpeg probing, reading, writing,
audio muxing, webcam names.

Videos are made on the fly with the ffmpeg that imageio-ffmpeg ships (lavfi testsrc + sine): tiny
(96×64, 10 frames), a second each. The helpers here (``make_video``, ``streams``, ``red_face_onnx``)
are shared with ``test_anonymise.py``, ``test_operating_point.py`` and ``test_privacy.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from unetblur.errors import BadInputError
from unetblur.video import VideoReader, VideoWriter, count_frames, ffmpeg_exe, mux_audio, parse_webcam, probe_video



def make_video(path: Path, *, audio: bool = True, size: str = "96x64", rate: str = "10", frames: int = 10) -> Path:
    """A short synthetic video (testsrc pattern), with a 440 Hz sine audio track when ``audio``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc=size={size}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:duration=5", "-c:a", "aac"]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path


def streams(path: Path) -> str:
    """The "Stream #..." lines of ffmpeg's header dump of ``path``."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return "\n".join(line for line in err.splitlines() if "Stream #" in line)


def red_face_onnx(path: Path, output_stride: int = 1) -> Path:
    """A torch-free stand-in for an exported U-Net: RGB passed through plus a mask channel that is
    sigmoid(40·(R − G − 0.4)), i.e. "red pixels are face". Carries unetblur's export metadata.
    ``output_stride`` s > 1: the output is averaged over s×s cells, as a strided-stem export ends."""
    import onnx
    from onnx import TensorProto, helper

    def const(name, values, dims=None):
        return helper.make_tensor(name, TensorProto.INT64 if isinstance(values[0], int) else TensorProto.FLOAT,
                                  dims or [len(values)], values)

    nodes = [
        helper.make_node("Slice", ["image", "zero", "one", "axis"], ["r"]),
        helper.make_node("Slice", ["image", "one", "two", "axis"], ["g"]),
        helper.make_node("Sub", ["r", "g"], ["d"]),
        helper.make_node("Sub", ["d", "offset"], ["d0"]),
        helper.make_node("Mul", ["d0", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["mask"]),
        helper.make_node("Concat", ["image", "mask"], ["output" if output_stride == 1 else "full"], axis=1),
    ]
    if output_stride > 1:
        nodes.append(helper.make_node("AveragePool", ["full"], ["output"], kernel_shape=[output_stride] * 2,
                                      strides=[output_stride] * 2))
    graph = helper.make_graph(
        nodes, "red_face",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4, "OH", "OW"])],
        initializer=[const("zero", [0]), const("one", [1]), const("two", [2]), const("axis", [1]),
                     const("offset", [0.4], []), const("gain", [40.0], [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"stride": str(output_stride), "output_stride": str(output_stride), "mask_channel": "true",
                       "precision": "fp32", "color_order": "RGB"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return Path(path)


# --------------------------------------------------------------------------- inputs and names

# --------------------------------------------------------------------------- video


def test_probe_reads_size_rate_and_audio(tmp_path):
    info = probe_video(make_video(tmp_path / "v.mp4", rate="12"))
    assert (info.width, info.height, info.fps, info.has_audio) == (96, 64, 12.0, True)
    assert info.frames_estimate == 10


def test_probe_notices_a_video_without_audio(tmp_path):
    assert probe_video(make_video(tmp_path / "v.mp4", audio=False)).has_audio is False


def test_probe_refuses_a_file_that_is_not_a_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(BadInputError, match="not a readable video"):
        probe_video(tmp_path / "bad.mp4")


def test_reader_yields_every_frame_as_rgb(tmp_path):
    frames = list(VideoReader(make_video(tmp_path / "v.mp4", audio=False)))
    assert len(frames) == 10 and frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8


def test_writer_then_mux_keeps_frame_count_and_adds_the_audio(tmp_path):
    src = make_video(tmp_path / "v.mp4")
    writer = VideoWriter(tmp_path / "video_only.mp4", 96, 64, "10")
    for frame in VideoReader(src):
        writer.write(frame)
    writer.close()
    assert mux_audio(tmp_path / "video_only.mp4", src, tmp_path / "out.mp4") == "copied"
    assert count_frames(tmp_path / "out.mp4") == 10
    assert "Audio:" in streams(tmp_path / "out.mp4")


def test_audio_that_cannot_be_copied_is_re_encoded(tmp_path):
    src = tmp_path / "pcm.mov"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=96x64:rate=10", "-f", "lavfi", "-i", "sine=duration=1", "-frames:v", "5",
                    "-c:v", "libx264", "-c:a", "pcm_s16le", str(src)], check=True)
    writer = VideoWriter(tmp_path / "video_only.webm", 96, 64, "10")
    for frame in VideoReader(src):
        writer.write(frame)
    writer.close()
    assert mux_audio(tmp_path / "video_only.webm", src, tmp_path / "out.webm") == "re-encoded"
    assert "Audio: opus" in streams(tmp_path / "out.webm")


def test_odd_frame_sizes_are_encoded(tmp_path):
    writer = VideoWriter(tmp_path / "odd.mp4", 33, 21, "5")
    for _ in range(3):
        writer.write(np.zeros((21, 33, 3), np.uint8))
    writer.close()
    assert count_frames(tmp_path / "odd.mp4") == 3


def test_webcam_index_is_parsed():
    assert parse_webcam("webcam") == 0 and parse_webcam("webcam:3") == 3 and parse_webcam("webcamx") is None
