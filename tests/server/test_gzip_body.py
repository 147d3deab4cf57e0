"""Answers are gzipped with a window sized to the body: any gzip reader opens them, and they
come out about as small as with the defaults."""

from __future__ import annotations

import gzip
import json
import random

from roost.server.responses import gzip_body


def test_gzip_body_opens_anywhere_and_is_about_as_small_as_the_default() -> None:
    rng = random.Random(7)
    rows = [{"id": i, "name": f"item {rng.randrange(10**6)}", "price": i % 97} for i in range(5000)]
    text = json.dumps(rows).encode()
    noise = rng.randbytes(70_000)
    for size in (1, 2, 511, 512, 513, 1024, 1433, 4096, 20_000, 70_000, len(text)):
        for body in (text[:size], noise[:size]):
            packed = gzip_body(body)
            assert gzip.decompress(packed) == body
            assert len(packed) <= len(gzip.compress(body, compresslevel=6)) * 1.05 + 16, size
