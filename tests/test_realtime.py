"""The real-time consumer (helpers/realtime.py): running totals, nowcasts, alerts, and the
consumer wired into the local platform."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers import realtime as rt
from helpers.generate import SalesParams, backfill, expected_daily_units, product_catalog
from helpers.local.dynamodb import Table
from helpers.schema import item_to_order, validated_table
from tests.test_crash import kill_writers, writer_script

FUTURE = datetime.now(UTC).date() + timedelta(days=2)
"""A day ahead of the wall clock: its orders set the consumer's "now"."""


# building events and expectations -------------------------------------------------------------


def kinesis_event(texts: list[str], first: int = 1) -> dict:
    """A Kinesis event source mapping's event carrying stream record texts."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "k",
                    "sequenceNumber": f"49{0:06d}{first + index:048d}",
                    "data": base64.b64encode(text.encode()).decode(),
                    "approximateArrivalTimestamp": 1.0,
                },
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{first + index}",
            }
            for index, text in enumerate(texts)
        ]
    }


def stream_texts(table: Table) -> list[str]:
    return [text.decode() for _, _, text, _ in table.read_stream(0, 1_000_000)]


def order(number: int, day: date = FUTURE, **changes) -> dict:
    return {
        "order_id": f"o-{number:05d}",
        "order_ts": f"{day}T{number % 24:02d}:15:00.000Z",
        "customer_id": "c-1",
        "product_id": f"p-{number % 3}",
        "product_name": "Lamp",
        "category": "home" if number % 2 else "toys",
        "channel": "web",
        "quantity": 1 + number % 4,
        "unit_price": 2.5 + number,
        **changes,
    }


def expected_totals(orders: list[dict]) -> dict[str, tuple[float, float, int]]:
    """(units, revenue, orders) per series of live orders."""
    found: dict[str, list] = {}
    for row in orders:
        for series_id in rt.series_of(row["product_id"], row["category"]):
            entry = found.setdefault(series_id, [0.0, 0.0, 0])
            entry[0] += row["quantity"]
            entry[1] += row["quantity"] * row["unit_price"]
            entry[2] += 1
    return {key: tuple(value) for key, value in found.items()}


def assert_totals(store: rt.SqliteStore, day, orders: list[dict]) -> None:
    totals = store.totals(str(day))
    want = expected_totals(orders)
    live = {key: row for key, row in totals.items() if row["orders"] or key in want}
    assert set(live) == set(want)
    for series_id, (units, revenue, count) in want.items():
        row = totals[series_id]
        assert (row["units"], row["orders"]) == (units, count), series_id
        assert row["revenue"] == pytest.approx(revenue, rel=1e-12), series_id


def flat_profile() -> list[float]:
    return [(hour + 1) / 24 for hour in range(24)]


def expectation(series_id: str, day, units: float, relative: float = 0.1, profile=None) -> dict:
    """One expectation row with a 90 % interval of ``relative`` standard deviation."""
    half = rt.Z_90 * relative * units
    return {
        "series_id": series_id,
        "day": str(day),
        "level": series_id.split("#")[0],
        "name": series_id.split("#")[-1],
        "units": units,
        "units_lo_80": units * (1 - 1.2816 * relative),
        "units_hi_80": units * (1 + 1.2816 * relative),
        "units_lo_90": max(0.0, units - half),
        "units_hi_90": units + half,
        "revenue": 10 * units,
        "revenue_lo_90": 10 * max(0.0, units - half),
        "revenue_hi_90": 10 * (units + half),
        "profile": profile or flat_profile(),
        "run_id": "test",
        "expires_at": rt.expires_at(str(day)),
    }


def generated_expectations(params: SalesParams, day: date) -> list[dict]:
    """Every series' expectation from the generator's true demand (its noise as interval),
    and the generator's hourly profile."""
    truth = expected_daily_units(params, day, day + timedelta(days=1))
    prices = product_catalog(params).set_index("product_id").base_price
    truth["revenue"] = truth.expected_units * truth.product_id.map(prices)
    per_order = truth.expected_units / truth.expected_orders
    truth["variance"] = per_order**2 * (
        truth.expected_orders + params.noise * truth.expected_orders**2
    ) + truth.expected_orders * (per_order - 1)
    shares = np.cumsum(params.hourly_profile)
    profile = list(shares / shares[-1])
    truth["product"] = "product#" + truth.product_id
    truth["category_id"] = "category#" + truth.category
    truth["total"] = "total"
    rows = []
    for column in ("product", "category_id", "total"):
        for series_id, group in truth.groupby(column):
            units, revenue = group.expected_units.sum(), group.revenue.sum()
            relative = math.sqrt(group.variance.sum()) / units
            row = expectation(series_id, day, units, relative, profile)
            rows.append({**row, "revenue": revenue})
    return rows


