"""Reliability of configs, YAML files and the command line's exit codes and error lines."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

import badinputs as bad
from unetblur.config import load_config
from unetblur.errors import EXIT_INTERNAL, EXIT_USAGE, UnetblurError


@dataclasses.dataclass(frozen=True)
class Toy:
    epochs: int = 3
    lr: float = 1e-3
    mode: Literal["a", "b"] = "a"
    out: Path = Path("runs/x")
    sizes: tuple[int, ...] = (32,)

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")


def test_an_unknown_yaml_key_fails_with_a_did_you_mean(tmp_path):
    path = bad.make_yaml(tmp_path, "epoch: 5\n")
    with pytest.raises(UnetblurError, match=r"config.yaml: unknown key 'epoch'; did you mean 'epochs'\?"):
        load_config(Toy, [path])


@pytest.mark.parametrize("text,problem", [
    ("epochs: five\n", "epochs: expected an integer, got 'five'"),
    ("epochs: 2.5\n", "epochs: expected an integer"),
    ("lr: fast\n", "lr: expected a number"),
    ("mode: c\n", "mode: 'c' is not one of"),
    ("sizes: 32\n", "sizes: expected a list"),
    ("out: [1, 2]\n", "out: expected a path"),
    ("epochs: true\n", "expected an integer, got True"),
], ids=["text for int", "float for int", "text for float", "bad choice", "scalar for list", "list for path",
        "bool for int"])
def test_a_wrong_type_names_the_file_the_key_and_the_value(tmp_path, text, problem):
    path = bad.make_yaml(tmp_path, text)
    with pytest.raises(UnetblurError, match=problem) as info:
        load_config(Toy, [path])
    assert str(path) in str(info.value)


def test_a_path_field_accepts_text_from_yaml(tmp_path):
    assert load_config(Toy, [bad.make_yaml(tmp_path, "out: runs/y\n")]).out == Path("runs/y")


def test_a_range_check_in_post_init_becomes_a_user_error(tmp_path):
    with pytest.raises(UnetblurError, match="epochs must be >= 0"):
        load_config(Toy, [bad.make_yaml(tmp_path, "epochs: -1\n")])


@pytest.mark.parametrize("content,problem", [
    (b"epochs: [1, 2\n", "not valid YAML"),
    (b"- 1\n- 2\n", "must be a mapping"),
    (b"\xff\xfe\x00binary\x00", "not a text file"),
], ids=["broken YAML", "a list", "binary"])
def test_a_malformed_yaml_file_is_one_clear_error(tmp_path, content, problem):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(UnetblurError, match=problem):
        load_config(Toy, [path])


def test_a_missing_config_and_a_base_loop_are_clear_errors(tmp_path):
    with pytest.raises(UnetblurError, match="cannot read config"):
        load_config(Toy, [tmp_path / "missing.yaml"])
    bad.make_yaml(tmp_path, "base: b.yaml\n", "a.yaml")
    bad.make_yaml(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(UnetblurError, match="loop"):
        load_config(Toy, [tmp_path / "a.yaml"])


def test_a_yaml_python_tag_is_refused_not_executed(tmp_path):
    marker = tmp_path / "yaml-payload-ran"
    path = bad.make_yaml(tmp_path, f"epochs: !!python/object/apply:os.mkdir [{str(marker)!r}]\n")
    with pytest.raises(UnetblurError, match="not valid YAML"):
        load_config(Toy, [path])
    assert not marker.exists()


# ------------------------------------------------------------------------------ through the command line

def test_the_cli_turns_a_bad_config_into_exit_2_and_one_line(tmp_path, capsys):
    cfg = bad.make_yaml(tmp_path, "epoch: 5\n")
    code, out, err = bad.run_cli(["train", "--config", cfg, "--data", tmp_path, "--out", tmp_path / "run"], capsys)
    assert code == EXIT_USAGE
    bad.assert_one_clear_line(err, str(cfg), "did you mean 'epochs'")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_unknown_command_or_flag_is_exit_2_with_one_line(capsys):
    for argv in (["nosuchverb"], ["train", "--no-such-flag"]):
        code, _, err = bad.run_cli(argv, capsys)
        assert code == EXIT_USAGE
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def _run_a_verb_that_raises(exc: BaseException, monkeypatch, capsys):
    """Run the CLI with a verb whose handler raises ``exc``: (exit code, stdout, stderr)."""
    from unetblur import cli

    def boom(args):
        raise exc

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: type("A", (), {"func": staticmethod(boom)})())
    monkeypatch.delenv("UNETBLUR_DEBUG", raising=False)
    return bad.run_cli(["x"], capsys)


def test_an_unexpected_exception_is_exit_3_with_one_line_and_no_traceback(monkeypatch, capsys):
    code, _, err = _run_a_verb_that_raises(ZeroDivisionError("bug"), monkeypatch, capsys)
    assert code == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError: bug" in err and "Traceback" not in err


def test_an_internal_error_with_a_long_message_still_prints_one_line(monkeypatch, capsys):
    code, _, err = _run_a_verb_that_raises(RuntimeError("\nfirst real line\nsecond line\n\nthird"), monkeypatch, capsys)
    assert code == EXIT_INTERNAL
    assert err.strip().splitlines() == ["unetblur: internal error: RuntimeError: first real line "
                                        "(set UNETBLUR_DEBUG=1 for details)"]


@pytest.mark.parametrize("exc,needle", [
    (OSError(28, "No space left on device", "/data/out.png"), "/data/out.png: No space left on device; free some"),
    (PermissionError(13, "Permission denied", "/ro/x"), "/ro/x: Permission denied"),
], ids=["disk full", "permission denied"])
def test_an_environment_error_is_exit_2_naming_the_file(monkeypatch, capsys, exc, needle):
    from unetblur import cli

    def fail(args):
        raise exc

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: type("A", (), {"func": staticmethod(fail)})())
    code, _, err = bad.run_cli(["x"], capsys)
    assert code == EXIT_USAGE
    assert needle in err and "Traceback" not in err


def test_sigterm_is_turned_into_a_clean_exit_that_removes_temporaries(tmp_path):
    # A child process writes inside atomic_path, gets SIGTERM mid-write: exit 143, no temporary left.
    script = f"""
