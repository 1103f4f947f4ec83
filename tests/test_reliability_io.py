"""Reliability of image I/O and atomic writes on the bad-input corpus (tests/badinputs.py)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import badinputs as bad
from unetblur import io as uio
from unetblur.errors import BadInputError
from unetblur.fsutil import atomic_path, remove_stale_temporaries, write_text_atomic

UNREADABLE = {
    "zero-byte": (bad.make_zero_byte, "empty"),
    "truncated JPEG": (bad.make_truncated_jpeg, "truncated"),
    "truncated PNG": (bad.make_truncated_png, "truncated"),
    "text named .jpg": (bad.make_text_as_jpg, "not a readable image"),
    "decompression bomb": (bad.make_decompression_bomb, "too large"),
}


@pytest.mark.parametrize("case", UNREADABLE, ids=list(UNREADABLE))
def test_an_unreadable_image_raises_one_error_naming_the_file_and_the_problem(tmp_path, case):
    make, problem = UNREADABLE[case]
    path = make(tmp_path)
    before = bad.snapshot(tmp_path)
    with pytest.raises(BadInputError, match=problem) as info:
        uio.read_image(path)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)
    assert bad.snapshot(tmp_path) == before


@pytest.mark.parametrize("case", UNREADABLE, ids=list(UNREADABLE))
def test_an_unreadable_mask_raises_the_same_error_as_an_image(tmp_path, case):
    make, problem = UNREADABLE[case]
    with pytest.raises(BadInputError, match=problem.replace("image", "mask")):
        uio.read_mask(make(tmp_path))


def test_a_missing_file_and_a_folder_are_named_as_such(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        uio.read_image(tmp_path / "nope.jpg")
    with pytest.raises(BadInputError, match="is a folder"):
        uio.read_image(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_permission_denied_not_corrupt(tmp_path):
    path = bad.make_one_pixel(tmp_path)
    path.chmod(0)
    try:
        with pytest.raises(BadInputError, match="cannot read file"):
            uio.read_image(path)
    finally:
        path.chmod(0o644)


def test_a_decompression_bomb_is_refused_from_its_header_without_allocating(tmp_path):
    path = bad.make_decompression_bomb(tmp_path, side=60_000)  # 10.8 GB if decoded
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(BadInputError, match="3600000000 pixels.*UNETBLUR_MAX_PIXELS"):
        uio.read_image(path)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000  # KiB


def test_images_above_max_pixels_are_refused_with_the_limit_in_the_message(tmp_path, monkeypatch):
    path = bad.make_odd_sized(tmp_path, size=(40, 40))
    monkeypatch.setattr(uio, "MAX_PIXELS", 1000)
    with pytest.raises(BadInputError, match="1600 pixels, above the limit of 1000"):
        uio.read_image(path)


def test_the_max_pixels_environment_variable_sets_the_limit_in_a_fresh_process(tmp_path):
    path = bad.make_odd_sized(tmp_path, size=(40, 40))
    code = f"from unetblur.io import read_image; read_image({str(path)!r})"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "UNETBLUR_MAX_PIXELS": "1000"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "above the limit of 1000" in result.stderr


def test_pillows_own_bomb_guard_uses_the_same_limit(tmp_path):
    # Between PIL's default 89 Mpx warning and our 200 Mpx limit an image must not be refused.
    assert Image.MAX_IMAGE_PIXELS == uio.MAX_PIXELS


def test_a_16_bit_png_is_scaled_to_8_bits(tmp_path):
    path, expected = bad.make_png16(tmp_path)
    arr = uio.read_image(path)
    assert arr.dtype == np.uint8 and arr.shape == expected.shape + (3,)
    np.testing.assert_array_equal(arr[..., 0], expected)
    np.testing.assert_array_equal(uio.read_mask(path), expected)


@pytest.mark.parametrize("make", [bad.make_grayscale, bad.make_rgba, bad.make_palette, bad.make_cmyk_jpeg],
                         ids=["grayscale", "RGBA", "palette", "CMYK JPEG"])
def test_every_colour_mode_reads_as_hwc_uint8_rgb(tmp_path, make):
    arr = uio.read_image(make(tmp_path))
    assert arr.dtype == np.uint8 and arr.shape == (48, 64, 3) and arr.flags.c_contiguous


def test_grayscale_reads_as_three_equal_channels(tmp_path):
    arr = uio.read_image(bad.make_grayscale(tmp_path))
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_transparent_pixels_are_composited_onto_black(tmp_path):
    arr = uio.read_image(bad.make_rgba(tmp_path))
    assert arr[:, :32].max() == 0 and arr[:, 32:].max() > 0


def test_cmyk_colours_come_back_close_to_the_rgb_original(tmp_path):
    arr = uio.read_image(bad.make_cmyk_jpeg(tmp_path)).astype(int)
    assert np.abs(arr - bad.photo().astype(int)).mean() < 12


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    path, (h, w) = bad.make_exif_rotated(tmp_path)
    arr = uio.read_image(path)
    assert arr.shape == (h, w, 3)
    # The stored top-left red square ends up top-right after a 90° clockwise turn.
    assert arr[:6, -6:, 0].mean() > 200 and arr[:6, -6:, 1].mean() < 60
    assert arr[:6, :6, 0].mean() < 120
    assert uio.read_mask(path).shape == (h, w)


@pytest.mark.parametrize("make,shape", [(bad.make_one_pixel, (1, 1, 3)), (bad.make_smaller_than_stride, (5, 5, 3))],
                         ids=["1x1", "smaller than stride"])
def test_tiny_images_read_without_error(tmp_path, make, shape):
    assert uio.read_image(make(tmp_path)).shape == shape


def test_writing_never_leaves_a_temporary_when_the_encoder_fails(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    uio.write_image(out, bad.photo())
    before = bad.snapshot(tmp_path)

    def broken_save(self, *a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        uio.write_image(out, np.zeros((4, 4, 3), np.uint8))
    assert bad.snapshot(tmp_path) == before  # old file intact
    assert bad.leftovers(tmp_path) == []


def test_written_files_get_ordinary_permissions_not_the_temporary_files_0600(tmp_path):
    out = tmp_path / "out.png"
    uio.write_image(out, bad.photo())
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_an_output_path_that_is_a_folder_is_a_clear_error(tmp_path):
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(Exception, match="is a folder"):
        uio.write_image(tmp_path / "taken.png", bad.photo())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_a_killed_process_are_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    stale = folder / f".img.{_dead_pid()}-abc123.part.png"
    stale.write_bytes(b"half")
    live = folder / f".img.{os.getppid()}-def456.part.png"  # a running process (our parent)
    live.write_bytes(b"writing")
    write_text_atomic(folder / "note.txt", "hi")
    assert not stale.exists()
    assert live.exists()


def test_remove_stale_temporaries_leaves_ordinary_hidden_files_alone(tmp_path):
    (tmp_path / ".gitignore").write_text("*")
    (tmp_path / f".x.{_dead_pid()}-zz.part.jpg").write_bytes(b"")
    removed = remove_stale_temporaries(tmp_path)
    assert len(removed) == 1 and removed[0].name.startswith(".x.")
    assert (tmp_path / ".gitignore").exists()


def test_make_work_dir_removes_working_folders_of_dead_processes_only(tmp_path):
    from unetblur.fsutil import make_work_dir

    stale = tmp_path / f".ds.building-{_dead_pid()}-abc123"
    (stale / "train").mkdir(parents=True)
    live = tmp_path / f".ds.building-{os.getppid()}-def456"  # a running process (our parent)
    live.mkdir()
    other = tmp_path / f".export-{_dead_pid()}-zz"  # another command's prefix: not ours to judge
    other.mkdir()
    work = make_work_dir(tmp_path, ".ds.building-")
    assert work.is_dir() and work.name.startswith(f".ds.building-{os.getpid()}@")
    assert not stale.exists() and live.exists() and other.exists()


def test_atomic_path_removes_its_temporary_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert bad.files_under(tmp_path) == []


def test_listing_skips_hidden_temporaries(tmp_path):
    bad.make_one_pixel(tmp_path, "a.png")
    (tmp_path / ".a.123-x.part.png").write_bytes(b"")
    assert [p.name for p in uio.list_images(tmp_path)] == ["a.png"]
    assert [p.name for p in uio.iter_images(tmp_path)] == ["a.png"]


def test_a_full_disk_while_writing_names_the_output_not_the_temporary(tmp_path, monkeypatch):
    import errno

    from unetblur.errors import UnetblurError

    def full(self, fp, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(UnetblurError, match=r"out\.png: cannot write \(No space left on device\)"):
        uio.write_image(tmp_path / "out.png", bad.photo())
    assert bad.files_under(tmp_path) == []


def test_an_output_folder_that_cannot_be_created_is_one_clear_error(tmp_path):
    from unetblur.errors import UnetblurError

    (tmp_path / "file").write_text("x")
    with pytest.raises(UnetblurError, match="cannot write here"):
        uio.write_image(tmp_path / "file" / "sub" / "out.png", bad.photo())


@pytest.mark.parametrize("make", [bad.make_grayscale, bad.make_rgba, bad.make_cmyk_jpeg, bad.make_exif_rotated,
                                  bad.make_png16, bad.make_odd_sized], ids=["L", "RGBA", "CMYK", "EXIF", "I;16", "RGB"])
def test_read_arrays_are_writable_so_torch_and_opencv_can_use_them(tmp_path, make):
    path = make(tmp_path)
    path = path[0] if isinstance(path, tuple) else path
    assert uio.read_image(path).flags.writeable
    assert uio.read_mask(path).flags.writeable


def test_a_large_photo_is_read_within_about_ten_bytes_per_pixel(tmp_path):
    # The documented bound (README, reliability): reading needs the decoded image plus the array.
    h, w = 3000, 4000
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    path = tmp_path / "big.jpg"
    Image.fromarray(arr).save(path, quality=85)
    code = ("import resource; from unetblur.io import read_image; "
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"a = read_image({str(path)!r}); "
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) * 1024)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    growth = int(result.stdout.strip())
    assert growth < 14 * h * w, f"{growth / (h * w):.1f} bytes per pixel"
