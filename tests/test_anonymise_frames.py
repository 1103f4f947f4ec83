"""The frame loops of ``unetblur blur`` (``unetblur/anonymise/frames.py``) fail closed: a frame whose
inference fails is written black, never passed through."""

from __future__ import annotations

import numpy as np

from unetblur.anonymise.frames import fail_closed
from unetblur.runtime.base import BlurResult


class FailsOnSecondFrame:
    name = "flaky"

    def __init__(self):
        self.calls = 0

    def __call__(self, image, faces=None):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("inference failed")
        return BlurResult(image // 2)


def test_a_frame_whose_inference_fails_is_written_black_never_passed_through():
    frames = [np.full((8, 8, 3), 200, np.uint8) for _ in range(3)]
    errors = []
    out = [image for image, _ in fail_closed(frames, FailsOnSecondFrame(), errors.append)]
    assert [int(o.max()) for o in out] == [100, 0, 100]
    assert len(errors) == 1


def test_a_blurrer_returning_a_wrong_sized_image_counts_as_a_failure():
    wrong = lambda image, faces=None: BlurResult(image[:4])  # noqa: E731
    (out, result), = fail_closed([np.full((8, 8, 3), 200, np.uint8)], wrong)
    assert out.max() == 0 and out.shape == (8, 8, 3) and result is None
