"""reid_rate against known answers on a real face (scikit-image's astronaut photo ships with skimage)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unetblur.blur import blur_faces
from unetblur.faces import Face

reid = pytest.importorskip("unetblur.evaluate.reid")
if not reid.reid_available():
    pytest.skip("dlib / face_recognition_models not installed (unetblur[reid])", allow_module_level=True)

# The astronaut's face, found once with dlib's frontal detector (pixels of the 512×512 photo).
FACE = Face(175, 76, 265, 166)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return data.astronaut()


def test_an_unblurred_face_is_reidentified(astronaut):
    assert reid.reid_rate(astronaut.copy(), astronaut, [FACE]) == 1.0


def test_a_solid_filled_face_is_not_reidentified(astronaut):
    filled = astronaut.copy()
    filled[76:166, 175:265] = 128
    assert reid.reid_rate(filled, astronaut, [FACE]) == 0.0


def test_the_project_blur_defeats_the_recogniser(astronaut):
    blurred, _ = blur_faces(astronaut, [FACE])
    assert reid.reid_rate(blurred, astronaut, [FACE]) == 0.0


def test_faces_below_48_pixels_are_not_eligible(astronaut):
    small = Face(200, 100, 240, 140)
    assert math.isnan(reid.reid_distances(astronaut, astronaut, [small])[0])
    assert math.isnan(reid.reid_rate(astronaut, astronaut, [small]))


def test_shapes_must_match(astronaut):
    with pytest.raises(ValueError, match="shapes differ"):
        reid.reid_rate(astronaut[:100], astronaut, [FACE])