def generated_changes(params: SalesParams, day: date, shock=None) -> list[rt.Change]:
    """The day's new orders as INSERT changes in time order; ``shock`` is (product_id, from
    hour, to hour, factor): its orders in that stretch are dropped (0) or repeated."""
    frame = pd.concat(
        c.frame
        for c in backfill(1, end=day + timedelta(days=1), params=params)
        if c.action == "put"
    )
    if shock:
        product_id, start, end, factor = shock
        hours = frame.order_ts.dt.hour + frame.order_ts.dt.minute / 60
        hit = (frame.product_id == product_id) & (hours >= start) & (hours < end)
        copies = [
            frame[hit].assign(order_id=frame[hit].order_id + f"-{k}") for k in range(factor - 1)
        ]
        frame = pd.concat([frame[~hit] if factor == 0 else frame, *copies])
        frame = frame.sort_values("order_ts", kind="stable")
    ms = frame.order_ts.astype("int64") // 10**6
    return [
        rt.Change(o, f"{i:040d}", "INSERT", str(day), int(t), p, c, float(q), float(q * u))
        for i, (o, t, p, c, q, u) in enumerate(
            zip(
                frame.order_id,
                ms,
                frame.product_id,
                frame.category,
                frame.quantity,
                frame.unit_price,
                strict=True,
            )
        )
    ]


def stream_day(store: rt.SqliteStore, changes: list[rt.Change], day, batch: int = 200) -> list:
    """Apply a day's changes in batches, judging after each as the handler does, then once at
    the end of the day; every alert written."""
    config, written = rt.Config(), []
    for start in range(0, len(changes), batch):
        store.apply(changes[start : start + batch], config, 0)
        written += store.judge(config, 0)
    written += store.judge(config, rt.day_start_ms(str(day)) + rt.MS_PER_DAY - 1)
    return written


@pytest.fixture
def store(tmp_path, monkeypatch):
    """The handler's store, named by REALTIME_DB as on the platform."""
    path = tmp_path / "realtime.sqlite"
    monkeypatch.setenv("REALTIME_DB", str(path))
    rt._stores.clear()
    yield rt.open_store()
    rt._stores.clear()


@pytest.fixture
def table(tmp_path):
    table = Table(tmp_path / "dynamodb.sqlite", "orders", "us-east-1", "000000000000")
    yield table
    table.close()


# running totals -------------------------------------------------------------------------------


def test_totals_follow_inserts_amendments_cancellations_and_skip_redeliveries(store, table):
    rows = [order(n) for n in range(40)]
    table.put_items(validated_table(rows))
    table.update_items(
        [{"order_id": "o-00003", "quantity": 9}, {"order_id": "o-00004", "unit_price": 1.0}]
    )
    table.put_items(validated_table([order(5, quantity=7)]))  # a put over an order: MODIFY
    table.delete_items(["o-00006", "o-00007"])
    texts = stream_texts(table)

    assert rt.lambda_handler(kinesis_event(texts[:25]), None) == {"batchItemFailures": []}
    assert rt.lambda_handler(kinesis_event(texts[25:]), None) == {"batchItemFailures": []}
    live = [item_to_order(item) for item in table.scan()]
    assert len(live) == 38
    assert_totals(store, FUTURE, live)

    # redeliveries: the whole stream again, and an old INSERT after its MODIFY and REMOVE
    rt.lambda_handler(kinesis_event(texts), None)
    rt.lambda_handler(kinesis_event([texts[3], texts[6]]), None)
    assert_totals(store, FUTURE, live)


def test_a_cancellation_redelivered_before_its_insert_keeps_the_order_out(store, table):
    table.put_items(validated_table([order(1)]))
    table.delete_items(["o-00001"])
    insert, remove = stream_texts(table)
    rt.lambda_handler(kinesis_event([remove]), None)
    rt.lambda_handler(kinesis_event([insert]), None)  # older than the tombstone: skipped
    assert store.totals(str(FUTURE)) == {} or all(
        row["orders"] == 0 for row in store.totals(str(FUTURE)).values()
    )


