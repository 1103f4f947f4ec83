"""Planning a ``unetblur blur`` run (``unetblur/anonymise/plan.py``): input kinds, output names,
walking folders, shards."""

from __future__ import annotations

import pytest

from unetblur.anonymise.plan import default_output, input_kind, iter_media, parse_shard, stream_output_name
from unetblur.errors import BadInputError, UnetblurError


@pytest.mark.parametrize("text, kind", [("webcam", "webcam"), ("webcam:2", "webcam"), ("rtsp://cam/1", "stream"),
                                        ("http://host/live.m3u8", "stream")])
def test_live_sources_are_recognised_by_name(text, kind):
    assert input_kind(text) == kind


def test_files_and_folders_are_recognised_by_what_they_are(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.MP4").write_bytes(b"x")
    assert input_kind(str(tmp_path / "a.jpg")) == "image"
    assert input_kind(str(tmp_path / "b.MP4")) == "video"
    assert input_kind(str(tmp_path)) == "folder"


def test_a_missing_input_is_a_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        input_kind(str(tmp_path / "nope.jpg"))


def test_an_unsupported_file_type_is_a_bad_input(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BadInputError, match="unsupported file type .txt"):
        input_kind(str(tmp_path / "notes.txt"))


def test_default_output_is_stem_blurred_beside_the_input_or_in_the_output_folder(tmp_path):
    assert default_output(tmp_path / "x" / "photo.jpg") == tmp_path / "x" / "photo_blurred.jpg"
    assert default_output("clip.mov", tmp_path) == tmp_path / "clip_blurred.mov"


def test_stream_recordings_are_named_after_the_source():
    assert stream_output_name("webcam:1") == "webcam1_blurred.mp4"
    assert stream_output_name("rtsp://user@10.0.0.5:554/live") == "user_10_0_0_5_554_blurred.mp4"


def test_iter_media_walks_lazily_skipping_hidden_files_and_the_output_folder(tmp_path):
    for rel in ("a.jpg", "sub/b.png", "sub/c.mp4", ".hidden.jpg", "out/d.jpg", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_media(tmp_path, recursive=True, skip=tmp_path / "out")]
    assert found == ["a.jpg", "sub/b.png", "sub/c.mp4"]
    assert [p.name for p in iter_media(tmp_path, recursive=False)] == ["a.jpg"]


@pytest.mark.parametrize("text, expected", [(None, None), ("1/4", (1, 4)), ("0/1", (0, 1))])
def test_shards_are_parsed(text, expected):
    assert parse_shard(text) == expected


def test_shard_auto_reads_the_launchers_rank(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert parse_shard("auto") == (2, 8)


@pytest.mark.parametrize("text", ["4/4", "x/2", "1"])
def test_bad_shards_are_refused(text):
    with pytest.raises(UnetblurError, match="shard"):
        parse_shard(text)
