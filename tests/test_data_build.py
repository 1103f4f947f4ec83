"""``unetblur data build``: layout, framing modes, splits, bad inputs (CLI exit codes, no tracebacks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_face_image
from unetblur.blur import BlurSettings, blur_faces
from unetblur.cli import main
from unetblur.data import build as build_mod
from unetblur.data.build import BuildConfig, assign_splits, build_dataset, letterbox
from unetblur.errors import UnetblurError
from unetblur.faces import Face, read_faces_jsonl
from unetblur.io import read_image, read_mask, write_image


def make_source(root: Path, n: int = 6, size=(48, 64), seed: int = 0) -> Path:
    """``n`` photos (H×W = size) with drawn faces and a plain-JSON annotation file ``faces.json``."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for i in range(n):
        img, faces = make_face_image(rng, max(size), n_faces=1 + i % 2)
        img = img[:size[0], :size[1]]
        write_image(root / "photos" / f"p{i}.png", img)
        boxes[f"photos/p{i}.png"] = [[f.x1, f.y1, min(f.x2, size[1] - 1), min(f.y2, size[0] - 1)] for f in faces]
    (root / "faces.json").write_text(json.dumps(boxes))
    return root


def cli_build(src: Path, out: Path, *extra: str) -> int:
    return main(["data", "build", str(src), "-o", str(out), "--annotations", str(src / "faces.json"),
                 "--size", "32", "--no-progress", *extra])


def add_annotation(src: Path, key: str, boxes) -> None:
    data = json.loads((src / "faces.json").read_text())
    data[key] = boxes
    (src / "faces.json").write_text(json.dumps(data))


# --------------------------------------------------------------------------- the normal path

def test_letterbox_build_writes_the_paired_layout(tmp_path):
    src = make_source(tmp_path / "src")
    assert cli_build(src, tmp_path / "out") == 0
    for split in ("train", "val", "test"):
        stems = {p.stem for p in (tmp_path / "out" / split).glob("*.png")}
        assert stems == {p.stem for p in (tmp_path / "out" / f"{split}_blur").glob("*.png")}
        assert stems == {p.stem for p in (tmp_path / "out" / f"{split}_mask").glob("*.png")}
    assert len(list((tmp_path / "out").glob("*/*.png"))) == 3 * 6


def test_letterbox_pads_to_a_centred_black_square():
    image = np.full((20, 40, 3), 200, np.uint8)
    out, (sx, sy), (dx, dy) = letterbox(image, 32)
    assert out.shape == (32, 32, 3) and (sx, sy) == (0.8, 0.8) and (dx, dy) == (0.0, 8.0)
    assert out[:8].max() == 0 and out[24:].max() == 0 and out[8:24].min() == 200


def test_manifest_records_counts_source_and_blur(tmp_path):
    src = make_source(tmp_path / "src")
    cli_build(src, tmp_path / "out", "--blur-kernel", "41")
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sum(m["counts"].values()) == 6 and m["faces_total"] == 9
    assert m["targets_from"] == "ground_truth" and m["annotation_format"] == "plain"
    assert m["blur"]["kernel"] == 41 and m["mode"] == "letterbox" and m["image_size"] == 32


def test_targets_are_blur_faces_of_the_stored_faces(tmp_path):
    src = make_source(tmp_path / "src")
    cli_build(src, tmp_path / "out", "--mode", "crops")
    out = tmp_path / "out"
    for image, faces in list(read_faces_jsonl(out / "faces.jsonl").items())[:4]:
        split, name = image.split("/")
        blurred, mask = blur_faces(read_image(out / image), faces, BlurSettings())
        assert np.array_equal(blurred, read_image(out / f"{split}_blur" / name))
        assert np.array_equal(mask, read_mask(out / f"{split}_mask" / name))


