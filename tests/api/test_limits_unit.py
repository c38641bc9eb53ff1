"""``api.limits.json_depth``: nesting counted in C, strings and escapes ignored."""

from __future__ import annotations

import json

import pytest

from api.limits import json_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"42", 0),
        (b'"[[[["', 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": [2]}]}', 4),
        (b'{"a": "]]]]", "b": [[["\\"[["]]]}', 4),
        (b'["\\\\", [["\\\\\\"]"]]]', 3),
        (b"[" * 5000 + b"]" * 5000, 5000),
        (b"]]]][[", 0),  # not JSON: the route's parser says so; depth never goes negative
    ],
)
def test_json_depth(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_json_depth_matches_the_parser_on_an_itinerary_shaped_document() -> None:
    doc = {"itinerary": {"legs": [{"geometry": {"coordinates": [[1.0, 2.0], [3.0, 4.0]]}}]}}
    assert json_depth(json.dumps(doc).encode()) == 7  # { { [ { { [ [