def test_rows_go_when_their_expiry_passes(store, table):
    table.put_items(validated_table([order(1)]))
    rt.lambda_handler(kinesis_event(stream_texts(table)), None)
    store.put_expectations([expectation("total", FUTURE, 10.0)])
    expiry = rt.expires_at(str(FUTURE))
    assert store.trim(now=expiry) == 0  # at the expiry itself: kept
    assert store.trim(now=expiry + 1) == 5  # expectation, 3 totals, the order's contribution
    assert store.totals(str(FUTURE)) == {} and store.expectations(str(FUTURE)) == {}


def test_orders_older_than_yesterday_are_not_kept(store, table):
    today = datetime.now(UTC).date()
    table.put_items(
        validated_table(
            [order(1, day=today - timedelta(days=2)), order(2, day=today - timedelta(days=1))]
        )
    )
    rt.lambda_handler(kinesis_event(stream_texts(table)), None)
    assert store.totals(str(today - timedelta(days=2))) == {}
    assert store.totals(str(today - timedelta(days=1)))["total"]["orders"] == 1


def test_order_days_are_found_in_compact_and_spaced_json_alike(table):
    today = datetime.now(UTC).date()
    table.put_items(validated_table([order(1, day=today)]))
    table.put_items(validated_table([order(1, day=today - timedelta(days=3))]))  # moved back
    table.delete_items(["o-00001"])
    texts = stream_texts(table)
    images = [json.loads(text)["dynamodb"] for text in texts]
    want = [
        sorted(
            image[name]["order_ts"]["S"][:10].encode()
            for name in ("NewImage", "OldImage")
            if name in image
        )
        for image in images
    ]
    assert [sorted(rt.order_days(text.encode())) for text in texts] == want
    spaced = [json.dumps(json.loads(text), indent=1).encode() for text in texts]
    assert [sorted(rt.order_days(text)) for text in spaced] == want
    assert want[1] == sorted([str(today).encode(), str(today - timedelta(days=3)).encode()])


def test_an_old_record_with_a_malformed_order_ts_is_reported_not_skipped(store, table):
    old = datetime.now(UTC).date() - timedelta(days=3)
    table.put_items(validated_table([order(1, day=old)]))
    (text,) = stream_texts(table)
    broken = json.loads(text)
    broken["dynamodb"]["NewImage"]["order_ts"]["S"] = "1999-1-1T00:00:00Z"  # sorts as old
    event = kinesis_event([text, json.dumps(broken, separators=(",", ":"))])
    assert rt.lambda_handler(event, None) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["kinesis"]["sequenceNumber"]}]
    }
    assert store.totals(str(old)) == {}  # the well-formed old record was skipped


def test_a_malformed_record_is_reported_and_those_before_it_applied(store, table):
    table.put_items(validated_table([order(n) for n in range(6)]))
    texts = stream_texts(table)
    broken = json.loads(texts[3])
    broken["dynamodb"]["NewImage"]["quantity"] = {"N": "0"}
    event = kinesis_event([*texts[:3], json.dumps(broken), *texts[4:]])
    response = rt.lambda_handler(event, None)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][3]["kinesis"]["sequenceNumber"]}]
    }
    assert_totals(store, FUTURE, [order(n) for n in range(3)])


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        base64.b64encode(b"{not json").decode(),
        base64.b64encode(b"[1]").decode(),
    ],
)
def test_undecodable_data_is_a_batch_item_failure(store, data):
    event = kinesis_event(["{}"])
    event["Records"][0]["kinesis"]["data"] = data
    failed = rt.lambda_handler(event, None)["batchItemFailures"]
    assert failed == [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]


def test_records_of_other_sources_or_events_are_skipped(store, table):
    table.put_items(validated_table([order(1)]))
    (text,) = stream_texts(table)
    other = {**json.loads(text), "eventSource": "aws:kinesis"}
    unknown = {**json.loads(text), "eventName": "TTL"}
    event = kinesis_event([json.dumps(other), json.dumps(unknown)])
    assert rt.lambda_handler(event, None) == {"batchItemFailures": []}
    assert store.totals(str(FUTURE)) == {}


