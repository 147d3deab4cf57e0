"""AMQP topic matching of pub/sub patterns."""

from __future__ import annotations

import pytest

from roost.services.pubsub import topic_matches

CASES = [
    ("a.b", "a.b", True),
    ("a.b", "a.c", False),
    ("a.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("*.b.*", "x.b.y", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("#.z", "z", True),
    ("#.z", "a.b.z", True),
    ("#.z", "a.z.b", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y", False),
    ("a.#.#.b", "a.b", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("notifications.email.*", "notifications.email.user", True),
    ("events.user.#", "events.user.created.today", True),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), CASES)
def test_amqp_topic_semantics(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern.split("."), topic.split(".")) is expected
