"""Full-resolution compositing and the temporal hold, with a NumPy stand-in for the U-Net.

The stand-in "network" calls red pixels face: its mask is exact, so every test knows the answer.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unetblur.blur import BlurSettings
from unetblur.errors import UnetblurError
from unetblur.faces import Face
from unetblur.runtime.base import BlurResult
from unetblur.runtime.composite import (STRIDE_SNAP, CompositeBlurrer, CompositingBlurrer, stride_snapped_scale,
                                       working_scale)
from unetblur.runtime.temporal import TemporalBlurrer, face_coverage, uncovered_frames


class RedFaceModel:
    """ImageModel stand-in: mask = red pixels; records the sizes it was run at."""

    name = "red"
    stride = 1

    def __init__(self, mask_channel: bool = True, max_face: int | None = None):
        self.mask_channel = mask_channel
        self.max_face = max_face  # faces wider than this (px, at the size it sees) are invisible: a receptive field
        self.seen: list[tuple[int, int]] = []

    def predict(self, image, rgb=True):
        self.seen.append(image.shape[:2])
        r, g = image[..., 0].astype(int), image[..., 1].astype(int)
        mask = ((r - g) > 100).astype(np.uint8)
        if self.max_face is not None:
            n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
            for i in range(1, n):
                if stats[i, 2] > self.max_face:
                    mask[labels == i] = 0
        if self.mask_channel:
            return image.copy(), mask.astype(np.float32)
        out = image.copy()
        out[mask > 0] = 128  # "blurs" what it sees, so the difference mask finds it
        return out, None


def scene(h=120, w=160, faces=((40, 30, 20),)) -> np.ndarray:
    """Textured grey background with red discs (cx, cy, radius) as faces."""
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 60 + 60).astype(np.uint8)
    for cx, cy, r in faces:
        cv2.circle(img, (cx, cy), r, (230, 40, 40), -1)
        cv2.circle(img, (cx - r // 3, cy - r // 4), max(1, r // 6), (20, 20, 20), -1)  # an "eye": texture to blur
    return img


def test_background_outside_the_mask_is_pixel_exact():
    img = scene()
    result = CompositingBlurrer(RedFaceModel())(img)
    outside = result.mask == 0
    assert np.array_equal(result.image[outside], img[outside])


def test_face_pixels_are_changed():
    img = scene()
    result = CompositingBlurrer(RedFaceModel())(img)
    assert np.abs(result.image[20:40, 25:55].astype(int) - img[20:40, 25:55]).max() > 30


def test_each_component_becomes_one_face_box_around_the_disc():
    img = scene(faces=((40, 30, 15), (120, 80, 20)))
    faces = sorted(CompositingBlurrer(RedFaceModel())(img).faces, key=lambda f: f.x1)
    assert len(faces) == 2
    assert faces[0].center == pytest.approx((40, 30), abs=2)
    assert faces[1].center == pytest.approx((120, 80), abs=2)
    assert faces[1].width == pytest.approx(41 / 1.2, abs=3)  # component box shrunk by mask_scale


def test_face_region_covers_the_whole_component():
    img = scene()
    result = CompositingBlurrer(RedFaceModel())(img)
    red = (img[..., 0].astype(int) - img[..., 1]) > 100
    assert result.mask[red].min() == 1


def test_mask_region_blurs_only_the_component_pixels():
    img = scene()
    result = CompositingBlurrer(RedFaceModel(), region="mask")(img)
    red = ((img[..., 0].astype(int) - img[..., 1]) > 100)
    assert np.array_equal(result.mask > 0, red)


def test_working_size_runs_the_network_on_a_downscaled_frame_and_returns_full_resolution():
    img = scene(240, 320, faces=((100, 100, 40),))
    model = RedFaceModel()
    result = CompositingBlurrer(model, working_size=80)(img)
    assert model.seen == [(60, 80)]
    assert result.image.shape == img.shape
    assert len(result.faces) == 1 and result.faces[0].center == pytest.approx((100, 100), abs=4)


def test_working_size_never_upscales_a_small_frame():
    model = RedFaceModel()
    CompositingBlurrer(model, working_size=1000)(scene())
    assert model.seen == [(120, 160)]


def test_a_second_downscaled_pass_finds_faces_larger_than_the_receptive_field():
    img = scene(200, 200, faces=((100, 100, 60),))
    small_field = RedFaceModel(max_face=80)
    assert CompositingBlurrer(small_field)(img).faces == []
    assert len(CompositingBlurrer(RedFaceModel(max_face=80), scales=(1.0, 0.5))(img).faces) == 1


def test_models_without_a_mask_channel_use_the_difference_mask():
    result = CompositingBlurrer(RedFaceModel(mask_channel=False))(scene())
    assert len(result.faces) == 1


def test_dilate_grows_the_blurred_region():
    img = scene()
    plain = CompositingBlurrer(RedFaceModel(), region="mask")(img).mask.sum()
    grown = CompositingBlurrer(RedFaceModel(), region="mask", dilate=3)(img).mask.sum()
    assert grown > plain


def test_grow_scales_the_found_face_and_the_blurred_region_about_its_centre():
    img = scene()
    plain = CompositingBlurrer(RedFaceModel())(img)
    grown = CompositingBlurrer(RedFaceModel(), grow=1.5)(img)
    (a,), (b,) = plain.faces, grown.faces
    assert b.width == pytest.approx(1.5 * a.width, rel=0.02) and b.center == pytest.approx(a.center, abs=0.5)
    assert grown.mask.sum() > 1.8 * plain.mask.sum()


class ConeModel:
    """Mask probability 1 at each given centre, falling linearly to 0 at ``radius`` (a confident centre, an
    unsure rim: what a small student predicts for a small face), times the centre's own peak."""

    mask_channel = True

    def __init__(self, cones):
        self.cones = cones   # (cx, cy, radius, peak)

    def predict(self, image, rgb=True):
        h, w = image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        mask = np.zeros((h, w), np.float32)
        for cx, cy, r, peak in self.cones:
            mask = np.maximum(mask, peak * np.clip(1 - np.hypot(xx - cx, yy - cy) / r, 0, 1))
        return image, mask


