"""Metric definitions (DESIGN.md §4) on hand-made arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unetblur.evaluate import metrics as M


@pytest.fixture
def pair():
    """A 4×4 RGB target of 0.5 and an output that is 0.7 on the left half (mask = left half)."""
    target = np.full((4, 4, 3), 0.5)
    output = target.copy()
    output[:, :2] = 0.7
    mask = np.zeros((4, 4), np.uint8)
    mask[:, :2] = 1
    return output, target, mask


def test_identical_images_have_zero_error_and_infinite_psnr():
    img = np.random.default_rng(0).random((8, 8, 3))
    assert M.mse(img, img) == 0 and M.mae(img, img) == 0
    assert M.psnr(img, img) == math.inf
    assert M.ssim(img, img) == pytest.approx(1.0)


def test_whole_image_errors_match_hand_computation(pair):
    output, target, _ = pair
    assert M.mse(output, target) == pytest.approx(0.5 * 0.2 ** 2)
    assert M.mae(output, target) == pytest.approx(0.5 * 0.2)
    assert M.psnr(output, target) == pytest.approx(-10 * math.log10(0.02))


def test_face_errors_average_only_inside_the_mask(pair):
    output, target, mask = pair
    assert M.mse_face(output, target, mask) == pytest.approx(0.04)
    assert M.mae_face(output, target, mask) == pytest.approx(0.2)


def test_background_errors_average_only_outside_the_mask(pair):
    output, target, mask = pair
    assert M.mse_bg(output, target, mask) == 0
    assert M.mae_bg(output, target, mask) == 0
    assert M.psnr_bg(output, target, mask) == math.inf


def test_uint8_images_are_scaled_to_unit_range():
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 255, np.uint8)
    assert M.mae(a, b) == pytest.approx(1.0)


def test_mask_given_as_0_255_counts_as_face():
    output, target = np.ones((2, 2, 3)), np.zeros((2, 2, 3))
    mask = np.array([[255, 0], [0, 0]], np.uint8)
    assert M.mse_face(output, target, mask) == 1.0
    assert M.mse_bg(output, target, mask) == 1.0


def test_empty_face_mask_gives_nan_not_zero():
    img = np.zeros((4, 4, 3))
    assert math.isnan(M.mse_face(img, img, np.zeros((4, 4))))
    assert math.isnan(M.mae_face(img, img, np.zeros((4, 4))))


def test_all_face_mask_gives_nan_background():
    img = np.zeros((4, 4, 3))
    assert math.isnan(M.mse_bg(img, img, np.ones((4, 4))))
    assert math.isnan(M.psnr_bg(img, img, np.ones((4, 4))))
    assert math.isnan(M.false_blur(img, img, np.ones((4, 4))))


def test_torch_batches_give_the_same_values_as_numpy(pair):
    output, target, mask = pair
    to_t = lambda a: torch.tensor(a, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    o, t = to_t(output), to_t(target)
    m = torch.tensor(mask, dtype=torch.float32)[None, None]
    for name in ("mse_face", "mae_face", "mse_bg", "mae_bg"):
        value = getattr(M, name)(o, t, m)
        assert isinstance(value, torch.Tensor)
        assert float(value) == pytest.approx(getattr(M, name)(output, target, mask), abs=1e-6)
    assert float(M.mse(o, t)) == pytest.approx(M.mse(output, target), abs=1e-6)
    assert float(M.false_blur(o, t, m)) == pytest.approx(M.false_blur(output, target, mask))


def test_torch_mask_without_channel_axis_broadcasts_over_channels(pair):
    output, target, mask = pair
    o = torch.tensor(output, dtype=torch.float32).permute(2, 0, 1)[None]
    t = torch.tensor(target, dtype=torch.float32).permute(2, 0, 1)[None]
    m = torch.tensor(mask)[None]  # N×H×W
    assert float(M.mse_face(o, t, m)) == pytest.approx(0.04, abs=1e-6)


def test_torch_metric_keeps_gradients():
    o = torch.full((1, 3, 4, 4), 0.3, requires_grad=True)
    M.mse_face(o, torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4)).backward()
    assert o.grad is not None and float(o.grad.abs().sum()) > 0


def test_torch_ssim_of_identical_batches_is_one():
    x = torch.rand(2, 3, 16, 16)
    assert float(M.ssim(x, x)) == pytest.approx(1.0, abs=1e-4)


def test_ssim_drops_when_the_output_is_noisy():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16, 3))
    noisy = np.clip(img + rng.normal(0, 0.3, img.shape), 0, 1)
    assert M.ssim(noisy, img) < 0.9


@pytest.fixture
def face_case():
    """Input with a textured face region; target replaces it with its mean (a 'blur')."""
    rng = np.random.default_rng(3)
    image = rng.random((8, 8, 3))
    mask = np.zeros((8, 8))
    mask[2:6, 2:6] = 1
    target = image.copy()
    target[2:6, 2:6] = image[2:6, 2:6].mean(axis=(0, 1))
    return image, target, mask


def test_untouched_output_has_zero_blur_completeness(face_case):
    image, target, mask = face_case
    assert M.blur_completeness(image, image, target, mask) == 0


def test_oracle_output_has_full_blur_completeness(face_case):
    image, target, mask = face_case
    assert M.blur_completeness(target, image, target, mask) == pytest.approx(1.0)


def test_half_way_output_has_quarter_completeness(face_case):
    image, target, mask = face_case
    halfway = (image + target) / 2
    assert M.blur_completeness(halfway, image, target, mask) == pytest.approx(0.25)


def test_completeness_is_nan_when_the_target_leaves_the_face_unchanged(face_case):
    image, _, mask = face_case
    assert math.isnan(M.blur_completeness(image, image, image, mask))


def test_coverage_recall_counts_faces_at_or_above_point_eight():
    assert M.coverage_recall([0.8, 0.79, 1.2, 0.0]) == pytest.approx(0.5)


def test_coverage_recall_ignores_nan_and_is_nan_without_faces():
    assert M.coverage_recall([float("nan"), 1.0]) == 1.0
    assert math.isnan(M.coverage_recall([]))


def test_false_blur_counts_background_pixels_changed_by_more_than_8():
    image = np.full((2, 4, 3), 100, np.uint8)
    output = image.copy()
    output[0, 0, 1] += 9     # background, changed by 9 in one channel: counts
    output[0, 1] += 8        # background, changed by exactly 8: does not
    output[1, 3] += 50       # inside the face: ignored
    mask = np.zeros((2, 4), np.uint8)
    mask[1, 3] = 1
    assert M.false_blur(output, image, mask) == pytest.approx(1 / 7)


def test_oracle_scores_zero_error_everywhere(face_case):
    image, target, mask = face_case
    assert M.mse(target, target) == 0 and M.mse_face(target, target, mask) == 0
    assert M.mae_bg(target, target, mask) == 0


def test_faces_are_grouped_by_width_bucket_with_every_bucket_present():
    groups = M.group_by_bucket([1.0, 0.5, 0.0], [10, 40, 200])
    assert groups == {"<16": [1.0], "16-32": [], "32-64": [0.5], "64-128": [], ">=128": [0.0]}


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        M.mse(np.zeros((2, 2, 3)), np.zeros((3, 2, 3)))


# --------------------------------------------------------------------------- whole-photo privacy

def _textured(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


FACE_BOX = (16, 16, 48, 48)


def test_an_untouched_face_keeps_all_its_detail():
    image = _textured()
    assert M.detail_removed(image, image, FACE_BOX) == pytest.approx(0.0)


def test_a_solid_fill_removes_all_detail():
    image = _textured()
    assert M.detail_removed(np.full_like(image, 128), image, FACE_BOX) == pytest.approx(1.0)


@pytest.mark.parametrize("style", ["gaussian", "pixelate", "solid"])
def test_every_blur_style_of_the_reference_blur_counts_as_covered(style):
    from unetblur.blur import BlurSettings, blur_faces
    from unetblur.faces import Face

    image = _textured(1)
    face = Face(*FACE_BOX)
    out, _ = blur_faces(image, [face], BlurSettings(style=style))
    assert M.detail_removed(out, image, face) >= M.COVERED_THRESHOLD


def test_a_blur_beside_the_face_removes_none_of_its_detail():
    image = _textured(2)
    out = image.copy()
    out[:, :12] = 128  # changed, but left of the face box
    assert M.detail_removed(out, image, FACE_BOX) == pytest.approx(0.0)


def test_a_face_without_detail_is_not_measurable():
    flat = np.full((64, 64, 3), 90, np.uint8)
    assert math.isnan(M.detail_removed(flat, flat, FACE_BOX))


def test_coverage_counts_faces_at_or_above_the_bar_and_skips_nan():
    assert M.coverage([0.8, 0.5, math.nan, 1.0]) == pytest.approx(2 / 3)
    assert math.isnan(M.coverage([math.nan]))


def test_coverage_interval_is_wilsons_and_narrows_with_more_faces():
    lo, hi = M.coverage_interval([1.0] * 50 + [0.0] * 50 + [math.nan])
    assert (lo, hi) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))  # 50 of 100 covered
    lo4, hi4 = M.coverage_interval([1.0] * 200 + [0.0] * 200)
    assert lo < lo4 < 0.5 < hi4 < hi
    assert M.coverage_interval([1.0] * 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)  # never past 1
    assert all(math.isnan(v) for v in M.coverage_interval([math.nan]))


def test_bg_changed_ignores_changes_inside_the_grown_face_box():
    image = _textured(3)
    out = image.copy()
    out[12:52, 12:52] = 0  # inside the 1.5× box of FACE_BOX (8..56)
    assert M.bg_changed(out, image, [FACE_BOX]) == 0.0


def test_the_background_mask_spares_each_box_grown_1_5x_unless_told_another_growth():
    box = (40, 40, 60, 60)                          # 20 px: 1.5× spares x 35..65, 2.5× x 25..75
    spared = ~M.background_mask((100, 100), [box])
    assert spared.sum() == 30 * 30 and spared[35, 35] and not spared[34, 50]
    assert (~M.background_mask((100, 100), [box], growth=2.5)).sum() == 50 * 50


def test_bg_changed_is_the_share_of_background_pixels_changed_by_more_than_8():
    image = np.full((10, 10, 3), 100, np.uint8)
    out = image.copy()
    out[0, 0, 2] = 109   # changed by 9/255 in one channel: counts
    out[0, 1] = 108      # exactly 8/255: does not
    assert M.bg_changed(out, image, []) == pytest.approx(1 / 100)


def test_false_blur_images_is_the_share_of_images_above_one_percent_background_change():
    assert M.false_blur_images([0.0, 0.02, 0.01, math.nan]) == pytest.approx(1 / 3)
