"""Bounded resources, shared folders, exit codes and formats (issue 13, classes 5 to 8).

5: a small input never costs unbounded memory (YAML aliases, a model file's spec, video frames).
6: a temporary is only judged stale on the machine that wrote it (shards share output folders).
7: every bad input is exit 2 with exactly one line, whatever the file name holds.
8: nothing inside a file is dropped silently (extra frames, mislabelled formats, skipped entries).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import badinputs as bad
from unetblur.errors import EXIT_FINDINGS, EXIT_USAGE

BLUR = ["blur", "--workers", "1", "--no-progress", "--model", "centerface"]


def _one_line_error(err: str, *needles: str) -> None:
    bad.assert_one_clear_line(err, *needles)
    assert len(err.strip().splitlines()) == 1, err


# --------------------------------------------------------------------------- 5: bounded resources

YAML_BOMBS = {
    "nested aliases": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)),
    "recursive alias": "a: &a [*a]\n",
    "recursive mapping": "a: &a {b: *a}\n",
}


@pytest.mark.parametrize("kind", YAML_BOMBS)
def test_a_yaml_that_expands_without_bound_is_refused_in_one_short_line(tmp_path, capsys, kind):
    path = bad.make_yaml(tmp_path, YAML_BOMBS[kind])
    img = bad.make_one_pixel(tmp_path)
    code, _, err = bad.run_cli([*BLUR, img, "--config", path], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, "config.yaml")
    assert len(err) < 400


TAMPERED_SPECS = {
    "width of ten million": {"bottleneck": [10_000_000, 10_000_000]},
    "fifty levels": {"encoder": [[4, 4]] * 50, "up": [4] * 50, "decoder": [[4, 4]] * 50},
    "wider than its weights": {"bottleneck": [512, 512]},
}


@pytest.mark.parametrize("change", TAMPERED_SPECS)
def test_a_model_file_whose_spec_asks_for_more_than_its_weights_is_refused_before_allocating(tmp_path, capsys,
                                                                                             change):
    torch = pytest.importorskip("torch")
    from unetblur.models import build_model, save_model

    path = tmp_path / "m.pt"
    save_model(build_model("tiny"), path)
    payload = torch.load(path, weights_only=True)
    payload["spec"].update(TAMPERED_SPECS[change])
    torch.save(payload, path)
    img = bad.make_one_pixel(tmp_path)
    code, _, err = bad.run_cli(["blur", "--no-progress", img, "--model", path], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, "m.pt")


@pytest.mark.parametrize("medium", ["image", "video"])
def test_the_pixel_limit_applies_to_every_medium(tmp_path, capsys, monkeypatch, medium):
    import unetblur.io

    monkeypatch.setattr(unetblur.io, "MAX_PIXELS", 1000)  # below the 64×48 test inputs
    src = bad._save(bad.photo(), tmp_path / "a.png") if medium == "image" else bad.make_video(tmp_path / "a.mp4")
    code, _, err = bad.run_cli([*BLUR, src, "-o", tmp_path / "out"], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, "too large")
    assert bad.files_under(tmp_path / "out") == []


# --------------------------------------------------------------------------- 6: shards on several machines


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["temporary file", "working folder"])
def test_a_temporary_of_another_machine_is_never_removed_and_one_of_this_machine_is(tmp_path, kind):
    from unetblur.fsutil import HOST, remove_stale_temporaries, remove_stale_work_dirs

    pid = _dead_pid()  # dead here; on another machine the same number may be a live writer
    if kind == "temporary file":
        names = {h: f".img.{pid}@{h}-abc.part.png" for h in (HOST, "otherbox")}
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        remove_stale_temporaries(tmp_path)
    else:
        names = {h: f".ds.building-{pid}@{h}-abc" for h in (HOST, "otherbox")}
        for name in names.values():
            (tmp_path / name).mkdir()
        remove_stale_work_dirs(tmp_path, ".ds.building-")
    assert not (tmp_path / names[HOST]).exists()
    assert (tmp_path / names["otherbox"]).exists()


# --------------------------------------------------------------------------- 7: exit 2, one line


@pytest.mark.parametrize("shape", [[1, 1, "h", "w"], [1, 3, 64, 64], [1, 3, "h", "w", 1]],
                         ids=["one channel", "fixed size", "rank 5"])
def test_an_onnx_model_with_another_input_shape_is_exit_2_in_one_line(tmp_path, capsys, shape):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["output"])], "other", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "other.onnx")
    img = bad._save(bad.photo(), tmp_path / "a.png")
    code, _, err = bad.run_cli(["blur", "--no-progress", img, "--model", tmp_path / "other.onnx"], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, "other.onnx", "N×3×H×W")


@pytest.mark.parametrize("opset", ["0", "6", "999", "-1"])
def test_an_opset_torch_cannot_write_is_exit_2_in_one_line(tmp_path, capsys, opset):
    pytest.importorskip("torch")
    from unetblur.models import build_model, save_model

    save_model(build_model("tiny"), tmp_path / "m.pt")
    code, _, err = bad.run_cli(["export", tmp_path / "m.pt", "-o", tmp_path / "out", "--opset", opset], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, f"--opset {opset}")
    assert bad.files_under(tmp_path / "out") == []


def test_a_missing_file_whose_name_holds_a_newline_is_one_quoted_line(tmp_path, capsys):
    code, _, err = bad.run_cli([*BLUR, tmp_path / "two\nlines.png"], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, "two\\nlines.png")


def test_every_skipped_file_is_one_summary_line_whatever_its_name_holds(tmp_path, capsys):
    names = ["a\nb.png", "c\rd.jpg", "e\x1bf.png"]
    for name in names:
        bad.make_truncated_png(tmp_path / "in", name) if name.endswith(".png") else \
            bad.make_truncated_jpeg(tmp_path / "in", name)
    code, _, err = bad.run_cli([*BLUR, tmp_path / "in", "-o", tmp_path / "out"], capsys)
    assert code == EXIT_FINDINGS
    skipped = err.split("skipped:\n", 1)[1].splitlines()
    assert len(skipped) == len(names), err


# --------------------------------------------------------------------------- 8: no silent loss in formats


def _frames(path: Path, fmt: str, **params) -> Path:
    frames = [Image.fromarray(bad.photo(seed=i)) for i in range(3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], **params)
    return path


@pytest.mark.parametrize("name, fmt", [("pages.tif", "TIFF"), ("anim.webp", "WEBP"), ("anim.png", "PNG")])
def test_an_image_with_several_frames_is_refused_instead_of_losing_all_but_the_first(tmp_path, capsys, name, fmt):
    src = _frames(tmp_path / name, fmt)
    code, _, err = bad.run_cli([*BLUR, src, "-o", tmp_path / "out"], capsys)
    assert code == EXIT_USAGE
    _one_line_error(err, name, "3 frames")
    assert bad.files_under(tmp_path / "out") == []


@pytest.mark.parametrize("role", ["train", "train_blur", "train_mask"])
def test_data_check_reports_a_file_whose_content_is_not_what_its_name_says(tiny_dataset, role):
    from unetblur.data.check import check_dataset

    root = tiny_dataset
    victim = sorted((root / role).iterdir())[0]
    with Image.open(victim) as img:
        img.load()
        img.save(victim, format="JPEG")  # same name, now JPEG data
    problems, _ = check_dataset(root)
    assert any(str(victim) in p and "JPEG" in p for p in problems), problems


@pytest.mark.parametrize("entry", ["oops", 3, {"box": [1, 2, 3, 4]}, None])
def test_an_annotation_entry_reported_skipped_is_never_built(tmp_path, capsys, entry):
    src = tmp_path / "src"
    for name in ("a.jpg", "b.jpg"):
        bad._save(bad.photo((64, 64)), src / name)
    ann = tmp_path / "faces.json"
    ann.write_text(json.dumps({"a.jpg": entry, "b.jpg": [[10, 10, 30, 30]]}))
    code, _, err = bad.run_cli(["data", "build", "--size", "32", "--no-progress", src, "--annotations", ann,
                                "--format", "plain", "-o", tmp_path / "ds", "--split", "1", "0", "0"], capsys)
    sources = [json.loads(line)["source"] for line in (tmp_path / "ds" / "faces.jsonl").read_text().splitlines()]
    assert sources == ["b.jpg"], err
    assert code == EXIT_FINDINGS and "a.jpg" in err
