"""The benchmarks run end to end at a small scale (their figures are not asserted)."""

from __future__ import annotations

import pandas as pd

from benchmarks.moto_peer import run_moto_pipeline
from benchmarks.pipeline import history, measure_freshness, measure_throughput


def test_pipeline_benchmark_pieces_run(tmp_path):
    changes = history(3000, days=10)
    local = measure_throughput(tmp_path / "throughput", changes)
    assert local["lake_records"] == local["changes"] == sum(len(c.frame) for c in changes)
    freshness = measure_freshness(tmp_path / "freshness", rate=200, seconds=1)
    assert freshness["orders"] == 200 and 0 <= freshness["p50_s"] <= freshness["max_s"]
    orders = pd.concat([c.frame for c in changes if c.action == "put"]).head(100)
    peer = run_moto_pipeline(orders, progress=False)
    assert peer["orders"] == 100 and peer["lake_records"] == 100
