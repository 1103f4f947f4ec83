"""Where commands write: never over an input, never two results into one file, never a batch
stopped or misled by one odd entry (issue 13, classes 1, 2 and 4).

Each scenario is a folder of files and a command line. The properties are checked on the whole
folder: every file that existed before is byte-identical afterwards (nothing any command writes,
sidecars and ``--overwrite`` removals included, may resolve to an input), and the files on disk are
what the summary says was written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import badinputs as bad
from test_media import red_face_onnx
from unetblur.errors import EXIT_OK, EXIT_USAGE

BLUR = ["blur", "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(red_face_onnx(tmp_path_factory.mktemp("model") / "red.onnx"))


def _img(path: Path, seed: int = 0) -> Path:
    return bad._save(bad.photo(seed=seed), path)


def _written(err: str) -> int:
    return int(re.search(r"(\d+) written", err).group(1))


# --------------------------------------------------------------------------- class 1: inputs are sacred

#: name → (files to make, relative to the scenario folder; command arguments after `blur`).
#: Paths in arguments are relative to the scenario folder.
NEVER_OVER_AN_INPUT = {
    "mask sidecar is the input": (["x_mask.png"], ["x_mask.png", "-o", "x.png", "--save-masks"]),
    "output is the input spelled otherwise": (["a.png"], ["a.png", "-o", "sub/../a.png", "--overwrite"]),
    "output is another input": (["a.png", "a_blurred.png"], ["a.png", "a_blurred.png", "--overwrite"]),
    "sidecar is another input": (["a.png", "a_blurred_mask.png"], ["a.png", "a_blurred_mask.png", "--save-masks",
                                                                   "--overwrite"]),
    "output is a link to the input": (["a.png", "link:out/a_blurred.png->a.png"], ["a.png", "-o", "out", "--overwrite"]),
    "output is a link to another input": (["a.png", "b.png", "link:out/a_blurred.png->b.png"],
                                          ["a.png", "b.png", "-o", "out", "--overwrite"]),
    "existing sidecar without --overwrite": (["a.png", "a_blurred_mask.png", "a_blurred.json"],
                                             ["a.png", "--save-masks", "--save-json"]),
    "folder output holds an input": (["in/a.png", "in/a_mask.png"], ["in", "-o", "in_out", "--save-masks"]),
}


def _make(root: Path, files: list[str]) -> None:
    for i, spec in enumerate(files):
        if spec.startswith("link:"):
            link, target = spec[5:].split("->")
            (root / link).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(root / target, root / link)
        elif spec.endswith(".png"):
            _img(root / spec, seed=i)
        else:
            (root / spec).write_text("{}\n")


@pytest.mark.parametrize("scenario", NEVER_OVER_AN_INPUT)
def test_no_file_that_existed_before_a_blur_run_is_changed_by_it(tmp_path, capsys, model, scenario, monkeypatch):
    files, args = NEVER_OVER_AN_INPUT[scenario]
    _make(tmp_path, files)
    if scenario == "folder output holds an input":  # the walk meets a_mask.png after a.png wrote it
        _img(tmp_path / "in_out" / "a_mask.png", seed=9)
    (tmp_path / "sub").mkdir(exist_ok=True)
    before = _real_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = bad.run_cli([*BLUR, "--model", model, *args], capsys)
    assert "Traceback" not in err and "internal error" not in err
    after = _real_files(tmp_path)
    assert {k: after.get(k) for k in before} == before, err
    assert code != EXIT_OK or scenario == "folder output holds an input", err


def _real_files(root: Path) -> dict[str, str]:
    """Digests of the files under ``root`` that are not links (a link may be replaced; its target not)."""
    return {k: v for k, v in bad.snapshot(root).items() if not (root / k).is_symlink()}


def _source_with_annotations(root: Path) -> tuple[Path, Path]:
    src = root / "photos"
    _img(src / "p0.jpg")
    ann = bad.make_wider_annotations(src, [("p0.jpg", [(10, 10, 20, 20)])], "wider.txt")
    return src, ann


@pytest.mark.parametrize("where", ["parent of the source", "the source", "inside the source",
                                   "folder of the annotations"])
def test_data_build_refuses_an_output_that_overlaps_its_inputs_even_with_overwrite(tmp_path, capsys, where):
    src, ann = _source_with_annotations(tmp_path / "data")
    out = {"parent of the source": tmp_path / "data", "the source": src, "inside the source": src / "ds",
           "folder of the annotations": ann.parent}[where]
    before = bad.snapshot(tmp_path)
    code, _, err = bad.run_cli(["data", "build", "--size", "32", "--no-progress", src, "--annotations", ann,
                                "-o", out, "--overwrite"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "overlap")
    assert bad.snapshot(tmp_path) == before


# --------------------------------------------------------------------------- class 2: no silent collisions


def test_two_inputs_that_map_to_one_output_stop_the_run_before_anything_is_written(tmp_path, capsys, model):
    _img(tmp_path / "a" / "x.png", 1)
    _img(tmp_path / "b" / "x.png", 2)
    code, _, err = bad.run_cli([*BLUR, "--model", model, tmp_path / "a" / "x.png", tmp_path / "b" / "x.png",
                                "-o", tmp_path / "out"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "both be written")
    assert bad.files_under(tmp_path / "out") == []


def test_two_folders_of_the_same_name_stop_the_run_before_anything_is_written(tmp_path, capsys, model):
    _img(tmp_path / "a" / "photos" / "x.png", 1)
    _img(tmp_path / "b" / "photos" / "y.png", 2)
    code, _, err = bad.run_cli([*BLUR, "--model", model, tmp_path / "a" / "photos", tmp_path / "b" / "photos",
                                "-o", tmp_path / "out"], capsys)
    assert code == EXIT_USAGE
    assert bad.files_under(tmp_path / "out") == []


def test_a_batch_writes_each_file_once_and_the_summary_lists_exactly_what_is_on_disk(tmp_path, model):
    from unetblur.anonymise import BlurConfig, anonymise

    # x.png's mask sidecar is x_mask.png, the output name of a real x_mask.png; y.jpg's is y_mask.png, y.png's too.
    for i, name in enumerate(["x.png", "x_mask.png", "y.jpg", "y.png"]):
        _img(tmp_path / "in" / name, i)
    summary = anonymise(BlurConfig(inputs=(str(tmp_path / "in"),), output=str(tmp_path / "out"), model=model,
                                   save_masks=True, workers=1, progress=False))
    outputs = [Path(o) for _, o in summary.written]
    sidecars = [o.with_name(o.stem + "_mask.png") for o in outputs]
    assert len(set(outputs + sidecars)) == 2 * len(outputs)  # nothing written twice
    assert sorted(bad.files_under(tmp_path / "out")) == sorted(p.name for p in outputs + sidecars)
    assert len(summary.written) + len(summary.skipped) == 4 and summary.exit_code == 1
    assert all("also written for" in reason for _, reason in summary.skipped)


@pytest.mark.parametrize("names", [("x.jpg", "x.png"), ("a/b.jpg", "c/b.jpg", "a__b.jpg"), ("X.jpg", "sub/x.png")])
def test_data_build_stores_every_photo_under_its_own_name(tmp_path, capsys, names):
    src = tmp_path / "src"
    entries = []
    for i, name in enumerate(names):
        _img(src / name, i)
        entries.append((name, [(10, 10, 20, 20)]))
    ann = bad.make_wider_annotations(tmp_path, entries, "wider.txt")
    code, _, err = bad.run_cli(["data", "build", "--size", "32", "--no-progress", src, "--annotations", ann,
                                "-o", tmp_path / "ds", "--split", "1", "0", "0"], capsys)
    assert code == EXIT_OK, err
    assert len(bad.files_under(tmp_path / "ds" / "train")) == len(names)
    assert len(bad.files_under(tmp_path / "ds" / "train_blur")) == len(names)


# --------------------------------------------------------------------------- class 4: one entry, one problem


@pytest.mark.parametrize("entry", ["symlink loop", "dangling symlink", "fifo"])
def test_an_entry_that_cannot_be_read_is_skipped_and_the_batch_goes_on(tmp_path, capsys, model, entry):
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "z.png", 1)
    odd = tmp_path / "in" / "m.png"
    if entry == "symlink loop":
        os.symlink(odd, odd)
    elif entry == "dangling symlink":
        os.symlink(tmp_path / "nowhere.png", odd)
    else:
        os.mkfifo(odd)
    code, _, err = bad.run_cli([*BLUR, "--model", model, tmp_path / "in", "-o", tmp_path / "out"], capsys)
    assert code == 1, err
    assert "2 written, 1 skipped" in err and "m.png" in err.split("skipped:")[1]


@pytest.mark.parametrize("name", ["file:a.mp4", "cam1-10:15.mp4", "concat:x.mp4", "-i.mp4"])
def test_a_video_whose_name_looks_like_a_protocol_or_an_option_is_read_as_a_file(tmp_path, capsys, model, name,
                                                                                  monkeypatch):
    bad.make_video(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    code, _, err = bad.run_cli([*BLUR, "--model", model, "--", name], capsys)
    assert code == EXIT_OK, err
    assert (tmp_path / default_name(name)).is_file()


def default_name(name: str) -> str:
    stem, ext = os.path.splitext(name)
    return f"{stem}_blurred{ext}"


@pytest.mark.parametrize("folder", ["out_cf0.5", "v1.2", "run.final"])
def test_an_output_folder_with_a_dot_in_its_name_is_a_folder(tmp_path, capsys, model, folder):
    src = _img(tmp_path / "a.png")
    code, _, err = bad.run_cli([*BLUR, "--model", model, src, "-o", tmp_path / folder], capsys)
    assert code == EXIT_OK, err
    assert bad.files_under(tmp_path / folder) == ["a_blurred.png"]


def test_an_output_folder_equal_to_the_input_folder_is_a_usage_error(tmp_path, capsys, model):
    _img(tmp_path / "in" / "a.png")
    before = bad.snapshot(tmp_path)
    code, _, err = bad.run_cli([*BLUR, "--model", model, tmp_path / "in", "-o", tmp_path / "in" / "."], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, "input folder")
    assert bad.snapshot(tmp_path) == before


@pytest.mark.parametrize("several", [False, True])
def test_an_output_folder_inside_a_recursive_input_is_never_walked_as_input(tmp_path, capsys, model, several):
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "anon" / "old.png", 1)  # an earlier run's output
    extra = [_img(tmp_path / "b.png", 2)] if several else []
    code, _, err = bad.run_cli([*BLUR, "--model", model, tmp_path / "in", *extra, "-o", tmp_path / "in" / "anon",
                                "--recursive"], capsys)
    assert code == EXIT_OK, err
    assert _written(err) == 1 + len(extra)
    assert not any(f.startswith("anon/anon") or "old_blurred" in f for f in bad.files_under(tmp_path / "in"))


# --------------------------------------------------------------------------- class 9: boxes from a file


@pytest.mark.parametrize("fmt", ["wider", "coco"])
@pytest.mark.parametrize("listed_as", ["relative path", "file name"])
def test_boxes_from_a_file_blur_exactly_the_listed_box_in_every_image_of_a_folder(tmp_path, capsys, fmt, listed_as):
    from unetblur.io import read_image

    box = (8, 6, 20, 16)  # x, y, w, h
    names = ["a.png", "sub/b.png"]
    for i, name in enumerate(names):
        _img(tmp_path / "photos" / name, i)
    keys = names if listed_as == "relative path" else [Path(n).name for n in names]
    if fmt == "wider":
        ann = bad.make_wider_annotations(tmp_path, [(k, [box]) for k in keys], "boxes.txt")
    else:
        ann = bad.make_coco_annotations(tmp_path, [(k, 64, 48, [box]) for k in keys], "boxes.json")
    code, _, err = bad.run_cli([*BLUR, tmp_path / "photos", "--recursive", "--model", f"file:{ann}",
                                "--shape", "box", "--mask-scale", "1", "-o", tmp_path / "out"], capsys)
    assert code == EXIT_OK, err
    for i, name in enumerate(names):
        before, after = bad.photo(seed=i), read_image(tmp_path / "out" / name)
        changed = (before != after).any(axis=2)
        ys, xs = changed.nonzero()
        assert ys.size and xs.min() >= box[0] and xs.max() < box[0] + box[2] and ys.max() < box[1] + box[3], name


def test_boxes_from_a_file_skip_a_video_with_a_reason_instead_of_failing(tmp_path, capsys):
    _img(tmp_path / "in" / "a.png")
    bad.make_video(tmp_path / "in" / "clip.mp4")
    ann = bad.make_wider_annotations(tmp_path, [("a.png", [(8, 6, 20, 16)])], "boxes.txt")
    code, _, err = bad.run_cli([*BLUR, tmp_path / "in", "--model", f"file:{ann}", "-o", tmp_path / "out"], capsys)
    assert code == 1 and "1 written, 1 skipped" in err
    assert "cannot blur video" in err.split("skipped:")[1]
