"""``unetblur blur`` end to end on generated media, with a torch-free stand-in U-Net (red pixels = face).

Every test runs the real command line (``unetblur.cli.main``) and checks files on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from test_media import make_video, red_face_onnx, streams
from unetblur.anonymise import config as anonymise_config
from unetblur.cli import main
from unetblur.io import read_image, write_image
from unetblur.video import count_frames, probe_video


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(red_face_onnx(tmp_path_factory.mktemp("model") / "red.onnx"))


def face_photo(seed: int = 0, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    """Textured background with one red "face" disc (what the stand-in model detects)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((*size, 3)) * 60 + 60).astype(np.uint8)
    cv2.circle(img, (30, 30), 14, (230, 30, 30), -1)
    cv2.circle(img, (26, 26), 3, (10, 10, 10), -1)
    return img


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def blur(*args) -> int:
    return main(["blur", "--no-progress", *map(str, args)])


# --------------------------------------------------------------------------- images


def test_an_image_is_blurred_beside_itself_with_the_background_pixel_exact(tmp_path, model):
    src = tmp_path / "photo.png"
    write_image(src, face_photo())
    before = digest(src)
    assert blur(src, "--model", model, "--save-masks") == 0
    out, mask = read_image(tmp_path / "photo_blurred.png"), read_image(tmp_path / "photo_blurred_mask.png")[..., 0]
    original = read_image(src)
    assert np.array_equal(out[mask == 0], original[mask == 0])
    assert np.abs(out[20:40, 20:40].astype(int) - original[20:40, 20:40]).max() > 20
    assert digest(src) == before


def test_images_keep_their_format(tmp_path, model):
    write_image(tmp_path / "photo.webp", face_photo())
    assert blur(tmp_path / "photo.webp", "--model", model) == 0
    assert Image.open(tmp_path / "photo_blurred.webp").format == "WEBP"


def _jpeg_with_gps(path: Path) -> None:
    img = Image.fromarray(face_photo())
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # GPS IFD
    img.save(path, exif=exif)


def test_exif_and_gps_are_stripped_by_default(tmp_path, model):
    _jpeg_with_gps(tmp_path / "p.jpg")
    assert blur(tmp_path / "p.jpg", "--model", model) == 0
    assert not Image.open(tmp_path / "p_blurred.jpg").getexif()


def test_keep_metadata_keeps_exif(tmp_path, model):
    _jpeg_with_gps(tmp_path / "p.jpg")
    assert blur(tmp_path / "p.jpg", "--model", model, "--keep-metadata") == 0
    assert Image.open(tmp_path / "p_blurred.jpg").getexif().get(0x010F) == "CameraMaker"


def test_save_json_lists_the_blurred_regions_with_scores(tmp_path, model):
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", model, "--save-json") == 0
    record = json.loads((tmp_path / "photo_blurred.json").read_text())
    assert len(record["faces"]) == 1 and 0.5 <= record["faces"][0]["score"] <= 1
    x1, y1, x2, y2 = record["regions"][0]["box"]
    assert x1 <= 17 and y1 <= 17 and x2 >= 43 and y2 >= 43  # the disc (centre 30, radius 14) is inside


def test_a_folder_is_blurred_into_a_sibling_folder_keeping_the_tree(tmp_path, model):
    src = tmp_path / "photos"
    write_image(src / "a.png", face_photo(1))
    write_image(src / "trip" / "day1" / "b.jpg", face_photo(2))
    before = {p: digest(p) for p in src.rglob("*") if p.is_file()}
    assert blur(src, "--model", model, "--recursive") == 0
    out = tmp_path / "photos_blurred"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "trip/day1/b.jpg"]
    assert {p: digest(p) for p in src.rglob("*") if p.is_file()} == before


def test_without_recursive_only_the_top_level_of_a_folder_is_processed(tmp_path, model):
    write_image(tmp_path / "in" / "a.png", face_photo())
    write_image(tmp_path / "in" / "sub" / "b.png", face_photo())
    assert blur(tmp_path / "in", "--model", model, "-o", tmp_path / "out") == 0
    assert [p.name for p in (tmp_path / "out").rglob("*.png")] == ["a.png"]


def test_an_output_folder_inside_the_input_folder_is_not_reprocessed(tmp_path, model):
    write_image(tmp_path / "in" / "a.png", face_photo())
    assert blur(tmp_path / "in", "--model", model, "--recursive", "-o", tmp_path / "in" / "out") == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == ["in/a.png", "in/out/a.png"]


