"""Bad input answers a 400 naming the field, never a 500, and the server keeps serving.

Each attack goes over real HTTP (and WebSocket) to a server on SQLite and on PostgreSQL: NUL
in text, integers past 64 bits, `select: []`, JSON and MessagePack nested past the limit,
MessagePack extension types and non-text map keys, datetimes with no UTC form, deep upload
metadata and settings; and a schema prefix too long for a tenant's schema name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from websockets.sync.client import connect

from roost.errors import ConfigurationError
from roost.settings import load_settings
from roost.wire.limits import MAX_DEPTH
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

MSGPACK = {"content-type": "application/msgpack", "accept": "application/json"}
HUGE = 10**30
WAY_TOO_DEEP = 100_000  # far past msgspec's own limit (Python's recursion limit)


def nested(depth: int) -> Any:
    """A value `depth` lists deep."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def deep_json(depth: int) -> bytes:
    """`depth` nested JSON arrays, written out directly (json.dumps would recurse)."""
    return b"[" * depth + b"]" * depth


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    """An admin's client of the server (sign-in through the API)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        tokens = client.post(
            "/api/v1/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        ).json()
        client.headers["authorization"] = f"Bearer {tokens['access']}"
        yield client


@pytest.fixture(scope="module")
def table(http: httpx.Client) -> str:
    name = unique("inp_")
    created = http.post(
        "/api/v1/schema/add_table",
        json={"name": name, "columns": [{"name": "title", "type": "text"}], "timestamps": False},
    )
    assert created.status_code == 200, created.text
    return name


def refused(response: httpx.Response, field: str | None) -> str:
    """Assert a 400 validation error naming `field`; returns the message."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    if field is not None:
        assert error["details"].get("field") == field, error
    message: str = error["message"]
    return message


def still_serving(http: httpx.Client) -> None:
    answer = http.post("/api/v1/kv/set", json={"key": unique("alive"), "value": 1})
    assert answer.status_code == 200, answer.text


# -- NUL (PostgreSQL text and jsonb cannot hold it: refused everywhere, alike) ---------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/kv/set", {"key": "a\x00b", "value": 1}, "key"),
        ("/api/v1/kv/set", {"key": "k", "value": {"text": "a\x00b"}}, "value.text"),
        ("/api/v1/documents/set", {"collection": "c", "id": "d\x00", "data": {}}, "id"),
        ("/api/v1/documents/set", {"collection": "c", "id": "d", "data": {"t": "\x00"}}, "data.t"),
        (
            "/api/v1/documents/set",
            {"collection": "c", "id": "d", "data": {"k\x00": 1}},
            "data.k\\0",
        ),
        ("/api/v1/logs/write", {"entries": [{"level": "info", "message": "a\x00"}]}, None),
        ("/api/v1/mail/send", {"template_alias": "welcome", "to": ["a\x00@b.example"]}, "to[0]"),
        ("/api/v1/settings/update", {"settings": {"name": "\x00"}}, "settings.name"),
        ("/api/v1/queue/replay", {"queue": "q", "message_ids": ["a\x00"]}, "message_ids[0]"),
    ],
)
def test_nul_in_text_is_a_400_naming_the_field(
    http: httpx.Client, path: str, body: dict[str, Any], field: str | None
) -> None:
    message = refused(http.post(path, json=body), field)
    # a mail address also fails its pattern (msgspec: "matching regex")
    assert "NUL" in message or "regex" in message
    still_serving(http)


def test_nul_in_a_log_message_names_the_entry(http: httpx.Client) -> None:
    body = {"entries": [{"level": "info", "message": "ok"}, {"level": "info", "message": "\x00"}]}
    refused(http.post("/api/v1/logs/write", json=body), "entries[1].message")


def test_nul_in_a_record_is_refused_for_every_backend(http: httpx.Client, table: str) -> None:
    rows = [{"title": "fine"}, {"title": "bad\x00"}]
    refused(
        http.post("/api/v1/database/create", json={"table": table, "rows": rows}), "rows[1].title"
    )
    filters = [["title", "eq", "\x00"]]
    refused(
        http.post("/api/v1/database/query", json={"table": table, "filters": filters}),
        "filters[0][2]",
    )


