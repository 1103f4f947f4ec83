"""``unetblur data synth``: procedurally drawn faces, exact masks, determinism, no real faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unetblur.blur import BlurSettings, blur_faces, face_mask
from unetblur.cli import main
from unetblur.data.check import check_dataset
from unetblur.data.synth import (BACKGROUNDS, EXCLUDED_BACKGROUNDS, _Pen, draw_face, draw_sample, load_backgrounds,
                                 synthesize)
from unetblur.errors import UnetblurError
from unetblur.faces import Face, read_faces_jsonl
from unetblur.io import read_image, read_mask


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    synthesize(out, count=20, size=48, seed=3, progress=False)
    return out


def test_synth_writes_a_dataset_that_passes_the_check(small_synth):
    problems, _ = check_dataset(small_synth)
    assert problems == []


def test_synth_manifest_counts_every_image(small_synth):
    m = json.loads((small_synth / "manifest.json").read_text())
    assert sum(m["counts"].values()) == 20 and m["targets_from"] == "ground_truth" and m["image_size"] == 48


def test_synth_targets_are_blur_faces_of_the_recorded_faces(small_synth):
    for image, faces in read_faces_jsonl(small_synth / "faces.jsonl").items():
        split, name = image.split("/")
        blurred, mask = blur_faces(read_image(small_synth / image), faces, BlurSettings())
        assert np.array_equal(blurred, read_image(small_synth / f"{split}_blur" / name))
        assert np.array_equal(mask, read_mask(small_synth / f"{split}_mask" / name))


def test_synth_is_deterministic_for_a_seed(tmp_path):
    synthesize(tmp_path / "a", count=4, size=32, seed=7, progress=False)
    synthesize(tmp_path / "b", count=4, size=32, seed=7, progress=False, workers=2)
    for p in sorted((tmp_path / "a").glob("*/*.png")):
        assert np.array_equal(read_image(p), read_image(tmp_path / "b" / p.relative_to(tmp_path / "a")))


def test_different_seeds_draw_different_images(tmp_path):
    rng_a, rng_b = np.random.default_rng([1, 0]), np.random.default_rng([2, 0])
    bgs = load_backgrounds()
    assert not np.array_equal(draw_sample(rng_a, 32, bgs)[0], draw_sample(rng_b, 32, bgs)[0])


def test_face_counts_stay_within_the_limit_and_vary():
    bgs = load_backgrounds()
    counts = [len(draw_sample(np.random.default_rng(i), 64, bgs, max_faces=5)[1]) for i in range(60)]
    assert max(counts) <= 5 and 0 in counts and len(set(counts)) >= 4


def test_face_sizes_span_small_to_large():
    bgs = load_backgrounds()
    widths = [2 * f.ellipse[2] / 128 for i in range(60)
              for f in draw_sample(np.random.default_rng(i), 128, bgs)[1]]
    assert min(widths) < 0.12 and max(widths) > 0.45


def test_some_faces_are_cut_by_the_border():
    bgs = load_backgrounds()
    faces = [f for i in range(60) for f in draw_sample(np.random.default_rng(i), 64, bgs)[1]]
    assert any(f.x1 < 0 or f.y1 < 0 or f.x2 > 64 or f.y2 > 64 for f in faces)


def test_distractors_are_drawn_but_not_blurred():
    bgs = load_backgrounds()
    for i in range(40):
        image, faces, distractors = draw_sample(np.random.default_rng(i), 64, bgs, max_faces=0)
        if distractors:
            blurred, mask = blur_faces(image, faces)
            assert mask.max() == 0 and np.array_equal(blurred, image)
            return
    pytest.fail("no distractor drawn in 40 images")


@pytest.mark.parametrize("angle", [-25.0, 0.0, 25.0])
def test_rotated_head_matches_its_recorded_ellipse(angle):
    image = np.zeros((128, 128, 3), np.uint8)
    _Pen(image, 60, 64, angle).ellipse(0, 0, 20, 28, (255, 255, 255))
    drawn = image[..., 0] > 127
    recorded = face_mask((128, 128), Face.from_ellipse(60, 64, 20, 28, angle), BlurSettings(mask_scale=1.0)) > 0
    assert (drawn & recorded).sum() / (drawn | recorded).sum() > 0.95


def test_drawn_face_covers_its_head_ellipse():
    image = np.zeros((96, 96, 3), np.uint8)
    draw_face(image, np.random.default_rng(5), 48, 48, 20, 26, 15.0)
    inside = face_mask((96, 96), Face.from_ellipse(48, 48, 20, 26, 15.0), BlurSettings(mask_scale=0.95)) > 0
    assert (image[inside].max(axis=1) > 0).mean() > 0.99


def test_no_background_photo_shows_a_real_person():
    assert not set(BACKGROUNDS) & set(EXCLUDED_BACKGROUNDS)
    assert "astronaut.png" in EXCLUDED_BACKGROUNDS and "camera.png" in EXCLUDED_BACKGROUNDS


def test_synth_cli_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    assert main(["data", "synth", "-o", str(tmp_path / "out"), "--count", "2"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_synth_cli_builds_and_reports(tmp_path, capsys):
    assert main(["data", "synth", "-o", str(tmp_path / "out"), "--count", "5", "--size", "32", "--no-progress"]) == 0
    assert "synthesised" in capsys.readouterr().err


def test_synth_rejects_a_zero_count(tmp_path):
    with pytest.raises(UnetblurError, match="--count"):
        synthesize(tmp_path / "o", count=0)


def test_samples_cli_writes_a_photo_a_video_and_their_faces(tmp_path, capsys):
    assert main(["data", "samples", "-o", str(tmp_path / "s"), "--frames", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["sample.jpg", "sample.mp4", "sample_faces.jsonl"]


def test_the_oracle_with_the_stored_faces_reproduces_every_stored_target_exactly(tmp_path):
    from unetblur.runtime.base import OracleBlurrer

    out = tmp_path / "ds"
    synthesize(out, count=12, size=96, seed=11, progress=False)
    oracle = OracleBlurrer(BlurSettings())
    records = read_faces_jsonl(out / "faces.jsonl")
    assert sum(len(f) for f in records.values()) > 0
    for image, faces in records.items():
        split, name = image.split("/")
        result = oracle(read_image(out / image), faces)
        target = read_image(out / f"{split}_blur" / name)
        mse = float(np.mean((result.image.astype(np.float64) - target.astype(np.float64)) ** 2))
        assert mse == 0, f"{image}: oracle differs from the stored target (mse {mse:.3g})"
