"""`usage.get`: the calls and bytes a tenant's users and API keys cost, by hour, day or month
(counted by `metering.Meter`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from roost.backends.sql.tables import usage, utcnow
from roost.errors import ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.wire.usage import Period, UsageBucket, UsageFigures, UsageQuery, UsageReport


@operation("usage.get", scope="usage:read", read_only=True)
async def get_usage(ctx: Context, params: UsageQuery) -> UsageReport:
    """Calls, bytes, function invocations and function seconds of this tenant by hour, day
    or month (UTC), from `since` (30 days ago) to `until` (now); `by_api_key` splits each
    period by API key ("" for signed-in users).
    Other replicas' last few seconds may not be in yet."""
    until = params.until or utcnow()
    since = params.since or until - timedelta(days=30)
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            raise ValidationError(f"{name} needs a time zone", details={"field": name})
    if since >= until:
        raise ValidationError("since must be before until", details={"field": "since"})
    await ctx.platform.meter.flush(ctx.platform.db, ctx.tenant)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (
                await conn.execute(
                    select(usage)
                    .where(usage.c.hour >= _start(since, "hour"), usage.c.hour < until)
                    .order_by(usage.c.hour)
                )
            )
            .mappings()
            .all()
        )
    buckets: dict[datetime, UsageBucket] = {}
    totals = UsageFigures()
    for row in rows:
        start = _start(row["hour"], params.period)
        bucket = buckets.get(start)
        if bucket is None:
            bucket = buckets[start] = UsageBucket(
                start=start,
                requests=0,
                bytes_in=0,
                bytes_out=0,
                api_keys={} if params.by_api_key else None,
            )
        adding: list[UsageBucket | UsageFigures] = [bucket, totals]
        if bucket.api_keys is not None:
            adding.append(bucket.api_keys.setdefault(row["api_key_id"], UsageFigures()))
        for figures in adding:
            figures.requests += row["requests"]
            figures.bytes_in += row["bytes_in"]
            figures.bytes_out += row["bytes_out"]
            figures.function_invocations += row["function_invocations"] or 0
            figures.function_seconds += (row["function_ms"] or 0) / 1000
    every: list[UsageBucket | UsageFigures] = [totals, *buckets.values()]
    every += [f for b in buckets.values() if b.api_keys is not None for f in b.api_keys.values()]
    for figures in every:  # milliseconds summed as seconds: round off
        figures.function_seconds = round(figures.function_seconds, 3)
    return UsageReport(
        period=params.period,
        since=since,
        until=until,
        totals=totals,
        buckets=list(buckets.values()),
    )


def _start(moment: datetime, period: Period) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if period == "hour":
        return moment
    if period == "day":
        return moment.replace(hour=0)
    return moment.replace(day=1, hour=0)
