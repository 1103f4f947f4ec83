"""The torch-free ONNX runtime: imports without torch, pads/crops, clear errors for broken files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from unetblur.deploy.onnx_export import ExportConfig, export_model, random_calibrated_model
from unetblur.errors import BadInputError
from unetblur.models import PRESETS, save_model
from unetblur.runtime.base import ImageModel, ModelBlurrer
from unetblur.runtime.onnx import OnnxModel, image_tensor, reflect_pad


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    save_model(random_calibrated_model("tiny"), root / "plain.pt")
    save_model(random_calibrated_model(PRESETS["tiny"].with_options(mask_channel=True)), root / "masked.pt")
    for name in ("plain", "masked"):
        export_model(ExportConfig(model=str(root / f"{name}.pt"), out_dir=str(root), parity_count=1))
    return root


BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "onnx", "pytorch_lightning"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, _Block())
""")


def test_runtime_imports_and_runs_a_model_with_torch_unavailable(onnx_files):
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import numpy as np
        import unetblur.runtime
        from unetblur.runtime.onnx import OnnxModel
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch was importable")
        rgb, mask = OnnxModel({str(onnx_files / "plain.onnx")!r}).predict(np.zeros((20, 28, 3), np.uint8))
        print(rgb.shape, rgb.dtype, "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(20,", "28,", "3)", "uint8", "False"]


def test_onnx_model_is_an_image_model_that_returns_an_image_of_the_input_size(onnx_files):
    model = OnnxModel(onnx_files / "plain.onnx", threads=1)
    rgb, mask = model.predict(np.random.default_rng(0).integers(0, 255, (37, 45, 3), dtype=np.uint8))
    assert isinstance(model, ImageModel)
    assert rgb.shape == (37, 45, 3) and rgb.dtype == np.uint8 and mask is None


def test_a_model_with_a_mask_channel_returns_a_float_mask(onnx_files):
    rgb, mask = OnnxModel(onnx_files / "masked.onnx").predict(np.zeros((16, 24, 3), np.uint8))
    assert mask.shape == (16, 24) and mask.dtype == np.float32 and 0 <= mask.min() <= mask.max() <= 1


@pytest.mark.parametrize("size", [(37, 45), (64, 128), (5, 70), (70, 3)])
def test_the_input_tensor_is_the_reflect_padded_image_over_255_bit_for_bit(size):
    # (5, 70) and (70, 3): one side too small to reflect, so both pad by edge replication.
    images = list(np.random.default_rng(2).integers(0, 256, (2, *size, 3), dtype=np.uint8))
    reference, hw = reflect_pad(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0, 32)
    tensor, tensor_hw = image_tensor(images, 32)
    assert tensor_hw == hw == size and tensor.dtype == np.float32
    assert tensor.shape == reference.shape and np.array_equal(tensor, reference)


def test_predict_batch_gives_the_same_result_as_one_image_at_a_time(onnx_files):
    model = OnnxModel(onnx_files / "plain.onnx")
    images = list(np.random.default_rng(1).integers(0, 255, (3, 24, 24, 3), dtype=np.uint8))
    batch = model.predict_batch(images)
    for image, (rgb, _) in zip(images, batch):
        assert np.abs(rgb.astype(int) - model.predict(image)[0].astype(int)).max() <= 1


def test_onnx_model_plugs_into_the_blurrer_interface(onnx_files):
    result = ModelBlurrer(OnnxModel(onnx_files / "plain.onnx"))(np.zeros((16, 16, 3), np.uint8))
    assert result.image.shape == (16, 16, 3) and result.mask.shape == (16, 16)


def test_a_truncated_onnx_file_gives_a_one_line_error(onnx_files, tmp_path):
    data = (onnx_files / "plain.onnx").read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="truncated or corrupt") as info:
        OnnxModel(broken)
    assert "\n" not in str(info.value)


def test_a_missing_onnx_file_is_reported_by_name(tmp_path):
    with pytest.raises(BadInputError, match="missing.onnx: model file not found"):
        OnnxModel(tmp_path / "missing.onnx")


def test_a_grey_image_is_refused_with_the_shape_it_had(onnx_files):
    from unetblur.errors import UnetblurError

    with pytest.raises(UnetblurError, match=r"H×W×3 uint8 RGB image.*\(8, 8\)"):
        OnnxModel(onnx_files / "plain.onnx").predict(np.zeros((8, 8), np.uint8))


def test_asking_for_the_mask_only_skips_the_rgb_output_and_keeps_the_mask(onnx_files):
    model = OnnxModel(onnx_files / "masked.onnx")
    image = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    rgb, mask = model.predict(image)
    no_rgb, same_mask = model.predict(image, rgb=False)
    assert rgb is not None and no_rgb is None and np.array_equal(mask, same_mask)
