"""Every verb's flags against its config dataclass: a flag whose dest is not a setting would be dropped
silently, a setting flag with a default would override the YAML the user gave."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from unetblur.blur import BLUR_FIELDS, BlurSettings
from unetblur.cli import build_parser, main
from unetblur.commands._config import NOT_SETTINGS
from unetblur.config import load_config
from unetblur.errors import UnetblurError


def _verbs():
    from unetblur.anonymise import BlurConfig
    from unetblur.compress.prune import PruneConfig
    from unetblur.data.build import BuildConfig
    from unetblur.data.synth import SynthConfig
    from unetblur.deploy.bench import BenchConfig
    from unetblur.deploy.onnx_export import ExportConfig
    from unetblur.evaluate.compare import CompareConfig
    from unetblur.training.distill import DistillConfig
    from unetblur.training.fit import TrainConfig

    return {("blur",): BlurConfig, ("compare",): CompareConfig, ("train",): TrainConfig,
            ("distill",): DistillConfig, ("prune",): PruneConfig, ("export",): ExportConfig,
            ("bench",): BenchConfig, ("data", "build"): BuildConfig, ("data", "synth"): SynthConfig}


def _subparser(path):
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if a.dest in ("command", "data_command"))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", list(_verbs()), ids=" ".join)
def test_every_flag_of_a_verb_is_a_setting_of_its_config(path):
    cls = _verbs()[path]
    names = {f.name for f in dataclasses.fields(cls)}
    parser = _subparser(path)
    dests = {a.dest for a in parser._actions} - NOT_SETTINGS
    assert dests <= names, f"flags that reach no setting: {sorted(dests - names)}"
    assert {"config", "print_config"} <= {a.dest for a in parser._actions}


@pytest.mark.parametrize("path", list(_verbs()), ids=" ".join)
def test_flags_not_given_leave_the_yaml_alone(path):
    names = {f.name for f in dataclasses.fields(_verbs()[path])}
    defaults = {a.dest: a.default for a in _subparser(path)._actions if a.dest in names and a.option_strings}
    assert not {k: v for k, v in defaults.items() if v is not None}


def test_blur_and_data_build_spell_the_blur_alike():
    for path in (("blur",), ("data", "build"), ("data", "synth")):
        options = {s for a in _subparser(path)._actions for s in a.option_strings}
        assert {"--style", "--shape", "--mask-scale", "--kernel", "--strength"} <= options
    assert set(BLUR_FIELDS) <= {f.name for f in dataclasses.fields(_verbs()[("blur",)])}


def test_old_blur_spellings_still_configure_a_dataset_build(tmp_path):
    from unetblur.data.build import BuildConfig

    (tmp_path / "v1.yaml").write_text("blur_kernel: 41\nblur_style: pixelate\n")
    cfg = load_config(BuildConfig, [tmp_path / "v1.yaml"])
    assert cfg.kernel == 41 and cfg.style == "pixelate"
    args = build_parser().parse_args(["data", "build", "src", "-o", "out", "--blur-strength", "2"])
    assert args.strength == 2.0


def test_a_setting_spelled_twice_is_refused(tmp_path):
    from unetblur.anonymise import BlurConfig

    (tmp_path / "c.yaml").write_text("blur_kernel: 41\nkernel: 21\n")
    with pytest.raises(UnetblurError, match="two spellings"):
        load_config(BlurConfig, [tmp_path / "c.yaml"])


def test_the_yaml_that_made_a_dataset_configures_blur_to_match(tmp_path):
    from unetblur.anonymise import BlurConfig
    from unetblur.data.build import BuildConfig

    (tmp_path / "data.yaml").write_text("kernel: 41\nshape: box\nmask_scale: 1.0\n")
    blur_fields = {k: v for k, v in yaml.safe_load((tmp_path / "data.yaml").read_text()).items()}
    built = load_config(BuildConfig, [tmp_path / "data.yaml"]).blur_settings()
    shipped = load_config(BlurConfig, [tmp_path / "data.yaml"]).blur_settings()
    assert built == shipped == BlurSettings(**blur_fields)


def test_print_config_shows_the_resolved_settings_and_writes_nothing(tmp_path, capsys):
    assert main(["blur", str(tmp_path / "a.jpg"), "--kernel", "41", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["kernel"] == 41 and printed["hold_frames"] == 3
    assert list(tmp_path.iterdir()) == []


def test_a_printed_config_reloads_as_the_same_config(tmp_path, capsys):
    from unetblur.training.fit import TrainConfig

    assert main(["train", "--data", "d", "--epochs", "3", "--print-config"]) == 0
    (tmp_path / "c.yaml").write_text(capsys.readouterr().out)
    assert load_config(TrainConfig, [tmp_path / "c.yaml"]) == load_config(TrainConfig, [], {"data": "d", "epochs": 3})


def test_a_recorded_blur_is_read_back_by_one_rule():
    recorded = {**BlurSettings(kernel=41, shape="box").to_dict(), "added_later": 1}
    assert BlurSettings.from_dict(recorded) == BlurSettings(kernel=41, shape="box")
    assert BlurSettings.from_dict({"blur_kernel": 41}) == BlurSettings(kernel=41)
    assert BlurSettings.from_dict(None) == BlurSettings()
    with pytest.raises(UnetblurError, match="blur style"):
        BlurSettings.from_dict({"style": "swirl"})
    json.dumps(BlurSettings().to_dict())


def test_a_model_spec_is_classified_in_one_place():
    from unetblur.runtime.factory import is_model_spec, model_format

    assert [model_format(s) for s in ("a.onnx", "b.PT", "c.pth", "centerface@0.5", "student_v1")] == \
        ["onnx", "torch", "torch", None, None]
    assert is_model_spec("x.int8.onnx") and not is_model_spec("haar")
