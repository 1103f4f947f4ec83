"""One reader of faces.jsonl: records with their line numbers, Face values, bad lines raised or reported."""

from __future__ import annotations

import pytest

from unetblur.errors import BadInputError
from unetblur.faces import Face, iter_faces_lines


def test_bad_lines_are_reported_with_their_line_number_and_skipped(tmp_path):
    path = tmp_path / "faces.jsonl"
    path.write_text('{"image": "a.png", "faces": [{"box": [1, 2, 3, 4]}]}\n\nnot json\n'
                    '{"image": "b.png", "faces": [{"box": [1, 2, 3]}]}\n{"faces": []}\n')
    bad = []
    records = list(iter_faces_lines(path, on_error=lambda n, e: bad.append((n, str(e)))))
    assert [(n, r["image"], r["faces"]) for n, r in records] == [(1, "a.png", [Face(1, 2, 3, 4)])]
    assert [n for n, _ in bad] == [3, 4, 5] and "a box needs 4 numbers" in bad[1][1]


def test_without_a_handler_the_first_bad_line_stops_the_read(tmp_path):
    path = tmp_path / "faces.jsonl"
    path.write_text('{"image": "a.png"}\n{"image": "b.png", "faces": [{"box": "x"}]}\n')
    with pytest.raises(BadInputError, match="line 2: not a faces record"):
        list(iter_faces_lines(path))