def test_nul_in_msgpack_text_is_refused_like_json(http: httpx.Client) -> None:
    body = msgspec.msgpack.encode({"collection": "c", "id": "d", "data": {"t": "a\x00"}})
    refused(http.post("/api/v1/documents/set", content=body, headers=MSGPACK), "data.t")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/documents/set", {"collection": "c", "id": "d", "data": {"b": b"\x00"}}, "data.b"),
        ("/api/v1/settings/update", {"settings": {"b": b"x"}}, "settings.b"),
        (
            "/api/v1/logs/write",
            {"entries": [{"level": "info", "message": "m", "data": {"b": b"x"}}]},
            "entries[0].data.b",
        ),
        ("/api/v1/kv/set", {"key": "k", "value": b"x"}, "value"),
    ],
)
def test_binary_in_free_form_values_is_a_400(
    http: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    """Free-form values are JSON values (JSON cannot carry bytes): refused alike everywhere."""
    response = http.post(path, content=msgspec.msgpack.encode(body), headers=MSGPACK)
    assert "base64" in refused(response, field)
    still_serving(http)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_in_msgpack_are_a_400(http: httpx.Client, number: float) -> None:
    for path, body, field in [
        ("/api/v1/documents/set", {"collection": "c", "id": "d", "data": {"x": number}}, "data.x"),
        ("/api/v1/settings/update", {"settings": {"x": number}}, "settings.x"),
        ("/api/v1/kv/set", {"key": "k", "value": [number]}, "value[0]"),
    ]:
        response = http.post(path, content=msgspec.msgpack.encode(body), headers=MSGPACK)
        assert "finite" in refused(response, field)
    still_serving(http)


# -- integers past 64 bits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/database/query", {"collection": "c", "offset": 2**64}, "offset"),
        ("/api/v1/kv/set", {"key": "k", "value": -HUGE}, "value"),
        ("/api/v1/secrets/get", {"key": "k", "version": 2**64}, "version"),
        ("/api/v1/kv/set", {"key": "k", "value": [1, HUGE]}, "value[1]"),
        ("/api/v1/kv/incr", {"key": "k", "amount": HUGE}, "amount"),
    ],
)
def test_integers_past_64_bits_are_a_400(
    http: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    message = refused(http.post(path, json=body), field)
    assert str(2**63 - 1) in message
    still_serving(http)


@pytest.mark.parametrize("limit", [2**64, -(2**64), -1, 0, 1001])
def test_a_queue_replay_limit_out_of_range_is_a_400(http: httpx.Client, limit: int) -> None:
    refused(http.post("/api/v1/queue/replay", json={"queue": "q", "limit": limit}), "limit")
    still_serving(http)


def test_a_page_past_the_last_countable_row_is_a_400(http: httpx.Client, table: str) -> None:
    body = {"table": table, "page": 2**62, "page_size": 100}
    refused(http.post("/api/v1/database/query", json=body), "page")


def test_a_huge_column_default_is_a_400(http: httpx.Client) -> None:
    column = {"name": "n", "type": "bigint", "default": 1000000000000000000000000000000}
    body = {"name": unique("dflt_"), "columns": [column]}
    refused(http.post("/api/v1/schema/add_table", json=body), "columns[0].default")
    still_serving(http)


def test_a_huge_record_id_is_a_400(http: httpx.Client, table: str) -> None:
    refused(http.post("/api/v1/database/get", json={"table": table, "id": HUGE}), "id")


def test_a_uint64_in_msgpack_is_a_400(http: httpx.Client) -> None:
    body = msgspec.msgpack.encode({"key": "k", "value": 2**64 - 1})
    refused(http.post("/api/v1/kv/set", content=body, headers=MSGPACK), "value")


# -- select: [] -----------------------------------------------------------------------------


def test_an_empty_select_is_a_400(http: httpx.Client, table: str) -> None:
    refused(http.post("/api/v1/database/query", json={"table": table, "select": []}), "select")
    refused(
        http.post("/api/v1/database/get", json={"table": table, "id": 1, "select": []}), "select"
    )


# -- nesting --------------------------------------------------------------------------------


def test_json_nested_past_the_limit_is_a_400_naming_the_field(http: httpx.Client) -> None:
    ok = http.post("/api/v1/kv/set", json={"key": unique("deep"), "value": nested(MAX_DEPTH - 2)})
    assert ok.status_code == 200, ok.text
    response = http.post("/api/v1/kv/set", json={"key": "k", "value": nested(MAX_DEPTH + 1)})
    message = refused(response, None)
    assert f"deeper than {MAX_DEPTH}" in message
    assert response.json()["error"]["details"]["field"].startswith("value[0][0]")


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        ("/api/v1/kv/set", b'{"key": "k", "value": ', b"}"),
        ("/api/v1/documents/set", b'{"collection": "c", "id": "d", "data": {"a": ', b"}}"),
        ("/api/v1/batch", b'{"operations": [{"command": "kv.set", "payload": ', b"}]}"),
    ],
)
def test_json_nested_100k_deep_is_a_400(
    http: httpx.Client, path: str, before: bytes, after: bytes
) -> None:
    body = before + deep_json(WAY_TOO_DEEP) + after
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    message = refused(response, None)
    assert f"deeper than {MAX_DEPTH}" in message
    still_serving(http)