def test_min_peak_drops_unsure_regions_and_a_lower_threshold_widens_the_sure_ones():
    img = scene(faces=())
    model = ConeModel([(40, 40, 20, 1.0), (120, 80, 20, 0.6)])
    plain = CompositingBlurrer(model, threshold=0.7, region="mask")(img)
    hysteresis = CompositingBlurrer(model, threshold=0.3, min_peak=0.7, region="mask")(img)
    loose = CompositingBlurrer(model, threshold=0.3, region="mask")(img)
    assert len(plain.faces) == 1 and len(hysteresis.faces) == 1 and len(loose.faces) == 2
    assert hysteresis.faces[0].center == pytest.approx(plain.faces[0].center, abs=1)
    # Extent of the sure region follows the lower threshold: radius 14 vs 6 pixels.
    assert hysteresis.mask.sum() > 4 * plain.mask.sum()
    assert hysteresis.mask[80, 120] == 0 and loose.mask[80, 120] == 1


def test_min_peak_outside_zero_to_one_is_refused():
    with pytest.raises(UnetblurError, match="min_peak"):
        CompositingBlurrer(RedFaceModel(), min_peak=1.5)


def test_an_image_without_faces_is_returned_unchanged():
    img = scene(faces=())
    result = CompositingBlurrer(RedFaceModel())(img)
    assert np.array_equal(result.image, img) and result.faces == [] and result.mask.max() == 0


def test_blur_style_follows_the_settings():
    img = scene()
    result = CompositingBlurrer(RedFaceModel(), BlurSettings(style="solid", color=(0, 255, 0)))(img)
    assert tuple(result.image[30, 40]) == (0, 255, 0)


def test_the_factory_hook_name_is_the_same_class():
    assert CompositeBlurrer is CompositingBlurrer


