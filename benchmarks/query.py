"""SQL over a 10-million-order lake: the local Athena beside reading everything into pandas.

Target on a 2-core machine: ``daily_sales`` grouped by day and product, and the top products
query, each under 1 s (median of several runs). The peer is what a user would do without the
engine: read every lake object into pandas (as ``awswrangler.s3.read_parquet`` does), take
the latest event per order, and group there.

Each query is timed four ways, the first three in a new engine (a cold DuckDB connection):

- first: the first query ever over a fresh lake that the crawler put in the catalog, nothing
  maintained yet (the engine's latest-row state under ``orders_current`` and the partial
  results under ``daily_sales`` are built by this query);
- after crawl: the same, but the crawl (``platform.crawl``, timed too) also maintained the
  views, as the scheduled crawler does in the background;
- after append: the first query after a day of new orders and amendments of the last day's
  orders were delivered and put in the catalog; the query merges them;
- warm: the median of repeats in the engine of the last (the views' results reused).

The lake is written directly in the layout the delivery stream writes (one Snappy Parquet
object per day partition, the same schema), from the seeded generator, so that building it
takes a minute instead of streaming ten million orders; it is kept between runs, and the
objects appended by a run are removed at its end.

Run: ``python -m benchmarks.query [--orders 10000000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

import helpers
from helpers.config import PROJECT_ROOT
from helpers.generate import SalesParams, backfill
from helpers.schema import EVENT_SEQ_DIGITS, LAKE_SCHEMA

DEFAULT_ROOT = PROJECT_ROOT / "data" / "bench" / "query"
APPENDED = "appended"
GROUP_BY_DAY_AND_PRODUCT = (
    "SELECT ds, product_id, sum(units) AS units, sum(revenue) AS revenue "
    "FROM daily_sales GROUP BY ds, product_id"
)


def build_lake(platform, orders: int, days: int = 730, seed: int = 11) -> int:
    """Write the change log of ``orders`` generated orders (with amendments and cancels)."""
    params = SalesParams(seed=seed, orders_per_day=orders / days)
    recent: dict[str, pd.DataFrame] = {}
    sequence, written = 0, 0
    by_day: dict[str, list[pa.Table]] = {}
    event_ts = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    for change in tqdm(backfill(days, end="2026-01-01", params=params), desc="changes"):
        frame = change.frame
        if change.action == "put":
            events = frame.assign(event_name="INSERT")
            for day, rows in frame.groupby(frame.order_ts.dt.strftime("%Y-%m-%d")):
                recent[day] = rows.set_index("order_id")
            while len(recent) > params.change_lag_days + 2:
                recent.pop(min(recent))
        else:
            known = pd.concat(recent.values())
            events = known.loc[frame.order_id].reset_index()
            if change.action == "update":
                events["quantity"] = frame.quantity.to_numpy()
                events = events.assign(event_name="MODIFY")
            else:
                events = events.assign(event_name="REMOVE")
        events = events.assign(
            event_seq=[
                str(number).zfill(EVENT_SEQ_DIGITS)
                for number in range(sequence + 1, sequence + 1 + len(events))
            ],
            event_ts=event_ts,
            order_ts=events.order_ts.dt.tz_localize(None),
            attributes=None,
        )
        sequence += len(events)
        table = pa.Table.from_pandas(events[LAKE_SCHEMA.names], schema=LAKE_SCHEMA, safe=False)
        for day in sorted(set(events.order_ts.dt.strftime("%Y-%m-%d"))):
            mask = pa.array((events.order_ts.dt.strftime("%Y-%m-%d") == day).to_numpy())
            by_day.setdefault(day, []).append(table.filter(mask))
        written += len(events)
    for day, tables in tqdm(sorted(by_day.items()), desc="objects"):
        year, month, date = day.split("-")
        sink = pa.BufferOutputStream()
        pq.write_table(pa.concat_tables(tables), sink, compression="snappy")
        platform.bucket.put_object(
            f"{platform.settings.lake_prefix}year={year}/month={month}/day={date}/"
            f"{platform.settings.delivery_stream_name}-1-{day}-00-00-00-bench.parquet",
            sink.getvalue().to_pybytes(),
        )
    return written


def append_day(platform, day: pd.Timestamp, number: int, first_seq: int) -> int:
    """Deliver one more day: the last lake day's orders again as new orders on ``day``, and
    an amendment of one in fifty of the last day's orders (into that day's partition).
    Returns the number of events written; their sequence numbers start at ``first_seq``."""
    objects = platform.lake_objects()
    last = objects[~objects.key.str.contains(APPENDED)].sort_values("key").iloc[-1]
    base = pq.read_table(platform.bucket.local_path(last.key)).to_pandas()
    inserts = base[base.event_name == "INSERT"]
    new = inserts.assign(
        order_id=inserts.order_id + f"-{number}",
        order_ts=day + (inserts.order_ts - inserts.order_ts.dt.normalize()),
    )
    amended = inserts.iloc[::50].assign(quantity=lambda f: f.quantity + 1, event_name="MODIFY")
    written = 0
    for events, (year, month, date) in (
        (new, day.strftime("%Y-%m-%d").split("-")),
        (amended, (last.year, last.month, last.day)),
    ):
        events = events.assign(
            event_seq=[
                str(seq).zfill(EVENT_SEQ_DIGITS)
                for seq in range(first_seq + written, first_seq + written + len(events))
            ],
            event_ts=pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None),
            attributes=None,
        )
        written += len(events)
        sink = pa.BufferOutputStream()
        table = pa.Table.from_pandas(events[LAKE_SCHEMA.names], schema=LAKE_SCHEMA, safe=False)
        pq.write_table(table, sink, compression="snappy")
        platform.bucket.put_object(
            f"{platform.settings.lake_prefix}year={year}/month={month}/day={date}/"
            f"{platform.settings.delivery_stream_name}-1-{APPENDED}-{number}.parquet",
            sink.getvalue().to_pybytes(),
        )
    return written


def timed(function) -> tuple[float, object]:
    """Seconds of one call, and its result."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def pandas_peer(platform) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Without the engine: every object into pandas, latest event per order, group there."""
    base = platform.bucket.local_path(platform.settings.lake_prefix)
    lake = pq.read_table(base, partitioning="hive").to_pandas()
    latest = lake.sort_values("event_seq").drop_duplicates("order_id", keep="last")
    current = latest[latest.event_name != "REMOVE"].assign(
        ds=lambda f: f.order_ts.dt.date, revenue=lambda f: f.quantity * f.unit_price
    )
    daily = current.groupby(["ds", "product_id"], as_index=False).agg(
        units=("quantity", "sum"), revenue=("revenue", "sum")
    )
    top = (
        current.groupby(["product_id", "product_name", "category"], as_index=False)
        .agg(units=("quantity", "sum"), revenue=("revenue", "sum"))
        .nlargest(20, "revenue")
    )
    return daily, top


