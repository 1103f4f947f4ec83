"""Mined negatives: the false-blob map, the train_negative/ folder, its path through the dataset's
augmentation, and its weight in the mask loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unetblur.data.dataset import PairedDataset, joint_augmentation
from unetblur.data.layout import negative_dir
from unetblur.errors import BadInputError, UnetblurError
from unetblur.evaluate.metrics import background_mask
from unetblur.faces import Face, read_faces_jsonl
from unetblur.io import write_image
from unetblur.training.fit import build_teacher_module, train
from unetblur.training.losses import mask_loss
from unetblur.training.mining import (MINED_FILE, MiningSettings, false_blob_map, false_blob_share, mine_dataset,
                                      write_negative_maps)

from test_training import tiny_config


def test_a_blob_is_charged_only_if_the_compositor_would_keep_it_and_it_lies_in_the_background():
    prob = np.zeros((40, 40), np.float32)
    prob[2:8, 2:8] = 0.96                           # kept (peak ≥ 0.9), on background: charged
    prob[2:8, 30:36] = 0.7                          # above threshold, peak under min_peak: the compositor drops it
    prob[20:30, 20:30] = 0.99                       # the face, and its blob spilling right
    prob[24:26, 30:38] = 0.8
    face = Face(20, 20, 30, 30)                     # grown 1.5×: x 17.5–32.5 spared
    blob = false_blob_map(prob, [face], MiningSettings())
    assert blob[2:8, 2:8].all() and not blob[2:8, 30:36].any()
    assert not blob[20:30, 17:32].any()             # the face and bg_changed's margin around it
    assert blob[24:26, 33:38].all()                 # the spill beyond that margin costs, as in the table
    assert blob.sum() == 36 + 2 * 5
    spared = false_blob_map(prob, [face, Face(2, 2, 8, 8, score=0.4)], MiningSettings())
    assert not spared[2:8, 2:8].any()               # a face the annotation lacks is spared
    assert not false_blob_map(np.zeros((8, 8), np.float32), [], MiningSettings()).any()
    with pytest.raises(UnetblurError, match="min_peak"):
        MiningSettings(min_peak=1.5).check()


def test_mining_writes_the_train_maps_only_and_the_dataset_carries_them_through_flips(tiny_dataset):
    def fires_top_left(image):
        prob = np.zeros(image.shape[:2], np.float32)
        prob[:6, :6] = 0.97
        return prob

    summary = mine_dataset(tiny_dataset, fires_top_left, MiningSettings(), model_name="stub")
    out = negative_dir(tiny_dataset, "train")
    assert not negative_dir(tiny_dataset, "val").exists() and not negative_dir(tiny_dataset, "test").exists()
    assert summary["photos"] == 8 and json.loads((out / MINED_FILE).read_text())["model"] == "stub"
    assert 0 < summary["photos_with_negatives"] == len(list(out.glob("*.png")))
    stem = sorted(out.glob("*.png"))[0].stem
    plain = PairedDataset(tiny_dataset, "train")
    i = [s.stem for s in plain.samples].index(stem)
    negative = plain[i]["negative"][0]
    assert negative[:2, :2].all() and not negative[10:, 10:].any()
    assert not PairedDataset(tiny_dataset, "val")[0]["negative"].any()     # no maps: all zeros
    torch.manual_seed(0)
    flipped = PairedDataset(tiny_dataset, "train", joint_augmentation(hflip=True))
    items = [flipped[i] for _ in range(8)]
    assert any(item["negative"][0, :2, -2:].all() for item in items)       # moved with the image
    for item in items:
        expect = plain[i]["image"] if item["negative"][0, 0, 0] else plain[i]["image"].flip(-1)
        assert torch.equal(item["image"], expect)
    mine_dataset(tiny_dataset, lambda image: np.zeros(image.shape[:2], np.float32), MiningSettings())
    assert not list(out.glob("*.png"))                                      # a new run replaces the old maps


def test_any_per_photo_map_is_written_with_the_faces_of_its_photo_and_replaces_the_previous_maps(tiny_dataset):
    mine_dataset(tiny_dataset, lambda image: np.full(image.shape[:2], 0.97, np.float32), MiningSettings())
    out = negative_dir(tiny_dataset, "train")
    assert len(list(out.glob("*.png"))) == 8
    faces_of = read_faces_jsonl(tiny_dataset / "faces.jsonl")
    seen = []

    def first_photo_only(sample, faces):
        seen.append(sample.stem)
        assert faces == faces_of.get(f"train/{sample.image.name}", [])      # in the stored photo's pixels
        marked = np.zeros((64, 64), bool)
        marked[:3, :3] = len(seen) == 1
        return marked

    summary = write_negative_maps(tiny_dataset, first_photo_only, {"what": "a corner"})
    assert len(seen) == summary["photos"] == 8
    assert json.loads((out / MINED_FILE).read_text())["what"] == summary["what"] == "a corner"
    assert [p.stem for p in out.glob("*.png")] == seen[:1]                  # the eight mined maps are gone
    assert summary["photos_with_negatives"] == 1 and summary["negative_share"] == pytest.approx(9 / (8 * 64 * 64))
    assert not out.with_name(out.name + ".tmp").exists()


def test_the_false_blob_share_measures_a_split_without_writing(tiny_dataset):
    def fires_everywhere(image):
        return np.full(image.shape[:2], 0.97, np.float32)

    faces = read_faces_jsonl(tiny_dataset / "faces.jsonl")
    background = [background_mask((32, 32), faces[f"val/val_{i:04d}.png"]) for i in range(4)]
    share = false_blob_share(tiny_dataset, "val", fires_everywhere, MiningSettings())
    assert share == pytest.approx(np.mean([b.mean() for b in background]))   # all but bg_changed's face boxes
    assert false_blob_share(tiny_dataset, "val", fires_everywhere, MiningSettings(), limit=2) == \
        pytest.approx(np.mean([background[0].mean(), background[2].mean()]))  # evenly spaced
    assert false_blob_share(tiny_dataset, "val", fires_everywhere, MiningSettings(min_peak=0.99)) == 0.0
    assert not negative_dir(tiny_dataset, "val").exists()


def test_a_negative_map_of_the_wrong_size_is_refused(tiny_dataset):
    write_image(negative_dir(tiny_dataset, "train") / "train_0000.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(BadInputError, match="negative map is 5x5"):
        PairedDataset(tiny_dataset, "train")[0]


def test_the_mined_weight_charges_the_mined_pixels_only(tiny_dataset, tmp_path):
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:12, 4:12] = 1
    prob = mask * 0.95 + 0.02
    prob[..., 20:24, 20:24] = 0.9                   # a false blob
    negative = torch.zeros_like(mask)
    negative[..., 20:24, 20:24] = 1
    negative[..., 4:12, 4:12] = 1                   # a map that also covers a face: faces are never charged
    plain = float(mask_loss(prob, mask, "bce")["loss_mask_bce"])
    charged = float(mask_loss(prob, mask, "bce", negative=negative, mined_negative_weight=9.0)["loss_mask_bce"])
    pixel = -np.log(0.1)
    bce = torch.nn.functional.binary_cross_entropy(prob, mask, reduction="none")
    assert charged == pytest.approx(float((bce.sum() + 9 * 16 * pixel) / (32 * 32 + 9 * 16)), rel=1e-4)
    assert charged > 3 * plain
    assert float(mask_loss(prob, mask, "bce", mined_negative_weight=9.0)["loss_mask_bce"]) == pytest.approx(plain)
    batch = {"image": torch.rand(1, 3, 32, 32), "target": torch.rand(1, 3, 32, 32), "mask": mask, "negative": negative}
    output = torch.cat([batch["target"], prob], 1)
    cfg = tiny_config(tiny_dataset, tmp_path / "run", mask_channel=True, mined_negative_weight=9.0)
    _, parts = build_teacher_module(cfg).compute_loss(output, batch)
    assert float(parts["loss_mask_bce"]) == pytest.approx(charged, rel=1e-5)
    with pytest.raises(UnetblurError, match="mined_negative_weight must be ≥ 0"):
        train(tiny_config(tiny_dataset, tmp_path / "run", mined_negative_weight=-1.0))
    assert not (tmp_path / "run").exists()
