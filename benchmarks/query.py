"""SQL over a 10-million-order lake: the local Athena beside reading everything into pandas.

Target on a 2-core machine: ``daily_sales`` grouped by day and product, and the top products
query, each under 1 s (median of several runs). The peer is what a user would do without the
engine: read every lake object into pandas (as ``awswrangler.s3.read_parquet`` does), take
the latest event per order, and group there.

The lake is written directly in the layout the delivery stream writes (one Snappy Parquet
object per day partition, the same schema), from the seeded generator, so that building it
takes a minute instead of streaming ten million orders; it is kept between runs.

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


def timed(function, runs: int) -> tuple[float, float, object]:
    """Seconds of the first call (cold), the median of the ``runs`` after it (warm: the views'
    results reused, their objects unchanged), and the last result."""
    seconds, result = [], None
    for _ in range(runs + 1):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return seconds[0], statistics.median(seconds[1:]) if runs else seconds[0], result


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
        if not marker.exists():
            events = build_lake(platform, args.orders)
            marker.write_text(json.dumps({"orders": args.orders, "events": events}))
        platform.crawl()
        events = json.loads(marker.read_text())["events"]
        peer_seconds, _, (peer_daily, peer_top) = timed(lambda: pandas_peer(platform), 0)
    with helpers.connect(root=args.root, consume=False) as platform:  # a cold engine
        cold_daily, warm_daily, daily = timed(
            lambda: platform.query(GROUP_BY_DAY_AND_PRODUCT), args.runs
        )
    with helpers.connect(root=args.root, consume=False) as platform:
        cold_top, warm_top, top = timed(lambda: platform.named_query("top_products"), args.runs)
    assert len(daily) == len(peer_daily), "the engine and pandas disagree"
    assert top.product_id.tolist() == peer_top.product_id.tolist()
    results = {
        "orders": args.orders,
        "events": events,
        "daily_sales_cold_s": cold_daily,
        "daily_sales_warm_s": warm_daily,
        "top_products_cold_s": cold_top,
        "top_products_warm_s": warm_top,
        "pandas_s": peer_seconds,
    }
    print(f"\nlake   : {args.orders:,} orders, {events:,} change events")
    print(
        f"local  : daily_sales by day x product: cold {cold_daily:.2f}s, warm {warm_daily:.3f}s; "
        f"top products: cold {cold_top:.2f}s, warm {warm_top:.3f}s "
        f"(warm = median of {args.runs} with the views' results reused; target < 1s each)"
    )
    print(f"pandas : read every object and group {peer_seconds:.2f}s (both results at once)")
    print(
        f"ratio  : pandas / local cold = {peer_seconds / max(cold_daily, cold_top):.1f}x, "
        f"pandas / local warm = {peer_seconds / max(warm_daily, warm_top):.0f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