def test_msgpack_nested_past_the_limit_is_a_400(http: httpx.Client) -> None:
    deep = b"\x82\xa3key\xa1k\xa5value" + b"\x91" * WAY_TOO_DEEP + b"\x00"
    assert f"deeper than {MAX_DEPTH}" in refused(
        http.post("/api/v1/kv/set", content=deep, headers=MSGPACK), None
    )
    body = msgspec.msgpack.encode({"key": "k", "value": nested(MAX_DEPTH + 1)})
    assert f"deeper than {MAX_DEPTH}" in refused(
        http.post("/api/v1/kv/set", content=body, headers=MSGPACK), None
    )
    still_serving(http)


def test_a_batch_refuses_a_deep_payload_and_runs_the_others(http: httpx.Client) -> None:
    deep = {"key": "k", "value": nested(MAX_DEPTH + 1)}
    ops = [
        {"command": "kv.set", "payload": deep},
        {"command": "kv.set", "payload": {"key": unique("b"), "value": 1}},
    ]
    results = http.post("/api/v1/batch", json={"operations": ops}).json()["results"]
    assert results[0]["status"] == "error"
    assert results[0]["error"]["code"] == "validation_error"
    assert results[1]["status"] == "success"


def test_deep_settings_are_a_400(http: httpx.Client) -> None:
    body = b'{"settings": {"theme": ' + deep_json(5000) + b"}}"
    refused(
        http.post(
            "/api/v1/settings/update", content=body, headers={"content-type": "application/json"}
        ),
        None,
    )
    deep = http.post("/api/v1/settings/update", json={"settings": {"theme": nested(MAX_DEPTH)}})
    assert refused(deep, None)
    assert deep.json()["error"]["details"]["field"].startswith("settings.theme[0]")
    still_serving(http)


def test_deep_upload_metadata_is_a_400(http: httpx.Client) -> None:
    bucket = unique("deep-")
    assert http.post("/api/v1/storage/create_bucket", json={"name": bucket}).status_code == 200
    url = f"/api/v1/storage/buckets/{bucket}/objects/f.txt"
    # 5000 levels: past Python's recursion limit, within the server's header size limit
    header = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    response = http.put(url, content=b"x", headers={"x-roost-metadata": header})
    assert f"deeper than {MAX_DEPTH}" in refused(response, "metadata")
    nul = http.put(url, content=b"x", headers={"x-roost-metadata": '{"a": "\\u0000"}'})
    refused(nul, "metadata.a")
    fine = http.put(url, content=b"x", headers={"x-roost-metadata": '{"a": [1, {"b": "c"}]}'})
    assert fine.status_code == 200, fine.text
    assert fine.json()["metadata"] == {"a": [1, {"b": "c"}]}


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/storage/buckets/{bucket}/objects/a%00b", "name"),
        ("/api/v1/storage/buckets/b%00/objects/x", "bucket"),
        ("/api/v1/storage/public/default/b%00/x", "bucket"),
        ("/api/v1/storage/public/de%00/b/x", "tenant"),
    ],
)
def test_nul_in_a_file_path_is_a_400(http: httpx.Client, url: str, field: str) -> None:
    bucket = unique("nul-")
    assert http.post("/api/v1/storage/create_bucket", json={"name": bucket}).status_code == 200
    refused(http.get(url.format(bucket=bucket)), field)
    still_serving(http)


# -- MessagePack extension types ------------------------------------------------------------


