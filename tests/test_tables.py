from unetblur.evaluate.tables import parse_model_entry, write_tables
from unetblur.models import build_model, save_model


def make_run(folder, val_losses):
    folder.mkdir(parents=True)
    save_model(build_model("tiny"), folder / "model.pt")
    rows = ["epoch,step,train/mse,val/loss,val/mse,val/psnr"]
    rows += [f"{e},{e},0.0{e + 1},{v},{v},{20 + e}" for e, v in enumerate(val_losses)]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_tables_report_cost_and_the_best_validation_epoch(tmp_path):
    run = make_run(tmp_path / "tiny", [0.05, 0.02, 0.03])
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.int8.onnx").write_bytes(b"x" * 2048)
    out = write_tables([parse_model_entry(f"tiny={run},{tmp_path / 'export'}")], None, tmp_path / "tables.md", size=32)
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| tiny | 1"))
    assert "| 21 |" in row  # val PSNR of epoch 1, the best val loss
    assert "| 7,559 |" in text and "| 2 |" in text  # parameters of the tiny preset; INT8 file of 2 KB


def test_a_malformed_model_entry_is_a_clear_error():
    import pytest

    from unetblur.errors import UnetblurError

    with pytest.raises(UnetblurError, match="expected NAME=RUN_DIR"):
        parse_model_entry("just-a-path")
