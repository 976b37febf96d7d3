"""The benchmarks run end to end at a small scale (their figures are not asserted)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import helpers
from benchmarks import realtime, soak
from benchmarks.moto_peer import run_moto_pipeline
from benchmarks.pipeline import history, measure_freshness, measure_throughput
from benchmarks.query import build_lake, measure, pandas_peer


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