@pytest.mark.parametrize("mode", ["letterbox", "crops"])
def test_the_oracle_with_the_stored_faces_reproduces_every_built_target_exactly(tmp_path, mode):
    from unetblur.runtime.base import OracleBlurrer

    # 120 px photos stored at 100 px: stored boxes are fractions (x 5/6) that do not round to 3 decimals.
    src = make_source(tmp_path / "src", n=4, size=(120, 120), seed=2)
    assert cli_build(src, tmp_path / "out", "--mode", mode, "--size", "100") == 0
    out, oracle = tmp_path / "out", OracleBlurrer(BlurSettings())
    for image, faces in read_faces_jsonl(out / "faces.jsonl").items():
        split, name = image.split("/")
        result = oracle(read_image(out / image), faces)
        target = read_image(out / f"{split}_blur" / name)
        mse = float(np.mean((result.image.astype(np.float64) - target.astype(np.float64)) ** 2))
        assert mse == 0, f"{image}: oracle differs from the stored target (mse {mse:.3g})"


def test_build_blurs_with_the_faces_exactly_as_faces_jsonl_stores_them(tmp_path, monkeypatch):
    blurred_with = []

    def recording_blur(image, faces, settings):
        blurred_with.extend(faces)
        return blur_faces(image, faces, settings)

    monkeypatch.setattr(build_mod, "blur_faces", recording_blur)
    src = make_source(tmp_path / "src", n=4, size=(120, 120), seed=2)
    assert cli_build(src, tmp_path / "out", "--mode", "letterbox", "--size", "100") == 0  # in-process (1 worker)
    stored = [f for faces in read_faces_jsonl(tmp_path / "out" / "faces.jsonl").values() for f in faces]
    assert blurred_with and sorted(blurred_with, key=lambda f: f.box) == sorted(stored, key=lambda f: f.box)


def test_faces_jsonl_maps_stored_boxes_back_to_the_source(tmp_path):
    src = make_source(tmp_path / "src")
    cli_build(src, tmp_path / "out")
    rec = json.loads((tmp_path / "out" / "faces.jsonl").read_text().splitlines()[0])
    (sx, sy), (dx, dy) = rec["transform"]["scale"], rec["transform"]["offset"]
    stored, source = Face.from_dict(rec["faces"][0]), Face.from_dict(rec["source_faces"][0])
    assert stored.x1 == pytest.approx(source.x1 * sx + dx, abs=1e-2)
    assert rec["source"].startswith("photos/p")


def test_crops_are_size_square_and_a_photo_stays_in_one_split(tmp_path):
    src = make_source(tmp_path / "src", n=8, size=(96, 128))
    assert cli_build(src, tmp_path / "out", "--mode", "crops", "--crops-per-image", "3") == 0
    records = [json.loads(l) for l in (tmp_path / "out" / "faces.jsonl").read_text().splitlines()]
    splits_of = {}
    for r in records:
        splits_of.setdefault(r["source"], set()).add(r["split"])
        assert read_image(tmp_path / "out" / r["image"]).shape == (32, 32, 3)
    assert all(len(s) == 1 for s in splits_of.values())
    assert len(records) > 8


def test_crops_include_face_free_windows(tmp_path):
    src = make_source(tmp_path / "src", n=6, size=(120, 160))
    cli_build(src, tmp_path / "out", "--mode", "crops", "--empty-share", "0.5")
    records = [json.loads(l) for l in (tmp_path / "out" / "faces.jsonl").read_text().splitlines()]
    assert any(not r["faces"] for r in records)


def test_split_is_reproducible_by_seed():
    keys = [f"k{i}" for i in range(50)]
    assert assign_splits(keys, (0.8, 0.1, 0.1), 3) == assign_splits(list(reversed(keys)), (0.8, 0.1, 0.1), 3)
    assert assign_splits(keys, (0.8, 0.1, 0.1), 3) != assign_splits(keys, (0.8, 0.1, 0.1), 4)


def test_split_follows_the_fractions():
    counts = {}
    for split in assign_splits([f"k{i}" for i in range(100)], (0.7, 0.2, 0.1), 0).values():
        counts[split] = counts.get(split, 0) + 1
    assert counts == {"train": 70, "val": 20, "test": 10}