QUERIES = {
    "daily_sales": lambda platform: platform.query(GROUP_BY_DAY_AND_PRODUCT),
    "top_products": lambda platform: platform.named_query("top_products"),
}


def remove_appended(platform) -> None:
    """Delete the objects that ``append_day`` wrote: the lake is the built one again."""
    for key in platform.lake_objects().key:
        if APPENDED in key:
            platform.bucket.delete_objects(key)


def forget(root: Path) -> None:
    """Remove the catalog and the engine's maintained state: the lake is as if just landed."""
    shutil.rmtree(root / "athena-latest", ignore_errors=True)
    for path in root.glob("glue.sqlite*"):
        path.unlink()


def catalog_only(platform) -> None:
    """Crawl without the engine's maintenance (``crawl`` does both): the table, partitions
    and views are in the catalog, and whatever the views keep is left to their first query."""
    platform.crawler.run()
    platform.create_views()


def measure(root: Path, runs: int, first_seq: int) -> tuple[dict, dict]:
    """Seconds (medians of ``runs``) of each query in a new engine: the first ever, over a
    fresh lake crawled into the catalog; the first after a crawl that also maintained the
    views (with that crawl's seconds); the first after an append that the query merges;
    and warm. Returns them and the results after the fresh crawl."""
    seconds: dict[str, list[float]] = {"crawl": []}
    results: dict[str, pd.DataFrame] = {}
    appended = 0

    def record(key: str, query, crawl=None) -> None:
        with helpers.connect(root=root, consume=False) as platform:
            if crawl:
                crawl(platform)
        with helpers.connect(root=root, consume=False) as platform:
            spent, results[key] = timed(lambda: query(platform))
            seconds.setdefault(key, []).append(spent)

    for name, query in QUERIES.items():
        with helpers.connect(root=root, consume=False) as platform:
            remove_appended(platform)
        for _ in range(runs):
            forget(root)
            record(f"{name}_first_s", query, catalog_only)
            forget(root)
            record(
                f"{name}_after_crawl_s",
                query,
                lambda p: seconds["crawl"].append(timed(p.crawl)[0]),
            )
        for _ in range(runs):
            day = pd.Timestamp("2026-01-01") + pd.Timedelta(days=appended)
            with helpers.connect(root=root, consume=False) as platform:
                first_seq += append_day(platform, day, appended, first_seq)
                catalog_only(platform)
            appended += 1
            with helpers.connect(root=root, consume=False) as platform:
                spent, _ = timed(lambda q=query, p=platform: q(p))
                seconds.setdefault(f"{name}_after_append_s", []).append(spent)
                for _ in range(runs):
                    spent, _ = timed(lambda q=query, p=platform: q(p))
                    seconds.setdefault(f"{name}_warm_s", []).append(spent)
    figures = {key: statistics.median(values) for key, values in seconds.items()}
    return figures, {name: results[f"{name}_after_crawl_s"] for name in QUERIES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    marker = args.root / "built.json"
    if marker.exists() and json.loads(marker.read_text())["orders"] != args.orders:
        shutil.rmtree(args.root)
    with helpers.connect(root=args.root, consume=False) as platform:
        remove_appended(platform)  # left by a run that was stopped
        if not marker.exists():
            events = build_lake(platform, args.orders)
            marker.write_text(json.dumps({"orders": args.orders, "events": events}))
        events = json.loads(marker.read_text())["events"]
        peer_seconds, (peer_daily, peer_top) = timed(lambda: pandas_peer(platform))
    try:
        figures, results = measure(args.root, args.runs, events + 1)
    finally:
        with helpers.connect(root=args.root, consume=False) as platform:
            remove_appended(platform)
    assert len(results["daily_sales"]) == len(peer_daily), "the engine and pandas disagree"
    assert results["top_products"].product_id.tolist() == peer_top.product_id.tolist()
    figures.update(orders=args.orders, events=events, pandas_s=peer_seconds)
    print(f"\nlake   : {args.orders:,} orders, {events:,} change events")
    print(f"crawl  : {figures['crawl']:.2f}s (a fresh lake: table, partitions, views' upkeep)")
    for name in QUERIES:
        print(
            f"{name:<13}: first {figures[f'{name}_first_s']:.2f}s, "
            f"after crawl {figures[f'{name}_after_crawl_s']:.2f}s, "
            f"after append {figures[f'{name}_after_append_s']:.2f}s, "
            f"warm {figures[f'{name}_warm_s']:.3f}s"
        )
    print(
        f"(medians of {args.runs}; target < 1s each. first: nothing maintained yet; after "
        "crawl: the crawl maintained the views; after append: the query merges a new day "
        "and amendments; warm: repeats in the same engine)"
    )
    print(f"pandas : read every object and group {peer_seconds:.2f}s (both results at once)")
    print(
        "ratio  : pandas / local "
        + ", ".join(
            f"{when} = {peer_seconds / max(figures[f'{n}_{when}_s'] for n in QUERIES):.1f}x"
            for when in ("first", "after_crawl", "after_append", "warm")
        )
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
