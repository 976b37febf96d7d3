"""The benchmarks run end to end at a small scale (their figures are not asserted)."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa

import helpers
from benchmarks import compaction, realtime, soak
from benchmarks.moto_peer import run_moto_pipeline
from benchmarks.pipeline import history, measure_freshness, measure_throughput
from benchmarks.query import build_lake, measure, pandas_peer
from helpers.schema import LAKE_SCHEMA


def test_pipeline_benchmark_pieces_run(tmp_path):
    changes = history(3000, days=10)
    local = measure_throughput(tmp_path / "throughput", changes)
    assert local["lake_records"] == local["changes"] == sum(len(c.frame) for c in changes)
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
    assert result["verdict"]["stream_kept"][0] and result["verdict"]["objects"][0]


def test_realtime_benchmark_runs_quick(tmp_path):
    figures = realtime.run(tmp_path / "realtime", realtime.QUICK)
    quick = realtime.QUICK
    assert figures["history_orders"] > quick.days * quick.orders_per_day / 2
    assert figures["orders"] > 0 and figures["product_days"] > 0
    assert [shock["factor"] for shock in figures["shocks"]] == [3.0, 0.0]
    assert figures["consumer_cpu_us_per_order"] > 0 and figures["firehose_cpu_us_per_order"] > 0
    shown = realtime.table(figures, realtime.QUICK)
    assert shown["measure"].str.contains("time to alert p95").any()


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
