"""Cron schedules as triggers read them: nicknames, time zones, and DST transitions as
Debian's cron takes them (a skipped time fires once, later; a repeated one fires once)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from roost.errors import ValidationError
from roost.services.outbound import AllowList, OutboundRefused
from roost.services.triggers.cron import check, next_tick
from roost.wire.triggers import CronSource

PARIS = ZoneInfo("Europe/Paris")


def ticks(source: CronSource, start: datetime, count: int) -> list[str]:
    found, at = [], start.timestamp()
    for _ in range(count):
        at = next_tick(source, at)
        found.append(datetime.fromtimestamp(at, ZoneInfo(source.timezone)).isoformat())
    return found


def test_a_daily_time_that_spring_forward_skips_fires_once_at_the_next_valid_time() -> None:
    source = CronSource("30 2 * * *", "Europe/Paris")
    assert ticks(source, datetime(2026, 3, 28, 12, tzinfo=PARIS), 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_a_daily_time_that_fall_back_repeats_fires_once() -> None:
    source = CronSource("30 2 * * *", "Europe/Paris")
    assert ticks(source, datetime(2026, 10, 24, 12, tzinfo=PARIS), 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_hourly_fires_every_real_hour_across_fall_back() -> None:
    source = CronSource("@hourly", "Europe/Paris")
    assert ticks(source, datetime(2026, 10, 25, 1, 30, tzinfo=PARIS), 3) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_a_schedule_is_read_in_its_time_zone() -> None:
    source = CronSource("0 9 * * 1-5", "America/New_York")
    start = datetime(2026, 1, 2, 15, tzinfo=ZoneInfo("UTC"))  # a Friday, 10:00 in New York
    assert ticks(source, start, 1) == ["2026-01-05T09:00:00-05:00"]


@pytest.mark.parametrize(
    ("schedule", "timezone", "field"),
    [
        ("", "UTC", "source.schedule"),
        ("@every_minute", "UTC", "source.schedule"),
        ("* * * *", "UTC", "source.schedule"),
        ("0 0 31 2 *", "UTC", "source.schedule"),
        ("x * * * *", "UTC", "source.schedule"),
        ("* * * * *", "Nowhere/Else", "source.timezone"),
        ("* * * * *", "../../etc/passwd", "source.timezone"),
    ],
)
def test_unreadable_schedules_and_zones_are_refused(
    schedule: str, timezone: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        check(CronSource(schedule, timezone))
    assert caught.value.details["field"] == field


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "ftp://example.com/",
    ],
)
def test_the_default_allow_list_refuses_loopback_private_and_special_addresses(url: str) -> None:
    with pytest.raises(OutboundRefused) as caught:
        asyncio.run(AllowList.parse("").resolve(url))
    assert caught.value.details["field"] == "url"


def test_listed_networks_are_allowed() -> None:
    allow = AllowList.parse("127.0.0.0/8, hooks.internal")
    assert asyncio.run(allow.resolve("http://127.0.0.1:8080/hook")) == ["127.0.0.1"]
    with pytest.raises(OutboundRefused):
        asyncio.run(allow.resolve("http://10.0.0.1/"))