@pytest.mark.parametrize("kwargs, match", [({"working_size": 4}, "working size"), ({"threshold": 0.0}, "threshold"),
                                           ({"scales": (2.0,)}, "scales"), ({"dilate": -1}, "dilate"),
                                           ({"region": "blob"}, "region")])
def test_bad_settings_are_refused_with_a_clear_message(kwargs, match):
    with pytest.raises(UnetblurError, match=match):
        CompositingBlurrer(RedFaceModel(), **kwargs)


def test_working_scale_brings_the_longer_side_to_the_working_size():
    assert working_scale(720, 1280, 640) == pytest.approx(0.5)
    assert working_scale(720, 1280, None) == 1.0



@pytest.mark.parametrize("hw, factor, expected_wh", [
    ((338, 450), 1.0, (448, 336)),    # 450 → 448: 7×64 instead of 512 wide, 0.4 % smaller
    ((427, 640), 1.0, (640, 427)),    # 427 → 384 would be 10 % smaller: padded to 448 as before
    ((720, 1280), 0.5, (640, 360)),   # 640 is already a multiple; 360 → 320 is too far
    ((452, 1000), 0.64, (640, 289)),  # both sides pad alike: the larger factor is kept
    ((970, 700), 1.0, (693, 960)),    # the height snaps (970 → 960), the width follows
])
def test_the_working_frame_shrinks_a_little_when_that_saves_a_stride_of_padding(hw, factor, expected_wh):
    f = stride_snapped_scale(*hw, factor, 64)
    w, h = max(1, round(hw[1] * f)), max(1, round(hw[0] * f))
    assert (w, h) == expected_wh
    assert factor * (1 - STRIDE_SNAP) <= f <= factor
    assert stride_snapped_scale(*hw, factor, 1) == factor  # a model that needs no padding is left alone


def test_the_network_runs_on_the_snapped_frame_and_faces_land_at_full_resolution():
    img = scene(338, 450, faces=((300, 150, 40),))
    model = RedFaceModel()
    model.stride = 64
    result = CompositingBlurrer(model, working_size=640)(img)
    assert model.seen == [(336, 448)]
    assert result.image.shape == img.shape
    assert len(result.faces) == 1 and result.faces[0].center == pytest.approx((300, 150), abs=2)



@pytest.mark.parametrize("hw, working_size, interpolation", [((338, 450), 640, cv2.INTER_LINEAR),
                                                             ((680, 900), 640, cv2.INTER_AREA)])
def test_a_snap_alone_resizes_bilinearly_and_a_real_shrink_averages_pixel_areas(hw, working_size, interpolation):
    class Recording(RedFaceModel):
        def predict(self, image, rgb=True):
            self.image = image
            return super().predict(image, rgb)

    img = scene(*hw, faces=((200, 150, 40),))
    model = Recording()
    model.stride = 64
    CompositingBlurrer(model, working_size=working_size)(img)
    h, w = model.image.shape[:2]
    assert np.array_equal(model.image, cv2.resize(img, (w, h), interpolation=interpolation))


# --------------------------------------------------------------------------- temporal


class ScriptedBlurrer:
    """Reports the scripted faces per call (None = a missed frame) and blurs nothing itself."""

    name = "scripted"
    settings = BlurSettings()

    def __init__(self, script):
        self.script = list(script)

    def __call__(self, image, faces=None):
        found = self.script.pop(0) or []
        return BlurResult(image.copy(), np.zeros(image.shape[:2], np.float32), list(found))


def test_a_lost_face_stays_blurred_for_the_hold_frames_then_is_released():
    face = Face(10, 10, 30, 34)
    frames = [scene(faces=())] * 5
    blurrer = TemporalBlurrer(ScriptedBlurrer([[face], None, None, None, None]), hold_frames=2)
    masks = [blurrer(f).mask for f in frames]
    covered = [face_coverage(m, face) > 0.99 for m in masks]
    assert covered == [False, True, True, False, False]  # frame 0: the scripted blurrer itself blurred nothing