def test_events_that_are_neither_raise_and_a_record_without_sequence_number_too(store):
    with pytest.raises(ValueError, match="Records"):
        rt.lambda_handler({"records": []}, None)
    event = kinesis_event(["{"])
    del event["Records"][0]["kinesis"]["sequenceNumber"]
    with pytest.raises(ValueError, match="sequenceNumber"):
        rt.lambda_handler(event, None)


def test_without_a_store_in_the_environment_the_handler_names_the_fix(monkeypatch):
    for name in ("REALTIME_DB", "EXPECTATIONS_TABLE", "NOWCAST_TABLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="REALTIME_DB"):
        rt.lambda_handler({"Records": []}, None)


# settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "good", "bad"),
    [
        ("ALERT_MARGIN", ["0", "0.25"], ["-0.01", "x", "nan"]),
        ("STALL_MINUTES", ["0", "15"], ["-1", "inf"]),
        ("STALL_MIN_EXPECTED", ["0", "20"], ["-0.5"]),
        ("RECENT_MINUTES", ["0.01", "1,30"], ["0", "1,-2", "1,"]),
    ],
)
def test_environment_settings_are_checked_at_both_sides(variable, good, bad):
    for raw in good:
        rt.Config.from_env({variable: raw})
    for raw in bad:
        with pytest.raises(ValueError, match=variable):
            rt.Config.from_env({variable: raw})
    assert rt.Config.from_env({variable: ""}) == rt.Config()  # empty counts as unset


# nowcasts -------------------------------------------------------------------------------------


def test_nowcast_is_the_total_plus_the_expected_remainder():
    day = "2030-01-01"
    noon = rt.day_start_ms(day) + 12 * rt.MS_PER_HOUR
    total = {**rt.empty_total(day, "total", 4), "units": 60.0, "revenue": 600.0, "orders": 40}
    row = rt.nowcast("total", day, total, expectation("total", day, 100.0), noon)
    assert set(row) == set(rt.NOWCAST_FIELDS)
    assert row["elapsed_share"] == pytest.approx(0.5)
    assert row["nowcast_units"] == pytest.approx(110.0)
    assert row["nowcast_units_lo_90"] < 110 < row["nowcast_units_hi_90"]
    assert row["nowcast_units_lo_90"] >= 60.0  # never below what is sold
    assert row["nowcast_revenue"] == pytest.approx(1100.0)
    end = rt.nowcast("total", day, total, expectation("total", day, 100.0), noon + 13 * 3600_000)
    assert end["nowcast_units"] == end["nowcast_units_lo_90"] == end["nowcast_units_hi_90"] == 60
    alone = rt.nowcast("total", day, total, None, noon)
    assert alone["nowcast_units"] == 60 and alone["expected_units"] is None


def test_a_series_expected_but_not_sold_yet_is_nowcast_from_its_expectation_alone(tmp_path):
    day = "2030-01-01"
    noon = rt.day_start_ms(day) + 12 * rt.MS_PER_HOUR
    row = rt.nowcast("product#p-1", day, None, expectation("product#p-1", day, 100.0), noon)
    assert (row["units"], row["orders"], row["last_order"]) == (0.0, 0, None)
    assert row["nowcast_units"] == pytest.approx(50.0)
    store = rt.SqliteStore(tmp_path / "realtime.sqlite")  # the start of every day
    store.put_expectations([expectation("product#p-1", day, 100.0)])
    (only,) = store.nowcasts(day, wall=noon)
    assert only["series_id"] == "product#p-1" and only["nowcast_units"] == pytest.approx(50.0)


# alerts ---------------------------------------------------------------------------------------


def steady_orders(day: str, product: str, per_hour: float, start_h: float, end_h: float, first=0):
    """Evenly spaced INSERT changes of one product, one unit each."""
    count = round(per_hour * (end_h - start_h))
    start = rt.day_start_ms(day) + start_h * rt.MS_PER_HOUR
    step = (end_h - start_h) * rt.MS_PER_HOUR / max(count, 1)
    return [
        rt.Change(f"o-{first + k}", f"{first + k:040d}", "INSERT", day, int(start + k * step),
                  product, "home", 1.0, 10.0)
        for k in range(count)
    ]  # fmt: skip


