"""The comparison harness on the tiny synthetic dataset: oracle, a detector, a tiny torch model (and its ONNX export)."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from unetblur.cli import main
from unetblur.errors import UnetblurError
from unetblur.evaluate.compare import CompareConfig, compare, load_summary, parse_methods
from unetblur.faces import Face, iter_faces_jsonl, write_faces_jsonl
from unetblur.io import read_image, write_image
from unetblur.models import build_model, save_model

from conftest import write_tiny_dataset


def _add_originals(root):
    """Give the test split 2× 'originals' (what a built dataset's manifest points to)."""
    records = []
    for rec in iter_faces_jsonl(root / "faces.jsonl"):
        if rec["split"] == "test":
            img = read_image(root / rec["image"])
            big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            rec["source"] = f"{rec['image'].split('/')[-1]}"
            write_image(root / "originals" / rec["source"], big)
            rec["source_faces"] = [f.scaled(2).to_dict() for f in rec["faces"]]
        records.append(rec)
    write_faces_jsonl(root / "faces.jsonl", records)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["source_root"] = "originals"
    (root / "manifest.json").write_text(json.dumps(manifest))


def _detector() -> str:
    """haar when this OpenCV build has it (OpenCV 5 dropped CascadeClassifier), else centerface."""
    from unetblur.detectors import open_detector

    try:
        open_detector("haar")
        return "haar"
    except (AttributeError, UnetblurError):
        return "centerface"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    root = write_tiny_dataset(base / "ds")
    _add_originals(root)
    model = build_model("tiny")
    save_model(model, base / "tiny.pt")
    methods = ["oracle", f"detector={_detector()}", f"tiny={base / 'tiny.pt'}"]
    try:
        from unetblur.deploy.onnx_export import export_onnx, model_metadata
        export_onnx(model, base / "tiny.onnx", model_metadata(model, {}, "fp32"))
        methods.append(f"tiny_onnx={base / 'tiny.onnx'}")
    except ImportError:  # the deploy extra is not part of this checkout
        pass
    return base, root, methods


@pytest.fixture(scope="module")
def result(workspace):
    base, root, methods = workspace
    out = compare(CompareConfig(data=str(root), methods=tuple(methods), out=str(base / "out"), threads=1,
                                warmup=1, grid_images=2))
    return out, load_summary(out)


def test_compare_writes_every_output_file(result):
    out, _ = result
    for name in ("results.csv", "summary.json", "report.md", "report.html", "errors.png", "coverage.png",
                 "pareto.png", "grid.png", "errors_original.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_oracle_scores_zero_error_and_full_coverage(result):
    _, summary = result
    metrics = summary["methods"]["oracle"]["metrics"]["dataset"]
    for name in ("mse", "mae", "mse_face", "mae_face", "mse_bg", "mae_bg", "false_blur"):
        assert metrics[name]["all"] == 0, name
    assert metrics["psnr"]["all"] == "inf"
    assert metrics["coverage_recall"]["all"] == 1.0 and metrics["coverage"]["all"] == 1.0


def test_oracle_is_also_exact_on_the_full_resolution_originals(result):
    _, summary = result
    assert summary["images"]["original"] == 4
    assert summary["methods"]["oracle"]["metrics"]["original"]["mse"]["all"] == 0


def test_an_untrained_model_has_nonzero_error_and_its_cost(result):
    _, summary = result
    tiny = summary["methods"]["tiny"]
    assert tiny["metrics"]["dataset"]["mse"]["all"] > 0
    assert tiny["cost"]["parameters"] == sum(p.numel() for p in build_model("tiny").parameters())
    assert tiny["cost"]["macs"] > 0 and tiny["cost"]["file_bytes"] > 0 and tiny["cost"]["ms_per_image"] > 0


def test_the_onnx_export_scores_like_the_torch_model(result):
    _, summary = result
    if "tiny_onnx" not in summary["methods"]:
        pytest.skip("deploy module not available")
    torch_mse = summary["methods"]["tiny"]["metrics"]["dataset"]["mse"]["all"]
    onnx = summary["methods"]["tiny_onnx"]
    assert onnx["metrics"]["dataset"]["mse"]["all"] == pytest.approx(torch_mse, rel=1e-2)
    assert onnx["cost"]["parameters"] == summary["methods"]["tiny"]["cost"]["parameters"]


def test_results_csv_is_long_format_with_face_size_buckets(result):
    out, _ = result
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:4] == ["method", "metric", "bucket", "value"]
    buckets = {r["bucket"] for r in rows if r["metric"] == "coverage_recall"}
    assert {"all", "<16", "16-32", "32-64", "64-128", ">=128"} <= buckets
    assert {r["method"] for r in rows} == {"oracle", "detector", "tiny"} | ({"tiny_onnx"} & {r["method"] for r in rows})


def test_report_has_every_section_and_states_where_targets_came_from(result):
    out, _ = result
    md = (out / "report.md").read_text()
    for heading in ("## Quality at the dataset's resolution", "## Privacy at the dataset's resolution",
                    "## By face size", "## Quality on the full-resolution originals", "## Cost", "## Graphs"):
        assert heading in md, heading
    assert "Targets came from: ground_truth" in md


def test_html_report_is_self_contained(result):
    out, _ = result
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert "src='errors.png'" not in page and "Targets came from" in page


def test_reid_column_is_present_even_without_eligible_faces(result):
    _, summary = result
    assert "reid_rate" in summary["methods"]["detector"]["metrics"]["dataset"]


def test_methods_parse_names_and_default_to_the_spec():
    assert parse_methods(["oracle", "t=a/model.pt", "b/student.onnx", "centerface@0.5"]) == [
        ("oracle", "oracle"), ("t", "a/model.pt"), ("student", "b/student.onnx"), ("centerface@0.5", "centerface@0.5")]


def test_a_method_name_used_twice_is_refused():
    with pytest.raises(UnetblurError, match="used twice"):
        parse_methods(["a=oracle", "a=centerface"])


def test_compare_without_methods_is_refused(tiny_dataset, tmp_path):
    with pytest.raises(UnetblurError, match="no methods"):
        compare(CompareConfig(data=str(tiny_dataset), out=str(tmp_path / "o")))


def test_a_missing_model_file_is_a_one_line_error(tiny_dataset, tmp_path):
    with pytest.raises(UnetblurError, match="model file not found"):
        compare(CompareConfig(data=str(tiny_dataset), methods=(f"m={tmp_path / 'nope.pt'}",),
                              out=str(tmp_path / "o")))


def test_cli_skips_an_unreadable_image_and_exits_1(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds")
    (root / "test" / "test_0001.png").write_bytes(b"not a png")
    code = main(["compare", "--data", str(root), "--method", "oracle", "--out", str(tmp_path / "o"),
                 "--no-reid", "--grid-images", "0", "--threads", "1"])
    assert code == 1
    assert "test_0001.png" in capsys.readouterr().err
    assert load_summary(tmp_path / "o")["images"]["dataset"] == 3


def test_cli_plot_redraws_a_compare_folder(result, tmp_path):
    out, _ = result
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "pareto.png").unlink()
    assert main(["plot", str(copy)]) == 0
    assert (copy / "pareto.png").is_file()


def test_torch_model_runs_on_sides_that_are_not_multiples_of_its_stride(workspace):
    from unetblur.runtime.factory import open_blurrer

    base, _, _ = workspace
    blurrer = open_blurrer(str(base / "tiny.pt"), name="t")
    image = np.random.default_rng(0).integers(0, 255, (37, 45, 3), dtype=np.uint8)
    result = blurrer(image)
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    assert result.mask.shape == image.shape[:2]


def test_oracle_blurrer_from_the_factory_reproduces_blur_faces(rng):
    from conftest import make_face_image
    from unetblur.blur import blur_faces
    from unetblur.runtime.factory import open_blurrer

    image, faces = make_face_image(rng, 48, 2)
    assert np.array_equal(open_blurrer("oracle")(image, faces).image, blur_faces(image, faces)[0])


def test_an_unknown_mode_is_refused(workspace):
    from unetblur.runtime.factory import open_blurrer

    base, _, _ = workspace
    with pytest.raises(UnetblurError, match="unknown mode"):
        open_blurrer(str(base / "tiny.pt"), mode="sideways")


def _astronaut_dataset(root):
    """One 256×256 test image with the astronaut's real face (90 px wide), target from blur_faces."""
    from skimage import data

    from unetblur.blur import blur_faces

    image = np.ascontiguousarray(data.astronaut()[0:256, 100:356])
    face = Face(75, 76, 165, 166)
    target, mask = blur_faces(image, [face])
    for folder, arr in (("test", image), ("test_blur", target), ("test_mask", mask)):
        write_image(root / folder / "a.png", arr)
    write_faces_jsonl(root / "faces.jsonl", [{"image": "test/a.png", "split": "test", "faces": [face]}])
    (root / "manifest.json").write_text(json.dumps({"targets_from": "ground_truth"}))
    return root


def test_reid_in_compare_separates_untouched_from_blurred_faces(tmp_path):
    from unetblur.evaluate.reid import reid_available

    if not reid_available():
        pytest.skip("dlib / face_recognition_models not installed")
    root = _astronaut_dataset(tmp_path / "ds")
    out = compare(CompareConfig(data=str(root), methods=("oracle", "identity"), out=str(tmp_path / "o"),
                                threads=1, warmup=0, grid_images=0))
    methods = load_summary(out)["methods"]
    assert methods["identity"]["metrics"]["dataset"]["reid_rate"]["64-128"] == 1.0
    assert methods["oracle"]["metrics"]["dataset"]["reid_rate"]["all"] == 0.0


def test_an_untouched_output_covers_no_face(tmp_path):
    root = _astronaut_dataset(tmp_path / "ds")
    out = compare(CompareConfig(data=str(root), methods=("identity",), out=str(tmp_path / "o"),
                                threads=1, warmup=0, grid_images=0, reid=False))
    metrics = load_summary(out)["methods"]["identity"]["metrics"]["dataset"]
    assert metrics["blur_completeness"]["all"] == 0 and metrics["coverage_recall"]["all"] == 0
    assert metrics["coverage"]["all"] == 0
    assert metrics["false_blur"]["all"] == 0


def test_reid_column_says_off_when_turned_off_rather_than_disappearing(tmp_path):
    root = _astronaut_dataset(tmp_path / "ds")
    out = compare(CompareConfig(data=str(root), methods=("identity",), out=str(tmp_path / "o"),
                                threads=1, warmup=0, grid_images=0, reid=False))
    assert load_summary(out)["methods"]["identity"]["metrics"]["dataset"]["reid_rate"]["all"] == "off (--no-reid)"
    assert "off (--no-reid)" in (out / "report.md").read_text()


def test_reid_column_says_how_to_install_when_dlib_is_missing(tmp_path, monkeypatch):
    import unetblur.evaluate.compare as C

    monkeypatch.setattr(C, "reid_available", lambda: False)
    root = _astronaut_dataset(tmp_path / "ds")
    out = compare(CompareConfig(data=str(root), methods=("identity",), out=str(tmp_path / "o"),
                                threads=1, warmup=0, grid_images=0))
    value = load_summary(out)["methods"]["identity"]["metrics"]["dataset"]["reid_rate"]["all"]
    assert value == "unavailable (install unetblur[reid])"


def test_composite_mode_runs_a_model_through_the_compositing_runtime(workspace, tmp_path):
    pytest.importorskip("unetblur.runtime.composite")
    base, root, _ = workspace
    out = compare(CompareConfig(data=str(root), methods=(f"c={base / 'tiny.pt'}",), mode="composite",
                                out=str(tmp_path / "o"), threads=1, warmup=0, grid_images=0, reid=False,
                                full_res=False))
    summary = load_summary(out)
    assert summary["mode"] == "composite" and summary["methods"]["c"]["metrics"]["dataset"]["mse"]["all"] >= 0


def test_the_thread_count_reaches_the_centerface_detector():
    from unetblur.runtime.factory import open_blurrer

    assert open_blurrer("centerface", threads=1).detector.session.get_session_options().intra_op_num_threads == 1


def test_compare_without_a_dataset_says_to_pass_data(tmp_path):
    with pytest.raises(UnetblurError, match="--data"):
        compare(CompareConfig(methods=("oracle",), out=str(tmp_path / "o")))


def test_an_original_is_scored_with_the_faces_of_every_crop_made_from_it(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", counts=(0, 0, 2))
    _add_originals(root)
    records = list(iter_faces_jsonl(root / "faces.jsonl"))
    # Pretend both test images are crops of one photo, each record knowing only its own faces.
    original = read_image(root / "originals" / records[0]["source"])
    records[1]["source"] = records[0]["source"]
    records[0]["source_faces"] = [Face(2, 2, 20, 24).to_dict()]
    records[1]["source_faces"] = [Face(30, 30, 50, 54).to_dict(), Face(2, 2, 20, 24).to_dict()]
    write_faces_jsonl(root / "faces.jsonl", records)
    out = compare(CompareConfig(data=str(root), methods=("oracle",), out=str(tmp_path / "o"), threads=1,
                                warmup=0, grid_images=0, reid=False))
    summary = load_summary(out)
    assert summary["images"]["original"] == 1 and original.shape[0] == 64
    assert summary["methods"]["oracle"]["metrics"]["original"]["faces"]["all"] == 2
