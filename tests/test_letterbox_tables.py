"""The letterbox thesis tables: ours beside the published figures, the privacy study, the MSE/MAE graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import write_tiny_dataset
from unetblur.cli import main
from unetblur.evaluate import plots
from unetblur.evaluate.privacy import privacy_study
from unetblur.evaluate.tables import parse_model_entry, write_tables
from unetblur.models import build_model, save_model

BUCKETS = ("all", "<16", "16-32", "32-64", "64-128", ">=128")


def summary(values: dict[str, tuple[float, float]], threads: int = 1) -> dict:
    """A minimal compare summary: method → (psnr, ms per image)."""
    return {"threads": threads, "images": {"dataset": 9}, "machine": {"processor": "x86_64"}, "methods": {
        name: {"kind": "model", "cost": {"ms_per_image": ms, "ms_per_megapixel": ms * 61},
               "metrics": {"dataset": {"psnr": {"all": psnr}, "mse": {"all": 10 ** (-psnr / 10)}, "mae": {"all": 0.02},
                                       "mse_face": {b: 0.01 for b in BUCKETS}, "mae_face": {b: 0.05 for b in BUCKETS},
                                       "faces": {b: 2 for b in BUCKETS}}}}
        for name, (psnr, ms) in values.items()}}


def write_summary(folder, data: dict):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(data))
    return folder


def published(tmp_path):
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump({"models": {"tiny": {"widths": "4-8 / 16", "params": 7000, "int8_kb": 1,
                                                        "val_psnr_db": 34.19, "mcu_ms": 12.8}},
                                    "mcu": "STM32N6", "why": {"budget": "BUDGET", "data": "DATA", "latency": "LAT"}}))
    return path


def test_ours_stand_beside_the_published_figures_with_identity_and_why(tmp_path):
    run = tmp_path / "tiny"
    run.mkdir()
    save_model(build_model("tiny"), run / "model.pt", {"wall_seconds_this_session": 600, "epochs_trained": 2.5,
                                                       "global_step": 100, "best_epoch": 2,
                                                       "config": {"batch_size": 8, "crop_size": 64}})
    (run / "metrics.csv").write_text("epoch,step,val/loss\n0,1,0.01\n")
    val = {"v1": write_summary(tmp_path / "v1", summary({"tiny": (25.0, 3.0), "identity": (27.0, 0.1)})),
           "v2": write_summary(tmp_path / "v2", summary({"tiny": (26.5, 3.0), "tiny_int8": (26.4, 1.5),
                                                          "identity": (28.0, 0.1)}))}
    out = write_tables([parse_model_entry(f"tiny={run}")], None, tmp_path / "t.md", 32, val=val,
                       published=published(tmp_path), graphs=tmp_path / "graphs")
    text = out.read_text()
    quality = next(line for line in text.splitlines() if line.startswith("| tiny | 34.19 |"))
    assert "| 25 |" in quality and "| 26.5 |" in quality and "| 26.4 |" in quality
    assert "10.0 min, 2.5 epochs (100 steps × batch 8, 64 px crops)" in quality
    assert "| identity (output = input) | – | 27 |" in text
    size = next(line for line in text.splitlines() if line.startswith("| tiny | 4-8 / 16 |"))
    assert "| 3 / 1.5 | 12.8 |" in size and "1 thread(s)" in text
    assert "- **tiny**: PSNR 25 / 26.5 vs 34.19 dB: BUDGET, DATA; latency 1.5 vs 12.8 ms: LAT." in text
    assert (tmp_path / "graphs" / "errors_by_size_val_v2.png").stat().st_size > 1000
    assert "](graphs/errors_val_v1.png)" in text


def test_val_without_published_figures_is_one_clear_error(tmp_path, capsys):
    code = main(["tables", "--model", f"tiny={tmp_path}", "--val", f"v2={tmp_path}", "-o", str(tmp_path / "t.md")])
    assert code == 2 and "--val needs --published" in capsys.readouterr().err


def test_errors_by_size_graph_draws_with_missing_buckets(tmp_path):
    s = summary({"a": (20.0, 1.0)})
    s["methods"]["a"]["metrics"]["dataset"]["mse_face"] = {"all": None}
    assert plots.plot_errors_by_size(s, tmp_path / "e.png").stat().st_size > 1000


class CropRecognizer:
    """A stand-in for dlib: the face box's pixels, resized to 4×4 (an exact copy embeds identically)."""

    def embed(self, image, face):
        import cv2

        x1, y1 = max(0, int(face.x1)), max(0, int(face.y1))
        crop = image[y1:max(y1 + 1, int(face.y2)), x1:max(x1 + 1, int(face.x2))]
        return cv2.resize(crop, (4, 4), interpolation=cv2.INTER_AREA).astype(np.float64).ravel() / 255.0


def test_privacy_study_counts_eligible_faces_and_identity_is_always_reidentified(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", size=64, counts=(2, 2, 6), seed=3)
    from unetblur.faces import iter_faces_jsonl
    widths = [f.width for r in iter_faces_jsonl(root / "faces.jsonl") if r["split"] == "test" for f in r["faces"]]
    study = privacy_study(root, [("identity", "identity"), ("oracle", "oracle")], min_face=14,
                          recognizer=CropRecognizer())
    assert study["gallery"] == sum(w >= 14 for w in widths) > 1
    assert study["methods"]["identity"] == {"reid_verify": 1.0, "reid_rank1": 1.0, "median_distance": 0.0}
    assert study["methods"]["oracle"]["median_distance"] > 0


def test_privacy_study_with_no_eligible_face_reports_nan(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", size=32, counts=(2, 2, 2))
    study = privacy_study(root, [("identity", "identity")], min_face=1000, recognizer=CropRecognizer())
    assert study["gallery"] == 0 and np.isnan(study["methods"]["identity"]["reid_rank1"])


def test_privacy_study_needs_a_method(tmp_path):
    from unetblur.errors import UnetblurError

    with pytest.raises(UnetblurError, match="at least one method"):
        privacy_study(write_tiny_dataset(tmp_path / "ds"), [], recognizer=CropRecognizer())


@pytest.mark.parametrize("budget", ["cpu.yaml", "gpu.yaml"])
def test_thesis_budget_files_are_valid_train_config_deltas(budget):
    from pathlib import Path

    from unetblur.config import load_config
    from unetblur.training.fit import TrainConfig

    folder = Path(__file__).resolve().parents[1] / "experiments" / "thesis"
    cfg = load_config(TrainConfig, [folder / "teacher.yaml", folder / budget])
    assert cfg.precision == ("16-mixed" if budget == "gpu.yaml" else "32-true")


@pytest.mark.parametrize("verify, shown", [(0.8, True), (0.02, False)])
def test_privacy_table_says_why_only_when_ours_is_off_the_thesis(verify, shown):
    from unetblur.evaluate.tables import privacy_section

    study = {"split": "test", "min_face": 48, "threshold": 0.6, "faces_eligible": 3, "images": 2, "gallery": 3,
             "chance": 1 / 3, "methods": {"teacher": {"reid_verify": verify, "reid_rank1": 0.5, "median_distance": 0.4}}}
    pub = {"privacy": {"model": "teacher", "deidentified_share": 0.9896, "text": "T"}, "why": {"privacy": "WHY"}}
    text = "\n".join(privacy_section(study, pub))
    assert "98.96 % de-identified" in text
    assert ("WHY" in text) is shown
