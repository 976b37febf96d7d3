"""Queries over a lake of many small objects, before and after compaction (issue 15).

Writes ``--objects`` small objects spread over ``--days`` day partitions, in the lake's exact
format and Firehose's naming (as live streaming leaves them: about ``--rows`` changes each,
new orders with some amendments and cancels), crawls, then times ``orders_current`` and
``daily_sales`` in a fresh engine (the maintained state built), compacts every partition,
and times them again, with the compaction and the views' move of their state.

    python -m benchmarks.compaction --objects 10000 --rows 100 --days 7

``--week [CHANGES ...]`` instead writes lakes as compaction leaves them (objects of up to
``--object-rows`` changes, default 6 and 66 million changes: a week at 100 orders/s is the
latter), crawls each, and times ``orders_current`` (count and sum, a named query, one order)
and ``daily_sales`` in a new engine, then after new deliveries of ``--delivery`` changes;
and row queries over orders_current (a minute's orders, ``hourly_profile`` over a day).

    python -m benchmarks.compaction --week 6000000 66000000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import helpers
from helpers import queries
from helpers.local.athena import Athena
from helpers.schema import LAKE_SCHEMA

START = datetime(2026, 5, 1, tzinfo=UTC)
QUERIES = {
    "orders_current": "SELECT count(*) AS n, sum(quantity) AS q FROM orders_current",
    "daily_sales": "SELECT * FROM daily_sales",
}
WEEK_QUERIES = {  # beside QUERIES in --week; a query with parameters is (sql, parameters)
    "revenue_by_category_channel": queries.load("revenue_by_category_channel"),
    "one order": "SELECT * FROM orders_current WHERE order_id = 'o1000'",
    "a minute's orders": "SELECT * FROM orders_current WHERE order_ts >= TIMESTAMP "
    "'2026-05-04 10:00:00' AND order_ts < TIMESTAMP '2026-05-04 10:01:00'",
    "hourly_profile, a day": (queries.load("hourly_profile"), ["UTC", "2026-05-04", "2026-05-05"]),
}
_CHUNK = 1_048_576  # changes generated at once by week_changes


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


def week_changes(lake: int, days: int, deliveries: int = 0, delivery: int = 0, seed: int = 15):
    """``lake`` changes over ``days`` days as the live stream makes them, vectorized (the
    same mix as ``write_lake``: 10 % amend or cancel one of the 500 latest orders, 30 % of
    those cancel), then ``deliveries`` of ``delivery`` more on the last day: yields
    (day, changes as a table), the lake's in chunks of about a million, then each delivery."""
    total = lake + deliveries * delivery
    rng = np.random.default_rng(seed)
    sequence = np.arange(1, total + 1, dtype=np.int64)
    amended = rng.random(total) < 0.1
    amended[0] = False
    inserted = np.cumsum(~amended)  # orders created so far, this change's included
    back = rng.integers(0, np.minimum(500, inserted))
    order = np.where(amended, sequence[~amended][np.maximum(inserted - 1 - back, 0)], sequence)
    names = np.where(amended, np.where(rng.random(total) < 0.3, 2, 1), 0).astype(np.int8)
    day = np.minimum((sequence - 1) * days // lake, days - 1)
    ends = [*range(_CHUNK, lake, _CHUNK), *range(lake, total + 1, max(delivery, 1))]
    first = 0
    for end in ends:
        for today in np.unique(day[first:end]):
            rows = np.flatnonzero(day[first:end] == today) + first
            table = _changes_table(rows, sequence, order, names, today, lake // days, rng)
            yield int(today), table
        first = end


def _changes_table(rows, sequence, order, names, today, per_day, rng) -> pa.Table:
    """The lake rows of changes ``rows`` (indexes), in LAKE_SCHEMA."""
    count = len(rows)
    start = np.datetime64(START.replace(tzinfo=None), "ms")
    in_day = np.minimum((rows - today * per_day) * 86_400_000 // per_day, 86_399_999)
    in_day = in_day.astype("timedelta64[ms]")

    def labels(prefix: str, values) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")

    columns = {
        "order_id": labels("o", order[rows]),
        "order_ts": pa.array(start + np.timedelta64(int(today), "D") + in_day),
        "customer_id": labels("c", rng.integers(0, 5000, count)),
        "product_id": labels("p", rng.integers(0, 200, count)),
        "product_name": pa.array(np.full(count, "a product")),
        "category": labels("k", rng.integers(0, 8, count)),
        "channel": pa.array(np.full(count, "web")),
        "quantity": pa.array(rng.integers(1, 9, count).astype(np.int32)),
        "unit_price": pa.array(np.round(rng.uniform(1, 99, count), 2)),
        "event_name": pa.array(np.array(["INSERT", "MODIFY", "REMOVE"])[names[rows]]),
        "event_seq": pc.utf8_lpad(pc.cast(pa.array(sequence[rows]), pa.string()), 40, "0"),
        "event_ts": pa.array(start + (sequence[rows] * 10).astype("timedelta64[ms]")),
        "attributes": pa.nulls(count, pa.string()),
    }
    return pa.table(columns, schema=LAKE_SCHEMA)


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


def _object_key(day: int, number: int) -> str:
    """A Firehose-like key in the day's partition; ``number`` orders the keys."""
    date = START + timedelta(days=day)
    stamp = (date + timedelta(seconds=number)).strftime("%Y-%m-%d-%H-%M-%S")
    return (
        f"sales/year={date:%Y}/month={date:%m}/day={date:%d}/"
        f"salescast-lake-delivery-1-{stamp}-{uuid.uuid4()}.parquet"
    )


def write_week(platform, changes: int, days: int, object_rows: int, deliveries, delivery: int):
    """A lake of ``changes`` changes in large objects of at most ``object_rows`` (what
    compaction leaves: Snappy, row groups of 131,072), written directly; returns a function
    that delivers the next ``delivery`` changes as one small object of the last day."""
    chunks = week_changes(changes, days, deliveries, delivery)
    written, rows, current, writer, staging, key = 0, 0, None, None, None, ""

    def commit():
        if writer is not None:
            writer.close()
            platform.bucket.commit(staging, key)

    for day, table in chunks:
        if day != current or rows >= object_rows:
            commit()
            current, rows, staging = day, 0, platform.bucket.staging_file()
            key = _object_key(day, written // object_rows)
            writer = pq.ParquetWriter(staging, LAKE_SCHEMA, compression="snappy")
        writer.write_table(table, row_group_size=131_072)
        rows += table.num_rows
        written += table.num_rows
        if written >= changes:
            break
    commit()

    def deliver() -> None:
        day, table = next(chunks)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="snappy")
        platform.bucket.put_object(_object_key(day, 86_399), sink.getvalue().to_pybytes())

    return deliver


def _timed(engine, query: str | tuple[str, list], database: str) -> float:
    """Seconds to run a query of WEEK_QUERIES."""
    sql, parameters = (query, None) if isinstance(query, str) else query
    started = time.perf_counter()
    engine.read_sql_query(sql, database, parameters)
    return time.perf_counter() - started


def week(changes: int, days: int, object_rows: int, delivery: int) -> dict[str, dict]:
    """Times the queries over a lake of ``changes`` changes in large objects: in a new
    engine (the crawl has built the views' state) the first run and the best of two more,
    then in that engine the first run after a new delivery of ``delivery`` changes."""
    queries = {**QUERIES, **WEEK_QUERIES}
    with (
        tempfile.TemporaryDirectory(dir="/tmp") as folder,
        helpers.connect(root=Path(folder) / "root", consume=False) as platform,
    ):
        started = time.perf_counter()
        deliver = write_week(platform, changes, days, object_rows, len(queries), delivery)
        print(f"{changes:,} changes written in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        platform.crawl()
        print(
            f"crawl + first build of the views and snapshots: {time.perf_counter() - started:.1f} s"
        )
        engine = Athena(
            platform.catalog, platform.bucket, Path(platform.settings.root) / "athena.sqlite"
        )
        times: dict[str, dict] = {}
        try:
            for name, query in queries.items():
                runs = []
                for _ in range(3):
                    runs.append(_timed(engine, query, platform.settings.database))
                times[name] = {"first": runs[0], "again": min(runs[1:])}
            for name, query in queries.items():
                deliver()
                times[name]["delivered"] = _timed(engine, query, platform.settings.database)
        finally:
            engine.close()
        for name, row in times.items():
            print(
                f"{changes:>11,} {name:<28} first {row['first']:6.2f} s  again "
                f"{row['again']:6.2f} s  after a delivery {row['delivered']:6.2f} s",
                flush=True,
            )
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--week",
        type=int,
        nargs="*",
        metavar="CHANGES",
        help="instead: lakes of these many changes in large objects (a week at 100 orders/s "
        "is about 66,000,000), each timed then removed",
    )
    parser.add_argument("--object-rows", type=int, default=4_000_000)
    parser.add_argument("--delivery", type=int, default=5_000)
    args = parser.parse_args()
    if args.week is not None:
        for changes in args.week or [6_000_000, 66_000_000]:
            week(changes, args.days, args.object_rows, args.delivery)
        return
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
