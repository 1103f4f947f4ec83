"""A composite model's operating point travels inside the model file and fills the settings the user left out."""

from __future__ import annotations

import pytest

from unetblur.anonymise import BlurConfig, open_blurrer_for
from unetblur.errors import UnetblurError
from unetblur.deploy.onnx_export import set_metadata
from unetblur.runtime.operating_point import COMPOSITE_DEFAULTS, composite_options, parse_operating_point_flag

from test_media import red_face_onnx


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    path = red_face_onnx(tmp_path_factory.mktemp("op") / "student.onnx")
    import onnx

    model = onnx.load(str(path))
    set_metadata(model, {"operating_point": '{"working_size": 40, "threshold": 0.7, "min_peak": 0.9, "small_area": 50, "small_peak": 0.8}'})
    onnx.save(model, str(path))
    return str(path)


def test_a_model_without_an_operating_point_gets_the_shared_composite_defaults(tmp_path):
    blurrer = open_blurrer_for(BlurConfig(model=str(red_face_onnx(tmp_path / "plain.onnx"))))
    assert (blurrer.working_size, blurrer.threshold) == (COMPOSITE_DEFAULTS["working_size"], COMPOSITE_DEFAULTS["threshold"])


def test_the_stored_operating_point_is_what_blur_runs(calibrated):
    blurrer = open_blurrer_for(BlurConfig(model=calibrated))
    assert (blurrer.working_size, blurrer.threshold, blurrer.min_peak) == (40, 0.7, 0.9)
    assert (blurrer.small_area, blurrer.small_peak) == (50, 0.8)


def test_flags_the_user_gives_override_the_stored_point(calibrated):
    blurrer = open_blurrer_for(BlurConfig(model=calibrated, threshold=0.3, working_size=0, min_peak=0.5))
    assert blurrer.threshold == 0.3 and blurrer.working_size is None and blurrer.min_peak == 0.5  # 0 = native
    assert open_blurrer_for(BlurConfig(model=calibrated, small_area=0)).small_area == 0   # 0 turns it off


def test_the_flag_form_parses_scales_and_refuses_unknown_keys():
    assert parse_operating_point_flag("working_size=320,threshold=0.4,min_peak=0.7,scales=1/0.5") == {
        "working_size": 320, "threshold": 0.4, "min_peak": 0.7, "scales": (1.0, 0.5)}
    assert parse_operating_point_flag("small_area=1600,small_peak=0.8") == {"small_area": 1600, "small_peak": 0.8}
    with pytest.raises(UnetblurError, match="unknown key"):
        parse_operating_point_flag("size=320")


def test_user_options_set_to_none_do_not_hide_the_model_point():
    class Model:
        metadata = {"operating_point": '{"threshold": 0.25}'}

    assert composite_options(Model(), {"threshold": None})["threshold"] == 0.25
