"""Fail closed: a model whose output cannot be trusted never lets a frame out unanonymised.

The class (issue 13, class 3): NaN, inf, values outside [0, 1], a declared mask channel that is not
there. Clipping would turn each of them into a plausible image with an empty mask, i.e. nothing
blurred. Every member of the class is run through every medium: images, videos, streams.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import badinputs as bad
from unetblur.errors import EXIT_FINDINGS, EXIT_USAGE, UnusableModelOutput

BLUR = ["blur", "--workers", "1", "--no-progress"]
#: name → (factor the input is multiplied by, output channels); 3 channels = the mask is missing.
BROKEN = {**{k: (v, 4) for k, v in bad.BROKEN_OUTPUTS.items()}, "no_mask_channel": (1.0, 3)}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    return {name: bad.make_broken_onnx(folder / f"{name}.onnx", f, c) for name, (f, c) in BROKEN.items()}


@pytest.mark.parametrize("kind", BROKEN)
def test_the_onnx_backend_refuses_every_unusable_output_instead_of_clipping_it(broken, kind):
    from unetblur.runtime.onnx import OnnxModel

    with pytest.raises(UnusableModelOutput, match="model"):
        OnnxModel(broken[kind]).predict(bad.photo())


@pytest.mark.parametrize("mode", ["composite", "raw"])
@pytest.mark.parametrize("kind", BROKEN)
def test_an_image_is_not_written_when_the_model_output_is_unusable(tmp_path, capsys, broken, kind, mode):
    src = bad._save(bad.photo(), tmp_path / "in" / "photo.png")
    code, _, err = bad.run_cli([*BLUR, src, "--model", broken[kind], "--mode", mode, "-o", tmp_path / "out"], capsys)
    assert code == EXIT_USAGE, err
    bad.assert_one_clear_line(err, "photo.png")
    assert bad.files_under(tmp_path / "out") == []


@pytest.mark.parametrize("kind", BROKEN)
def test_a_batch_skips_every_image_and_video_when_the_model_output_is_unusable(tmp_path, capsys, broken, kind):
    bad._save(bad.photo(), tmp_path / "in" / "photo.png")
    bad.make_video(tmp_path / "in" / "clip.mp4")
    code, _, err = bad.run_cli([*BLUR, tmp_path / "in", "--model", broken[kind], "-o", tmp_path / "out"], capsys)
    assert code == EXIT_FINDINGS, err
    assert "0 written, 2 skipped" in err
    assert bad.files_under(tmp_path / "out") == []  # no frame of unknown state reached the disk


@pytest.mark.parametrize("kind", BROKEN)
def test_a_stream_with_an_unusable_model_stops_before_any_output(tmp_path, broken, kind):
    from unetblur.anonymise import BlurConfig, Summary, blur_stream, open_blurrer_for
    from unetblur.errors import UnetblurError

    src = bad.make_video(tmp_path / "camera.mp4")  # OpenCV reads a file as it reads a stream
    blurrer = open_blurrer_for(BlurConfig(model=str(broken[kind])))
    with pytest.raises(UnetblurError, match="model"):
        blur_stream(blurrer, str(src), tmp_path / "rec.mp4", BlurConfig(progress=False), Summary())
    assert not (tmp_path / "rec.mp4").exists()


class _TurnsNaN:
    """An ImageModel whose mask turns NaN after ``good`` calls (a model that breaks mid-stream)."""

    name, stride, mask_channel = "turns-nan", 1, True

    def __init__(self, good: int):
        self.calls, self.good = 0, good

    def predict(self, image, rgb=True):
        self.calls += 1
        mask = np.zeros(image.shape[:2], np.float32)
        return image, (mask if self.calls <= self.good else mask * np.nan)


def test_stream_frames_after_the_model_breaks_are_black_and_the_run_is_not_a_success(tmp_path):
    from unetblur.anonymise import BlurConfig, Summary, blur_stream
    from unetblur.video import VideoReader
    from unetblur.runtime.composite import CompositingBlurrer

    src = bad.make_video(tmp_path / "camera.mp4")
    out = tmp_path / "rec.mp4"
    summary = Summary()
    blur_stream(CompositingBlurrer(_TurnsNaN(good=3)), str(src), out,  # warm-up + 2 good frames
                BlurConfig(hold_frames=0, max_frames=5, progress=False, crf=0), summary)
    peaks = [int(frame.max()) for frame in VideoReader(out)]
    assert all(p > 100 for p in peaks[:2]) and all(p < 20 for p in peaks[2:]), peaks
    assert summary.black_frames == 3
    assert summary.exit_code == EXIT_FINDINGS