def test_shards_split_a_folder_without_overlap(tmp_path, model):
    for i in range(5):
        write_image(tmp_path / "in" / f"{i}.png", face_photo(i))
    for shard in ("0/2", "1/2"):
        assert blur(tmp_path / "in", "--model", model, "-o", tmp_path / "out", "--shard", shard) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}.png" for i in range(5)]


def test_a_bad_file_in_a_batch_is_skipped_listed_and_exits_1(tmp_path, model, capsys):
    write_image(tmp_path / "in" / "good.png", face_photo())
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert blur(tmp_path / "in", "--model", model) == 1
    err = capsys.readouterr().err
    assert "1 written, 1 skipped" in err and "broken.jpg" in err
    assert (tmp_path / "in_blurred" / "good.png").exists()
    assert not (tmp_path / "in_blurred" / "broken.jpg").exists()


# --------------------------------------------------------------------------- safety


def test_an_input_is_never_overwritten(tmp_path, model, capsys):
    src = tmp_path / "photo.png"
    write_image(src, face_photo())
    before = digest(src)
    assert blur(src, "--model", model, "-o", src, "--overwrite") == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert digest(src) == before


def test_an_input_is_not_overwritten_through_a_symlink(tmp_path, model):
    src = tmp_path / "photo.png"
    write_image(src, face_photo())
    before = digest(src)
    os.symlink(src, tmp_path / "link.png")
    assert blur(src, "--model", model, "-o", tmp_path / "link.png", "--overwrite") == 2
    assert digest(src) == before


def test_an_existing_output_needs_overwrite(tmp_path, model, capsys):
    write_image(tmp_path / "photo.png", face_photo())
    (tmp_path / "photo_blurred.png").write_bytes(b"keep me")
    assert blur(tmp_path / "photo.png", "--model", model) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "photo_blurred.png").read_bytes() == b"keep me"
    assert blur(tmp_path / "photo.png", "--model", model, "--overwrite") == 0
    assert (tmp_path / "photo_blurred.png").read_bytes() != b"keep me"


def test_without_a_packaged_student_model_student_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(anonymise_config, "PACKAGED_MODEL", tmp_path / "absent.onnx")
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", "student") == 2
    err = capsys.readouterr().err
    assert "--model student" in err and len(err.strip().splitlines()) == 1


def test_model_student_runs_the_packaged_student(tmp_path, monkeypatch, model):
    monkeypatch.setattr(anonymise_config, "PACKAGED_MODEL", Path(model))
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", "student", "--save-json") == 0
    assert json.loads((tmp_path / "photo_blurred.json").read_text())["method"].endswith("+composite")


def test_the_default_model_is_the_winner_of_the_full_photo_table_centerface(tmp_path):
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--save-json") == 0
    assert json.loads((tmp_path / "photo_blurred.json").read_text())["method"] == "centerface"


def test_detectors_blur_their_own_larger_region_unless_mask_scale_is_given(model):
    from unetblur.anonymise import BlurConfig, open_blurrer_for
    from unetblur.faces import Face

    class OneFace:
        def detect(self, image):
            return [Face(40, 30, 70, 60, 0.9)]

    def blurred_area(cfg: BlurConfig) -> float:
        blurrer = open_blurrer_for(cfg)
        blurrer.detector = OneFace()   # the region, not the detector's recall, is under test
        return float(blurrer(face_photo(size=(128, 128))).mask.sum())

    for detector in ("centerface", "centerface@0.3", "haar"):
        own = anonymise_config.DETECTOR_MASK_SCALE[detector.partition("@")[0]]
        assert own > 1.2
        assert blurred_area(BlurConfig(model=detector)) / blurred_area(BlurConfig(model=detector, mask_scale=1.2)) \
            == pytest.approx((own / 1.2) ** 2, rel=0.1)
    # Others keep the dataset blur's region: the students learned masks drawn with it.
    assert BlurConfig(model=model).blur_settings().mask_scale == 1.2
    assert BlurConfig(model="centerface", mask_scale=1.1).blur_settings().mask_scale == 1.1


