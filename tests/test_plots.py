"""Graphs: the Pareto front, the qualitative grid, training curves of run folders, and `unetblur plot` errors."""

from __future__ import annotations

import numpy as np
import pytest

from unetblur.errors import UnetblurError
from unetblur.evaluate import plots
from unetblur.faces import Face


def _summary(methods: dict[str, tuple[float, float]]) -> dict:
    """A minimal compare summary: method → (mse, ms per megapixel)."""
    buckets = {b: 0.5 for b in ("all", "<16", "16-32", "32-64", "64-128", ">=128")}
    return {"threads": 1, "methods": {name: {
        "kind": "model", "cost": {"ms_per_megapixel": ms},
        "metrics": {"dataset": {"mse": {"all": mse}, "mae": {"all": mse * 2}, "mse_face": {"all": None},
                                "coverage": buckets, "coverage_recall": buckets, "faces": {b: 1 for b in buckets}}},
    } for name, (mse, ms) in methods.items()}}


def test_pareto_front_keeps_only_points_nothing_beats_on_both_axes():
    points = [(1.0, 5.0), (2.0, 2.0), (3.0, 3.0), (4.0, 1.0), (2.0, 6.0)]
    assert plots.pareto_front(points) == [0, 1, 3]


def test_summary_graphs_are_written_even_with_missing_values(tmp_path):
    graphs = plots.plot_summary(_summary({"a": (0.01, 50.0), "b": (0.02, 5.0)}), tmp_path)
    assert {p.name for p in graphs.values()} == {"errors.png", "coverage.png", "pareto.png"}
    assert all(p.stat().st_size > 1000 for p in graphs.values())


def test_grid_has_a_column_per_method(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    sample = {"image": img, "target": img, "faces": [Face(4, 4, 12, 14)], "outputs": {"a": img, "b": img}}
    path = plots.plot_grid([sample, sample], ["a", "b"], tmp_path / "grid.png")
    from unetblur.io import read_image
    h, w = read_image(path).shape[:2]
    assert w > h  # 4 columns, 2 rows


def test_training_curves_of_a_run_folder_are_drawn_by_the_curves_report(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,train/mse,train/mae,val/mse,val/mae\n"
                                     "0,1,0.05,0.1,,\n0,1,,,0.06,0.12\n1,2,0.03,0.08,,\n1,2,,,0.04,0.1\n")
    files = plots.plot_paths([run], tmp_path / "out")
    assert {p.name for p in files} >= {"curves_mse.png", "curves_mae.png"}


def test_plot_refuses_a_folder_that_is_neither_results_nor_a_run(tmp_path):
    with pytest.raises(UnetblurError, match="neither a compare folder"):
        plots.plot_paths([tmp_path])