def test_a_face_found_again_replaces_its_held_box():
    face, moved = Face(10, 10, 30, 34), Face(14, 10, 34, 34)
    blurrer = TemporalBlurrer(ScriptedBlurrer([[face], [moved]]), hold_frames=3)
    blurrer(scene(faces=()))
    result = blurrer(scene(faces=()))
    assert result.faces == [moved]


def test_uncovered_frames_counts_frames_with_an_unblurred_ground_truth_face():
    face = Face(10, 10, 30, 34)
    full = np.ones((60, 60), np.float32)
    empty = np.zeros((60, 60), np.float32)
    report = uncovered_frames([full, empty, full, empty], [[face], [face], [], [face]])
    assert report["uncovered_frames"] == 2 and report["uncovered_frame_indices"] == [1, 3]
    assert report["frames_with_faces"] == 3


def test_uncovered_frames_ignores_faces_below_min_size():
    report = uncovered_frames([np.zeros((60, 60))], [[Face(0, 0, 10, 10)]], min_size=32)
    assert report["uncovered_frames"] == 0 and report["faces"] == 0


class PerfectWhenFound(ScriptedBlurrer):
    """Scripted faces, and an audit mask that is exactly their blur region (a perfect method when it finds them)."""

    def __call__(self, image, faces=None):
        from unetblur.blur import face_mask

        found = self.script.pop(0) or []
        m = np.zeros(image.shape[:2], np.float32)
        for f in found:
            m = np.maximum(m, face_mask(image.shape[:2], f, self.settings) / 255.0)
        return BlurResult(image.copy(), m, list(found))


def test_hold_reduces_measured_flicker():
    face = Face(10, 10, 30, 34)
    script = [[face], None, [face], None, [face]]
    frames = [scene(faces=())] * 5
    truth = [[face]] * 5
    plain = PerfectWhenFound(script)
    held = TemporalBlurrer(PerfectWhenFound(script), hold_frames=1)
    assert uncovered_frames([plain(f).mask for f in frames], truth)["uncovered_frames"] == 2
    assert uncovered_frames([held(f).mask for f in frames], truth)["uncovered_frames"] == 0


def test_fragments_of_a_difference_mask_are_joined_into_one_face():
    img = scene(faces=())
    # Two red half-discs one pixel apart: a difference mask broken by a smooth band.
    cv2.ellipse(img, (60, 50), (16, 20), 0, 90, 270, (230, 40, 40), -1)
    cv2.ellipse(img, (62, 50), (16, 20), 0, -90, 90, (230, 40, 40), -1)
    img[:, 60:62] = img[:, 59:60]  # the gap column copies its background-ish neighbour
    img[30:71, 60:62] = (120, 120, 120)
    assert len(CompositingBlurrer(RedFaceModel(mask_channel=False), close=0)(img).faces) == 2
    assert len(CompositingBlurrer(RedFaceModel(mask_channel=False))(img).faces) == 1


def test_compositing_temporal_and_the_blur_command_import_without_torch():
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'torchvision', 'pytorch_lightning'):\n"
            "            raise ImportError('no torch on this device')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import unetblur.runtime.composite, unetblur.runtime.temporal, unetblur.video, unetblur.anonymise\n"
            "import unetblur.commands.blur\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


