"""The cheap look at a JSON body's shape that decides whether its decoded value is walked."""

from __future__ import annotations

import json

from roost.wire.limits import MAX_DEPTH, _json_depth_at_most, passes_screen


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


def test_a_frame_that_breaks_a_rule_anywhere_does_not_pass_the_screen() -> None:
    """The WebSocket door skips each call's check when its frame passes the screen, so a
    frame must fail it whichever call's parameters break a rule."""
    clean = {"id": 1, "method": "kv.set", "params": {"key": "k", "value": 1}}
    bad_values: list[object] = ["a\x00b", 2**63, -(2**63) - 1, "0001-01-01T00:00:00+14:00", _deep(70)]
    for bad in bad_values:
        call = {"id": 2, "method": "kv.set", "params": {"key": "k", "value": bad}}
        frame = json.dumps([clean, call, clean]).encode()
        assert not passes_screen(frame, "json"), bad
    assert passes_screen(json.dumps([clean] * 3).encode(), "json")
    assert not passes_screen(b"\x91\x80", "msgpack")  # MessagePack is always walked


def _deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value
