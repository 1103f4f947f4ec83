"""reid_rank1 (gallery identification) on hand-made embeddings: no recogniser needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unetblur.evaluate.reid import reid_rank1

GALLERY = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def test_outputs_nearest_their_own_original_are_all_identified():
    assert reid_rank1(GALLERY + 0.1, GALLERY, [0, 1, 2]) == 1.0


def test_an_output_nearer_another_face_is_a_miss():
    outputs = np.array([[0.9, 0.0], [1.0, 0.1]])  # face 0 now looks like face 1
    assert reid_rank1(outputs, GALLERY, [0, 1]) == 0.5


def test_one_embedding_for_every_face_scores_zero_not_chance():
    outputs = np.full((3, 2), 0.5)  # equidistant from faces 1 and 2: a tie is no identification
    assert reid_rank1(outputs, GALLERY, [1, 2, 0]) == 0.0


def test_no_faces_gives_nan_and_bad_shapes_raise():
    assert math.isnan(reid_rank1(np.zeros((0, 2)), GALLERY, []))
    with pytest.raises(ValueError, match="own indices"):
        reid_rank1(GALLERY, GALLERY, [0, 1, 3])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        reid_rank1(GALLERY[:, :1], GALLERY, [0, 1, 2])
