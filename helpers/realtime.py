"""The real-time consumer Lambda: today's running totals, end-of-day nowcasts and alerts.

A second consumer of the Kinesis stream, beside Firehose: each record is the DynamoDB Streams
record that the pipe forwarded. The same file runs on both backends; for AWS it is zipped alone,
unchanged, as ``realtime.py`` (handler ``realtime.lambda_handler``), so it uses the standard
library only (on AWS the Lambda runtime's boto3, imported when the DynamoDB store is used).

Events
------
- A Kinesis event source mapping's event: ``Records[]`` of ``kinesis.data`` (base64 of the
  DynamoDB Streams record JSON) and ``kinesis.sequenceNumber``. The response is
  ``{"batchItemFailures": [{"itemIdentifier": <sequenceNumber>}]}`` naming the first record
  that could not be read (``ReportBatchItemFailures``: Lambda checkpoints before it and retries
  from it); the records before it are applied. An event without a ``Records`` list raises.
- A scheduled EventBridge event (``"source": "aws.events"``): only re-evaluates alerts by the
  clock, so that a stall is seen while no record arrives.

State (one store: locally the SQLite file ``REALTIME_DB`` names, :class:`SqliteStore`; on AWS
the stack's DynamoDB tables ``EXPECTATIONS_TABLE`` and ``NOWCAST_TABLE``, :class:`DynamoStore`)
-------------------------------------------------------------------------------------------
- totals per UTC day of the order and series (``"total"``, ``"category#<name>"``,
  ``"product#<id>"``): ``units, revenue, orders, last_order_ms`` (newest INSERT's order time),
  ``recent`` (the decayed recent totals below, one per time scale), ``recent_ms`` (the order
  time they were decayed to), ``updated_ms``.
- each order's current contribution: ``day, product_id, category, units, revenue, seq`` (the
  40-digit padded stream sequence number last applied). INSERT adds, MODIFY replaces the
  contribution, REMOVE takes it away and leaves a zero contribution (a tombstone) carrying its
  sequence number; a record whose sequence number is not above the order's is skipped
  (duplicates, redeliveries). A batch's contributions and totals commit atomically, so a kill
  mid-batch and the redelivery give exact totals. Records of orders older than the day before
  "now" are skipped without state: only today's (and yesterday's) totals are kept.
- alerts: ``day, series_id, kind, since, name, state, expected, actual, low, high,
  cleared_at``; and the clock: the newest order time applied. ``expires_at`` (2 days after
  the day) bounds every row (DynamoDB's TTL).

"Now" is the later of the wall clock and the newest order time applied: a simulated day that
runs ahead of the clock is judged by its own time.

Nowcast
-------
The day's running units plus the expected remainder, ``E * (1 - F(now))``, where ``E`` is the
expected day's units and ``F`` the cumulative hourly profile (linear within an hour). Its 90 %
interval adds, in quadrature, the day interval's half width scaled to the remainder and the
count noise of the remainder (``1.645 * sqrt(D * remainder)``, ``D`` the units' dispersion
below). Revenue likewise with the revenue interval.

Alert rule
----------
A running total of the whole day cannot say "it is back to normal" after a burst (the excess
stays in it), so alerts judge *recent* running totals: the units of the series' new orders
with exponentially decaying weight ``exp(-age / T)``, on several time scales ``T``
(``RECENT_MINUTES``, 0.25, 2, 15 and 60 minutes of the day's clock: the short ones catch a busy
series within seconds, the long ones a quiet series at all), each against the same integral of
the expected rate ``L * E * F'(t)`` (``mu``).

- The day's level ``L``: demand on a day runs above or below its forecast as a whole, so the
  level is learned from the day so far, leaving out the longest recent stretch (what an alert
  is about): a gamma prior of mean 1 whose relative error ``r`` is the forecast's (from its
  90 % day interval), updated by the units seen against those expected (in Poisson counts,
  units divided by ``D``). Its relative error ``1/sqrt(shape)`` is never trusted below
  ``LEVEL_MIN_RELATIVE`` (15 %), so that a burst the level absorbed does not make the normal
  rate look low afterwards.
- The noise of a recent total: orders are Poisson, units per order ``q`` add the dispersion
  ``D = E[q^2]/E[q] ~= m + (m - 1)/m`` (``m`` the series' units per order today, 1.5 before
  any), and a decayed Poisson sum has variance ``D`` times the integral with half the time
  scale (``v``); the level's error adds ``mu^2 / shape``. The band is
  ``mu +- BAND_Z * sqrt(D * v + mu^2 / shape)`` (``BAND_Z`` 4), bounded below by 0.
- ``high``: a recent total is above ``band_high * (1 + ALERT_MARGIN)``; ``low``: below
  ``band_low * (1 - ALERT_MARGIN)``; both only on scales where ``mu >= MIN_EXPECTED_UNITS``
  (10), so that small counts never alert on noise.
- ``stalled``: no new order for ``STALL_MINUTES`` while at least ``STALL_MIN_EXPECTED`` orders
  were expected in that silence (``L * E / m * (F(now) - F(last order))``); ``since`` is the
  last order's time, ``expected`` the units expected in the silence.
- One alert per series and episode: a series with an open alert raises no other; the alert is
  cleared once every scale's recent total is back inside its band itself (without the margin:
  the hysteresis that keeps a series at the edge from flapping) and no stall holds. Open
  alerts of a day that has ended are cleared. On AWS each opened or cleared alert is published
  to ``ALERT_TOPIC_ARN``.

Measured on generated days (``tests/test_realtime.py``, the generator's demand as the
expectation): no alert in 700 product-days at 2,000 and 50,000 orders a day; at 50,000 a day,
products of about 20,000, 3,500 and 950 units a day at 3x from noon raised their one alert after 5 to 50
minutes of the day's clock, cut to zero after 0 to 9 minutes (a stall, or a low total), and
each cleared 10 to 50 minutes after the shock ended. The time to an alert shrinks with the
series' rate, down to seconds of the day's clock on the shortest scale.

Environment
-----------
``REALTIME_DB`` (local store), ``EXPECTATIONS_TABLE``, ``NOWCAST_TABLE``, ``ALERT_TOPIC_ARN``
(AWS), ``ALERT_MARGIN`` (0.25), ``STALL_MINUTES`` (15), ``STALL_MIN_EXPECTED`` (20),
``RECENT_MINUTES`` (``0.25,2,15,60``). An empty variable counts as unset.

Expectations (written by each forecast run, read here) are one row per series and upcoming day:
``series_id``, ``day`` (``YYYY-MM-DD``, UTC), ``level``, ``name``, ``units`` with
``units_lo_80``, ``units_hi_80``, ``units_lo_90``, ``units_hi_90``, ``revenue`` with
``revenue_lo_90``, ``revenue_hi_90``, ``profile`` (JSON list of 24 cumulative shares of the
day's units by the end of each UTC hour), ``run_id`` and ``expires_at`` (epoch seconds).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import logging
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger("salescast.realtime")

try:  # the SIMD codec where installed (the local engine); the deployed zip has the stdlib only
    import pybase64

    def _b64decode(data: str) -> bytes:
        try:
            return pybase64.b64decode(data, validate=True)
        except ValueError:  # pybase64 is stricter about excess padding: binascii decides
            return base64.b64decode(data, validate=True)

except ImportError:

    def _b64decode(data: str) -> bytes:
        return base64.b64decode(data, validate=True)


EXPECTATION_FIELDS = (
    "series_id",
    "day",
    "level",
    "name",
    "units",
    "units_lo_80",
    "units_hi_80",
    "units_lo_90",
    "units_hi_90",
    "revenue",
    "revenue_lo_90",
    "revenue_hi_90",
    "profile",
    "run_id",
    "expires_at",
)
"""The fields of an expectation, in the order the local table keeps them."""
TOTAL_FIELDS = (
    "day",
    "series_id",
    "units",
    "revenue",
    "orders",
    "last_order_ms",
    "recent",
    "recent_ms",
    "updated_ms",
    "expires_at",
)
CONTRIBUTION_FIELDS = (
    "order_id",
    "day",
    "product_id",
    "category",
    "units",
    "revenue",
    "seq",
    "expires_at",
)
ALERT_FIELDS = (
    "day",
    "series_id",
    "kind",
    "since",
    "name",
    "state",
    "expected",
    "actual",
    "low",
    "high",
    "cleared_at",
    "expires_at",
)
NOWCAST_FIELDS = (
    "day",
    "series_id",
    "level",
    "name",
    "units",
    "revenue",
    "orders",
    "last_order",
    "elapsed_share",
    "expected_units",
    "expected_so_far",
    "nowcast_units",
    "nowcast_units_lo_90",
    "nowcast_units_hi_90",
    "nowcast_revenue",
    "nowcast_revenue_lo_90",
    "nowcast_revenue_hi_90",
)
"""The fields of a nowcast (:func:`nowcast`)."""
EVENT_SEQ_DIGITS = 40
EXPECTATIONS_BY_DAY = "by-day"
"""The expectations table's index by ``day`` (then ``series_id``): a day of every series."""
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
KEEP_DAYS = 2
"""``expires_at`` is this many days after the end of the row's day."""
BAND_Z = 4.0
"""Standard deviations of the band around the expected recent total."""
MIN_EXPECTED_UNITS = 10.0
"""High and low alerts wait until the expected recent total reaches this."""
LEVEL_MIN_RELATIVE = 0.15
"""The learned day level is never trusted closer than this relative error: demand drifts
within a day, and a burst that the level absorbed must not make the normal rate look low."""
Z_90 = 1.6448536269514722
DEFAULT_UNITS_PER_ORDER = 1.5
CLOCK_READ_S = 1.0
"""How long a store trusts the newest order time it read (another shard's may be newer)."""
JUDGE_EVERY_S = 1.0
"""A batch that moved no total is judged only if this long has passed since the last time."""
_IMAGE = {"INSERT": "NewImage", "MODIFY": "NewImage", "REMOVE": "OldImage"}
_ORDER_DAYS = re.compile(rb'"order_ts":\s*\{\s*"S":\s*"([0-9]{4}-[0-9]{2}-[0-9]{2})').findall
"""The order days of a stream record's images, read from its JSON text."""
_COMPACT_ORDER_TS = b'"order_ts":{"S":"'
_DAY_AT = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}").match


