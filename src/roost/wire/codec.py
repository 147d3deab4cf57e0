"""JSON and MessagePack, chosen by media type, from one set of msgspec types."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, TypeVar

import msgspec

from roost.errors import ValidationError
from roost.wire.limits import InputRefused, check_input, too_deep

T = TypeVar("T")

WireFormat = Literal["json", "msgpack"]

JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/msgpack"
_MEDIA_TYPES: dict[str, WireFormat] = {
    JSON_TYPE: "json",
    MSGPACK_TYPE: "msgpack",
    "application/x-msgpack": "msgpack",
    "application/vnd.msgpack": "msgpack",
}


def format_of(media_type: str | None) -> WireFormat | None:
    """The wire format named by a Content-Type or Accept value, `None` if it names neither."""
    if not media_type:
        return None
    known = _MEDIA_TYPES.get(media_type)  # the common case: exactly one of ours
    if known is not None:
        return known
    for part in media_type.split(","):
        base = part.split(";", 1)[0].strip().lower()
        if base in _MEDIA_TYPES:
            return _MEDIA_TYPES[base]
    return None  # wildcards included: the caller falls back on the request's own format


class Codec(msgspec.Struct, frozen=True):
    """Encodes and decodes one wire format."""

    format: WireFormat
    content_type: str

    def encode(self, value: Any) -> bytes:
        if self.format == "msgpack":
            # Plain builtins (datetimes as RFC 3339 strings), so that a result reads the same
            # whichever format carried it.
            value = msgspec.to_builtins(value, builtin_types=(bytes, bytearray, memoryview))
        return _encoder(self.format).encode(value)

    def decode(self, data: bytes, type: type[T]) -> T:
        decoder: Any = _decoder(self.format, type)
        result: T = decoder.decode(data)
        return result

    def decode_input(self, data: bytes, type: type[T], what: str, *, screened: bool = False) -> T:
        """`decode` for what a client sent, held to the rules of `roost.wire.limits`: anything
        refused is a ValidationError (`what` names the input) naming the field at fault.
        `screened`: `data` is part of a body that passed `limits.passes_screen` already."""
        try:
            value: T = _decoder(self.format, type).decode(data)
            if not screened:
                check_input(value, data, self.format)
        except msgspec.ValidationError as exc:
            raise invalid(exc, what) from None
        except msgspec.DecodeError as exc:
            raise ValidationError(f"the body is not valid {self.format}: {exc}") from None
        except RecursionError:  # msgspec's own limit, far past ours: the same refusal
            raise _refused(too_deep(), what) from None
        except InputRefused as exc:
            raise _refused(exc, what) from None
        return value


@lru_cache(maxsize=2)
def _encoder(fmt: WireFormat) -> msgspec.json.Encoder | msgspec.msgpack.Encoder:
    return msgspec.json.Encoder() if fmt == "json" else msgspec.msgpack.Encoder()


# A decoder per (format, type object), looked up by the object's id: hashing a typing form
# (the WebSocket door's `Frames` union, decoded for every frame) runs Python code, an id does
# not. The entry holds the type, so its id is not reused while the entry lives; a type built
# anew for each call (`list[X]` in a function body) misses here and finds its equal in
# `_decoder_of`.
_BY_ID: dict[tuple[WireFormat, int], tuple[Any, Any]] = {}
_BY_ID_MAX = 1024


def _decoder(fmt: WireFormat, type: Any) -> Any:
    found = _BY_ID.get((fmt, id(type)))
    if found is not None:
        return found[1]
    decoder = _decoder_of(fmt, type)
    if len(_BY_ID) >= _BY_ID_MAX:
        _BY_ID.clear()
    _BY_ID[fmt, id(type)] = (type, decoder)
    return decoder


@lru_cache(maxsize=1024)
def _decoder_of(fmt: WireFormat, type: Any) -> Any:
    if fmt == "json":
        return msgspec.json.Decoder(type)
    return msgspec.msgpack.Decoder(type)


JSON = Codec("json", JSON_TYPE)
MSGPACK = Codec("msgpack", MSGPACK_TYPE)


def codec_for(fmt: WireFormat) -> Codec:
    """The codec of a wire format."""
    return JSON if fmt == "json" else MSGPACK


# "- at `$.rows[0].name`", and for a map's key "- at `key` in `$.data`"
_FIELD = re.compile(r"at `(?:key` in `)?\$\.?([^`]*)`")


def invalid(exc: msgspec.ValidationError, what: str) -> ValidationError:
    """Our ValidationError for msgspec's, with `details.field` naming the field at fault."""
    match = _FIELD.search(str(exc))
    return ValidationError(
        f"invalid {what}: {exc}", details={"field": match.group(1)} if match else {}
    )


def _refused(exc: InputRefused, what: str) -> ValidationError:
    """Our ValidationError for a value `roost.wire.limits` refused."""
    field = exc.field
    at = f" - at `$.{field}`" if field else ""
    return ValidationError(
        f"invalid {what}: {exc.reason}{at}", details={"field": field} if field else {}
    )


def build(into: type[T], **values: Any) -> T:
    """A wire type built from keyword values with every constraint checked (constructing a
    Struct directly checks none)."""
    try:
        return msgspec.convert(values, into)
    except msgspec.ValidationError as exc:
        raise invalid(exc, into.__name__) from None
