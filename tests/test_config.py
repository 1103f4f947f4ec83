from dataclasses import dataclass

import pytest

from unetblur.config import load_config, save_config
from unetblur.errors import UnetblurError


@dataclass(frozen=True)
class Example:
    epochs: int = 10
    lr: float = 1e-3
    name: str = "teacher"
    widths: tuple[int, ...] = (32, 64)
    resume: bool = False


def test_yaml_deltas_then_flags_override_defaults(tmp_path):
    (tmp_path / "base.yaml").write_text("epochs: 5\nlr: 0.01\n")
    (tmp_path / "delta.yaml").write_text("base: base.yaml\nepochs: 7\nwidths: [8, 16]\n")
    cfg = load_config(Example, [tmp_path / "delta.yaml"], {"name": "student", "lr": None})
    assert cfg == Example(epochs=7, lr=0.01, name="student", widths=(8, 16))


def test_unknown_key_suggests_the_closest_name(tmp_path):
    (tmp_path / "c.yaml").write_text("epoch: 5\n")
    with pytest.raises(UnetblurError, match="unknown key 'epoch'; did you mean 'epochs'"):
        load_config(Example, [tmp_path / "c.yaml"])


def test_wrong_type_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: ten\n")
    with pytest.raises(UnetblurError, match="epochs: expected an integer, got 'ten'"):
        load_config(Example, [tmp_path / "c.yaml"])


def test_saved_config_reloads_as_a_delta(tmp_path):
    cfg = Example(epochs=3, widths=(4,))
    save_config(cfg, tmp_path / "config.yaml")
    assert "# unetblur:" in (tmp_path / "config.yaml").read_text()
    assert load_config(Example, [tmp_path / "config.yaml"]) == cfg