def test_zero_pad_names_images_by_number(tmp_path):
    src = make_source(tmp_path / "src")
    cli_build(src, tmp_path / "out", "--zero-pad", "--split", "1", "0", "0")
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == [f"{i:05d}.png" for i in range(6)]
    assert sorted(read_faces_jsonl(tmp_path / "out" / "faces.jsonl")) == [f"train/{i:05d}.png" for i in range(6)]


def test_two_workers_build_the_same_dataset_as_one(tmp_path):
    src = make_source(tmp_path / "src", n=6, size=(64, 80))
    cli_build(src, tmp_path / "a", "--mode", "crops")
    cli_build(src, tmp_path / "b", "--mode", "crops", "--workers", "2")
    assert (tmp_path / "a" / "faces.jsonl").read_text() == (tmp_path / "b" / "faces.jsonl").read_text()
    for p in (tmp_path / "a").glob("*_blur/*.png"):
        assert np.array_equal(read_image(p), read_image(tmp_path / "b" / p.relative_to(tmp_path / "a")))


def test_official_wider_layout_is_found_without_flags(tmp_path):
    root = tmp_path / "wider"
    img, faces = make_face_image(np.random.default_rng(0), 64, 1)
    write_image(root / "WIDER_train" / "images" / "0--Parade" / "0_Parade_1.jpg", img)
    f = faces[0]
    (root / "wider_face_split").mkdir()
    (root / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(
        f"0--Parade/0_Parade_1.jpg\n1\n{f.x1:.0f} {f.y1:.0f} {f.width:.0f} {f.height:.0f} 0 0 0 0 0 0\n")
    assert main(["data", "build", str(root), "-o", str(tmp_path / "out"), "--size", "32", "--no-progress"]) == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["annotation_format"] == "wider" and m["faces_total"] == 1


def test_detector_mode_records_that_targets_came_from_a_detector(tmp_path):
    src = make_source(tmp_path / "src", n=2)
    code = main(["data", "build", str(src / "photos"), "-o", str(tmp_path / "out"), "--detector", "centerface",
                 "--size", "32", "--no-progress", "--split", "1", "0", "0"])
    assert code == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["targets_from"] == "detector:centerface"


# --------------------------------------------------------------------------- bad inputs

def test_corrupt_image_is_skipped_listed_and_exits_1(tmp_path, capsys):
    src = make_source(tmp_path / "src")
    (src / "photos" / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert cli_build(src, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "skipped photos/p1.png" in err and "Traceback" not in err
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["path"] for s in m["skipped"]] == ["photos/p1.png"] and sum(m["counts"].values()) == 5


def test_listed_but_missing_image_is_skipped_and_exits_1(tmp_path, capsys):
    src = make_source(tmp_path / "src")
    add_annotation(src, "photos/gone.png", [[1, 1, 5, 5]])
    assert cli_build(src, tmp_path / "out") == 1
    assert "photos/gone.png: listed in the annotations but the image is missing" in capsys.readouterr().err


def test_box_partly_outside_is_clipped_without_failing(tmp_path):
    src = make_source(tmp_path / "src", n=2)
    add_annotation(src, "photos/p0.png", [[-10, -10, 20, 20]])
    assert cli_build(src, tmp_path / "out") == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "clipped" in m["fixed"][0]["reason"]


def test_box_entirely_outside_is_dropped_and_exits_1(tmp_path, capsys):
    src = make_source(tmp_path / "src", n=2)
    add_annotation(src, "photos/p0.png", [[500, 500, 520, 520], [1, 1, 9, 9]])
    assert cli_build(src, tmp_path / "out") == 1
    assert "lies outside the 64x48 image" in capsys.readouterr().err


def test_negative_size_box_is_dropped_and_exits_1(tmp_path, capsys):
    src = make_source(tmp_path / "src", n=2)
    add_annotation(src, "photos/p0.png", [[20, 20, 10, 30]])
    assert cli_build(src, tmp_path / "out") == 1
    assert "non-positive width or height" in capsys.readouterr().err


def test_annotation_path_escaping_the_root_is_skipped(tmp_path, capsys):
    src = make_source(tmp_path / "src", n=2)
    add_annotation(src, "../../etc/passwd", [[1, 1, 5, 5]])
    assert cli_build(src, tmp_path / "out") == 1
    assert "escapes the image root" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "CMYK", "P"])