def test_msgpack_ext_types_are_a_400(http: httpx.Client) -> None:
    ext = msgspec.msgpack.encode({"key": "k", "value": msgspec.msgpack.Ext(5, b"xyz")})
    assert "extension" in refused(
        http.post("/api/v1/kv/set", content=ext, headers=MSGPACK), "value"
    )
    stamp = msgspec.msgpack.encode(
        {"collection": "c", "id": "d", "data": {"at": datetime.now(UTC)}}
    )
    refused(http.post("/api/v1/documents/set", content=stamp, headers=MSGPACK), "data.at")
    typed = msgspec.msgpack.encode({"key": "k", "value": 1, "ttl": msgspec.msgpack.Ext(1, b"")})
    refused(http.post("/api/v1/kv/set", content=typed, headers=MSGPACK), "ttl")
    still_serving(http)


def test_msgpack_datetimes_as_strings_still_work(http: httpx.Client) -> None:
    body = msgspec.msgpack.encode({"since": "2020-01-01T00:00:00Z", "limit": 1})
    assert http.post("/api/v1/logs/query", content=body, headers=MSGPACK).status_code == 200


# -- datetimes with no UTC form (every backend stores UTC) ------------------------------------

NO_UTC = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")


@pytest.mark.parametrize("moment", NO_UTC)
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/api_keys/create", {"name": "k", "expires_at": "@"}, "expires_at"),
        (
            "/api/v1/users/assign_roles",
            {"roles": ["member"], "usernames": [ADMIN_USERNAME], "expires_at": "@"},
            "expires_at",
        ),
        ("/api/v1/audit/query", {"since": "@"}, "since"),
        ("/api/v1/audit/query", {"until": "@"}, "until"),
        ("/api/v1/logs/query", {"since": "@"}, "since"),
        ("/api/v1/usage/get", {"since": "@"}, "since"),
    ],
)
def test_a_datetime_with_no_utc_form_is_a_400(
    http: httpx.Client, moment: str, path: str, body: dict[str, Any], field: str
) -> None:
    body = {name: moment if value == "@" else value for name, value in body.items()}
    assert "outside years 1-9999" in refused(http.post(path, json=body), field)
    msgpack = msgspec.msgpack.encode(body)
    refused(http.post(path, content=msgpack, headers=MSGPACK), field)
    still_serving(http)


@pytest.fixture(scope="module")
def typed_table(http: httpx.Client) -> str:
    name = unique("typed_")
    columns = [
        {"name": "at", "type": "timestamptz"},
        {"name": "local", "type": "timestamp"},
        {"name": "doc", "type": "json"},
    ]
    created = http.post("/api/v1/schema/add_table", json={"name": name, "columns": columns})
    assert created.status_code == 200, created.text
    return name


@pytest.mark.parametrize("moment", NO_UTC)
@pytest.mark.parametrize("column", ["at", "local"])
def test_a_record_datetime_with_no_utc_form_is_a_400_naming_the_column(
    http: httpx.Client, typed_table: str, moment: str, column: str
) -> None:
    rows = {"table": typed_table, "rows": [{column: moment}]}
    message = refused(http.post("/api/v1/database/create", json=rows), f"rows[0].{column}")
    assert column in message
    fine = {"table": typed_table, "rows": [{column: "0001-01-01T00:00:00-01:00"}]}
    assert http.post("/api/v1/database/create", json=fine).status_code == 200
    still_serving(http)


def test_a_websocket_datetime_with_no_utc_form_gets_a_validation_error(
    server: RunningServer, http: httpx.Client
) -> None:
    token = http.headers["authorization"].split(" ", 1)[1]
    url = server.url.replace("http://", "ws://") + f"/api/v1/ws?access_token={token}"
    with connect(url) as ws:
        for number, moment in enumerate(NO_UTC):
            ws.send(json.dumps({"id": number, "method": "logs.query", "params": {"since": moment}}))
            answer = json.loads(ws.recv(timeout=30))
            assert answer["id"] == number
            assert answer["error"]["code"] == "validation_error", answer
            assert answer["error"]["details"]["field"] == "since"


# -- MessagePack map keys JSON cannot carry -----------------------------------------------------


def _map_with_key(key: bytes) -> bytes:
    """A MessagePack map of one entry whose key is `key` (raw MessagePack) and value 1."""
    return b"\x81" + key + b"\x01"