def test_a_stall_is_called_at_its_minutes_and_minimum_expected_and_not_before(store, monkeypatch):
    day = "2030-01-02"
    config = rt.Config()
    row = expectation("product#p-1", day, 2400.0)  # 25 orders per 15 minutes, one unit each
    store.put_expectations([row])
    store.apply(steady_orders(day, "p-1", 100, 0, 10), config, 0)
    total = store.totals(day)["product#p-1"]
    last = total["last_order_ms"]
    just_before = rt.judge(total, row, last + 15 * 60_000 - 1, config)
    assert all(j.kind != "stalled" for j in just_before)
    (stalled,) = rt.judge(total, row, last + 15 * 60_000, config)
    assert stalled.kind == "stalled" and stalled.since_ms == last
    assert stalled.expected >= config.stall_min_expected
    # fewer orders expected in the same silence than STALL_MIN_EXPECTED: no stall
    fewer = rt.Config(stall_min_expected=stalled.expected * 1.01)
    assert all(j.kind != "stalled" for j in rt.judge(total, row, last + 15 * 60_000, fewer))
    # the scheduled tick sees it by the clock alone, once; orders coming back clear it
    now = last + 20 * 60_000
    monkeypatch.setattr(rt, "wall_ms", lambda: now)
    event = {"source": "aws.events", "detail-type": "Scheduled Event"}
    assert rt.lambda_handler(event, None) == {"batchItemFailures": []}
    (opened,) = store.alerts(open_only=True)
    assert (opened["kind"], opened["since"]) == ("stalled", rt.iso(last))
    rt.lambda_handler(event, None)
    assert len(store.alerts()) == 1  # one alert per episode
    hours = (now - rt.day_start_ms(day)) / rt.MS_PER_HOUR
    store.apply(steady_orders(day, "p-1", 100, hours, hours + 3, first=10_000), config, 0)
    (cleared,) = store.judge(config, 0)
    assert cleared["state"] == "cleared" and cleared["kind"] == "stalled"


@pytest.mark.parametrize(("minutes_after", "judged"), [(14.99, True), (15.01, False)])
def test_a_backlog_of_todays_orders_is_not_judged_as_silence(
    store, table, monkeypatch, minutes_after, judged
):
    """Today's orders delivered late (a consumer catching up) are applied but not judged until
    the stream reaches the present: series it has not reached yet are not silent. Orders at
    most STALL_MINUTES old are the present, and judged."""
    store.put_expectations([expectation(f"product#p-{n}", FUTURE, 2400.0) for n in range(3)])
    table.put_items(validated_table([order(n) for n in range(11)]))  # 00:15 ... 10:15
    newest = rt.day_start_ms(str(FUTURE)) + round(10.25 * rt.MS_PER_HOUR)
    monkeypatch.setattr(rt, "wall_ms", lambda: newest + round(minutes_after * 60_000))
    rt.lambda_handler(kinesis_event(stream_texts(table)), None)
    assert store.totals(str(FUTURE))["total"]["orders"] == 11  # applied either way
    assert bool(store.alerts(open_only=True)) is judged  # 100 units an hour expected, 1 sold


def test_replaying_needs_new_orders_older_than_the_stall_minutes():
    config = rt.Config()
    change = steady_orders("2030-01-02", "p-1", 1, 0, 1)[0]
    limit = change.order_ms + config.stall_minutes * 60_000
    assert not rt.replaying([change], limit, config)
    assert rt.replaying([change], limit + 1, config)
    amendment = dataclasses.replace(change, event_name="MODIFY")  # live traffic, old order
    assert not rt.replaying([amendment], limit + 1, config)
    assert not rt.replaying([], limit + 1, config)


def test_high_and_low_wait_for_the_minimum_expected_count(store):
    day = "2030-01-03"
    config = rt.Config(recent_minutes=(60.0,))
    row = expectation("product#p-1", day, 24 * 9.9, relative=1e-3)  # 9.9 units an hour
    orders = steady_orders(day, "p-1", 9.9, 0, 12) + steady_orders(day, "p-1", 200, 12, 12.5, 5000)
    total = rt.empty_total(day, "product#p-1", 1)
    for change in orders:
        rt.apply_change(change, None, {(day, "product#p-1"): total}, (3_600_000.0,), 0)
    now = rt.day_start_ms(day) + 12.5 * rt.MS_PER_HOUR
    (below,) = rt.judge(total, row, now, config)
    assert below.expected < rt.MIN_EXPECTED_UNITS and below.actual > below.high
    assert below.kind is None
    busier = expectation("product#p-1", day, 24 * 10.1, relative=1e-3)
    (above,) = rt.judge(total, busier, now, config)
    assert above.expected >= rt.MIN_EXPECTED_UNITS and above.kind == "high"