def test_unusual_image_modes_are_converted_to_rgb(tmp_path, mode):
    src = make_source(tmp_path / "src", n=2)
    path = src / "photos" / ("p0.png" if mode != "CMYK" else "p0.jpg")
    rgb = Image.open(src / "photos" / "p0.png").convert("RGB")
    img = rgb.convert("L").point(lambda v: v * 200) if mode == "I;16" else rgb.convert(mode)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 256))
    (src / "photos" / "p0.png").unlink()
    img.save(path)
    add_annotation(src, f"photos/{path.name}", [[2, 2, 12, 14]])
    data = json.loads((src / "faces.json").read_text())
    if path.name != "p0.png":
        del data["photos/p0.png"]
        (src / "faces.json").write_text(json.dumps(data))
    assert cli_build(src, tmp_path / "out") == 0
    rec = [r for r in map(json.loads, (tmp_path / "out" / "faces.jsonl").read_text().splitlines())
           if r["source"] == f"photos/{path.name}"][0]
    assert read_image(tmp_path / "out" / rec["image"]).shape == (32, 32, 3)


def test_exif_rotated_photo_is_stored_upright_with_its_face_in_place(tmp_path):
    src = tmp_path / "src"
    (src / "photos").mkdir(parents=True)
    upright = np.zeros((40, 20, 3), np.uint8)  # displayed: 20 wide, 40 tall, white square at the top
    upright[2:12, 5:15] = 255
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # saved sideways, EXIF 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(src / "photos" / "r.jpg", exif=exif.tobytes(), quality=95)
    (src / "faces.json").write_text(json.dumps({"photos/r.jpg": [[5, 2, 15, 12]]}))
    assert cli_build(src, tmp_path / "out", "--split", "1", "0", "0") == 0
    rec = json.loads((tmp_path / "out" / "faces.jsonl").read_text())
    face = Face.from_dict(rec["faces"][0])
    image = read_image(tmp_path / "out" / rec["image"])
    assert rec["transform"]["source_size"] == [20, 40]
    assert image[int(face.center[1]), int(face.center[0])].min() > 200


def test_empty_source_folder_is_a_clear_error_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "build", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--detector", "haar"]) == 2
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_folder_without_annotations_says_how_to_give_them(tmp_path, capsys):
    write_image(tmp_path / "src" / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["data", "build", str(tmp_path / "src"), "-o", str(tmp_path / "out")]) == 2
    assert "--annotations FILE or --detector centerface" in capsys.readouterr().err