def order_days(raw: bytes) -> list[bytes]:
    """The order days of a stream record's images (``_ORDER_DAYS``), found with ``bytes.find``
    where the JSON is compact, as the pipe writes it: a scan in C, three times cheaper than the
    regular expression on the consumer's busiest path, a backlog of old days.

    Examples
    --------
    >>> order_days(b'{"NewImage":{"order_ts":{"S":"2026-12-07T10:00:00.000Z"}}}')
    [b'2026-12-07']
    >>> order_days(b'{"NewImage": {"order_ts": {"S": "2026-12-07T10:00:00.000Z"}}}')
    [b'2026-12-07']
    >>> order_days(b'{"NewImage":{"order_ts":{"S":"yesterday"}}}')
    []
    """
    at = raw.find(_COMPACT_ORDER_TS)
    if at < 0:
        return _ORDER_DAYS(raw)
    days = []
    while at >= 0:
        at += len(_COMPACT_ORDER_TS)
        day = _DAY_AT(raw, at)
        if day:
            days.append(day.group())
        at = raw.find(_COMPACT_ORDER_TS, at)
    return days


_CANONICAL_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z"
).fullmatch


@dataclass(frozen=True)
class Config:
    """The handler's tuning, from its environment (see the module docstring)."""

    alert_margin: float = 0.25
    stall_minutes: float = 15.0
    stall_min_expected: float = 20.0
    recent_minutes: tuple[float, ...] = (0.25, 2.0, 15.0, 60.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        """The defaults, overridden by the variables set (an empty one counts as unset).

        Examples
        --------
        >>> Config.from_env({"ALERT_MARGIN": "0.5", "RECENT_MINUTES": "1,30"}).recent_minutes
        (1.0, 30.0)
        """
        values: dict[str, Any] = {}
        for name, variable in (
            ("alert_margin", "ALERT_MARGIN"),
            ("stall_minutes", "STALL_MINUTES"),
            ("stall_min_expected", "STALL_MIN_EXPECTED"),
        ):
            raw = environ.get(variable)
            if raw:
                values[name] = _setting(variable, raw, minimum=0.0)
        raw = environ.get("RECENT_MINUTES")
        if raw:
            scales = tuple(
                _setting("RECENT_MINUTES", part, 0.0, above=True) for part in raw.split(",")
            )
            values["recent_minutes"] = tuple(sorted(scales))
        return cls(**values)


def _setting(variable: str, raw: str, minimum: float, above: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum or (above and value == minimum):
        raise ValueError(
            f"{variable}={raw!r}: expected {'numbers above' if above else 'a number of'} 0"
            f"{'' if above else ' or more'}; fix the function's environment"
        )
    return value


class MalformedRecord(ValueError):
    """A record the consumer cannot read; the message names the field and the problem."""


@dataclass(frozen=True)
class Change:
    """One order change read from a stream record."""

    order_id: str
    seq: str
    event_name: str
    day: str
    order_ms: int
    product_id: str
    category: str
    units: float
    revenue: float


# reading records ----------------------------------------------------------------------------


def read_record(record: Mapping[str, Any], oldest: str = "") -> Change | None:
    """The order change in one Kinesis event record, None for a record of another source or
    event (skipped, as the transform drops them) or of an order day before ``oldest`` (found
    without parsing the JSON: a backlog of old days costs little); raise
    :class:`MalformedRecord`."""
    try:
        raw = _b64decode(record["kinesis"]["data"])
        days = order_days(raw)
        if days and max(days).decode() < oldest:
            return None
        stream_record = json.loads(raw)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise MalformedRecord(f"kinesis.data: is not base64 of JSON ({error})") from None
    if not isinstance(stream_record, dict):
        raise MalformedRecord("kinesis.data: is not a JSON object")
    if stream_record.get("eventSource") != "aws:dynamodb":
        return None
    event_name = stream_record.get("eventName")
    image_name = _IMAGE.get(event_name)
    if image_name is None:
        return None
    change = stream_record.get("dynamodb")
    image = change.get(image_name) if isinstance(change, dict) else None
    if not isinstance(image, dict):
        raise MalformedRecord(f"dynamodb.{image_name}: is missing (needed by {event_name})")
    seq = change.get("SequenceNumber")
    if not (isinstance(seq, str) and seq.isdigit() and seq.isascii() and len(seq) <= 40):
        raise MalformedRecord(f"dynamodb.SequenceNumber: is not 1-40 digits ({seq!r:.64})")
    order_id = _text(image, "order_id", image_name)
    product_id = _text(image, "product_id", image_name)
    category = _text(image, "category", image_name)
    order_ms = _epoch_ms(_text(image, "order_ts", image_name), image_name)
    quantity = _number(image, "quantity", image_name)
    price = _number(image, "unit_price", image_name)
    if quantity < 1 or not quantity.is_integer():
        raise MalformedRecord(f"dynamodb.{image_name}.quantity: is {quantity:g}, not 1 or more")
    day = day_of(order_ms)
    return Change(
        order_id,
        seq.zfill(EVENT_SEQ_DIGITS),
        event_name,
        day,
        order_ms,
        product_id,
        category,
        quantity,
        quantity * price,
    )


def _text(image: Mapping[str, Any], name: str, where: str) -> str:
    value = image.get(name)
    text = value.get("S") if isinstance(value, dict) else None
    if not isinstance(text, str) or not text:
        raise MalformedRecord(f"dynamodb.{where}.{name}: is not a non-empty {{'S': text}}")
    return text


def _number(image: Mapping[str, Any], name: str, where: str) -> float:
    value = image.get(name)
    text = value.get("N") if isinstance(value, dict) else None
    try:
        number = float(text)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise MalformedRecord(f"dynamodb.{where}.{name}: is not a {{'N': number}} of 0 or more")
    return number


def _epoch_ms(text: str, where: str) -> int:
    if _CANONICAL_TS(text):  # yyyy-mm-ddThh:mm:ss.mmmZ, as the table writes it
        clock = int(text[11:13]) * 3_600_000 + int(text[14:16]) * 60_000
        return day_start_ms(text[:10]) + clock + int(text[17:19]) * 1000 + int(text[20:23])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedRecord(
            f"dynamodb.{where}.order_ts: is not ISO 8601 ({text!r:.64})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


# applying changes ---------------------------------------------------------------------------


def series_of(product_id: str, category: str) -> tuple[str, str, str]:
    """The series an order counts in."""
    return ("total", f"category#{category}", f"product#{product_id}")


@functools.lru_cache(maxsize=64)
def day_start_ms(day: str) -> int:
    """Epoch milliseconds of a day's midnight (UTC)."""
    return round(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def expires_at(day: str) -> int:
    """Epoch seconds ``KEEP_DAYS`` after the end of ``day`` (DynamoDB's TTL attribute)."""
    return (day_start_ms(day) + (1 + KEEP_DAYS) * MS_PER_DAY) // 1000


def day_of(ms: float) -> str:
    """The UTC day of epoch milliseconds."""
    return _day_of_index(int(ms // MS_PER_DAY))


@functools.lru_cache(maxsize=64)
def _day_of_index(days: int) -> str:
    return datetime.fromtimestamp(days * 86_400, UTC).strftime("%Y-%m-%d")


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def empty_total(day: str, series_id: str, slots: int) -> dict[str, Any]:
    return {
        "day": day,
        "series_id": series_id,
        "units": 0.0,
        "revenue": 0.0,
        "orders": 0,
        "last_order_ms": 0,
        "recent": [0.0] * slots,
        "recent_ms": day_start_ms(day),
        "updated_ms": 0,
        "expires_at": expires_at(day),
    }


def apply_change(
    change: Change,
    prior: Mapping[str, Any] | None,
    totals: dict[tuple[str, str], dict[str, Any]],
    scales_ms: tuple[float, ...],
    now_ms: int,
) -> dict[str, Any] | None:
    """Apply one change to ``totals`` (by (day, series_id); missing rows are created); returns
    the order's new contribution, or None when the change is not newer than ``prior``."""
    if prior is not None and prior["seq"] >= change.seq:
        return None
    if prior is not None and prior["units"] > 0:
        for series_id in series_of(prior["product_id"], prior["category"]):
            total = totals.get((prior["day"], series_id))
            if total is None:
                total = totals[prior["day"], series_id] = empty_total(
                    prior["day"], series_id, len(scales_ms)
                )
            total["units"] -= prior["units"]
            total["revenue"] -= prior["revenue"]
            total["orders"] -= 1
            total["updated_ms"] = now_ms
    removed = change.event_name == "REMOVE"
    day = prior["day"] if removed and prior is not None else change.day
    contribution = {
        "order_id": change.order_id,
        "day": day,
        "product_id": change.product_id,
        "category": change.category,
        "units": 0.0 if removed else change.units,
        "revenue": 0.0 if removed else change.revenue,
        "seq": change.seq,
        "expires_at": expires_at(day),
    }
    if removed:
        return contribution
    for series_id in series_of(change.product_id, change.category):
        total = totals.get((day, series_id))
        if total is None:
            total = totals[day, series_id] = empty_total(day, series_id, len(scales_ms))
        total["units"] += change.units
        total["revenue"] += change.revenue
        total["orders"] += 1
        total["updated_ms"] = now_ms
        if change.event_name == "INSERT":  # new demand: the stall clock and the recent totals
            if len(total["recent"]) != len(scales_ms):  # the scales were changed: start again
                total["recent"] = [0.0] * len(scales_ms)
            total["last_order_ms"] = max(total["last_order_ms"], change.order_ms)
            age = change.order_ms - total["recent_ms"]
            if age >= 0:
                total["recent"] = [
                    units * math.exp(-age / scale) + change.units
                    for units, scale in zip(total["recent"], scales_ms, strict=True)
                ]
                total["recent_ms"] = change.order_ms
            else:  # an order older than the newest: its weight has decayed already
                total["recent"] = [
                    units + change.units * math.exp(age / scale)
                    for units, scale in zip(total["recent"], scales_ms, strict=True)
                ]
    return contribution


# expectations, nowcasts and the band ------------------------------------------------------


def profile_share(profile: list[float], hours: float) -> float:
    """The cumulative share of the day's units by ``hours`` into the day (0..24)."""
    hours = min(24.0, max(0.0, hours))
    hour = min(23, int(hours))
    before = profile[hour - 1] if hour else 0.0
    return before + (profile[hour] - before) * (hours - hour)


def decayed_expected(profile: list[float], units: float, hours: float, tau_h: float) -> float:
    """The integral of the expected rate ``units * F'(s)`` over the day up to ``hours``,
    weighted by ``exp(-(hours - s) / tau_h)``."""
    hours = min(24.0, max(0.0, hours))
    total = 0.0
    first = max(0, int(hours - 40 * tau_h))  # earlier hours weigh under exp(-40)
    for hour in range(first, min(24, math.ceil(hours))):
        rate = units * (profile[hour] - (profile[hour - 1] if hour else 0.0))
        end = min(hour + 1.0, hours)
        total += (
            rate * tau_h * (math.exp(-(hours - end) / tau_h) - math.exp(-(hours - hour) / tau_h))
        )
    return total


def dispersion(total: Mapping[str, Any] | None) -> tuple[float, float]:
    """Units per order ``m`` of the series today (1.5 before any order) and the units' Poisson
    dispersion ``D = E[q^2]/E[q]`` for ``q = 1 + Poisson(m - 1)``."""
    per_order = DEFAULT_UNITS_PER_ORDER
    if total is not None and total["orders"] > 0 and total["units"] >= total["orders"]:
        per_order = total["units"] / total["orders"]
    return per_order, per_order + (per_order - 1) / per_order


def nowcast(
    series_id: str,
    day: str,
    total: Mapping[str, Any] | None,
    expectation: Mapping[str, Any] | None,
    now_ms: float,
) -> dict[str, Any]:
    """A series' end-of-day nowcast at ``now_ms``: the running total plus the expected
    remainder, with a 90 % interval (see the module docstring). Without an expectation the
    nowcast is the running total alone and the expected columns are None."""
    total = total or empty_total(day, series_id, 0)  # a series not sold yet today
    hours = (now_ms - day_start_ms(day)) / MS_PER_HOUR
    row = {
        "day": day,
        "series_id": series_id,
        "level": series_id.split("#", 1)[0],
        "name": series_id.split("#", 1)[-1],
        "units": total["units"],
        "revenue": total["revenue"],
        "orders": total["orders"],
        "last_order": iso(total["last_order_ms"]) if total["last_order_ms"] else None,
        "elapsed_share": None,
        "expected_units": None,
        "expected_so_far": None,
        "nowcast_units": total["units"],
        "nowcast_units_lo_90": total["units"],
        "nowcast_units_hi_90": total["units"],
        "nowcast_revenue": total["revenue"],
        "nowcast_revenue_lo_90": total["revenue"],
        "nowcast_revenue_hi_90": total["revenue"],
    }
    if expectation is None:
        return row
    share = profile_share(expectation["profile"], hours)
    left = 1.0 - share
    _, spread = dispersion(total)
    units_left = expectation["units"] * left
    units_half = math.hypot(
        (expectation["units_hi_90"] - expectation["units_lo_90"]) / 2 * left,
        Z_90 * math.sqrt(spread * units_left),
    )
    revenue_left = expectation["revenue"] * left
    per_unit = expectation["revenue"] / expectation["units"] if expectation["units"] else 0.0
    revenue_half = math.hypot(
        (expectation["revenue_hi_90"] - expectation["revenue_lo_90"]) / 2 * left,
        Z_90 * math.sqrt(spread * units_left) * per_unit,
    )
    row.update(
        level=expectation["level"],
        name=expectation["name"],
        elapsed_share=share,
        expected_units=expectation["units"],
        expected_so_far=expectation["units"] * share,
        nowcast_units=total["units"] + units_left,
        nowcast_units_lo_90=total["units"] + max(0.0, units_left - units_half),
        nowcast_units_hi_90=total["units"] + units_left + units_half,
        nowcast_revenue=total["revenue"] + revenue_left,
        nowcast_revenue_lo_90=total["revenue"] + max(0.0, revenue_left - revenue_half),
        nowcast_revenue_hi_90=total["revenue"] + revenue_left + revenue_half,
    )
    return row


@dataclass(frozen=True)
class Judgement:
    """A series' recent total on one time scale against its band, and the verdict."""

    minutes: float
    expected: float
    actual: float
    band_low: float
    band_high: float
    low: float
    high: float
    kind: str | None  # the alert it calls for, None if none
    since_ms: float

    @property
    def in_band(self) -> bool:
        return self.kind != "stalled" and self.band_low <= self.actual <= self.band_high


def judge(
    total: Mapping[str, Any] | None,
    expectation: Mapping[str, Any],
    now_ms: float,
    config: Config,
) -> list[Judgement]:
    """Judge a series at ``now_ms`` by the rule of the module docstring: one judgement per
    time scale, the stall first if there is one."""
    day = expectation["day"]
    total = total or empty_total(day, expectation["series_id"], len(config.recent_minutes))
    start = day_start_ms(day)
    hours = (now_ms - start) / MS_PER_HOUR
    profile, units = expectation["profile"], expectation["units"]
    per_order, spread = dispersion(total)
    # the day's level so far, before the longest recent stretch, shrunk to the forecast's
    relative = (
        (expectation["units_hi_90"] - expectation["units_lo_90"]) / (2 * Z_90 * units)
        if units
        else 0.0
    )
    prior = 1 / max(relative, 1e-3) ** 2  # a gamma prior of mean 1 and that relative error
    recent = (
        total["recent"]
        if len(total["recent"]) == len(config.recent_minutes)
        else [0.0] * len(config.recent_minutes)
    )
    longest = config.recent_minutes[-1] / 60
    seen = max(
        0.0,
        total["units"]
        - recent[-1] * math.exp(-max(0.0, now_ms - total["recent_ms"]) / (longest * MS_PER_HOUR)),
    )
    due = max(
        0.0,
        units * profile_share(profile, hours) - decayed_expected(profile, units, hours, longest),
    )
    shape = prior + seen / spread
    level = shape / (prior + due / spread)
    shape = min(shape, max(prior, 1 / LEVEL_MIN_RELATIVE**2))
    last = max(total["last_order_ms"], start)
    silent = profile_share(profile, hours) - profile_share(profile, (last - start) / MS_PER_HOUR)
    if (
        now_ms - last >= config.stall_minutes * 60_000
        and level * units / per_order * silent >= config.stall_min_expected
    ):
        expected = level * units * silent
        return [Judgement(config.stall_minutes, expected, 0.0, 0, 0, 0, 0, "stalled", last)]
    judgements = []
    for minutes, decayed in zip(config.recent_minutes, recent, strict=True):
        scale_h = minutes / 60
        expected = level * decayed_expected(profile, units, hours, scale_h)
        variance = level * decayed_expected(profile, units, hours, scale_h / 2)
        actual = decayed * math.exp(
            -max(0.0, now_ms - total["recent_ms"]) / (scale_h * MS_PER_HOUR)
        )
        deviation = math.sqrt(spread * variance + expected**2 / shape)
        band_low = max(0.0, expected - BAND_Z * deviation)
        band_high = expected + BAND_Z * deviation
        low, high = band_low * (1 - config.alert_margin), band_high * (1 + config.alert_margin)
        kind = None
        if expected >= MIN_EXPECTED_UNITS and actual > high:
            kind = "high"
        elif expected >= MIN_EXPECTED_UNITS and actual < low:
            kind = "low"
        judgements.append(
            Judgement(minutes, expected, actual, band_low, band_high, low, high, kind, now_ms)
        )
    return judgements


def evaluate(
    totals: Mapping[str, Mapping[str, Any]],
    expectations: Mapping[str, Mapping[str, Any]],
    open_alerts: Iterable[Mapping[str, Any]],
    now_ms: float,
    config: Config,
) -> list[dict[str, Any]]:
    """The alerts to write at ``now_ms``: new open ones and cleared ones (see the module
    docstring); ``totals`` and ``expectations`` are today's by series, ``open_alerts`` every
    open alert of any day."""
    today = day_of(now_ms)
    changed, open_by_series = [], {}
    for alert in open_alerts:
        if alert["day"] != today:  # the day ended
            changed.append({**alert, "state": "cleared", "cleared_at": iso(now_ms)})
        else:
            open_by_series[alert["series_id"]] = alert
    for series_id, expectation in expectations.items():
        judgements = judge(totals.get(series_id), expectation, now_ms, config)
        alert = open_by_series.get(series_id)
        if alert is not None:
            if all(j.in_band or j.expected < MIN_EXPECTED_UNITS for j in judgements):
                changed.append(
                    {
                        **alert,
                        "state": "cleared",
                        "cleared_at": iso(now_ms),
                    }
                )
            continue
        verdict = next((j for j in judgements if j.kind is not None), None)
        if verdict is not None:
            changed.append(
                {
                    "day": today,
                    "series_id": series_id,
                    "kind": verdict.kind,
                    "since": iso(verdict.since_ms),
                    "name": expectation["name"],
                    "state": "open",
                    "expected": verdict.expected,
                    "actual": verdict.actual,
                    "low": verdict.low,
                    "high": verdict.high,
                    "cleared_at": None,
                    "expires_at": expires_at(today),
                }
            )
    return changed


# the handler ----------------------------------------------------------------------------------


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, list]:
    """Apply a Kinesis batch of order changes (or a scheduled tick) and judge the alerts.

    Parameters
    ----------
    event : dict
        A Kinesis event source mapping's event (``Records``), or a scheduled EventBridge event
        (``"source": "aws.events"``).
    context : object
        The Lambda context (unused).

    Returns
    -------
    dict
        ``{"batchItemFailures": [...]}``: empty, or the first record that could not be read
        (``itemIdentifier`` its ``kinesis.sequenceNumber``); the records before it are applied.

    Raises
    ------
    ValueError
        If the event is neither (Lambda then retries the batch, bisecting it).

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["REALTIME_DB"] = os.path.join(tempfile.mkdtemp(), "realtime.sqlite")
    >>> lambda_handler({"Records": []}, None)
    {'batchItemFailures': []}
    """
    config = Config.from_env()
    store = open_store()
    if isinstance(event, Mapping) and event.get("source") == "aws.events":
        store.judge(config, wall_ms())
        return {"batchItemFailures": []}
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise ValueError("event.Records: is missing or not a list; expected a Kinesis event")
    changes, failures = [], []
    oldest = day_of(store.now_ms(wall_ms()) - MS_PER_DAY)
    for record in records:
        try:
            change = read_record(record, oldest)
        except MalformedRecord as error:
            sequence = (record.get("kinesis") or {}).get("sequenceNumber")
            if not isinstance(sequence, str) or not sequence:
                raise ValueError(f"a record without kinesis.sequenceNumber: {error}") from None
            logger.warning(json.dumps({"sequenceNumber": sequence, "reason": str(error)}))
            failures.append({"itemIdentifier": sequence})
            break
        if change is not None:
            changes.append(change)
    # judge when totals moved, else at most every JUDGE_EVERY_S (a backlog of old days, or
    # records skipped as redelivered, move nothing a judgement reads but the clock); not while
    # the stream replays the past (a backlog of today's orders), which reads as silence
    if (store.apply(changes, config, wall_ms()) or store.judge_due()) and not replaying(
        changes, store.now_ms(wall_ms()), config
    ):
        store.judge(config, wall_ms())
    return {"batchItemFailures": failures}


def replaying(changes: list[Change], now_ms: int, config: Config) -> bool:
    """Whether a batch's new orders are all older than ``STALL_MINUTES`` before "now": the
    stream is delivering a backlog (a consumer catching up, today's orders written late), not
    the present, so the series it has not reached yet are not silent. Amendments and
    cancellations of old orders are normal live traffic and do not count."""
    newest = max((c.order_ms for c in changes if c.event_name == "INSERT"), default=None)
    return newest is not None and now_ms - newest > config.stall_minutes * 60_000


def wall_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return round(time.time() * 1000)


_stores: dict[tuple, Any] = {}


def open_store() -> SqliteStore | DynamoStore:
    """The store the environment names (``REALTIME_DB`` locally, else the DynamoDB tables),
    opened once per runtime process."""
    path = os.environ.get("REALTIME_DB")
    if path:
        key: tuple = ("sqlite", path)
        if key not in _stores:
            _stores[key] = SqliteStore(path)
        return _stores[key]
    names = tuple(
        os.environ.get(v) for v in ("EXPECTATIONS_TABLE", "NOWCAST_TABLE", "ALERT_TOPIC_ARN")
    )
    if not all(names[:2]):
        raise ValueError(
            "set REALTIME_DB (local) or EXPECTATIONS_TABLE and NOWCAST_TABLE (aws) in the"
            " function's environment"
        )
    key = ("dynamodb", *names)
    if key not in _stores:
        _stores[key] = DynamoStore(*names)
    return _stores[key]


# the local store ----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS expectations (
    series_id TEXT NOT NULL, day TEXT NOT NULL, level TEXT NOT NULL, name TEXT NOT NULL,
    units REAL NOT NULL, units_lo_80 REAL NOT NULL, units_hi_80 REAL NOT NULL,
    units_lo_90 REAL NOT NULL, units_hi_90 REAL NOT NULL,
    revenue REAL NOT NULL, revenue_lo_90 REAL NOT NULL, revenue_hi_90 REAL NOT NULL,
    profile TEXT NOT NULL, run_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (series_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    day TEXT NOT NULL, series_id TEXT NOT NULL, units REAL NOT NULL, revenue REAL NOT NULL,
    orders INTEGER NOT NULL, last_order_ms INTEGER NOT NULL, recent TEXT NOT NULL,
    recent_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (day, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contributions (
    order_id TEXT PRIMARY KEY, day TEXT NOT NULL, product_id TEXT NOT NULL,
    category TEXT NOT NULL, units REAL NOT NULL, revenue REAL NOT NULL, seq TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    day TEXT NOT NULL, series_id TEXT NOT NULL, kind TEXT NOT NULL, since TEXT NOT NULL,
    name TEXT NOT NULL, state TEXT NOT NULL, expected REAL, actual REAL, low REAL, high REAL,
    cleared_at TEXT, expires_at INTEGER NOT NULL,
    PRIMARY KEY (day, series_id, kind, since)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), latest_order_ms INTEGER);
"""


class _Store:
    """What both stores share: the clock, applying a batch, judging alerts, nowcasts.

    A store provides ``expectations(day)``, ``totals(day)``, ``alerts(open_only)``,
    ``latest_order_ms()``, ``_write_alerts(alerts)`` and ``_apply(changes, config, now_ms)``.
    """

    _expectations: dict[str, tuple[float, dict]]
    _clock: tuple[float, int] = (-math.inf, 0)  # when the newest order time was read, and it
    _judged_at: float = -math.inf

    def now_ms(self, wall: int | None = None) -> int:
        """ "Now" as the consumer judges it: the later of the clock and the newest order
        (read again at most every ``CLOCK_READ_S``; this process's own writes at once)."""
        read_at, latest = self._clock
        if time.monotonic() - read_at > CLOCK_READ_S:
            latest = self.latest_order_ms()
            self._clock = (time.monotonic(), latest)
        return max(wall_ms() if wall is None else wall, latest)

    def _moved_clock(self, newest: int) -> None:
        """This process applied orders up to ``newest``."""
        read_at, latest = self._clock
        self._clock = (read_at, max(latest, newest))

    def judge_due(self) -> bool:
        """Whether ``JUDGE_EVERY_S`` has passed since the last judgement."""
        return time.monotonic() - self._judged_at >= JUDGE_EVERY_S

    def apply(self, changes: list[Change], config: Config, wall: int) -> int:
        """Apply a batch's changes atomically (see the module docstring); returns how many
        were newer than the orders' contributions (the others are skipped)."""
        now_ms = self.now_ms(wall)
        changes = [change for change in changes if change.day >= day_of(now_ms - MS_PER_DAY)]
        if not changes:
            return 0
        applied = self._apply(changes, config, now_ms)
        self._moved_clock(max((c.order_ms for c in changes if c.event_name == "INSERT"), default=0))
        return applied

    def judge(self, config: Config, wall: int) -> list[dict[str, Any]]:
        """Open and clear alerts at "now"; returns the alerts written."""
        self._judged_at = time.monotonic()
        now_ms = self.now_ms(wall)
        day = day_of(now_ms)
        expectations = self._cached_expectations(day)
        open_alerts = self.alerts(open_only=True)
        if not expectations and not open_alerts:
            return []
        changed = evaluate(self.totals(day), expectations, open_alerts, now_ms, config)
        if changed:
            self._write_alerts(changed)
            for alert in changed:
                logger.info(json.dumps(alert))
        return changed

    def _cached_expectations(self, day: str) -> dict[str, dict[str, Any]]:
        """The day's expectations, read again at most every 10 s (a new run takes over)."""
        read_at, found = self._expectations.get(day, (-math.inf, {}))
        if time.monotonic() - read_at > 10:
            found = self.expectations(day)
            self._expectations = {day: (time.monotonic(), found)}
        return found

    def nowcasts(self, day: str | None = None, wall: int | None = None) -> list[dict[str, Any]]:
        """Every series' nowcast of ``day`` (today by "now"), by ``series_id``."""
        now_ms = self.now_ms(wall)
        day = day or day_of(now_ms)
        totals, expectations = self.totals(day), self.expectations(day)
        return [
            nowcast(series_id, day, totals.get(series_id), expectations.get(series_id), now_ms)
            for series_id in sorted(set(totals) | set(expectations))
        ]


def plan(
    changes: list[Change],
    prior: Mapping[str, Mapping[str, Any]],
    totals: dict[tuple[str, str], dict[str, Any]],
    config: Config,
    now_ms: int,
) -> dict[str, dict[str, Any]]:
    """Apply changes in order to ``totals`` from the orders' ``prior`` contributions; returns
    the new contributions of the orders whose changes were applied."""
    scales_ms = tuple(minutes * 60_000 for minutes in config.recent_minutes)
    newest = max((c.order_ms for c in changes if c.event_name == "INSERT"), default=0)
    applied: dict[str, dict[str, Any]] = {}
    for change in changes:
        current = applied.get(change.order_id) or prior.get(change.order_id)
        contribution = apply_change(change, current, totals, scales_ms, max(now_ms, newest))
        if contribution is not None:
            applied[change.order_id] = contribution
    return applied


class SqliteStore(_Store):
    """The consumer's state in one SQLite file (the local stand-in for its DynamoDB tables)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(_SCHEMA)
        self._expectations = {}

    def put_expectations(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write expectations, replacing those of the same series and day; returns the count."""
        values = [_expectation_values(row) for row in rows]
        marks = ", ".join("?" * len(EXPECTATION_FIELDS))
        with self._transaction() as connection:
            connection.executemany(
                f"INSERT OR REPLACE INTO expectations ({', '.join(EXPECTATION_FIELDS)}) "
                f"VALUES ({marks})",
                values,
            )
        self._expectations.clear()
        return len(values)

    def expectations(self, day: str) -> dict[str, dict[str, Any]]:
        """The day's expectations by ``series_id``, ``profile`` as a list."""
        return self._day_by_series("expectations", EXPECTATION_FIELDS, "profile", day)

    def _day_by_series(
        self, table: str, fields: tuple[str, ...], json_field: str, day: str
    ) -> dict[str, dict[str, Any]]:
        """A table's rows of ``day`` by ``series_id``, ``json_field`` decoded."""
        cursor = self._connection.execute(
            f"SELECT {', '.join(fields)} FROM {table} WHERE day = ?", (day,)
        )
        found = {}
        for values in cursor:
            row = dict(zip(fields, values, strict=True))
            row[json_field] = json.loads(row[json_field])
            found[row["series_id"]] = row
        return found

    def latest_order_ms(self) -> int:
        return self._connection.execute(
            "SELECT coalesce(max(latest_order_ms), 0) FROM clock"
        ).fetchone()[0]

    def _apply(self, changes: list[Change], config: Config, now_ms: int) -> int:
        """The batch in one transaction: contributions read, totals moved, both written."""
        with self._transaction() as connection:
            ids = list({c.order_id for c in changes})
            prior: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                cursor = connection.execute(
                    f"SELECT {', '.join(CONTRIBUTION_FIELDS)} FROM contributions"
                    f" WHERE order_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for values in cursor:
                    prior[values[0]] = dict(zip(CONTRIBUTION_FIELDS, values, strict=True))
            totals = {
                (day, series_id): row
                for day in {c.day for c in changes} | {p["day"] for p in prior.values()}
                for series_id, row in self.totals(day).items()
            }
            before = {key: dict(row) for key, row in totals.items()}
            applied = plan(changes, prior, totals, config, now_ms)
            marks = ", ".join("?" * len(CONTRIBUTION_FIELDS))
            connection.executemany(
                f"INSERT OR REPLACE INTO contributions VALUES ({marks})",
                [tuple(c[f] for f in CONTRIBUTION_FIELDS) for c in applied.values()],
            )
            connection.executemany(
                f"INSERT OR REPLACE INTO totals VALUES ({', '.join('?' * len(TOTAL_FIELDS))})",
                [_total_values(row) for key, row in totals.items() if before.get(key) != row],
            )
            newest = max((c.order_ms for c in changes if c.event_name == "INSERT"), default=0)
            if newest:
                connection.execute(
                    "INSERT INTO clock VALUES (1, ?) ON CONFLICT(id) DO UPDATE"
                    " SET latest_order_ms = max(latest_order_ms, excluded.latest_order_ms)",
                    (newest,),
                )
        return len(applied)

    def totals(self, day: str) -> dict[str, dict[str, Any]]:
        """The day's running totals by ``series_id``."""
        return self._day_by_series("totals", TOTAL_FIELDS, "recent", day)

    def alerts(self, open_only: bool = False) -> list[dict[str, Any]]:
        """Alerts, oldest first; only the open ones with ``open_only``."""
        where = "WHERE state = 'open'" if open_only else ""
        cursor = self._connection.execute(
            f"SELECT {', '.join(ALERT_FIELDS)} FROM alerts {where} ORDER BY since, series_id"
        )
        return [dict(zip(ALERT_FIELDS, values, strict=True)) for values in cursor]

    def _write_alerts(self, alerts: list[dict[str, Any]]) -> None:
        with self._transaction() as connection:
            connection.executemany(
                f"INSERT OR REPLACE INTO alerts VALUES ({', '.join('?' * len(ALERT_FIELDS))})",
                [tuple(alert[f] for f in ALERT_FIELDS) for alert in alerts],
            )

    def trim(self, now: float | None = None) -> int:
        """Delete the rows whose ``expires_at`` (epoch seconds) has passed, as DynamoDB's TTL
        does; returns how many."""
        now = time.time() if now is None else now
        with self._transaction() as connection:
            return sum(
                connection.execute(f"DELETE FROM {table} WHERE expires_at < ?", (now,)).rowcount
                for table in ("expectations", "totals", "contributions", "alerts")
            )

    def _transaction(self):
        return _Transaction(self._connection)

    def close(self) -> None:
        self._connection.close()


class DynamoStore(_Store):
    """The consumer's state in the stack's DynamoDB tables; opened and cleared alerts are
    published to the SNS topic (``Subject`` ``salescast alert: <kind> <name>``, ``Message``
    the alert's JSON).

    Items of the nowcast table (``pk`` HASH, ``sk`` RANGE, TTL attribute ``expires_at``):
    ``TOTAL#<day>`` / ``<series_id>`` (the totals, ``recent`` as JSON text, and ``version``),
    ``ORDER#<order_id>`` / ``ORDER`` (the contribution), ``ALERT#<day>`` /
    ``<series_id>#<kind>#<since>`` (the alert) and ``CLOCK`` / ``CLOCK``
    (``latest_order_ms``). The expectations table is keyed ``series_id`` / ``day`` and read by
    its index :data:`EXPECTATIONS_BY_DAY`; forecast runs write it
    (:func:`helpers.aws.realtime.publish_expectations`).

    A batch is written in transactions of at most ``MAX_TRANSACTION_ITEMS`` items: each
    holds some of the batch's changes, their orders' contributions and the totals as they
    stand after them, every item conditioned on the version read (the order's ``seq``, the
    total's ``version``). A transaction is all or nothing, so a crash between two leaves the
    totals exact for the changes written, and the redelivery skips those by their ``seq``;
    a conflict with another shard's invocation reads again and retries.
    """

    MAX_TRANSACTION_ITEMS = 100
    RETRIES = 8

    def __init__(
        self,
        expectations_table: str,
        nowcast_table: str,
        topic_arn: str | None = None,
        dynamodb: Any = None,
        sns: Any = None,
    ):
        import boto3  # the Lambda runtime ships it; only this store needs it

        self.expectations_table, self.nowcast_table, self.topic_arn = (
            expectations_table,
            nowcast_table,
            topic_arn,
        )
        self.dynamodb = dynamodb or boto3.client("dynamodb")
        self.sns = sns or (boto3.client("sns") if topic_arn else None)
        self._expectations = {}

    # reads --------------------------------------------------------------------------------

    def expectations(self, day: str) -> dict[str, dict[str, Any]]:
        found = {}
        for item in self._pages(  # an index is read eventually consistent: a run's rows
            "query",  # show within a second, and a new run's replace a day's as they come
            TableName=self.expectations_table,
            IndexName=EXPECTATIONS_BY_DAY,
            KeyConditionExpression="#d = :day",
            ExpressionAttributeNames={"#d": "day"},  # a reserved word in expressions
            ExpressionAttributeValues={":day": {"S": day}},
        ):
            row = _from_item(item)
            row["profile"] = json.loads(row["profile"])
            found[row["series_id"]] = row
        return found

    def totals(self, day: str) -> dict[str, dict[str, Any]]:
        found = {}
        for item in self._query(f"TOTAL#{day}"):
            row = _from_item(item)
            row["recent"] = json.loads(row["recent"])
            found[row["series_id"]] = row
        return found

    def alerts(self, open_only: bool = False) -> list[dict[str, Any]]:
        """Alerts of today and yesterday (by "now"; older ones expire), oldest first."""
        now_ms = self.now_ms()
        rows = [
            _from_item(item)
            for day in (day_of(now_ms - MS_PER_DAY), day_of(now_ms))
            for item in self._query(f"ALERT#{day}")
        ]
        rows = [{field: row.get(field) for field in ALERT_FIELDS} for row in rows]
        if open_only:
            rows = [row for row in rows if row["state"] == "open"]
        return sorted(rows, key=lambda row: (row["since"], row["series_id"]))

    def latest_order_ms(self) -> int:
        item = self.dynamodb.get_item(
            TableName=self.nowcast_table,
            Key={"pk": {"S": "CLOCK"}, "sk": {"S": "CLOCK"}},
            ConsistentRead=True,
        ).get("Item")
        return int(item["latest_order_ms"]["N"]) if item else 0

    def _query(self, pk: str) -> list[dict]:
        return self._pages(
            "query",
            TableName=self.nowcast_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )

    def _pages(self, operation: str, **request: Any) -> list[dict]:
        items, start = [], None
        while True:
            page = getattr(self.dynamodb, operation)(
                **request, **({"ExclusiveStartKey": start} if start else {})
            )
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def _get(self, keys: list[dict]) -> dict[tuple[str, str], dict]:
        """Items by (pk, sk), read consistently, 100 keys a request."""
        found = {}
        for start in range(0, len(keys), 100):
            request = {
                self.nowcast_table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            for attempt in range(self.RETRIES):
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self.nowcast_table, []):
                    found[item["pk"]["S"], item["sk"]["S"]] = item
                request = answer.get("UnprocessedKeys")
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
        return found

    # writes -------------------------------------------------------------------------------

    def _apply(self, changes: list[Change], config: Config, now_ms: int) -> int:
        applied, attempts = 0, 0
        while changes:
            try:
                done, count = self._apply_some(changes, config, now_ms)
            except self.dynamodb.exceptions.TransactionCanceledException:
                attempts += 1  # another shard's invocation moved a total first: read again
                if attempts >= self.RETRIES:
                    raise
                time.sleep(0.02 * 2**attempts)
                continue
            changes, applied = changes[done:], applied + count
        return applied

    def _apply_some(self, changes: list[Change], config: Config, now_ms: int) -> tuple[int, int]:
        """Write as many of the changes as one transaction holds; returns how many it took
        and how many of those were applied."""
        ids = list(dict.fromkeys(c.order_id for c in changes))
        orders = self._get([{"pk": {"S": f"ORDER#{i}"}, "sk": {"S": "ORDER"}} for i in ids])
        prior = {key[0].removeprefix("ORDER#"): _from_item(item) for key, item in orders.items()}
        keys = {key for change in changes for key in _total_keys(change, prior)}
        stored = self._get([{"pk": {"S": f"TOTAL#{d}"}, "sk": {"S": s}} for d, s in keys])
        totals, versions = {}, {}
        for item in stored.values():
            row = _from_item(item)
            row["recent"] = json.loads(row["recent"])
            versions[row["day"], row["series_id"]] = row.pop("version")
            totals[row["day"], row["series_id"]] = row
        # take changes while their orders and totals fit one transaction
        taken, touched = 0, set()
        for change in changes:
            needs = {("ORDER", change.order_id), *_total_keys(change, prior)}
            if taken and len(touched | needs) > self.MAX_TRANSACTION_ITEMS:
                break
            touched |= needs
            taken += 1
        before = {key: dict(row) for key, row in totals.items()}
        applied = plan(changes[:taken], prior, totals, config, now_ms)
        actions = []
        for order_id, contribution in applied.items():
            item = {"pk": f"ORDER#{order_id}", "sk": "ORDER", **contribution}
            old = prior.get(order_id)
            actions.append(self._put(item, "seq", old and old["seq"]))
        for key, row in totals.items():
            if before.get(key) == row:
                continue
            version = versions.get(key)
            item = {
                "pk": f"TOTAL#{key[0]}",
                "sk": key[1],
                **row,
                "recent": json.dumps(row["recent"]),
                "version": (version or 0) + 1,
            }
            actions.append(self._put(item, "version", version))
        if actions:
            self.dynamodb.transact_write_items(TransactItems=actions)
        newest = max((c.order_ms for c in changes[:taken] if c.event_name == "INSERT"), default=0)
        if newest:  # the clock moves forward only, apart from the transaction
            with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
                self.dynamodb.update_item(
                    TableName=self.nowcast_table,
                    Key={"pk": {"S": "CLOCK"}, "sk": {"S": "CLOCK"}},
                    UpdateExpression="SET latest_order_ms = :t",
                    ConditionExpression="attribute_not_exists(latest_order_ms)"
                    " OR latest_order_ms < :t",
                    ExpressionAttributeValues={":t": {"N": str(newest)}},
                )
        return taken, len(applied)

    def _put(self, row: Mapping[str, Any], field: str, old: Any) -> dict:
        """A transaction's Put of an item, conditioned on ``field`` still being ``old`` (or
        the item not existing when ``old`` is None)."""
        put: dict[str, Any] = {"TableName": self.nowcast_table, "Item": _to_item(row)}
        if old is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#f = :old"
            put["ExpressionAttributeNames"] = {"#f": field}
            put["ExpressionAttributeValues"] = _to_item({":old": old})
        return {"Put": put}

    def _write_alerts(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            item = {
                "pk": f"ALERT#{alert['day']}",
                "sk": f"{alert['series_id']}#{alert['kind']}#{alert['since']}",
                **alert,
            }
            self.dynamodb.put_item(TableName=self.nowcast_table, Item=_to_item(item))
            if self.sns is not None:
                self.sns.publish(
                    TopicArn=self.topic_arn,
                    Subject=f"salescast alert: {alert['kind']} {alert['name']}"[:100],
                    Message=json.dumps(alert),
                )


def _total_keys(change: Change, prior: Mapping[str, Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (day, series_id) of the totals a change moves: its own and its order's prior."""
    keys = {(change.day, s) for s in series_of(change.product_id, change.category)}
    old = prior.get(change.order_id)
    if old is not None:
        keys |= {(old["day"], s) for s in series_of(old["product_id"], old["category"])}
    return keys


def _to_item(row: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A row as DynamoDB attribute values: numbers as ``N``, text as ``S``, None left out."""
    item = {}
    for name, value in row.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            item[name] = {"S": str(value)}
        else:
            item[name] = {
                "N": repr(int(value))
                if float(value).is_integer() and abs(value) < 2**53
                else repr(float(value))
            }
    return item


def _from_item(item: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """DynamoDB attribute values as a row; numbers as int when whole, else float."""
    row: dict[str, Any] = {}
    for name, value in item.items():
        if name in ("pk", "sk"):
            continue
        if "N" in value:
            number = float(value["N"])
            row[name] = int(number) if number.is_integer() and "." not in value["N"] else number
        else:
            row[name] = value.get("S")
    return row


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on an error."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, trace) -> None:
        self.connection.execute("ROLLBACK" if kind else "COMMIT")


def _total_values(row: Mapping[str, Any]) -> tuple:
    return tuple(json.dumps(row[f]) if f == "recent" else row[f] for f in TOTAL_FIELDS)


def _expectation_values(row: Mapping[str, Any]) -> tuple:
    missing = [name for name in EXPECTATION_FIELDS if name not in row]
    if missing:
        raise ValueError(f"expectation {row.get('series_id')!r} lacks {', '.join(missing)}")
    profile = row["profile"]
    if not isinstance(profile, str):
        profile = json.dumps([float(share) for share in profile])
    return tuple(profile if name == "profile" else row[name] for name in EXPECTATION_FIELDS)