@pytest.fixture(scope="module")
def busy_shop():
    return SalesParams(seed=1, orders_per_day=50_000)


DAY = date(2027, 3, 1)


def product_alerts(written: list[dict]) -> list[dict]:
    return [a for a in written if a["series_id"].startswith("product#")]


def test_a_normal_day_raises_no_alert(tmp_path, busy_shop):
    store = rt.SqliteStore(tmp_path / "realtime.sqlite")
    store.put_expectations(generated_expectations(busy_shop, DAY))
    written = stream_day(store, generated_changes(busy_shop, DAY), DAY)
    assert written == []


@pytest.mark.slow
@pytest.mark.parametrize(("factor", "kinds"), [(3, {"high"}), (0, {"low", "stalled"})])
def test_a_shock_raises_one_alert_for_its_product_and_clears_after(
    tmp_path, busy_shop, factor, kinds
):
    store = rt.SqliteStore(tmp_path / "realtime.sqlite")
    store.put_expectations(generated_expectations(busy_shop, DAY))
    changes = generated_changes(busy_shop, DAY, shock=("p-0042", 12, 14, factor))
    written = product_alerts(stream_day(store, changes, DAY))
    opened = [a for a in written if a["state"] == "open"]
    cleared = [a for a in written if a["state"] == "cleared"]
    assert [a["series_id"] for a in opened] == ["product#p-0042"]
    assert opened[0]["kind"] in kinds
    since = datetime.fromisoformat(opened[0]["since"])
    assert (since.hour, since.minute) >= (11, 50) and (since.hour, since.minute) < (12, 30)
    assert len(cleared) == 1
    ended = datetime.fromisoformat(cleared[0]["cleared_at"])
    assert 14 <= ended.hour < 16  # cleared after the shock ended, before the day did
    assert store.alerts(open_only=True) == []


def test_open_alerts_of_a_day_that_ended_are_cleared():
    alert = {"day": "2030-01-01", "series_id": "total", "state": "open"}
    next_day = rt.day_start_ms("2030-01-02") + 1
    (cleared,) = rt.evaluate({}, {}, [alert], next_day, rt.Config())
    assert cleared["state"] == "cleared" and cleared["cleared_at"].startswith("2030-01-02")


# the consumer on the local platform ---------------------------------------------------------


def apply_generated(platform, params, day) -> None:
    for change in backfill(1, end=day + timedelta(days=1), params=params):
        if change.action == "put":
            platform.orders.put(change.frame)
        elif change.action == "update":
            platform.orders.update(change.frame)
        else:
            platform.orders.delete(change.frame.order_id.tolist())


def assert_platform_totals(platform, day) -> None:
    live = [item_to_order(item) for item in platform.table.scan()]
    nowcasts = platform.nowcasts(str(day)).set_index("series_id")
    for series_id, (units, revenue, count) in expected_totals(live).items():
        assert nowcasts.loc[series_id, "units"] == units, series_id
        assert nowcasts.loc[series_id, "orders"] == count, series_id
        assert nowcasts.loc[series_id, "revenue"] == pytest.approx(revenue, rel=1e-9)


def test_platform_totals_equal_the_table_after_flush(tmp_path):
    params = SalesParams(seed=3, orders_per_day=1500, n_products=8)
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.2) as platform:
        platform.publish_expectations(pd.DataFrame(generated_expectations(params, FUTURE)))
        apply_generated(platform, params, FUTURE)
        platform.flush(timeout=120)
        assert_platform_totals(platform, FUTURE)
        status = platform.status().set_index("stage")
        assert status.loc["realtime consumer", "pending"] == 0
        assert status.loc["realtime consumer", "failed"] == 0
        assert status.loc["realtime consumer", "records"] == status.loc["kinesis stream", "records"]
        nowcasts = platform.nowcasts(str(FUTURE))
        assert list(nowcasts.columns) == list(rt.NOWCAST_FIELDS)
        assert set(nowcasts.level) == {"total", "category", "product"}
        assert list(platform.alerts().columns) == list(rt.ALERT_FIELDS)
        assert platform.consumer_dead_letters().empty


