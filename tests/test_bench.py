"""``unetblur bench``: latency table and JSON, size parsing, per-operator profile."""

from __future__ import annotations

import json

import pytest

from unetblur.cli import main
from unetblur.deploy.bench import BenchConfig, benchmark, format_table, parse_sizes, profile_operators
from unetblur.deploy.onnx_export import ExportConfig, export_model, random_calibrated_model
from unetblur.errors import UnetblurError
from unetblur.models import save_model


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    save_model(random_calibrated_model("tiny"), root / "tiny.pt")
    export_model(ExportConfig(model=str(root / "tiny.pt"), out_dir=str(root), parity_count=1))
    return root / "tiny.onnx"


def test_benchmark_reports_latency_spread_and_memory_per_size(onnx_file):
    result = benchmark(BenchConfig(model=str(onnx_file), sizes="32x32,64x48", runs=3, warmup=1, threads=1,
                                   providers="CPUExecutionProvider"))
    sizes = [r["size"] for r in result["results"]]
    assert sizes == ["32x32", "64x48"]
    row = result["results"][0]
    assert row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and row["peak_rss_mb"] > 0
    assert result["threads"] == 1


def test_sizes_are_padded_up_to_the_stride_the_network_runs_at(onnx_file):
    result = benchmark(BenchConfig(model=str(onnx_file), sizes="30x30", runs=1, warmup=0,
                                   providers="CPUExecutionProvider"))
    assert result["results"][0]["size"] == "32x32" and result["results"][0]["requested"] == "30x30"


def test_bench_command_prints_a_table_and_writes_json(onnx_file, tmp_path, capsys):
    out = tmp_path / "b.json"
    code = main(["bench", str(onnx_file), "--sizes", "32x32", "--runs", "2", "--warmup", "0", "--json", str(out),
                 "--providers", "CPUExecutionProvider"])
    assert code == 0
    assert "median ms" in capsys.readouterr().out
    assert json.loads(out.read_text())["results"][0]["provider"] == "CPUExecutionProvider"


def test_a_malformed_size_is_a_usage_error():
    with pytest.raises(UnetblurError, match="expected WIDTHxHEIGHT"):
        parse_sizes("128by128")


def test_an_unavailable_provider_is_named_in_the_error(onnx_file):
    with pytest.raises(UnetblurError, match="NoSuchExecutionProvider"):
        benchmark(BenchConfig(model=str(onnx_file), sizes="32x32", runs=1, providers="NoSuchExecutionProvider"))


def test_operator_profile_attributes_most_time_to_convolutions(onnx_file):
    prof = profile_operators(onnx_file, 32, 32, threads=1, runs=2)
    assert prof["total_ms_per_run"] > 0
    assert any(op.startswith("Conv") or op.startswith("Fused") for op in prof["by_op"])
    assert "Conv" in format_table({"model": "m", "threads": 1, "onnxruntime": "x", "processor": "p", "results": [],
                                   "profile": prof})
