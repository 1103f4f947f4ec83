"""Reliability and security of model files: our checkpoints, foreign or hostile torch files, ONNX files."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

import badinputs as bad
from unetblur.errors import BadInputError, UnetblurError
from unetblur.models import build_model, load_model, read_checkpoint, save_model


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    path, marker = bad.make_pickle_payload(tmp_path)
    with pytest.raises(BadInputError, match="refused to load: not a plain weights file") as info:
        load_model(path)
    assert info.value.path == str(path)
    assert not marker.exists()


def test_the_pickle_payload_is_real_when_loaded_unsafely(tmp_path):
    # The control for the test above: without weights_only the file runs its code.
    path, marker = bad.make_pickle_payload(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_checkpoint_that_is_not_ours_is_named_as_such(tmp_path):
    with pytest.raises(BadInputError, match="not a unetblur model file"):
        load_model(bad.make_foreign_checkpoint(tmp_path))


@pytest.mark.parametrize("make", [bad.make_truncated_checkpoint, bad.make_zero_byte, bad.make_text_as_jpg],
                         ids=["truncated", "zero-byte", "text"])
def test_a_damaged_checkpoint_is_one_error_naming_the_file(tmp_path, make):
    path = make(tmp_path, "model.pt")
    before = bad.snapshot(tmp_path)
    with pytest.raises(BadInputError, match="not a readable PyTorch file|model file is empty") as info:
        read_checkpoint(path)
    assert info.value.path == str(path) and "\n" not in str(info.value)
    assert bad.snapshot(tmp_path) == before


def _save_payload(path, **changes):
    model = build_model("tiny")
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("changes,problem", [
    ({"format_version": 99}, "newer than this unetblur"),
    ({"format_version": "1"}, "invalid format_version"),
    ({"spec": [1, 2]}, "must be mappings"),
    ({"state_dict": {"w": 3}}, "not tensors"),
    ({"spec": {"widths": "abc"}}, "invalid architecture"),
    ({"kind": "mystery"}, "invalid architecture"),
], ids=["newer format", "text version", "spec not a dict", "non-tensor weights", "garbage spec", "unknown kind"])
def test_a_tampered_checkpoint_is_refused_with_the_reason(tmp_path, changes, problem):
    path = _save_payload(tmp_path / "m.pt", **changes)
    with pytest.raises(BadInputError, match=problem) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_model(build_model("tiny"), path)
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(BadInputError, match="weights do not match"):
        load_model(path)


def test_a_model_saved_while_interrupted_leaves_nothing(tmp_path, monkeypatch):
    def dies(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_model(build_model("tiny"), tmp_path / "m.pt")
    assert bad.files_under(tmp_path) == []


# ------------------------------------------------------------------------------ ONNX

onnx_runtime = pytest.importorskip("unetblur.runtime.onnx")


@pytest.mark.parametrize("make", [bad.make_truncated_onnx, bad.make_zero_byte, bad.make_text_as_jpg],
                         ids=["truncated", "zero-byte", "text"])
def test_a_damaged_onnx_file_is_one_error_naming_the_file(tmp_path, make):
    path = make(tmp_path, "model.onnx")
    before = bad.snapshot(tmp_path)
    with pytest.raises(BadInputError) as info:
        onnx_runtime.OnnxModel(path)
    assert info.value.path == str(path) and "\n" not in str(info.value)
    assert bad.snapshot(tmp_path) == before


def test_an_onnx_file_whose_weights_point_outside_its_folder_is_refused(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(27 * 3, np.float32).tobytes())
    model_dir = tmp_path / "models" / "deep"
    model_dir.mkdir(parents=True)
    w = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in {"location": "../../secret.bin", "offset": "0", "length": str(27 * 3 * 4)}.items():
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])
    node = helper.make_node("Conv", ["image", "w"], ["output"], pads=[1, 1, 1, 1])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], initializer=[w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = model_dir / "escape.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(BadInputError, match="not a usable ONNX model"):
        onnx_runtime.OnnxModel(path)


def test_the_model_factory_names_a_wrong_suffix_and_a_missing_file(tmp_path):
    from unetblur.runtime.factory import open_image_model

    with pytest.raises(UnetblurError, match="not a model file"):
        open_image_model(tmp_path / "model.txt")
    with pytest.raises(UnetblurError, match="model file not found"):
        open_image_model(tmp_path / "model.onnx")


def test_a_pickle_payload_is_refused_through_the_model_factory_too(tmp_path):
    from unetblur.runtime.factory import open_image_model

    path, marker = bad.make_pickle_payload(tmp_path)
    with pytest.raises(BadInputError, match="refused to load"):
        open_image_model(path)
    assert not marker.exists()


# ------------------------------------------------------------------------------ every verb that reads a model

BAD_MODELS = {
    "hostile pickle": (lambda d: bad.make_pickle_payload(d, "model.pt")[0], "refused to load"),
    "truncated": (lambda d: bad.make_truncated_checkpoint(d, "model.pt"), "not a readable PyTorch file"),
    "not ours": (lambda d: bad.make_foreign_checkpoint(d, "model.pt"), "not a unetblur model file"),
    "zero bytes": (lambda d: bad.make_zero_byte(d, "model.pt"), "empty"),
}


def _verb_argv(verb: str, model, tmp_path, data) -> list:
    out = tmp_path / "out"
    return {
        "prune": ["prune", model, "-o", out / "pruned.pt", "--ratio", "0.5"],
        "distill": ["distill", "--teacher", model, "--preset", "tiny", "--data", data, "--out", out,
                    "--epochs", "1", "--accelerator", "cpu"],
        "export": ["export", model, "-o", out],
        "compare": ["compare", "--data", data, "--method", f"m={model}", "--out", out, "--limit", "2"],
        "blur": ["blur", "--model", model, data / "test", "-o", out],
    }[verb]


@pytest.mark.parametrize("case", BAD_MODELS, ids=list(BAD_MODELS))
@pytest.mark.parametrize("verb", ["prune", "distill", "export", "compare", "blur"])
def test_every_verb_refuses_a_bad_model_file_with_one_line_and_writes_nothing(tmp_path, capsys, tiny_dataset,
                                                                             verb, case):
    import importlib

    if importlib.util.find_spec(f"unetblur.commands.{verb}") is None:
        pytest.skip(f"{verb} not built yet")
    make, problem = BAD_MODELS[case]
    model = make(tmp_path / "models")
    marker = tmp_path / "models" / "model.pt.payload-ran"
    before = bad.snapshot(tmp_path / "models")
    code, _, err = bad.run_cli(_verb_argv(verb, model, tmp_path, tiny_dataset), capsys)
    assert code == 2, err
    bad.assert_one_clear_line(err, "model.pt", problem)
    assert not marker.exists()
    assert bad.files_under(tmp_path / "out") == [] or verb == "distill" and not any(
        p.endswith((".pt", ".onnx")) for p in bad.files_under(tmp_path / "out"))
    assert bad.snapshot(tmp_path / "models") == before


@pytest.mark.parametrize("verb", ["bench", "blur", "compare"])
def test_every_verb_refuses_a_truncated_onnx_file_with_one_line(tmp_path, capsys, tiny_dataset, verb):
    model = bad.make_truncated_onnx(tmp_path / "models", "model.onnx")
    argv = ["bench", model, "--runs", "1"] if verb == "bench" else _verb_argv(verb, model, tmp_path, tiny_dataset)
    code, _, err = bad.run_cli(argv, capsys)
    assert code == 2, err
    bad.assert_one_clear_line(err, "model.onnx")
    assert bad.files_under(tmp_path / "out") == []


def _train_resume(run, data, capsys):
    return bad.run_cli(["train", "--data", data, "--model", "tiny", "--epochs", "1",
                        "--out", run, "--resume", "--accelerator", "cpu", "--no-progress"], capsys)


def test_resuming_from_a_hostile_last_checkpoint_never_runs_the_payload(tmp_path, capsys, tiny_dataset):
    run = tmp_path / "run"
    path, marker = bad.make_pickle_payload(run / "checkpoints", "last.ckpt")
    code, _, err = _train_resume(run, tiny_dataset, capsys)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()[-1:]) == 1
    assert not marker.exists()
    assert not (run / "model.pt").exists()


@pytest.mark.parametrize("make", [
    lambda d: bad.make_pickle_payload(d, "last.ckpt")[0],
    lambda d: bad.make_truncated_checkpoint(d, "last.ckpt"),
    lambda d: bad.make_zero_byte(d, "last.ckpt"),
], ids=["hostile", "truncated", "zero-byte"])
def test_resuming_from_a_damaged_last_checkpoint_is_exit_2_naming_it(tmp_path, capsys, tiny_dataset, make):
    run = tmp_path / "run"
    make(run / "checkpoints")
    code, _, err = _train_resume(run, tiny_dataset, capsys)
    assert code == 2, err
    bad.assert_one_clear_line(err, "last.ckpt")



def test_the_training_console_log_writes_to_the_stderr_of_each_run(monkeypatch):
    import io

    from unetblur.training.fit import _StderrHandler

    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    handler.emit(logging.makeLogRecord({"msg": "run one"}))
    first.close()  # the first run's stream is gone (as capsys closes it after a test)
    monkeypatch.setattr(sys, "stderr", second)
    handler.emit(logging.makeLogRecord({"msg": "run two"}))
    assert second.getvalue() == "run two\n"