def test_flush_waits_for_the_consumer_only_when_asked(tmp_path):
    """flush(realtime=False) returns once the lake has every change, with the consumer still
    in its batching window; flush() waits for it too."""
    params = SalesParams(seed=4, orders_per_day=600, n_products=4)
    settings = {"consumer_batch_size": 10_000, "consumer_batching_window_s": 300.0}
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1, **settings) as platform:
        apply_generated(platform, params, FUTURE)
        platform.flush(timeout=120, realtime=False)
        status = platform.status().set_index("stage")
        changes = status.loc["kinesis stream", "records"]
        assert status.loc["lake", "records"] == changes > 0
        assert status.loc["realtime consumer", "pending"] == changes
        platform.flush(timeout=120)
        assert platform.status().set_index("stage").loc["realtime consumer", "pending"] == 0
        assert_platform_totals(platform, FUTURE)


# A writer of a future day's orders (see tests/test_crash.py)
WRITER = writer_script(
    1, str(FUTURE + timedelta(days=1)), orders_per_day=1500, n_products=8, chunk=100
)


@pytest.mark.slow
def test_platform_totals_are_exact_after_sigkills_of_the_consumer(tmp_path):
    root = tmp_path / "root"
    accepted = kill_writers(WRITER, root, random.Random(20261207), (0.5, 2.5))
    assert sum(len(change["ids"]) for change in accepted) > 500, "kills came too early"
    with helpers.connect(root=root) as platform:
        platform.flush(timeout=120)
        assert platform.table.count() > 0
        assert_platform_totals(platform, FUTURE)


@pytest.mark.slow
def test_platform_totals_are_exact_after_sigkills_of_the_consumer_runtime(tmp_path):
    """SIGKILL the consumer's runtime process (its handler mid-batch, or between the store's
    commit and the checkpoint) again and again while orders stream; the totals stay exact."""
    params = SalesParams(seed=5, orders_per_day=3000, n_products=8)
    changes = list(backfill(1, end=FUTURE + timedelta(days=1), params=params, chunk_orders=50))
    rng, kills = random.Random(7), 0
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        for change in changes:
            if change.action == "put":
                platform.orders.put(change.frame)
            elif change.action == "update":
                platform.orders.update(change.frame)
            else:
                platform.orders.delete(change.frame.order_id.tolist())
            time.sleep(rng.uniform(0.0, 0.3))
            workers = platform._consumer_runner.function._workers
            if workers:  # a runtime is up (a killed one restarts at the next step)
                os.kill(workers[0].process.pid, signal.SIGKILL)
                kills += 1
        platform.flush(timeout=120)
        assert kills >= 3
        assert_platform_totals(platform, FUTURE)


def test_kinesis_retention_keeps_what_the_consumer_has_not_read(tmp_path, make_orders):
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(200))
        platform.flush(timeout=60)
    later = time.time() + 3 * 86400  # past the stream's 24 h retention
    with sqlite3.connect(root / "event_source.sqlite") as state:  # the consumer fell behind
        state.execute("UPDATE checkpoints SET seq = 0")
    with helpers.connect(root=root, consume=False) as platform:
        assert platform.trim(now=later)["kinesis_records"] == 0
        assert platform.stream.count() == 200
        status = platform.status().set_index("stage")
        assert status.loc["realtime consumer", "pending"] == 200
    with helpers.connect(root=root) as platform:
        platform.flush(timeout=60)  # it catches up (the orders are old: nothing to total)
        trimmed = platform.trim(now=later)
        assert trimmed["kinesis_records"] == 200 and trimmed["realtime_rows"] == 0


def test_the_handler_runs_alone_on_the_standard_library(tmp_path, table):
    """Zipped alone as on AWS: a copy of the file, without site-packages (no pybase64, no
    helpers), applies a batch."""
    shutil.copy(rt.__file__, tmp_path / "realtime.py")
    table.put_items(validated_table([order(n) for n in range(5)]))
    event = kinesis_event(stream_texts(table))
    script = (
        "import json, sys, realtime\n"
        "print(json.dumps(realtime.lambda_handler(json.load(sys.stdin), None)))\n"
        "print(realtime.open_store().totals(sys.argv[1])['total']['orders'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", script, str(FUTURE)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"REALTIME_DB": str(tmp_path / "state.sqlite"), "PYTHONPATH": str(tmp_path)},
        check=True,
    )
    assert done.stdout.split("\n")[:2] == ['{"batchItemFailures": []}', "5"]