class MaskOf:
    """A perfect student: its mask is a given full-resolution mask, resized to the size it is run at."""

    name = "perfect"
    stride = 1
    mask_channel = True

    def __init__(self, mask: np.ndarray):
        self.mask = mask.astype(np.float32) / 255.0

    def predict(self, image, rgb=True):
        h, w = image.shape[:2]
        return image.copy(), cv2.resize(self.mask, (w, h), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("working_size", [None, 64])
def test_a_perfect_mask_reproduces_the_blur_faces_target(working_size):
    from unetblur.blur import blur_faces, face_mask
    from unetblur.evaluate.metrics import blur_completeness

    img = scene(120, 160, faces=())
    faces = [Face(20, 20, 50, 58), Face(100, 50, 140, 100)]
    target, mask = blur_faces(img, faces)
    out = CompositingBlurrer(MaskOf(mask), working_size=working_size)(img).image
    for face in faces:
        region = face_mask(img.shape[:2], face, BlurSettings()) > 0
        assert 0.9 <= float(blur_completeness(out, img, target, region)) <= 1.1


def test_compositing_a_mask_channel_model_asks_for_the_mask_only():
    asked = []

    class Recording(RedFaceModel):
        def predict(self, image, rgb=True):
            asked.append(rgb)
            return super().predict(image, rgb)

    CompositingBlurrer(Recording(mask_channel=True))(scene())
    CompositingBlurrer(Recording(mask_channel=False))(scene())  # the difference mask needs the RGB output
    assert asked == [False, True]


def test_a_coarse_graph_is_read_on_its_own_grid_and_blurs_what_its_upsampled_mask_would(tmp_path):
    from test_media import red_face_onnx
    from unetblur.runtime.onnx import OnnxModel

    model = OnnxModel(red_face_onnx(tmp_path / "coarse.onnx", output_stride=4))

    class Upsampled:  # the same network seen only through predict(): a working-resolution mask
        name, mask_channel, stride = "upsampled", True, model.stride  # the same padding, so the same frame

        def predict(self, image, rgb=True):
            return model.predict(image, rgb)

    image = np.full((150, 203, 3), 90, np.uint8)
    cv2.ellipse(image, (120, 70), (22, 28), 0, 0, 360, (230, 40, 40), -1)
    coarse, fine = CompositingBlurrer(model, working_size=160), CompositingBlurrer(Upsampled(), working_size=160)
    prob, cell = coarse.face_map(image)
    assert cell == 4 and prob.shape == (116 // 4, 40)  # 203×150 at working size 160 is 160×118, snapped to 157×116
    a, b = coarse(image), fine(image)
    assert len(a.faces) == len(b.faces) == 1
    assert np.abs(np.subtract(a.faces[0].box, b.faces[0].box)).max() <= 3  # full-resolution pixels
    inter, union = np.logical_and(a.mask > 0, b.mask > 0).sum(), np.logical_or(a.mask > 0, b.mask > 0).sum()
    assert inter / union > 0.95
    assert np.abs(coarse.face_probability(image) - fine.face_probability(image)).max() < 1e-4


def test_small_peak_keeps_small_unsure_regions_that_min_peak_drops_in_large_ones():
    img = scene(faces=())
    # Two unsure regions (peak 0.6), a small one (~30 px at threshold 0.3) and a large one (~700 px), and a sure one.
    model = ConeModel([(40, 40, 6, 0.6), (120, 80, 30, 0.6), (40, 100, 20, 1.0)])
    strict = CompositingBlurrer(model, threshold=0.3, min_peak=0.7, region="mask")(img)
    sized = CompositingBlurrer(model, threshold=0.3, min_peak=0.7, small_area=400, small_peak=0.5, region="mask")(img)
    assert len(strict.faces) == 1 and len(sized.faces) == 2
    assert sized.mask[40, 40] == 1 and strict.mask[40, 40] == 0      # the small unsure region is kept
    assert sized.mask[80, 120] == 0                                   # the large unsure one is still dropped
    assert sized.mask[100, 40] == 1                                   # sure regions of any size stay
    too_strict = CompositingBlurrer(model, threshold=0.3, min_peak=0.7, small_area=400, small_peak=0.65, region="mask")(img)
    assert len(too_strict.faces) == 1


@pytest.mark.parametrize("kwargs, match", [({"small_peak": 1.5}, "small_peak"), ({"small_area": -1}, "small_area")])
def test_small_region_settings_out_of_range_are_refused(kwargs, match):
    with pytest.raises(UnetblurError, match=match):
        CompositingBlurrer(RedFaceModel(), **kwargs)