def test_an_unreadable_stream_url_is_one_error_line_and_exit_2(tmp_path, model, capsys):
    assert blur("rtsp://127.0.0.1:9/nothing", "--model", model, "-o", tmp_path / "rec.mp4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open the stream" in err[0]
    assert not (tmp_path / "rec.mp4").exists()


# --------------------------------------------------------------------------- video


def test_a_video_keeps_frame_count_rate_and_audio_and_the_input_is_untouched(tmp_path, model):
    src = make_video(tmp_path / "clip.mp4", rate="12")
    before = digest(src)
    assert blur(src, "--model", model) == 0
    out = tmp_path / "clip_blurred.mp4"
    assert count_frames(out) == count_frames(src) == 10
    assert probe_video(out).fps == 12.0
    assert "Audio:" in streams(out)
    assert digest(src) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_video_without_audio_works(tmp_path, model):
    src = make_video(tmp_path / "silent.mp4", audio=False)
    assert blur(src, "--model", model) == 0
    out = tmp_path / "silent_blurred.mp4"
    assert count_frames(out) == 10 and "Audio:" not in streams(out)


def test_no_audio_drops_the_audio(tmp_path, model):
    src = make_video(tmp_path / "clip.mp4")
    assert blur(src, "--model", model, "--no-audio") == 0
    assert "Audio:" not in streams(tmp_path / "clip_blurred.mp4")


def test_video_audit_writes_a_mask_video_and_one_json_line_per_frame(tmp_path, model):
    src = make_video(tmp_path / "clip.mp4", audio=False)
    assert blur(src, "--model", model, "--save-masks", "--save-json") == 0
    assert count_frames(tmp_path / "clip_blurred_mask.mp4") == 10
    lines = (tmp_path / "clip_blurred.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(10))


def test_a_corrupt_video_in_a_batch_is_skipped(tmp_path, model, capsys):
    make_video(tmp_path / "in" / "good.mp4", audio=False)
    (tmp_path / "in" / "bad.mp4").write_bytes(b"\x00" * 500)
    assert blur(tmp_path / "in", "--model", model) == 1
    assert "bad.mp4" in capsys.readouterr().err
    assert count_frames(tmp_path / "in_blurred" / "good.mp4") == 10
    assert not (tmp_path / "in_blurred" / "bad.mp4").exists()


# --------------------------------------------------------------------------- streams (fail closed)


class RecordingFlakyBlurrer:
    """Halves pixel values; fails on the 3rd call; records whether the output file existed at each call."""

    name = "flaky"

    def __init__(self, output: Path):
        self.output = output
        self.calls = 0
        self.output_existed: list[bool] = []

    def __call__(self, image, faces=None):
        from unetblur.runtime.base import BlurResult

        self.calls += 1
        self.output_existed.append(any(self.output.parent.glob(f".{self.output.stem}*")) or self.output.exists())
        if self.calls == 3:
            raise RuntimeError("inference failed")
        return BlurResult(image // 2, np.zeros(image.shape[:2], np.float32), [])


def test_a_stream_is_warmed_before_its_output_opens_and_failed_frames_are_black(tmp_path):
    from unetblur.anonymise import BlurConfig, Summary, blur_stream
    from unetblur.video import VideoReader

    src = make_video(tmp_path / "camera.mp4", audio=False)  # OpenCV reads a file like a stream
    out = tmp_path / "rec.mp4"
    blurrer = RecordingFlakyBlurrer(out)
    summary = Summary()
    frames = blur_stream(blurrer, str(src), out, BlurConfig(hold_frames=0, max_frames=6, progress=False,
                                                            codec="libx264", crf=0), summary)
    assert frames == 6 and count_frames(out) == 6
    assert blurrer.output_existed[0] is False  # the warm-up call ran before any output existed
    # Call 1 is the warm-up, so call 3 (the failure) is the 2nd frame: written black, never the original.
    peaks = [int(frame.max()) for frame in VideoReader(out)]
    assert peaks[1] < 20
    assert all(60 < p < 200 for i, p in enumerate(peaks) if i != 1)  # the others: halved pixels (source peaks at 255)
    assert summary.black_frames == 1


# --------------------------------------------------------------------------- options


def test_skip_existing_resumes_a_batch_without_touching_finished_outputs(tmp_path, model, capsys):
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", face_photo(i))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "1.png").write_bytes(b"done before")
    assert blur(tmp_path / "in", "--model", model, "-o", tmp_path / "out", "--skip-existing") == 0
    assert (tmp_path / "out" / "1.png").read_bytes() == b"done before"
    assert (tmp_path / "out" / "0.png").exists() and (tmp_path / "out" / "2.png").exists()
    assert "1 already done" in capsys.readouterr().err


def test_several_inputs_with_a_file_name_as_output_are_refused(tmp_path, model, capsys):
    write_image(tmp_path / "a.png", face_photo())
    write_image(tmp_path / "b.png", face_photo())
    assert blur(tmp_path / "a.png", tmp_path / "b.png", "--model", model, "-o", tmp_path / "x.png") == 2
    assert "must be a folder" in capsys.readouterr().err


def test_working_size_and_scales_reach_the_compositing_blurrer(tmp_path, model):
    from unetblur.anonymise import BlurConfig, open_blurrer_for

    blurrer = open_blurrer_for(BlurConfig(model=model, working_size=48, scales=(1.0, 0.5), dilate=2))
    assert (blurrer.working_size, blurrer.scales, blurrer.dilate) == (48, (1.0, 0.5), 2)
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", model, "--working-size", "48", "--scales", "1,0.5") == 0
    out = read_image(tmp_path / "photo_blurred.png")
    assert np.abs(out[20:40, 20:40].astype(int) - face_photo()[20:40, 20:40]).max() > 20


def test_raw_mode_returns_the_networks_own_output(tmp_path, model):
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", model, "--mode", "raw") == 0
    # The stand-in network passes RGB through unchanged: raw mode blurs nothing.
    assert np.array_equal(read_image(tmp_path / "photo_blurred.png"), face_photo())


def test_a_detector_baseline_can_be_the_model(tmp_path):
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", "centerface", "--save-json") == 0
    assert json.loads((tmp_path / "photo_blurred.json").read_text())["method"] == "centerface"


def test_a_model_that_fails_on_the_warm_up_frame_stops_the_stream_before_any_output(tmp_path):
    from unetblur.anonymise import BlurConfig, Summary, blur_stream
    from unetblur.errors import UnetblurError

    def broken(image, faces=None):
        raise RuntimeError("bad weights")

    src = make_video(tmp_path / "camera.mp4", audio=False)
    with pytest.raises(UnetblurError, match="failed on a blank 96×64 frame"):
        blur_stream(broken, str(src), tmp_path / "rec.mp4", BlurConfig(progress=False), Summary())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.mp4"]


def test_a_video_with_a_damaged_middle_is_written_from_the_decodable_frames_and_reported(tmp_path, model, capsys):
    src = make_video(tmp_path / "clip.mp4", audio=False, frames=20)
    data = bytearray(src.read_bytes())
    a, b = len(data) // 3, 2 * len(data) // 3
    data[a:b] = np.random.default_rng(7).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    src.write_bytes(bytes(data))
    assert blur(src, "--model", model) == 1
    err = capsys.readouterr().err
    assert "damaged video" in err and "clip.mp4" in err
    assert 0 < count_frames(tmp_path / "clip_blurred.mp4") < 20


def test_an_unreadable_stream_prints_exactly_one_line_on_the_process_stderr(tmp_path, model):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "unetblur", "blur", "rtsp://127.0.0.1:9/nothing", "--model", model,
                           "-o", str(tmp_path / "rec.mp4")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_default_working_size_caps_the_network_input_and_zero_means_native(model):
    from unetblur.anonymise import BlurConfig, open_blurrer_for

    assert open_blurrer_for(BlurConfig(model=model)).working_size == 1920
    assert open_blurrer_for(BlurConfig(model=model, working_size=0)).working_size is None


def test_a_stream_can_be_re_streamed_to_a_url(tmp_path):
    from unetblur.anonymise import BlurConfig, Summary, blur_stream
    from unetblur.runtime.base import BlurResult

    src = make_video(tmp_path / "camera.mp4", audio=False)
    halve = lambda image, faces=None: BlurResult(image // 2)  # noqa: E731
    frames = blur_stream(halve, str(src), "udp://127.0.0.1:23456", BlurConfig(progress=False, hold_frames=0), Summary())
    assert frames == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.mp4"]


def test_re_streaming_a_file_input_to_a_url_is_refused(tmp_path, model, capsys):
    write_image(tmp_path / "photo.png", face_photo())
    assert blur(tmp_path / "photo.png", "--model", model, "-o", "udp://127.0.0.1:23456") == 2
    assert "webcam/stream inputs only" in capsys.readouterr().err
