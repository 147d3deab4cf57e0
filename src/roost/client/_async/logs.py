"""`client.logs`: structured logs of the tenant (Dominus logs)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from roost.client._core.arguments import FIRST, Cursor, cursor_param, iso_datetime
from roost.client._core.namespace import Namespace
from roost.client._realtime import AsyncSubscription

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncLogs(Namespace):
    """Write entries with `debug` ... `critical` (the calling file, function and line are
    recorded), many at once with `batch`; read them with `query`, or live with `tail`.
    Writing needs the scope `logs:write`, reading `logs:read`."""

    _client: AsyncClient

    async def debug(
        self,
        message: str,
        data: Any = None,
        *,
        category: str = "app",
        exception: BaseException | str | None = None,
    ) -> None:
        """Write a debug entry.

        Example:
            await client.logs.debug("cache miss", {"key": "user:1"})
        """
        await self._write("debug", message, data, category, exception)

    async def info(
        self,
        message: str,
        data: Any = None,
        *,
        category: str = "app",
        exception: BaseException | str | None = None,
    ) -> None:
        """Write an info entry.

        Example:
            await client.logs.info("order placed", {"order_id": 42}, category="orders")
        """
        await self._write("info", message, data, category, exception)

    async def notice(
        self,
        message: str,
        data: Any = None,
        *,
        category: str = "app",
        exception: BaseException | str | None = None,
    ) -> None:
        """Write a notice entry (normal but worth a look).

        Example:
            await client.logs.notice("price list reloaded")
        """
        await self._write("notice", message, data, category, exception)

    async def warn(
        self,
        message: str,
        data: Any = None,
        *,
        category: str = "app",
        exception: BaseException | str | None = None,
    ) -> None:
        """Write a warning entry.

        Example:
            await client.logs.warn("slow payment provider", {"ms": 2300})
        """
        await self._write("warn", message, data, category, exception)

    async def error(
        self,
        message: str,
        data: Any = None,
        *,
        category: str = "app",
        exception: BaseException | str | None = None,
    ) -> None:
        """Write an error entry; pass the exception to keep its traceback.

        Example:
            except ValueError as exc:
                await client.logs.error("bad order", {"id": 42}, exception=exc)
        """
        await self._write("error", message, data, category, exception)

    async def critical(
        self,
        message: str,
        data: Any = None,
        *,
        category: str = "app",
        exception: BaseException | str | None = None,
    ) -> None:
        """Write a critical entry.

        Example:
            await client.logs.critical("database unreachable", exception=exc)
        """
        await self._write("critical", message, data, category, exception)

    async def batch(self, entries: list[dict[str, Any]]) -> int:
        """Write up to 1000 entries in one call: each `{"level", "message"}` and optionally
        `data`, `category`, `exception`. Returns how many were written.

        Example:
            await client.logs.batch([{"level": "info", "message": f"row {n}"} for n in range(3)])
        """
        source = _source(sys._getframe(1))
        sent = [
            {"source": source, **entry, "exception": _exception_text(entry.get("exception"))}
            for entry in entries
        ]
        return int((await self._client.call("logs.write", {"entries": sent}))["count"])

    async def query(
        self,
        level: str | None = None,
        category: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 100,
        cursor: Cursor = FIRST,
    ) -> dict[str, Any]:
        """Entries newest first: `{"entries": [...], "next_cursor"}`. `level`: that level and
        above; `search`: part of the message, in any case; pass `next_cursor` back as
        `cursor` for older entries (a last page's `next_cursor` is None: passing that raises
        ValidationError). `iter()` walks every page.

        Example:
            problems = (await admin.logs.query(level="error", category="orders"))["entries"]
        """
        params = {
            "level": level,
            "category": category,
            "since": iso_datetime("since", since),
            "until": iso_datetime("until", until),
            "search": search,
            "limit": limit,
            "cursor": cursor_param(cursor),
        }
        sent = {name: value for name, value in params.items() if value is not None}
        result: dict[str, Any] = await self._client.call("logs.query", sent, idempotent=True)
        return result

    async def iter(
        self,
        level: str | None = None,
        category: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 100,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching entry, newest first, fetched `limit` at a time.

        Example:
            async for entry in admin.logs.iter(level="error"):
                print(entry["message"])
        """
        cursor: Cursor = FIRST
        while cursor is not None:
            page = await self.query(level, category, since, until, search, limit, cursor)
            for entry in page["entries"]:
                yield entry
            cursor = page["next_cursor"]

    async def tail(
        self,
        callback: Callable[[dict[str, Any]], Any],
        level: str | None = None,
        category: str | None = None,
        search: str | None = None,
    ) -> AsyncSubscription:
        """Receive each entry written from now on that passes the filters (as `query`'s:
        `level` and above, `category`, `search` in the message); `callback(entry)` may be
        async. Entries of a write over 1 MiB come without `data` and `exception`.

        Example:
            sub = await admin.logs.tail(lambda e: print(e["level"], e["message"]), "error")
        """
        params = {"level": level, "category": category, "search": search}
        sent = {name: value for name, value in params.items() if value is not None}
        return await self._client.realtime.subscribe(
            "logs.tail", sent, callback, f"{level}:{category}:{search}"
        )

    async def _write(
        self,
        level: str,
        message: str,
        data: Any,
        category: str,
        exception: BaseException | str | None,
    ) -> None:
        entry = {
            "level": level,
            "message": message,
            "data": data,
            "category": category,
            "exception": _exception_text(exception),
            "source": _source(sys._getframe(2)),  # the caller of debug() ... critical()
        }
        await self._client.call("logs.write", {"entries": [entry]})


def _source(frame: FrameType) -> dict[str, Any]:
    code = frame.f_code
    return {"file": code.co_filename, "function": code.co_name, "line": frame.f_lineno}


def _exception_text(exception: BaseException | str | None) -> str | None:
    if isinstance(exception, BaseException):
        return "".join(traceback.format_exception(exception))
    return exception
