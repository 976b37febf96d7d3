"""A soak run: live orders at a steady rate for minutes, with scheduled crawls, compaction and
retention on, to show that disk use and query time stay bounded (issue 15).

Every period (a minute by default) it prints the disk use of each part of the root (the table's
items, its change stream and its free pages in ``dynamodb.sqlite``, the SQLite write-ahead logs
of every state file, the Kinesis shard logs, the lake's objects, Athena's results, the rest), the lake's object count, the stream records kept,
and the time of a query over ``orders_current``; at the end, whether each stayed bounded.

Retention periods are a day or more, longer than a run. So that trimming shows within the run,
the soak sets every retention the platform applies by age to one day (the shortest each allows)
and moves the retention clock (``helpers.local.platform._retention_clock``) forward by a day
less ``--window`` seconds: a record expires once it is ``--window`` seconds old, as it would
once a day old. Kinesis segments are made small (``--segment-kib``), since retention removes
whole segments. Athena's results are the exception: S3 lifecycle rules expire objects at the
midnight (UTC) after their age passes, which no shift of a short run reaches, so they grow by
the soak's own queries (a few hundred bytes each) until their first midnight.

    python -m benchmarks.soak [--minutes 10] [--rate 100] [--window 120]
    python -m benchmarks.soak --quick          # seconds: what the test runs
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import helpers
import helpers.local.platform as local_platform
from helpers.config import PROJECT_ROOT
from helpers.exceptions import QueryError
from helpers.generate import SalesParams, live
from helpers.local.dynamodb import CHECKPOINT_PAGES
from helpers.local.sqlite import PAGE_SIZE

DEFAULT_ROOT = PROJECT_ROOT / "data" / "soak"
DAY = 86400
QUERY = "SELECT count(*) AS orders, sum(quantity * unit_price) AS revenue FROM orders_current"
MIB = 2**20
PARTS = ("table", "stream", "free", "wal", "shard_logs", "lake", "athena", "other")
"""The parts of the root a line reports, in MiB."""


@dataclass(frozen=True)
class SoakPlan:
    """How a soak runs: its length, rate, schedules and the retention window it shows."""

    periods: int = 10
    period_s: float = 60.0
    rate: float = 100.0
    window_s: float = 120.0
    crawl_interval_s: float = 30.0
    retention_interval_s: float = 15.0
    segment_bytes: int = 1 * MIB
    max_small: int | None = None
    """The compactor's limit of small objects per partition (None: the platform's, 256)."""
    grace_s: float | None = None
    """Seconds a compaction's sources stay (None: the platform's, 60)."""
    seed: int = 15


QUICK = SoakPlan(
    periods=4,
    period_s=3.0,
    rate=50.0,
    window_s=3.0,
    crawl_interval_s=1.0,
    retention_interval_s=0.5,
    segment_bytes=20_000,
    max_small=4,
    grace_s=0.5,
)
"""A soak of seconds, for the test: same steps, short periods and a small compaction limit."""


def soak(root: Path, plan: SoakPlan, out: Callable[[str], None] = print) -> dict:
    """Run a soak on a new root; print a line per period and the verdict, and return both.

    Returns ``{"lines": [...], "verdict": {...}}``: each line is a dict of the period's end
    (``minute``), orders written so far, the MiB of each of :data:`PARTS`, ``objects``,
    ``stream_kept`` and ``kinesis_kept`` (records), and ``query_s`` (NaN before the first
    scheduled crawl made the table).
    """
    shutil.rmtree(root, ignore_errors=True)
    settings = {
        "crawl_interval_s": plan.crawl_interval_s,
        "retention_interval_s": plan.retention_interval_s,
        "stream_retention_hours": 24,
        "log_retention_days": 1,
        "error_retention_days": 1,
        "athena_results_retention_days": 1,
    }
    out(
        f"soak: {plan.rate:g} orders/s for {plan.periods} x {plan.period_s:g} s; crawl every"
        f" {plan.crawl_interval_s:g} s, retention every {plan.retention_interval_s:g} s.\n"
        f"retention: every period set to a day, and the retention clock moved forward by"
        f" {DAY - plan.window_s:,.0f} s, so a record expires {plan.window_s:g} s after it was"
        " written (standing for a day); Athena results expire at S3's midnight, not here."
    )
    lines = []
    with (
        _shifted_retention(DAY - plan.window_s),
        _segments(plan.segment_bytes),
        helpers.connect(root=root, **settings) as platform,
    ):
        if plan.max_small is None:
            plan = replace(plan, max_small=platform.compactor.max_small)
        platform.compactor.max_small = plan.max_small
        if plan.grace_s is not None:
            platform.compactor.grace_s = plan.grace_s
        out(_header())
        written = 0
        for period in range(plan.periods):
            params = SalesParams(seed=plan.seed + period)
            counts = platform.apply(live(plan.rate, plan.period_s, params=params), progress=False)
            written += counts["put"]
            line = measure(platform, written)
            line["minute"] = (period + 1) * plan.period_s / 60
            lines.append(line)
            out(_format(line))
    verdict = bounded(lines, plan)
    for name, (ok, detail) in verdict.items():
        out(f"{name:>12}: {'bounded' if ok else 'NOT bounded'} ({detail})")
    return {"lines": lines, "verdict": verdict}


def measure(platform, written: int) -> dict:
    """Disk use per part of the root (MiB), objects, records kept and the query's time."""
    root = Path(platform.settings.root)
    bucket = platform.bucket.path
    table, stream, free = _table_parts(platform.table.db)
    parts = {
        "table": table,
        "stream": stream,
        "free": free,
        "wal": sum(_tree_bytes(path) for path in root.rglob("*-wal")),
        "shard_logs": _tree_bytes(root / "kinesis"),
        "lake": _tree_bytes(bucket / platform.settings.lake_prefix),
        "athena": _tree_bytes(bucket / platform.settings.athena_prefix),
    }
    outside = _tree_bytes(platform.table.db.path) + sum(
        parts[name] for name in ("wal", "shard_logs", "lake", "athena")
    )
    parts["other"] = _tree_bytes(root) - outside
    started = time.perf_counter()
    try:
        platform.query(QUERY)
        query_s = time.perf_counter() - started
    except QueryError as error:  # before the first scheduled crawl found the lake
        if error.code != "TABLE_NOT_FOUND":
            raise
        query_s = math.nan
    lake = bucket / platform.settings.lake_prefix
    return {
        "orders": written,
        **{name: size / MIB for name, size in parts.items()},
        "objects": sum(1 for path in lake.rglob("*.parquet") if "_compaction" not in path.parts),
        "stream_kept": platform.table.stream_retained(),
        "kinesis_kept": platform.stream.count(),
        "query_s": query_s,
    }


