"""`unetblur data merge`: several built datasets as one folder (train on WIDER + FDDB with one --data)."""

from __future__ import annotations

import json

import pytest

from unetblur.cli import main
from unetblur.data.layout import list_samples
from unetblur.data.merge import merge_datasets, parse_part
from unetblur.errors import UnetblurError

from conftest import write_tiny_dataset


def two_parts(tmp_path):
    a = write_tiny_dataset(tmp_path / "a", counts=(3, 2, 1), seed=1)
    b = write_tiny_dataset(tmp_path / "b", counts=(2, 1, 2), seed=2)
    for root, src in ((a, tmp_path / "src" / "wider"), (b, tmp_path / "src" / "fddb")):
        m = json.loads((root / "manifest.json").read_text())
        (root / "manifest.json").write_text(json.dumps({**m, "source": str(src)}))
    return a, b


def test_merged_splits_hold_every_part_with_prefixed_stems(tmp_path):
    a, b = two_parts(tmp_path)
    assert main(["data", "merge", f"wider={a}", f"fddb={b}", "-o", str(tmp_path / "m")]) == 0
    stems = [s.stem for s in list_samples(tmp_path / "m", "test")]
    assert stems == ["fddb_test_0000", "fddb_test_0001", "wider_test_0000"]
    assert all(s.mask is not None for s in list_samples(tmp_path / "m", "train"))
    assert main(["data", "check", str(tmp_path / "m")]) == 0


def test_merged_records_point_at_the_originals_under_the_common_source(tmp_path):
    a, b = two_parts(tmp_path)
    records = [json.loads(line) for line in (a / "faces.jsonl").read_text().splitlines()]
    records[0]["source"] = "0--Parade/x.jpg"
    (a / "faces.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    manifest = merge_datasets([("wider", a), ("fddb", b)], tmp_path / "m")
    assert manifest["source"] == str(tmp_path / "src")
    merged = [json.loads(line) for line in (tmp_path / "m" / "faces.jsonl").read_text().splitlines()]
    first = next(r for r in merged if r["image"] == f"{records[0]['split']}/wider_{records[0]['image'].split('/')[1]}")
    assert first["source"] == "wider/0--Parade/x.jpg"
    assert manifest["counts"] == {"train": 5, "val": 3, "test": 3}


def test_parts_with_different_blur_are_refused(tmp_path):
    a, b = two_parts(tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps({**m, "blur": {"kernel": 41}}))
    with pytest.raises(UnetblurError, match="differ in 'blur'"):
        merge_datasets([("wider", a), ("fddb", b)], tmp_path / "m")


def test_a_bad_part_name_is_one_clear_error():
    with pytest.raises(UnetblurError, match="NAME=DIR"):
        parse_part("no good=dir")
