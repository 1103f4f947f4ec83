from pathlib import Path

import cv2
import numpy as np
import pytest

from unetblur.blur import BlurSettings, blur_faces, blur_patch, face_mask, paste
from unetblur.errors import UnetblurError
from unetblur.faces import Face
from unetblur.io import read_image, read_mask, write_image

GOLDEN = Path(__file__).parent / "golden"


def golden_input() -> tuple[np.ndarray, list[Face]]:
    """A deterministic 96×128 gradient-and-checker image with three faces (one cut by the border)."""
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.stack([(xx * 2) % 256, (yy * 2) % 256, ((xx // 8 + yy // 8) % 2) * 200 + 20], axis=2).astype(np.uint8)
    faces = [Face(10, 12, 40, 50), Face(70.5, 30.25, 120, 90), Face(-8, 70, 14, 100)]
    return img, faces


def test_default_blur_matches_the_golden_file():
    img, faces = golden_input()
    out, mask = blur_faces(img, faces)
    expected = read_image(GOLDEN / "blur_default.png")
    expected_mask = read_mask(GOLDEN / "blur_default_mask.png")
    np.testing.assert_array_equal(mask, expected_mask)
    # OpenCV's SIMD paths may round differently across builds: allow one grey level.
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_gaussian_is_the_exact_blur_rounded_to_the_nearest_level():
    """OpenCV's fixed-point uint8 Gaussian is off by up to 1.6 levels; the definition rounds the exact one."""
    img = np.random.default_rng(1).integers(0, 256, (120, 110, 3), dtype=np.uint8)
    settings = BlurSettings()
    for size in (12, 30, 45):  # kernels 13, 31, 45: the direct (not downscaled) path
        k = settings.gaussian_kernel(size)
        # sigma 0: OpenCV derives it from the kernel size, the rule blur_patch spells out
        exact = cv2.GaussianBlur(img.astype(np.float64), (k, k), 0, borderType=cv2.BORDER_REFLECT)
        out = blur_patch(img, 40, 30, 80, 90, size, settings)
        assert out.dtype == np.uint8
        assert np.abs(out - exact[30:90, 40:80]).max() <= 0.5 + 1e-3


def test_pixels_outside_the_mask_are_unchanged():
    img, faces = golden_input()
    for style in ("gaussian", "pixelate", "solid"):
        for shape in ("ellipse", "box"):
            out, mask = blur_faces(img, faces, BlurSettings(style=style, shape=shape))
            np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
            assert (out[mask > 0] != img[mask > 0]).any()


def test_mask_is_binary_and_covers_the_scaled_ellipse():
    img, faces = golden_input()
    _, mask = blur_faces(img, faces[:1])
    assert set(np.unique(mask)) == {0, 255}
    # ellipse with semi-axes 1.2 × (15, 19) around (25, 31): area ≈ π·18·22.8
    assert abs((mask > 0).sum() - np.pi * 18 * 22.8) < 0.05 * np.pi * 18 * 22.8


def test_box_shape_fills_the_scaled_box():
    m = face_mask((100, 100), Face(40, 40, 60, 60), BlurSettings(shape="box", mask_scale=1.0))
    assert (m > 0).sum() == 400


def test_kernel_scales_with_face_size_unless_fixed():
    s = BlurSettings()
    assert s.gaussian_kernel(20) < s.gaussian_kernel(200)
    fixed = BlurSettings(kernel=41)
    assert fixed.gaussian_kernel(20) == fixed.gaussian_kernel(200) == 41


def test_bigger_faces_are_blurred_more_with_scaled_kernel():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    small, _ = blur_faces(img, [Face(100, 100, 120, 120)])
    big, _ = blur_faces(img, [Face(28, 28, 228, 228)])
    # texture left in the centre of the face: the big face's kernel smooths far more
    assert big[118:138, 118:138].std() < small[105:115, 105:115].std()


def test_invalid_faces_are_ignored():
    img, _ = golden_input()
    out, mask = blur_faces(img, [Face(float("nan"), 0, 10, 10), Face(5, 5, 5, 20)])
    assert mask.max() == 0 and np.array_equal(out, img)


def test_unknown_style_is_a_clear_error():
    with pytest.raises(UnetblurError, match="blur style 'swirl' is unknown"):
        BlurSettings(style="swirl")


def test_large_faces_are_blurred_fast_and_smoothly():
    img = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    out, mask = blur_faces(img, [Face(600, 200, 1200, 900)])
    inner = out[450:650, 800:1000].astype(float)
    assert inner.std() < 10  # noise averaged away


if __name__ == "__main__":  # regenerate the golden files after a deliberate change of definition
    img, faces = golden_input()
    out, mask = blur_faces(img, faces)
    write_image(GOLDEN / "blur_default.png", out)
    write_image(GOLDEN / "blur_default_mask.png", mask)


def test_paste_copies_only_selected_pixels_at_the_offset():
    out = np.zeros((6, 8, 3), np.uint8)
    patch = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) + 1
    where = np.array([[True, False, True], [False, True, False]])
    paste(out, patch, 4, 3, where)
    expected = np.zeros_like(out)
    expected[3:5, 4:7][where] = patch[where]
    assert np.array_equal(out, expected)
    assert out[:3].sum() == 0 and out[:, :4].sum() == 0  # nothing outside the patch's window


@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_blur_faces_windows_draw_exactly_the_whole_frame_mask(shape):
    # blur_faces draws each face on a window around it; the result must be the whole-frame mask's
    # pixels, also for fractional boxes (whose rounding a shifted face would change) and faces cut by
    # the frame's edges.
    settings = BlurSettings(shape=shape, mask_scale=1.3)
    image = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    faces = [Face(22.5, 61.5, 54.95374716656277, 110.5), Face(-7.3, 3.1, 20.7, 40.9),
             Face.from_ellipse(60.3, 50.5, 13.1, 21.7, 33.0), Face(80.25, 100.5, 111.0, 131.75)]
    for face in faces:
        _, union = blur_faces(image, [face], settings)
        assert union.any()
        assert np.array_equal(union, face_mask((120, 100), face, settings))
    x0, y0 = 10, 50  # a window holding the first face's whole region (x 17-59, y 54-117)
    window = face_mask((70, 60), faces[0], settings, origin=(x0, y0))
    assert np.array_equal(window, face_mask((120, 100), faces[0], settings)[y0:, x0:x0 + 60])


def test_mask_box_is_the_bounding_box_of_the_set_pixels_or_none():
    from unetblur.blur import mask_box

    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = np.zeros((rng.integers(1, 60), rng.integers(1, 60)), bool)
        ys, xs = rng.integers(0, mask.shape[0], 3), rng.integers(0, mask.shape[1], 3)
        mask[ys, xs] = True
        expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert mask_box(mask) == expected
        assert mask_box(mask.astype(np.uint8) * 255) == expected
    assert mask_box(np.zeros((7, 9), bool)) is None and mask_box(np.zeros((7, 9), np.uint8)) is None
    assert mask_box(np.ones((7, 9), bool)) == (0, 0, 9, 7)
