"""Reliability and security of model files: our checkpoints, foreign or hostile torch files, ONNX files."""

from __future__ import annotations

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
