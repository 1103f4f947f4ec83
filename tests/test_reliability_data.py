"""Reliability and security of datasets: annotation files with bad boxes and hostile paths,
``data build`` / ``data check`` on broken inputs, and training on a broken dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import badinputs as bad
from conftest import make_face_image, write_tiny_dataset
from unetblur.errors import EXIT_FINDINGS, EXIT_USAGE
from unetblur.io import write_image

pytest.importorskip("unetblur.data.build")
BUILD = ["data", "build", "--size", "32", "--no-progress"]


def _photos(folder: Path, n: int = 4, size: int = 96) -> list[tuple[str, list[tuple]]]:
    """``n`` JPEG photos with drawn faces; returns WIDER-style entries (name, [(x, y, w, h), ...])."""
    rng = np.random.default_rng(3)
    entries = []
    for i in range(n):
        img, faces = make_face_image(rng, size, 2)
        write_image(folder / f"p{i}.jpg", img)
        entries.append((f"p{i}.jpg", [(f.x1, f.y1, f.width, f.height) for f in faces]))
    return entries


@pytest.fixture
def hostile_wider(tmp_path):
    """A photo folder and a WIDER file mixing good entries with every kind of bad one."""
    src = tmp_path / "src"
    entries = _photos(src)
    entries[1] = ("p1.jpg", [(-5, -5, 20, 20), (10, 10, 20, 20)])        # partly negative: clipped
    entries[2] = ("p2.jpg", [("nan", 3, 10, 10), (10, 10, 20, 20)])      # NaN: dropped
    entries.append(("p3.jpg", [(500, 500, 20, 20)]))                     # outside the image: dropped
    entries += [(p, [(1, 1, 5, 5)]) for p in bad.ESCAPING_PATHS]         # leave the root: skipped
    entries.append(("missing.jpg", [(1, 1, 5, 5)]))                      # no such image: skipped
    ann = bad.make_wider_annotations(tmp_path, entries, "wider.txt")
    return src, ann


def test_hostile_annotations_are_skipped_or_dropped_and_each_is_named(tmp_path, capsys, hostile_wider):
    src, ann = hostile_wider
    before = {**bad.snapshot(src), "ann": bad.snapshot(tmp_path)["wider.txt"]}
    out = tmp_path / "ds"
    code, _, err = bad.run_cli([*BUILD, src, "-o", out, "--annotations", ann], capsys)
    assert code == EXIT_FINDINGS, err
    assert "Traceback" not in err
    for path in bad.ESCAPING_PATHS:
        assert any(path in ln and "escapes the image root" in ln for ln in err.splitlines()), (path, err)
    assert any("missing.jpg" in ln and "missing" in ln for ln in err.splitlines())
    assert any("p2.jpg" in ln and "non-finite" in ln for ln in err.splitlines())
    assert any("p3.jpg" in ln and "outside" in ln for ln in err.splitlines())
    assert {**bad.snapshot(src), "ann": bad.snapshot(tmp_path)["wider.txt"]} == before


def test_hostile_annotations_never_read_or_write_outside_the_roots(tmp_path, capsys, hostile_wider):
    src, ann = hostile_wider
    out = tmp_path / "ds"
    bad.run_cli([*BUILD, src, "-o", out, "--annotations", ann], capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    sources = {json.loads(line)["source"] for line in (out / "faces.jsonl").read_text().splitlines()}
    assert sources <= {"p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"}
    assert not any("passwd" in str(p) or "outside" in str(p) for p in bad.files_under(out))
    assert manifest["skipped"] and manifest["dropped_boxes"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no build leftovers


def test_stored_boxes_are_finite_and_inside_their_image(tmp_path, capsys, hostile_wider):
    src, ann = hostile_wider
    out = tmp_path / "ds"
    bad.run_cli([*BUILD, src, "-o", out, "--annotations", ann], capsys)
    for line in (out / "faces.jsonl").read_text().splitlines():
        for face in json.loads(line)["faces"]:
            box = face["box"] if isinstance(face, dict) and "box" in face else [face[k] for k in ("x1", "y1", "x2", "y2")]
            assert all(math.isfinite(v) and -0.5 <= v <= 32.5 for v in box), (line, box)


def test_an_unknown_annotation_format_is_exit_2_naming_the_file(tmp_path, capsys):
    src = tmp_path / "src"
    _photos(src, 2)
    ann = bad.make_unknown_annotations(tmp_path)
    code, _, err = bad.run_cli([*BUILD, src, "-o", tmp_path / "ds", "--annotations", ann], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "labels.xyz", "annotation format")
    assert not (tmp_path / "ds").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_broken_photos_are_skipped_and_listed_when_a_detector_makes_the_boxes(tmp_path, capsys):
    src = tmp_path / "src"
    _photos(src, 3)
    bad.make_zero_byte(src, "p_empty.jpg")
    bad.make_truncated_jpeg(src, "p_trunc.jpg")
    bad.make_text_as_jpg(src, "p_text.jpg")
    bad.make_decompression_bomb(src, "p_bomb.png")
    before = bad.snapshot(src)
    code, _, err = bad.run_cli([*BUILD, src, "-o", tmp_path / "ds", "--detector", "centerface"], capsys)
    assert code == EXIT_FINDINGS, err
    for name, problem in (("p_empty.jpg", "empty"), ("p_trunc.jpg", "truncated"), ("p_text.jpg", "not a readable"),
                          ("p_bomb.png", "too large")):
        assert any(name in ln and problem in ln for ln in err.splitlines()), (name, err)
    assert bad.snapshot(src) == before
    assert bad.leftovers(tmp_path / "ds") == []


def _coco(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"categories": [{"id": 1, "name": "face"}], **doc}))
    return path


def test_coco_boxes_with_nan_and_escaping_file_names_are_dropped_and_named(tmp_path, capsys):
    src = tmp_path / "src"
    _photos(src, 2)
    ann = bad.make_coco_annotations(tmp_path, [
        ("p0.jpg", 96, 96, [(10, 10, 20, 20), (float("nan"), 1, 5, 5)]),
        ("p1.jpg", 96, 96, [(-10, -10, 30, 30)]),
        ("../../etc/passwd", 96, 96, [(1, 1, 5, 5)]),
    ])
    code, _, err = bad.run_cli([*BUILD, src, "-o", tmp_path / "ds", "--annotations", ann, "--format", "coco"], capsys)
    assert code == EXIT_FINDINGS, err
    assert any("../../etc/passwd" in ln for ln in err.splitlines())
    assert any("p0.jpg" in ln and "non-finite" in ln for ln in err.splitlines())


COCO_BAD_TYPES = {
    "score is text": {"images": [{"id": 1, "file_name": "p0.jpg"}],
                      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20],
                                       "score": "high"}]},
    "images is a number": {"images": 5, "annotations": []},
    "image id is a list": {"images": [{"id": [1], "file_name": "p0.jpg"}], "annotations": []},
}


@pytest.mark.parametrize("case", COCO_BAD_TYPES, ids=list(COCO_BAD_TYPES))
def test_coco_values_of_the_wrong_type_are_a_clear_error_not_a_crash(tmp_path, capsys, case):
    src = tmp_path / "src"
    _photos(src, 1)
    ann = _coco(tmp_path, COCO_BAD_TYPES[case])
    code, _, err = bad.run_cli([*BUILD, src, "-o", tmp_path / "ds", "--annotations", ann, "--format", "coco"], capsys)
    assert code in (EXIT_FINDINGS, EXIT_USAGE), err
    assert "internal error" not in err and "Traceback" not in err


def test_a_voc_file_with_an_external_entity_never_reads_the_referenced_file(tmp_path, capsys):
    src = tmp_path / "src"
    _photos(src, 1)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-CONTENT")
    (src / "p0.xml").write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        "<annotation><filename>&xxe;</filename><object><name>face</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>\n")
    code, out, err = bad.run_cli([*BUILD, src, "-o", tmp_path / "ds", "--annotations", src / "p0.xml",
                                  "--format", "voc"], capsys)
    assert code in (EXIT_FINDINGS, EXIT_USAGE) and "Traceback" not in err
    assert "TOPSECRET" not in err + out
    ds = tmp_path / "ds"
    if ds.exists():
        assert "TOPSECRET" not in (ds / "manifest.json").read_text()


# ------------------------------------------------------------------------------ data check and training

def test_data_check_names_mismatched_stems_and_wrong_size_masks(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds")
    old, new = bad.break_stems(root)
    mask = bad.shrink_mask(root, "val")
    before = bad.snapshot(root)
    code, _, err = bad.run_cli(["data", "check", root], capsys)
    assert code == EXIT_FINDINGS
    assert any(new in ln for ln in err.splitlines()) and any(f"{old}.png" in ln for ln in err.splitlines())
    assert any(mask.name in ln and "16x16" in ln for ln in err.splitlines())
    assert bad.snapshot(root) == before  # check never repairs behind the user's back


def test_data_check_on_a_folder_that_is_not_a_dataset_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "random").mkdir()
    code, _, err = bad.run_cli(["data", "check", tmp_path / "random"], capsys)
    assert code in (EXIT_FINDINGS, EXIT_USAGE)
    assert "Traceback" not in err and "internal error" not in err


def test_training_on_a_wrong_size_mask_is_exit_2_naming_the_mask(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds", counts=(4, 2, 2))
    mask = bad.shrink_mask(root)
    code, _, err = bad.run_cli(["train", "--data", root, "--model", "tiny", "--epochs", "1", "--batch-size", "2",
                                "--out", tmp_path / "run", "--accelerator", "cpu", "--no-progress"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, str(mask), "16x16")
    assert not (tmp_path / "run" / "model.pt").exists()


def test_training_on_a_truncated_image_is_exit_2_naming_the_image(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds", counts=(4, 2, 2))
    broken = sorted((root / "train").glob("*.png"))[1]
    bad.make_truncated_png(broken.parent, broken.name)
    code, _, err = bad.run_cli(["train", "--data", root, "--model", "tiny", "--epochs", "1", "--batch-size", "2",
                                "--out", tmp_path / "run", "--accelerator", "cpu", "--no-progress"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, broken.name, "truncated")
    assert not (tmp_path / "run" / "model.pt").exists()
