"""The full-photo privacy protocol: held-out originals from a built dataset, each method run as
`unetblur blur` runs it, coverage / background damage / speed in one table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from unetblur.cli import main
from unetblur.data.build import BuildConfig, build_dataset
from unetblur.errors import UnetblurError
from unetblur.commands.privacy import parse_method
from unetblur.evaluate.photos import PhotoBenchConfig, held_out_photos, photo_benchmark
from unetblur.io import write_image

from test_media import red_face_onnx


def red_face_photo(rng: np.random.Generator) -> tuple[np.ndarray, list[list[int]]]:
    """A textured 80×120 photo with two red, textured "faces" (what the stand-in model finds)."""
    img = (rng.random((80, 120, 3)) * 60 + 60).astype(np.uint8)
    boxes = []
    for cx, cy in ((30, 35), (85, 45)):
        face = np.zeros_like(img)
        cv2.circle(face, (cx, cy), 16, (1, 1, 1), -1)
        detail = (rng.random(img.shape[:2]) * 50).astype(np.uint8)
        red = np.stack([200 + detail, detail // 2, detail // 2], axis=-1)
        img = np.where(face > 0, red, img)
        boxes.append([cx - 16, cy - 16, cx + 16, cy + 16])
    return img, boxes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    rng = np.random.default_rng(0)
    boxes = {}
    for i in range(10):
        img, b = red_face_photo(rng)
        write_image(root / "photos" / f"p{i}.png", img)
        boxes[f"p{i}.png"] = b
    (root / "boxes.json").write_text(json.dumps(boxes))
    build_dataset(BuildConfig(source=str(root / "photos"), annotations=str(root / "boxes.json"), out=str(root / "ds"), size=64,
                              split=(0.5, 0.2, 0.3), progress=False))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(red_face_onnx(tmp_path_factory.mktemp("model") / "red.onnx"))


def test_held_out_photos_are_the_originals_of_the_split_with_their_boxes_in_original_pixels(dataset):
    photos = held_out_photos(str(dataset / "ds"), "test")
    assert len(photos) == 3
    for photo in photos:
        assert photo.path.parent == dataset / "photos" and len(photo.faces) == 2
        assert photo.faces[0].width == pytest.approx(32, abs=1)


def test_a_method_is_exactly_the_blur_command_settings():
    name, cfg = parse_method("fast=--model centerface@0.3 --threshold 0.4 --working-size 320")
    assert (name, cfg.model, cfg.threshold, cfg.working_size) == ("fast", "centerface@0.3", 0.4, 320)


def test_a_method_with_a_flag_blur_does_not_know_is_one_clear_error():
    with pytest.raises(UnetblurError, match="--method fast"):
        parse_method("fast=--model centerface --no-such-flag")


def test_the_table_tells_a_face_finder_from_doing_nothing(dataset, model, tmp_path):
    methods = ("nothing=--model identity", f"red=--model {model} --working-size 0 --min-peak 0.6 --grow 1.1")
    out = photo_benchmark(PhotoBenchConfig(data=str(dataset / "ds"), methods=methods, out=str(tmp_path / "run"),
                                           reid=False, warmup=0, sheets=1, progress=False),
                          [parse_method(m) for m in methods])
    results = json.loads((out / "results.json").read_text())
    red, nothing = results["methods"]["red"], results["methods"]["nothing"]
    assert red["coverage"]["all"] == 1.0 and nothing["coverage"]["all"] == 0.0
    assert nothing["bg_changed"] == 0.0 and red["bg_changed"] < 0.01
    assert red["faces"]["32-64"] == 6 and red["ms_per_photo"] > 0
    lo, hi = red["coverage_ci95"][">=32"]
    assert 0 < lo < hi == 1.0 and nothing["coverage_ci95"][">=32"][0] == 0.0
    assert red["flags"]["min_peak"] == 0.6 and red["flags"]["grow"] == 1.1  # every setting the row ran is reported
    table = (out / "table.md").read_text()
    assert "`red`" in table and "`nothing`" in table
    assert f"| 1.000 ({lo:.3f}–1.000) |" in table  # the ≥ 32 px column carries its interval
    assert (out / "pareto.png").stat().st_size > 0 and len(list((out / "sheets").glob("*.jpg"))) == 1


def test_methods_take_turns_over_blocks_of_photos_so_load_drift_is_shared(dataset, model, tmp_path, monkeypatch):
    import unetblur.evaluate.photos as photos_module

    turns = []
    real = photos_module.time_one_photo

    def logged(blurrer, photo, scratch):
        turns.append((getattr(blurrer, "name", "?"), photo.key))
        return real(blurrer, photo, scratch)

    monkeypatch.setattr(photos_module, "time_one_photo", logged)
    monkeypatch.setattr(photos_module, "INTERLEAVE_BLOCK", 1)
    methods = ("nothing=--model identity", f"red=--model {model} --working-size 0")
    out = photo_benchmark(PhotoBenchConfig(data=str(dataset / "ds"), methods=methods, out=str(tmp_path / "run"),
                                           reid=False, warmup=0, sheets=3, progress=False),
                          [parse_method(m) for m in methods])
    firsts = [turns[i][0] for i in range(0, len(turns), 2)]
    assert len(turns) == 6 and [t[1] for t in turns[0::2]] == [t[1] for t in turns[1::2]]  # both on each photo
    assert firsts[0] != firsts[1] and firsts[0] == firsts[2]  # the method that starts a block alternates
    results = json.loads((out / "results.json").read_text())["methods"]
    assert results["red"]["coverage"]["all"] == 1.0 and results["nothing"]["coverage"]["all"] == 0.0
    assert len(list((out / "sheets").glob("*.jpg"))) == 3


def test_the_privacy_command_writes_the_table_and_refuses_a_dataset_without_sources(dataset, tmp_path, capsys):
    assert main(["privacy", "--data", str(dataset / "ds"), "--method", "nothing=--model identity", "--no-reid",
                 "--sheets", "0", "--warmup", "0", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "table.md").is_file()
    capsys.readouterr()
    (tmp_path / "bare").mkdir()
    assert main(["privacy", "--data", str(tmp_path / "bare"), "--method", "n=--model identity"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_blurring_the_ground_truth_boxes_covers_every_face_and_leaves_the_background(dataset, tmp_path):
    methods = (f"boxes=--model file:{dataset / 'boxes.json'}",)
    out = photo_benchmark(PhotoBenchConfig(data=str(dataset / "ds"), methods=methods, out=str(tmp_path / "run"),
                                           reid=False, warmup=0, sheets=0, progress=False),
                          [parse_method(m) for m in methods])
    boxes = json.loads((out / "results.json").read_text())["methods"]["boxes"]
    assert boxes["coverage"]["all"] == 1.0 and boxes["bg_changed"] == 0.0


def test_mask_recall_reports_found_and_missed_faces_by_width_and_background_cost(tmp_path, experiment_script):
    from unetblur.evaluate.photos import Photo
    from unetblur.faces import Face
    from unetblur.io import write_image

    mask_recall = experiment_script("full_photo/mask_recall.py")
    path = tmp_path / "photo.png"
    write_image(path, np.zeros((200, 400, 3), np.uint8))
    found, missed = Face(20, 20, 60, 60, 1.0), Face(200, 100, 300, 200, 1.0)   # 40 px and 100 px wide

    class HalfSizeMask:
        """Sees the photo at working size 200 (scale 0.5): only the first face, and one background pixel."""
        name, stride, mask_channel = "half-size mask", 1, True

        def predict(self, image, rgb=True):
            assert image.shape[:2] == (100, 200)
            mask = np.zeros(image.shape[:2], np.float32)
            mask[15:25, 15:25] = 0.6
            mask[0, 199] = 0.9
            return image, mask

    widths, peaks, background = mask_recall.face_peaks(HalfSizeMask(), [Photo("p", path, [found, missed])], 200)
    assert list(widths) == [40, 100] and list(peaks) == pytest.approx([0.6, 0.0])
    table = mask_recall.render(widths, peaks, background)
    assert "| 32-64 | 1 | 1.00 | 1.00 | 0.00 |" in table and "| 64-128 | 1 | 0.00 | 0.00 | 0.00 |" in table
    outside = 200 * 100 - 30 * 30 - 76 * 63          # the photo less each face box grown 1.5× (the second clipped)
    assert background[0, 2] == pytest.approx(1 / outside)
    # Other thresholds (a recall-vs-background frontier): at 0.8 the face is lost, the false positive stays.
    widths, peaks, background = mask_recall.face_peaks(HalfSizeMask(), [Photo("p", path, [found, missed])], 200,
                                                       thresholds=(0.4, 0.8))
    table = mask_recall.render(widths, peaks, background, (0.4, 0.8))
    assert "peak ≥ 0.8 |" in table and "| 32-64 | 1 | 1.00 | 0.00 |" in table
    assert background[0].tolist() == pytest.approx([1 / outside, 1 / outside])
    assert mask_recall.main(["m.onnx", "--data", str(tmp_path), "--thresholds", "0.5,high"]) == 2


def test_bg_sources_splits_background_damage_into_unannotated_faces_and_the_rest(tmp_path, experiment_script):
    from unetblur.evaluate import metrics as M

    bg_sources = experiment_script("full_photo/bg_sources.py")
    image = np.full((100, 100, 3), 100, np.uint8)
    output = image.copy()
    annotated = (0, 0, 20, 20)            # grown 1.5×: rows/cols 0..25 are not background
    unannotated = (60, 60, 80, 80)        # a face the ground truth lacks, found by the finder: grown 55..85
    output[0:10, 0:10] = 0                # inside the annotated face: never charged
    output[60:70, 60:70] = 0              # 100 px on the unannotated face
    output[90:95, 0:10] = 0               # 50 px of scene
    on_faces, elsewhere = bg_sources.split_background(output, image, [annotated], [unannotated])
    background = 100 * 100 - 25 * 25
    assert (on_faces, elsewhere) == (pytest.approx(100 / background), pytest.approx(50 / background))
    assert on_faces + elsewhere == pytest.approx(M.bg_changed(output, image, [annotated]))
    # A found face that is the annotated one adds nothing: its grown box is not background anyway.
    assert bg_sources.split_background(output, image, [annotated], [annotated]) == (0.0, pytest.approx(150 / background))
    assert bg_sources.main(["--data", str(tmp_path), "--method", "x=--model centerface"]) == 2


def test_input_equalisation_spreads_a_flat_dark_frame_reads_mirrors_and_refuses_bad_variants(tmp_path, experiment_script,
                                                                                             monkeypatch, capsys):
    from unetblur.runtime.composite import CompositingBlurrer

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "experiments" / "full_photo"))
    probe = experiment_script("full_photo/input_equalisation.py")
    grey = (40 + 10 * np.random.default_rng(0).standard_normal((64, 64))).clip(0, 255)  # dark and flat
    image = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    before = image.copy()
    out = probe.clahe_luma(2.0)(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[..., 1].std() > 2 * image[..., 1].std()  # contrast stretched
    assert np.array_equal(image, before)  # the photo itself is untouched
    assert probe.main(["--data", str(tmp_path), "--variant", "high:"]) == 2
    assert "variants are CLIP:FLAGS" in capsys.readouterr().err

    class LeftEyed:
        """Finds bright 4×4 cells in the left half of a frame only."""
        name = "left-eyed"

        def coarse_mask(self, small):
            cells = small[..., 0].reshape(small.shape[0] // 4, 4, small.shape[1] // 4, 4).mean((1, 3)) / 255
            cells[:, cells.shape[1] // 2:] = 0
            return cells.astype(np.float32), 4

    frame = np.zeros((32, 64, 3), np.uint8)
    frame[8:16, 4:12] = 255  # left
    frame[16:24, 40:48] = 255  # right
    plain = probe.equalised(CompositingBlurrer(LeftEyed()), 0.0).model.coarse_mask(frame)[0]
    mirrored = probe.equalised(CompositingBlurrer(LeftEyed()), 0.0, mirror=True).model.coarse_mask(frame)[0]
    assert plain[2:4, 1:3].min() == 1 and plain[4:6, 10:12].max() == 0
    assert mirrored[2:4, 1:3].min() == 1 and mirrored[4:6, 10:12].min() == 1  # the right square, found mirrored
    assert mirrored.sum() == 8  # and nothing else, cell for cell