@pytest.mark.parametrize(
    "key",
    [b"\xc0", b"\xc2", b"\xc3", b"\x91\x01", b"\x05"],
    ids=["nil", "false", "true", "array", "int"],
)
@pytest.mark.parametrize(
    ("path", "before", "field"),
    [
        ("/api/v1/kv/set", {"key": "k"}, "value"),
        ("/api/v1/documents/set", {"collection": "c", "id": "d"}, "data"),
        ("/api/v1/queue/publish", {"queue": "q"}, "message"),
    ],
)
def test_msgpack_map_keys_other_than_text_are_a_400(
    http: httpx.Client, key: bytes, path: str, before: dict[str, Any], field: str
) -> None:
    # the request's own map with one more entry: `field` -> {"inner": the map keyed by `key`}
    head = msgspec.msgpack.encode(before)
    inner = b"\x81" + msgspec.msgpack.encode("inner") + _map_with_key(key)
    body = bytes([head[0] + 1]) + head[1:] + msgspec.msgpack.encode(field) + inner
    assert "map keys must be text" in refused(
        http.post(path, content=body, headers=MSGPACK), f"{field}.inner"
    )
    still_serving(http)


def test_msgpack_map_keys_other_than_text_in_a_json_column_are_a_400(
    http: httpx.Client, typed_table: str
) -> None:
    body = (
        b"\x82"
        + msgspec.msgpack.encode("table")
        + msgspec.msgpack.encode(typed_table)
        + msgspec.msgpack.encode("rows")
        + b"\x91\x81"
        + msgspec.msgpack.encode("doc")
        + _map_with_key(b"\xc0")
    )
    refused(http.post("/api/v1/database/create", content=body, headers=MSGPACK), "rows[0].doc")
    still_serving(http)


# -- PostgreSQL schema names ------------------------------------------------------------------


def test_every_tenant_name_fits_the_longest_schema_prefix(
    make_server: Callable[..., RunningServer],
) -> None:
    with pytest.raises(ConfigurationError, match="PG_SCHEMA_PREFIX"):
        load_settings(pg_schema_prefix="p" * 23)
    running = make_server(backend="postgresql", pg_schema_prefix=f"rt{unique('')}".ljust(22, "x"))
    with httpx.Client(base_url=running.url, timeout=60) as client:
        login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        access = client.post("/api/v1/auth/login", json=login).json()["access"]
        client.headers["authorization"] = f"Bearer {access}"
        name = unique("t").ljust(40, "a")
        assert len(name) == 40
        created = client.post(
            "/api/v1/tenants/create",
            json={"name": name, "admin_username": "root", "admin_password": "root-password-1"},
        )
        assert created.status_code == 200, created.text
        assert client.post("/api/v1/tenants/delete", json={"name": name}).status_code == 200


# -- WebSocket ------------------------------------------------------------------------------


def test_a_websocket_frame_100k_deep_gets_an_error_and_the_connection_stays(
    server: RunningServer, http: httpx.Client
) -> None:
    token = http.headers["authorization"].split(" ", 1)[1]
    url = server.url.replace("http://", "ws://") + f"/api/v1/ws?access_token={token}"
    with connect(url, max_size=None) as ws:
        frame = '{"id": 7, "method": "kv.set", "params": ' + "[" * WAY_TOO_DEEP
        ws.send(frame + "]" * WAY_TOO_DEEP + "}")
        answer = json.loads(ws.recv(timeout=30))
        assert answer["id"] is None
        assert answer["error"]["code"] == "invalid_frame"
        assert f"deeper than {MAX_DEPTH}" in answer["error"]["message"]
        deep = {"key": "k", "value": nested(MAX_DEPTH + 1)}
        ws.send(json.dumps({"id": 8, "method": "kv.set", "params": deep}))
        answer = json.loads(ws.recv(timeout=30))
        assert answer["id"] == 8
        assert answer["error"]["code"] == "validation_error"
        ws.send(msgspec.msgpack.encode({"id": 9, "method": "kv.set", "params": deep}))
        assert msgspec.msgpack.decode(ws.recv(timeout=30, decode=False))["id"] == 9
        key = unique("ws")
        ws.send(json.dumps({"id": 10, "method": "kv.set", "params": {"key": key, "value": 1}}))
        assert json.loads(ws.recv(timeout=30)) == {"id": 10, "result": {"success": True}}
