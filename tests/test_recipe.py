from pathlib import Path

import pytest

from unetblur.errors import UnetblurError
from unetblur.commands._recipe import load_recipe, run_recipe


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_finished_stage_is_skipped_on_the_next_run(tmp_path, capsys):
    recipe = load_recipe(write(tmp_path / "r.yaml", """
vars: {n: "4"}
stages:
  - name: synth
    done: "{runs}/cfg.yaml"
    run: [demo, --recipe, "{runs}/missing.yaml"]
"""))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "cfg.yaml").write_text("done")
    assert run_recipe(recipe, tmp_path / "runs") == 0
    assert "done already" in capsys.readouterr().err


def test_a_failing_stage_stops_the_recipe_with_its_exit_code(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", """
stages:
  - name: broken
    run: [demo, --recipe, "{runs}/missing.yaml"]
  - name: never
    run: [demo, --recipe, "{runs}/missing.yaml"]
"""))
    assert run_recipe(recipe, tmp_path / "runs") == 2
    assert (tmp_path / "runs" / "recipe.log").read_text().count("exit 2") == 1


def test_an_unknown_variable_is_a_clear_error(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", "stages:\n  - name: a\n    run: [train, '{nope}']\n"))
    with pytest.raises(UnetblurError, match=r"recipe uses \{nope\}"):
        run_recipe(recipe, tmp_path / "runs")


def test_a_recipe_without_stages_is_refused(tmp_path):
    with pytest.raises(UnetblurError, match="has no stages"):
        load_recipe(write(tmp_path / "r.yaml", "vars: {}\n"))


def test_thesis_mode_letterbox_runs_the_letterbox_recipe(monkeypatch, tmp_path, capsys):
    from unetblur.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    # An unknown --only stage stops before anything runs, and its message names the recipe chosen.
    assert main(["thesis", "--set", "mode=letterbox", "--runs", str(tmp_path), "--only", "nope"]) == 2
    assert "letterbox.yaml; stages: data_v1_wider" in capsys.readouterr().err
    assert main(["thesis", "--runs", str(tmp_path), "--only", "nope"]) == 2
    assert "recipe.yaml; stages: data_v1, data_v2" in capsys.readouterr().err


def test_every_letterbox_stage_uses_known_variables():
    from unetblur.commands._recipe import _fill

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "experiments" / "thesis" / "letterbox.yaml")
    values = {**{k: str(v) for k, v in recipe.vars.items()}, "runs": "r"}
    for stage in recipe.stages:
        [_fill(a, values) for a in stage.run]
