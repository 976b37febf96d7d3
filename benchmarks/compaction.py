"""Queries over a lake of many small objects, before and after compaction (issue 15).

Writes ``--objects`` small objects spread over ``--days`` day partitions, in the lake's exact
format and Firehose's naming (as live streaming leaves them: about ``--rows`` changes each,
new orders with some amendments and cancels), crawls, then times ``orders_current`` and
``daily_sales`` in a fresh engine (the maintained state built), compacts every partition,
and times them again, with the compaction and the views' move of their state.

    python -m benchmarks.compaction --objects 10000 --rows 100 --days 7
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import helpers
from helpers.local.athena import Athena
from helpers.schema import LAKE_SCHEMA

START = datetime(2026, 5, 1, tzinfo=UTC)
QUERIES = {
    "orders_current": "SELECT count(*) AS n, sum(quantity) AS q FROM orders_current",
    "daily_sales": "SELECT * FROM daily_sales",
}


def write_lake(platform, objects: int, rows: int, days: int, seed: int = 15) -> int:
    """Small objects of ``rows`` changes each, day by day; returns the changes written."""
    randomness = random.Random(seed)
    sequence, written, recent = 0, 0, []
    for number in range(objects):
        day = number * days // objects
        date = START + timedelta(days=day)
        batch = []
        for _ in range(rows):
            sequence += 1
            if recent and randomness.random() < 0.1:  # an amendment or a cancel
                order_id = randomness.choice(recent)
                name = "REMOVE" if randomness.random() < 0.3 else "MODIFY"
            else:
                order_id, name = f"o{sequence}", "INSERT"
                recent = [*recent, order_id][-500:]
            batch.append(
                {
                    "order_id": order_id,
                    "order_ts": date + timedelta(seconds=number % 86_400),
                    "customer_id": f"c{randomness.randrange(5000)}",
                    "product_id": f"p{randomness.randrange(200)}",
                    "product_name": "a product",
                    "category": f"k{randomness.randrange(8)}",
                    "channel": "web",
                    "quantity": randomness.randrange(1, 9),
                    "unit_price": round(randomness.uniform(1, 99), 2),
                    "event_name": name,
                    "event_seq": str(sequence).zfill(40),
                    "event_ts": START + timedelta(milliseconds=10 * sequence),
                }
            )
        stamp = (START + timedelta(seconds=number)).strftime("%Y-%m-%d-%H-%M-%S")
        key = (
            f"sales/year={date:%Y}/month={date:%m}/day={date:%d}/"
            f"salescast-lake-delivery-1-{stamp}-{uuid.uuid4()}.parquet"
        )
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(batch, schema=LAKE_SCHEMA), sink, compression="snappy")
        platform.bucket.put_object(key, sink.getvalue().to_pybytes())
        written += rows
    return written


def time_queries(platform, label: str, repeat: int = 3) -> dict[str, float]:
    """Best of ``repeat`` runs of each query in a fresh engine (another process's view)."""
    engine = Athena(
        platform.catalog, platform.bucket, Path(platform.settings.root) / "athena.sqlite"
    )
    times = {}
    try:
        for name, sql in QUERIES.items():
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                engine.read_sql_query(sql, platform.settings.database)
                best = min(best, time.perf_counter() - started)
            times[name] = best
            print(f"{label:>18} {name:<15} {best:7.3f} s", flush=True)
    finally:
        engine.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        helpers.connect(root=Path(folder) / "root", consume=False) as platform,
    ):
        started = time.perf_counter()
        changes = write_lake(platform, args.objects, args.rows, args.days)
        print(
            f"wrote {args.objects} objects, {changes} changes in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        started = time.perf_counter()
        platform.crawl()  # also builds the views' maintained state
        print(f"crawl + first build of the views: {time.perf_counter() - started:.1f} s")
        before = time_queries(platform, "before compaction")
        want = platform.query(QUERIES["orders_current"])
        started = time.perf_counter()
        result = platform.compact(grace_s=0)  # compaction, then the views' move
        print(
            f"compact: {result['sources']} objects into {len(result['outputs'])} in "
            f"{time.perf_counter() - started:.1f} s (of which compaction "
            f"{result['seconds']:.1f} s, the rest the views' move)",
            flush=True,
        )
        after = time_queries(platform, "after compaction")
        got = platform.query(QUERIES["orders_current"])
        assert got.equals(want), (got, want)
        for name in QUERIES:
            print(f"{name}: {before[name]:.3f} s -> {after[name]:.3f} s")


if __name__ == "__main__":
    main()
