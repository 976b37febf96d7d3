"""End-to-end throughput and freshness of the local pipeline, beside moto as the peer.

Targets on a 2-core machine: at least 20,000 orders/s from the first put until everything is in
the lake, and write-to-lake freshness p95 under 2 s while streaming live at 1,000 orders/s.

Run: ``python -m benchmarks.pipeline [--orders 1000000] [--moto-orders 20000]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

import helpers
from benchmarks.moto_peer import run_moto_pipeline
from helpers.config import PROJECT_ROOT
from helpers.generate import SalesParams, backfill, live
from helpers.platform import WRITE_CHUNK

DEFAULT_ROOT = PROJECT_ROOT / "data" / "bench"


def history(orders: int, days: int = 365, seed: int = 42) -> list:
    """Generated changes holding about ``orders`` orders (puts), plus amendments and cancels."""
    params = SalesParams(seed=seed, orders_per_day=max(1, orders // days))
    return list(tqdm(backfill(days, end="2026-01-01", params=params), desc="generating"))


def measure_throughput(root: Path, changes: list) -> dict:
    """Seconds from the first put until every change is in the lake, for pre-generated
    changes, then until the real-time consumer (the stream's second consumer) has applied
    them too; and the CPU each order cost: in this process (writer, delivery control) and in
    the runtime processes (the pipe, the delivery's data planes and the consumer, counted once
    they exit at close)."""
    shutil.rmtree(root, ignore_errors=True)
    puts = sum(len(change.frame) for change in changes if change.action == "put")
    total = sum(len(change.frame) for change in changes)
    cpu_before = _cpu_seconds()
    with helpers.connect(root=root) as platform:
        started = time.perf_counter()
        platform.apply(changes, total=total, batch_rows=WRITE_CHUNK)
        platform.flush(timeout=3600, realtime=False)
        seconds = time.perf_counter() - started
        platform.flush(timeout=3600)
        consumer_seconds = time.perf_counter() - started
        main_cpu = _cpu_seconds()[0] - cpu_before[0]
        lake_records = int(platform.status().set_index("stage").loc["lake", "records"])
    runtimes_cpu = _cpu_seconds()[1] - cpu_before[1]
    return {
        "orders": puts,
        "changes": total,
        "seconds": seconds,
        "orders_per_s": puts / seconds,
        "changes_per_s": total / seconds,
        "consumer_seconds": consumer_seconds,
        "lake_records": lake_records,
        "cpu_us_per_order": {
            "main": main_cpu / puts * 1e6,
            "runtimes": runtimes_cpu / puts * 1e6,
            "total": (main_cpu + runtimes_cpu) / puts * 1e6,
        },
    }


def _cpu_seconds() -> tuple[float, float]:
    """User and system CPU seconds of this process and of its exited children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measure_freshness(root: Path, rate: float, seconds: float) -> dict:
    """Stream live orders; freshness = when an order's object landed minus its order_ts."""
    shutil.rmtree(root, ignore_errors=True)
    with helpers.connect(root=root) as platform:
        # no total: the bar counts changes, amendments and cancellations beside the orders
        platform.apply(live(rate, seconds, params=SalesParams(seed=7)))
        platform.flush(timeout=600)
        delays = []
        for key, _, _, _, _, delivered in platform.delivery.deliveries("data"):
            table = pq.read_table(
                platform.bucket.local_path(key), columns=["order_ts", "event_name"]
            )
            inserted = table.to_pandas().query("event_name == 'INSERT'")
            put_at = inserted.order_ts.astype("int64").to_numpy() / 1e3  # ms -> s
            delays.append(delivered - put_at)
    delays = np.concatenate(delays)
    return {
        "rate": rate,
        "seconds": seconds,
        "orders": int(delays.size),
        "p50_s": float(np.percentile(delays, 50)),
        "p95_s": float(np.percentile(delays, 95)),
        "max_s": float(delays.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--moto-orders", type=int, default=20_000, help="0 skips the peer")
    parser.add_argument("--live-rate", type=float, default=1000.0)
    parser.add_argument("--live-seconds", type=float, default=30.0, help="0 skips freshness")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    changes = history(args.orders)
    local = measure_throughput(args.root / "throughput", changes)
    results = {"local": local}
    print(
        f"\nlocal  : {local['orders']:,} orders ({local['changes']:,} changes) in "
        f"{local['seconds']:.1f}s = {local['orders_per_s']:,.0f} orders/s "
        f"(target >= 20,000), {local['lake_records']:,} lake records; the real-time "
        f"consumer had applied them after {local['consumer_seconds']:.1f}s"
    )
    cpu = local["cpu_us_per_order"]
    print(
        f"cpu    : {cpu['total']:.0f} us/order ({cpu['main']:.0f} writer and control, "
        f"{cpu['runtimes']:.0f} pipe, delivery and consumer runtimes)"
    )
    if args.moto_orders:
        moto_orders = pd.concat(
            [change.frame for change in changes if change.action == "put"], ignore_index=True
        ).head(args.moto_orders)
        results["moto"] = peer = run_moto_pipeline(moto_orders)
        print(
            f"moto   : {peer['orders']:,} orders in {peer['seconds']:.1f}s = "
            f"{peer['orders_per_s']:,.0f} orders/s"
        )
        print(f"ratio  : local is {local['orders_per_s'] / peer['orders_per_s']:,.1f}x moto")
    if args.live_seconds:
        results["freshness"] = freshness = measure_freshness(
            args.root / "freshness", args.live_rate, args.live_seconds
        )
        print(
            f"fresh  : live {args.live_rate:g}/s for {args.live_seconds:g}s: p50 "
            f"{freshness['p50_s']:.2f}s, p95 {freshness['p95_s']:.2f}s (target < 2s), "
            f"max {freshness['max_s']:.2f}s"
        )

    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