import os, signal, sys, time
from unetblur import cli
from unetblur.fsutil import atomic_path

def slow(args):
    with atomic_path({str(tmp_path / 'out.bin')!r}) as tmp:
        tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    return 0

parser = cli.build_parser()
parser.parse_args = lambda argv: type("A", (), {{"func": staticmethod(slow)}})()
cli.build_parser = lambda: parser
sys.exit(cli.main(["x"]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 143, result.stderr
    assert "terminated" in result.stderr and "Traceback" not in result.stderr
    assert bad.files_under(tmp_path) == []


def test_a_verb_whose_dependency_is_missing_says_what_to_install(monkeypatch, capsys):
    import importlib

    from unetblur import cli

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "unetblur.commands.train":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real(name, *a, **k)

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    code, _, err = bad.run_cli(["train", "--epochs", "1"], capsys)
    assert code == EXIT_USAGE
    assert "needs the Python package 'torch'" in err and "Traceback" not in err


def test_the_readme_exit_code_table_matches_the_constants():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    from unetblur import errors

    for code in (errors.EXIT_OK, errors.EXIT_FINDINGS, errors.EXIT_USAGE, errors.EXIT_INTERNAL):
        assert f"| {code} |" in readme


MISSING_INPUT = {
    "compare": ["compare", "--data", "{missing}", "--method", "oracle", "--out", "{out}"],
    "bench": ["bench", "{missing}.onnx"],
    "plot": ["plot", "{missing}", "--out", "{out}"],
    "prune": ["prune", "{missing}.pt", "-o", "{out}/p.pt"],
    "distill": ["distill", "--teacher", "{missing}.pt", "--preset", "tiny", "--data", "{missing}", "--out", "{out}"],
    "export": ["export", "{missing}.pt", "-o", "{out}"],
    "data check": ["data", "check", "{missing}"],
    "data build": ["data", "build", "{missing}", "-o", "{out}"],
    "train": ["train", "--data", "{missing}", "--out", "{out}"],
    "blur": ["blur", "{missing}.jpg", "--model", "centerface", "-o", "{out}/x.jpg"],
}


@pytest.mark.parametrize("verb", MISSING_INPUT)
def test_every_verb_names_a_missing_input_with_exit_2_and_writes_nothing(tmp_path, capsys, verb):
    import importlib

    if importlib.util.find_spec(f"unetblur.commands.{verb.split()[0]}") is None:
        pytest.skip(f"{verb} not built yet")
    missing, out = tmp_path / "nowhere", tmp_path / "out"
    argv = [a.format(missing=missing, out=out) for a in MISSING_INPUT[verb]]
    code, _, err = bad.run_cli(argv, capsys)
    assert code == EXIT_USAGE, err
    bad.assert_one_clear_line(err, "nowhere")
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() or bad.files_under(out) == []