def test_every_image_bad_is_an_error_and_writes_nothing(tmp_path, capsys):
    src = make_source(tmp_path / "src", n=2)
    for p in (src / "photos").iterdir():
        p.write_bytes(b"")
    assert cli_build(src, tmp_path / "out") == 2
    assert "every image was skipped" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_existing_output_is_refused_without_overwrite(tmp_path, capsys):
    src = make_source(tmp_path / "src", n=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert cli_build(src, tmp_path / "out") == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").exists()


def test_overwrite_replaces_the_output(tmp_path):
    src = make_source(tmp_path / "src", n=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    assert cli_build(src, tmp_path / "out", "--overwrite") == 0
    assert not (tmp_path / "out" / "old.txt").exists() and (tmp_path / "out" / "manifest.json").exists()


def test_interrupted_build_leaves_no_half_dataset(tmp_path, monkeypatch):
    src = make_source(tmp_path / "src", n=4)
    calls = []
    real = build_mod._process

    def flaky(task):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(build_mod, "_process", flaky)
    assert cli_build(src, tmp_path / "out") == 130
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_bad_split_is_a_usage_error(tmp_path):
    with pytest.raises(UnetblurError, match="--split"):
        build_dataset(BuildConfig(source=str(tmp_path), out=str(tmp_path / "o"), split=(-1, 0, 0)))


def test_file_detector_builds_from_boxes_in_a_file(tmp_path):
    src = make_source(tmp_path / "src", n=3)
    code = main(["data", "build", str(src), "-o", str(tmp_path / "out"), "--detector", f"file:{src / 'faces.json'}",
                 "--size", "32", "--no-progress"])
    assert code == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["targets_from"] == "detector:file:faces.json" and m["faces_total"] == 4


def test_data_without_a_subcommand_prints_help_and_exits_2(capsys):
    assert main(["data"]) == 2
    assert "build" in capsys.readouterr().err


# --------------------------------------------------------------------------- --fill-gaps (a second teacher)

def test_unannotated_faces_keeps_confident_detections_outside_every_annotated_face():
    annotated = [Face(40, 40, 60, 60)]
    detections = [Face(42, 41, 61, 59, 0.95),    # the annotated face itself
                  Face(62, 40, 82, 60, 0.95),    # centre 72: 22 px right of the face's, beyond 0.75 × 20 = 15
                  Face(50, 56, 60, 66, 0.95),    # centre 11 px below the face's: inside its 1.5× box
                  Face(0, 0, 10, 10, 0.5),       # a free spot, but unsure
                  Face(0, 0, 10, 10, 0.7)]       # a free spot at exactly the score needed
    assert build_mod.unannotated_faces(detections, annotated, 0.7) == [detections[1], detections[4]]
    assert build_mod.unannotated_faces(detections, [], 0.9) == detections[:3]


def test_fill_gaps_adds_unannotated_faces_to_the_train_split_only(tmp_path):
    from unetblur.faces import write_faces_jsonl

    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    annotations, detections = {}, []
    for i in range(10):
        write_image(src / "photos" / f"p{i}.png", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        annotations[f"photos/p{i}.png"] = [[36, 10, 56, 30]]
        detections.append({"image": f"photos/p{i}.png", "faces": [
            Face(37, 11, 55, 29, 0.9).to_dict(),     # the annotated face: not added twice
            Face(4, 20, 20, 36, 0.9).to_dict(),      # a face the annotators skipped: added (train only)
            Face(4, 2, 14, 12, 0.3).to_dict()]})     # unsure: never added
    (src / "faces.json").write_text(json.dumps(annotations))
    write_faces_jsonl(tmp_path / "gaps.jsonl", detections)

    assert cli_build(src, tmp_path / "out", "--fill-gaps", f"file:{tmp_path / 'gaps.jsonl'}") == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "out" / "faces.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    held_out = [r for r in records if r["split"] != "train"]
    assert train and held_out
    assert m["fill_gaps"] == {"detector": f"file:{tmp_path / 'gaps.jsonl'}", "min_score": 0.7, "split": "train",
                              "faces_added": len(train)}
    for r in train:
        assert [f["box"] for f in r["source_faces"]] == [[36, 10, 56, 30], [4, 20, 20, 36]] and r["gap_faces"] == 1
        mask = read_mask(tmp_path / "out" / "train_mask" / Path(r["image"]).name)
        x1, y1, x2, y2 = (round(v) for v in r["faces"][1]["box"])
        assert mask[(y1 + y2) // 2, (x1 + x2) // 2] > 0          # the added face is blurred in the target
    for r in held_out:                                             # the ruler's ground truth is untouched
        assert [f["box"] for f in r["source_faces"]] == [[36, 10, 56, 30]] and "gap_faces" not in r


def test_fill_gaps_needs_annotations_not_a_detector(tmp_path, capsys):
    src = make_source(tmp_path / "src", n=2)
    code = main(["data", "build", str(src), "-o", str(tmp_path / "out"), "--detector", f"file:{src / 'faces.json'}",
                 "--fill-gaps", "centerface", "--no-progress"])
    assert code == 2 and "--fill-gaps" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
