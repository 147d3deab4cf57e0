"""The cheap look at a JSON body's shape that decides whether its decoded value is walked."""

from __future__ import annotations

import json

from roost.wire.limits import MAX_DEPTH, _json_depth_at_most


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_a_batch_of_many_shallow_calls_is_shallow() -> None:
    frame = [{"id": i, "method": "kv.get", "params": {"key": f"k{i}"}} for i in range(500)]
    assert _json_depth_at_most(json.dumps(frame).encode(), MAX_DEPTH)


def test_depth_is_told_exactly_at_the_limit() -> None:
    assert _json_depth_at_most(_nested(MAX_DEPTH), MAX_DEPTH)
    assert not _json_depth_at_most(_nested(MAX_DEPTH + 1), MAX_DEPTH)


def test_brackets_inside_strings_do_not_hide_depth() -> None:
    # each level carries a string that closes a bracket, as if to cancel its opener
    deep = b'{"a":"}","b":' * (MAX_DEPTH + 5) + b"1" + b"}" * (MAX_DEPTH + 5)
    assert not _json_depth_at_most(deep, MAX_DEPTH)
    assert _json_depth_at_most(json.dumps({"a": "]]]{{{", "b": [["x"]]}).encode(), 3)


def test_an_escaped_quote_leaves_the_decision_to_the_walk() -> None:
    assert not _json_depth_at_most(b'{"a": "say \\"hi\\""}', MAX_DEPTH)
