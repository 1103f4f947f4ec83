"""``unetblur data check``: every problem listed, exit 1 if any, 0 if clean."""

from __future__ import annotations

import json

import numpy as np

from unetblur.cli import main
from unetblur.data.check import check_dataset
from unetblur.io import write_image


def run_check(capsys, root) -> tuple[int, str]:
    code = main(["data", "check", str(root)])
    return code, capsys.readouterr().err


def test_clean_dataset_passes_with_exit_0(tiny_dataset, capsys):
    code, err = run_check(capsys, tiny_dataset)
    assert code == 0 and "no problems" in err


def test_missing_target_is_reported(tiny_dataset, capsys):
    (tiny_dataset / "train_blur" / "train_0003.png").unlink()
    code, err = run_check(capsys, tiny_dataset)
    assert code == 1 and "train_0003.png: no target" in err


def test_missing_mask_is_reported(tiny_dataset):
    (tiny_dataset / "val_mask" / "val_0001.png").unlink()
    assert any("no mask" in p for p in check_dataset(tiny_dataset)[0])


def test_orphan_target_is_reported(tiny_dataset):
    write_image(tiny_dataset / "test_blur" / "stray.png", np.zeros((32, 32, 3), np.uint8))
    assert any("stray.png: target without an input" in p for p in check_dataset(tiny_dataset)[0])


def test_size_mismatch_is_reported(tiny_dataset):
    write_image(tiny_dataset / "train_blur" / "train_0000.png", np.zeros((16, 32, 3), np.uint8))
    assert any("target is 32x16 but its input is 32x32" in p for p in check_dataset(tiny_dataset)[0])


def test_mask_with_grey_values_is_reported(tiny_dataset):
    write_image(tiny_dataset / "train_mask" / "train_0001.png", np.full((32, 32), 128, np.uint8))
    assert any("values other than 0 and 255" in p for p in check_dataset(tiny_dataset)[0])


def test_colour_mask_is_reported(tiny_dataset):
    write_image(tiny_dataset / "train_mask" / "train_0001.png", np.zeros((32, 32, 3), np.uint8))
    assert any("expected single-channel" in p for p in check_dataset(tiny_dataset)[0])


def test_corrupt_input_is_reported_without_a_traceback(tiny_dataset, capsys):
    (tiny_dataset / "train" / "train_0002.png").write_bytes(b"not a png")
    code, err = run_check(capsys, tiny_dataset)
    assert code == 1 and "train_0002.png: input" in err and "Traceback" not in err


def test_manifest_count_mismatch_is_reported(tiny_dataset):
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    m["counts"]["train"] = 99
    (tiny_dataset / "manifest.json").write_text(json.dumps(m))
    assert any("counts.train is 99 but train/ holds 8" in p for p in check_dataset(tiny_dataset)[0])


def test_missing_manifest_is_reported(tiny_dataset):
    (tiny_dataset / "manifest.json").unlink()
    assert any("manifest.json: missing" in p for p in check_dataset(tiny_dataset)[0])


def test_faces_record_for_a_missing_image_is_reported(tiny_dataset):
    with open(tiny_dataset / "faces.jsonl", "a") as fh:
        fh.write(json.dumps({"image": "train/ghost.png", "faces": []}) + "\n")
    assert any("train/ghost.png is not in the dataset" in p for p in check_dataset(tiny_dataset)[0])


def test_leftover_temporary_file_is_reported(tiny_dataset):
    (tiny_dataset / "train" / ".x.part.png").write_bytes(b"")
    assert any("leftover temporary" in p for p in check_dataset(tiny_dataset)[0])


def test_every_problem_is_listed_not_just_the_first(tiny_dataset):
    (tiny_dataset / "train_blur" / "train_0000.png").unlink()
    (tiny_dataset / "train_blur" / "train_0001.png").unlink()
    assert len(check_dataset(tiny_dataset)[0]) == 2


def test_empty_folder_is_reported(tmp_path, capsys):
    code, err = run_check(capsys, tmp_path)
    assert code == 1 and "no images" in err


def test_missing_folder_is_a_usage_error(tmp_path, capsys):
    code, err = run_check(capsys, tmp_path / "nope")
    assert code == 2 and "dataset folder not found" in err
