"""Annotation readers, each on a small hand-written file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from unetblur.data.annotations import (detect_format, find_annotations, read_annotations, read_celeba, read_coco,
                                       read_fddb, read_labelme, read_plain, read_voc, read_wider, read_yolo,
                                       safe_relpath)
from unetblur.errors import UnetblurError
from unetblur.io import write_image

WIDER = """\
0--Parade/0_Parade_1.jpg
2
10 20 30 40 0 0 0 0 0 0
50 60 5 6 0 0 0 1 0 0
0--Parade/0_Parade_2.jpg
0
0 0 0 0 0 0 0 0 0 0
0--Parade/0_Parade_3.jpg
1
70 80 0 12 0 0 0 0 0 0
"""


def test_wider_reads_boxes_as_corners(tmp_path):
    (tmp_path / "gt.txt").write_text(WIDER)
    ann = read_wider(tmp_path / "gt.txt", tmp_path)
    assert ann.faces["0--Parade/0_Parade_1.jpg"][0].box == (10, 20, 40, 60)


def test_wider_keeps_faces_flagged_invalid(tmp_path):
    (tmp_path / "gt.txt").write_text(WIDER)
    assert len(read_wider(tmp_path / "gt.txt", tmp_path).faces["0--Parade/0_Parade_1.jpg"]) == 2


def test_wider_image_with_zero_faces_skips_its_dummy_line(tmp_path):
    (tmp_path / "gt.txt").write_text(WIDER)
    ann = read_wider(tmp_path / "gt.txt", tmp_path)
    assert ann.faces["0--Parade/0_Parade_2.jpg"] == []
    assert "0--Parade/0_Parade_3.jpg" in ann.faces


def test_wider_drops_and_reports_a_zero_width_box(tmp_path):
    (tmp_path / "gt.txt").write_text(WIDER)
    ann = read_wider(tmp_path / "gt.txt", tmp_path)
    assert ann.faces["0--Parade/0_Parade_3.jpg"] == []
    assert any("non-positive" in p["reason"] for p in ann.problems)


def test_wider_default_image_root_is_the_official_images_folder(tmp_path):
    (tmp_path / "wider_face_split").mkdir()
    (tmp_path / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text(WIDER)
    ann = read_wider(tmp_path / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    assert ann.image_root == tmp_path / "WIDER_val" / "images"


def test_fddb_keeps_the_ellipse_and_adds_jpg(tmp_path):
    (tmp_path / "fold.txt").write_text("2002/08/11/big/img_591\n1\n40.0 25.0 1.5707963 100.0 80.0 1\n")
    ann = read_fddb(tmp_path / "fold.txt", tmp_path)
    face = ann.faces["2002/08/11/big/img_591.jpg"][0]
    assert face.ellipse[:4] == (100.0, 80.0, 40.0, 25.0)
    assert face.height == pytest.approx(80.0, abs=0.01)  # the 40 px major axis points down (90°)


def test_celeba_reads_xywh_and_skips_the_header(tmp_path):
    (tmp_path / "list_bbox_celeba.txt").write_text("2\nimage_id x_1 y_1 width height\n"
                                                   "000001.jpg 95 71 226 313\n000002.jpg 72 94 221 306\n")
    ann = read_celeba(tmp_path / "list_bbox_celeba.txt", tmp_path)
    assert ann.faces["000001.jpg"][0].box == (95, 71, 321, 384)
    assert len(ann.faces) == 2


def test_yolo_scales_normalised_boxes_by_the_image_size(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    write_image(tmp_path / "images" / "a.png", np.zeros((50, 100, 3), np.uint8))
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    face = read_yolo(tmp_path).faces["images/a.png"][0]
    assert face.box == pytest.approx((40, 15, 60, 35))


def test_yolo_image_without_a_label_file_has_no_faces(tmp_path):
    write_image(tmp_path / "b.png", np.zeros((8, 8, 3), np.uint8))
    assert read_yolo(tmp_path).faces == {"b.png": []}


def test_yolo_reads_only_face_classes_when_names_say_which(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.2 0.2\n")
    (tmp_path / "classes.txt").write_text("person\nface\n")
    faces = read_yolo(tmp_path).faces["a.png"]
    assert [f.center for f in faces] == [pytest.approx((2.0, 2.0))]


VOC = """<annotation><filename>{name}</filename><size><width>100</width><height>80</height></size>
<object><name>face</name><bndbox><xmin>10</xmin><ymin>12</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>
<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>"""


def test_voc_reads_face_objects_only(tmp_path):
    (tmp_path / "a.xml").write_text(VOC.format(name="a.jpg"))
    assert [f.box for f in read_voc(tmp_path / "a.xml").faces["a.jpg"]] == [(10, 12, 30, 40)]


def test_voc_reports_an_unparsable_file(tmp_path):
    (tmp_path / "bad.xml").write_text("<annotation><filename>")
    assert read_voc(tmp_path).problems[0]["path"].endswith("bad.xml")


def test_coco_reads_xywh_and_lists_images_without_boxes(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
           "annotations": [{"id": 7, "image_id": 1, "bbox": [5, 6, 10, 20], "category_id": 3}],
           "categories": [{"id": 3, "name": "face"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    ann = read_coco(tmp_path / "c.json")
    assert ann.faces == {"a.jpg": [ann.faces["a.jpg"][0]], "b.jpg": []}
    assert ann.faces["a.jpg"][0].box == (5, 6, 15, 26)


def test_labelme_takes_the_bounding_box_of_a_polygon(tmp_path):
    doc = {"imagePath": "a.jpg", "shapes": [{"label": "face", "shape_type": "polygon",
                                             "points": [[10, 20], [30, 22], [25, 50]]}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert read_labelme(tmp_path / "a.json").faces["a.jpg"][0].box == (10, 20, 30, 50)


def test_plain_json_reads_corner_boxes(tmp_path):
    (tmp_path / "f.json").write_text(json.dumps({"x/a.jpg": [[1, 2, 3, 4]], "b.jpg": []}))
    ann = read_plain(tmp_path / "f.json")
    assert ann.faces["x/a.jpg"][0].box == (1, 2, 3, 4) and ann.faces["b.jpg"] == []


def test_plain_json_drops_and_reports_nan_and_negative_boxes(tmp_path):
    (tmp_path / "f.json").write_text('{"a.jpg": [[NaN, 0, 5, 5], [10, 10, 2, 2], [0, 0, 4, 4]]}')
    ann = read_plain(tmp_path / "f.json")
    assert len(ann.faces["a.jpg"]) == 1
    assert [p["reason"].split(" has ")[1].split(";")[0] for p in ann.problems] == [
        "a non-finite coordinate", "a non-positive width or height"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.jpg", "C:\\x.jpg"])
def test_paths_escaping_the_image_root_are_reported_and_skipped(tmp_path, name):
    (tmp_path / "f.json").write_text(json.dumps({name: [[0, 0, 5, 5]], "ok.jpg": []}))
    ann = read_plain(tmp_path / "f.json")
    assert list(ann.faces) == ["ok.jpg"]
    assert "escapes the image root" in ann.problems[0]["reason"]


def test_safe_relpath_normalises_inner_dots_and_backslashes():
    assert safe_relpath("a\\b/./c/../d.jpg") == "a/b/d.jpg"


@pytest.mark.parametrize("content,suffix,expected", [
    (WIDER, ".txt", "wider"),
    ("img_1\n1\n40 25 1.5 100 80 1\n", ".txt", "fddb"),
    ("1\nimage_id x_1 y_1 width height\n000001.jpg 1 2 3 4\n", ".txt", "celeba"),
    ("0 0.5 0.5 0.1 0.1\n", ".txt", "yolo"),
    (VOC.format(name="a.jpg"), ".xml", "voc"),
    ('{"images": [], "annotations": []}', ".json", "coco"),
    ('{"shapes": [], "imagePath": "a.jpg"}', ".json", "labelme"),
    ('{"a.jpg": [[0, 0, 1, 1]]}', ".json", "plain"),
])
def test_format_is_detected_from_content(tmp_path, content, suffix, expected):
    path = tmp_path / f"ann{suffix}"
    path.write_text(content)
    assert detect_format(path) == expected


def test_unrecognisable_text_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.txt").write_text("hello world\n")
    with pytest.raises(UnetblurError, match="cannot tell the annotation format"):
        read_annotations(tmp_path / "x.txt")


def test_find_annotations_recognises_the_wider_layout(tmp_path):
    (tmp_path / "wider_face_split").mkdir()
    (tmp_path / "WIDER_train" / "images").mkdir(parents=True)
    (tmp_path / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(WIDER)
    ann = find_annotations(tmp_path)
    assert ann.format == "wider"
    assert "WIDER_train/images/0--Parade/0_Parade_1.jpg" in ann.faces


def test_find_annotations_returns_none_for_a_plain_folder(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert find_annotations(tmp_path) is None


def test_fddb_ellipse_box_is_the_rotated_extent(tmp_path):
    (tmp_path / "fold.txt").write_text(f"img\n1\n10 10 {math.pi / 4} 50 50 1\n")
    face = read_fddb(tmp_path / "fold.txt", tmp_path).faces["img.jpg"][0]
    assert face.width == pytest.approx(20.0)


def test_find_annotations_reads_a_roboflow_yolo_export(tmp_path):
    for split in ("train", "valid"):
        write_image(tmp_path / split / "images" / f"{split}1.jpg", np.zeros((20, 40, 3), np.uint8))
        (tmp_path / split / "labels").mkdir(parents=True)
        (tmp_path / split / "labels" / f"{split}1.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("names: ['face']\n")
    ann = find_annotations(tmp_path)
    assert ann.format == "yolo" and sorted(ann.faces) == ["train/images/train1.jpg", "valid/images/valid1.jpg"]
    assert ann.faces["train/images/train1.jpg"][0].box == pytest.approx((10, 5, 30, 15))


def test_find_annotations_reads_a_roboflow_coco_export(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "_annotations.coco.json").write_text(json.dumps({
            "images": [{"id": 0, "file_name": f"{split}.jpg"}], "categories": [{"id": 1, "name": "face"}],
            "annotations": [{"id": 1, "image_id": 0, "bbox": [1, 2, 3, 4], "category_id": 1}]}))
    ann = find_annotations(tmp_path)
    assert ann.format == "coco" and sorted(ann.faces) == ["test/test.jpg", "train/train.jpg"]


def test_find_annotations_reads_voc_annotations_beside_jpegimages(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(VOC.format(name="a.jpg"))
    assert list(find_annotations(tmp_path).faces) == ["JPEGImages/a.jpg"]