def bounded(lines: list[dict], plan: SoakPlan) -> dict[str, tuple[bool, str]]:
    """Whether the trimmed state, the object count and the query time stayed bounded.

    Compares the last period with the first one after the retention window (and a trim after
    it) had passed: the stream, the shard logs and the records kept may grow by a quarter
    (plus a segment, the unit Kinesis retention removes); the query time may double (the
    machine is shared). The table's items and the lake hold the orders, so they grow.
    """
    settled = plan.window_s + plan.retention_interval_s + plan.period_s
    after = [line for line in lines if line["minute"] * 60 >= settled] or lines[-1:]
    first, last = after[0], lines[-1]
    segment = plan.segment_bytes / MIB
    verdict = {}
    for name, slack in (("stream", 0.5), ("shard_logs", segment), ("stream_kept", 0)):
        limit = first[name] * 1.25 + slack
        verdict[name] = (
            last[name] <= limit,
            f"{first[name]:,.1f} after the window, {last[name]:,.1f} at the end",
        )
    wal_limit = (CHECKPOINT_PAGES + 1000 * 5) * PAGE_SIZE / MIB
    verdict["wal"] = (
        max(line["wal"] for line in lines) <= wal_limit,
        f"at most {max(line['wal'] for line in lines):,.1f}; SQLite's checkpoints keep it"
        f" under {wal_limit:,.0f}",
    )
    peak = max(line["objects"] for line in after)
    limit = 2 * (plan.max_small or 0) + 8
    verdict["objects"] = (peak <= limit, f"at most {peak} after the window, limit {limit}")
    timed = [line["query_s"] for line in lines if not math.isnan(line["query_s"])] or [math.nan]
    third = max(1, len(timed) // 3)
    early, late = statistics.median(timed[:third]), statistics.median(timed[-third:])
    verdict["query_s"] = (
        late <= 2 * early + 0.05,
        f"median {early:.3f} s in the first third, {late:.3f} s in the last",
    )
    return verdict


def _table_parts(db) -> tuple[int, int, int]:
    """Bytes of the database in ``dynamodb.sqlite`` holding items, stream records and free
    pages (SQLite's own pages count with the stream), as its pages stand, the newest of them
    perhaps still in the WAL, which is reported apart."""
    pages = dict(db.read("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    page_size = db.scalar("PRAGMA page_size")
    free = db.scalar("PRAGMA freelist_count") * page_size
    table = pages.get("items", 0) + pages.get("sqlite_autoindex_items_1", 0)
    return table, db.scalar("PRAGMA page_count") * page_size - table - free, free


def _tree_bytes(path: Path) -> int:
    """Disk use (allocated blocks) of a file or of every file under a folder."""
    if not path.exists():
        return 0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    used = 0
    for file in files:
        try:
            used += file.stat().st_blocks * 512
        except FileNotFoundError:  # trimmed or compacted away meanwhile
            continue
    return used


def _header() -> str:
    return (
        f"{'min':>5} {'orders':>8} {'table':>7} {'stream':>7} {'free':>6} {'wal':>6}"
        f" {'shards':>7}"
        f" {'lake':>7} {'athena':>7} {'other':>6} {'objects':>7} {'stream#':>8}"
        f" {'kinesis#':>8} {'query':>7}   (MiB, records kept, seconds)"
    )


def _format(line: dict) -> str:
    return (
        f"{line['minute']:5.2f} {line['orders']:8,d} {line['table']:7.1f} {line['stream']:7.1f}"
        f" {line['free']:6.1f} {line['wal']:6.1f} {line['shard_logs']:7.1f} {line['lake']:7.1f}"
        f" {line['athena']:7.2f} {line['other']:6.1f} {line['objects']:7d}"
        f" {line['stream_kept']:8,d} {line['kinesis_kept']:8,d} {line['query_s']:6.3f}s"
    )


@contextmanager
def _shifted_retention(seconds: float):
    """Scheduled trims see the clock ``seconds`` ahead (restored after)."""
    saved = local_platform._retention_clock
    local_platform._retention_clock = lambda: time.time() + seconds
    try:
        yield
    finally:
        local_platform._retention_clock = saved


@contextmanager
def _segments(size: int):
    """Kinesis segments of ``size`` bytes in the runtimes started meanwhile (they read it)."""
    name = "SALESCAST_KINESIS_SEGMENT_BYTES"
    saved = os.environ.get(name)
    os.environ[name] = str(size)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="orders a second")
    parser.add_argument("--window", type=float, default=120.0, help="seconds standing for a day")
    parser.add_argument("--segment-kib", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="a run of seconds (the test's)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args()
    plan = QUICK
    if not args.quick:
        plan = replace(
            SoakPlan(),
            periods=max(1, round(args.minutes * 60 / SoakPlan.period_s)),
            rate=args.rate,
            window_s=args.window,
            segment_bytes=args.segment_kib * 1024,
        )
    soak(args.root, plan)


if __name__ == "__main__":
    main()
