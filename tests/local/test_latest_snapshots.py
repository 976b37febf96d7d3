"""The latest rows of each partition kept as one Parquet file sorted by key (issue 15): row
queries over orders_current read them and the changes since, with the plain SQL's answers
whatever happens to the lake (deliveries, compaction, a new column, a process killed)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import helpers
from helpers.local import athena_views
from helpers.local.athena import Athena, _compare_timestamps_by_day, _parse
from helpers.schema import LAKE_SCHEMA
from tests.local.test_compaction import Lake, crawled_lake
from tests.local.test_maintained_aggregates import (
    assert_aggregates_are_the_raw_rows,
    assert_same,
    raw_answer,
)

ROWS = [  # row queries over orders_current; the first order of day 1 is o1-..-0
    "SELECT order_id, quantity, unit_price, event_seq FROM orders_current ORDER BY order_id",
    "SELECT order_id, quantity, event_seq FROM orders_current WHERE order_id = '{key}'",
    "SELECT order_id, quantity FROM orders_current WHERE order_ts >= TIMESTAMP "
    "'2026-05-02 06:00:00' AND order_ts < TIMESTAMP '2026-05-02 18:00:00' ORDER BY order_id",
    "SELECT order_id, event_seq FROM orders_current WHERE quantity > 6 AND order_id LIKE 'o2%' "
    "ORDER BY order_id",
]


@pytest.fixture
def platform(tmp_path):
    with helpers.connect(root=tmp_path / "root", consume=False) as platform:
        yield platform


@pytest.fixture
def lake(platform):  # at the default size: no partition is large enough for a snapshot
    return crawled_lake(platform, (0, 0, 1, 0, 1, 2, 2), orders=12)


@pytest.fixture
def every_partition(monkeypatch):
    """Snapshots of any partition with merged objects outside its snapshot."""
    monkeypatch.setattr(athena_views, "_SNAPSHOT_BYTES", 0)


def state_of(platform):
    return next(platform.athena.state_root.iterdir())


def snapshots(platform) -> list[dict]:
    return json.loads((state_of(platform) / "manifest.json").read_text()).get("snapshots", [])


def days(taken: list[dict]) -> list[str]:
    """The day partitions (``day=DD``) of snapshots."""
    return sorted(snapshot["partition"].rstrip("/").rsplit("/", 1)[1] for snapshot in taken)


def assert_rows_are_the_raw_rows(platform, lake: Lake) -> None:
    """Each row query equals DuckDB's over every row written, in this engine and a new one
    (another process); the aggregates too."""
    key = next(row["order_id"] for row in lake.rows if row["order_id"].startswith("o1-"))
    root, database = platform.settings.root, platform.settings.database
    new = Athena(platform.catalog, platform.bucket, root / "athena.sqlite")
    try:
        for sql in ROWS:
            sql = sql.format(key=key)
            want = raw_answer(lake, sql)
            for engine in (platform.athena, new):
                assert_same(engine.read_sql_query(sql, database), want)
    finally:
        new.close()
    assert_aggregates_are_the_raw_rows(platform, lake)


def test_the_crawl_keeps_each_partitions_latest_rows_sorted_by_key(platform, lake, every_partition):
    assert snapshots(platform) == []  # the fixture's crawl: under _SNAPSHOT_BYTES
    platform.crawl()
    taken = snapshots(platform)
    assert len(taken) == 3  # one per day partition, each over all its objects
    for snapshot in taken:
        rows = pq.read_table(state_of(platform) / snapshot["file"])
        assert rows["order_id"].to_pylist() == sorted(rows["order_id"].to_pylist())
        assert len(set(rows["order_id"].to_pylist())) == rows.num_rows  # the latest only
        assert all(path.startswith(snapshot["partition"]) for path in snapshot["objects"])
    platform.query(ROWS[0])
    connection = platform.athena._local.connection
    (view,) = connection.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ?", [state_of(platform).name]
    ).fetchall()
    assert view[0].count("latest-") == 3  # read instead of the merged objects
    assert_rows_are_the_raw_rows(platform, lake)

    for day in (0, 2, 2):  # amendments and cancels of rows in snapshots, not crawled yet
        lake.delivery(day)
    assert snapshots(platform) == taken  # a query does not take them
    assert_rows_are_the_raw_rows(platform, lake)
    platform.crawl()  # takes again the two partitions that received objects
    again = snapshots(platform)
    assert days([s for s in again if s not in taken]) == ["day=01", "day=03"]
    assert_rows_are_the_raw_rows(platform, lake)
    lake.delivery(1)
    platform.crawl()
    files = {path.name for path in state_of(platform).glob("latest-*.parquet")}
    assert files == {s["file"] for s in snapshots(platform) + again}  # the older ones go
    assert_rows_are_the_raw_rows(platform, lake)


@pytest.mark.parametrize(("over", "taken"), [(0, True), (1, False)])
def test_a_partition_is_taken_again_from_snapshot_bytes_outside_it(
    platform, lake, every_partition, monkeypatch, over, taken
):
    platform.crawl()
    before = snapshots(platform)
    keys = set(platform.lake_objects().key)
    lake.delivery(0)
    new = [key for key in platform.lake_objects().key if key not in keys]
    size = sum(platform.bucket.local_path(key).stat().st_size for key in new)
    monkeypatch.setattr(athena_views, "_SNAPSHOT_BYTES", size + over)
    platform.crawl()
    changed = days([s for s in snapshots(platform) if s not in before])
    assert changed == (["day=01"] if taken else [])
    assert_rows_are_the_raw_rows(platform, lake)


def test_compactions_end_snapshots_and_the_next_crawl_takes_them_again(
    platform, lake, every_partition, monkeypatch
):
    platform.crawl()
    lake.delivery(0)
    assert_rows_are_the_raw_rows(platform, lake)
    with monkeypatch.context() as patch:  # the lake's compaction moves the rows: no snapshot
        patch.setattr(athena_views._LatestRows, "take_snapshots", lambda self, connection: [])
        platform.compact(grace_s=0)
    assert snapshots(platform) == []
    assert_rows_are_the_raw_rows(platform, lake)
    platform.crawl()
    assert len(snapshots(platform)) == 3
    assert_rows_are_the_raw_rows(platform, lake)
    monkeypatch.setattr(athena_views, "_MAX_BATCHES", 2)  # the state's own compaction
    for day in (0, 1, 2):
        lake.delivery(day)
        assert_rows_are_the_raw_rows(platform, lake)
    assert (
        athena_views._valid_snapshots(
            json.loads((state_of(platform) / "manifest.json").read_text())
        )
        == []
    )
    platform.crawl()
    assert len(snapshots(platform)) == 3
    assert_rows_are_the_raw_rows(platform, lake)


def test_a_column_the_crawler_adds_starts_snapshots_again(platform, lake, every_partition):
    platform.crawl()
    rows = [lake._event(f"coupon-{i}", "INSERT", 4) for i in range(5)]
    table = pa.Table.from_pylist(rows, schema=LAKE_SCHEMA)
    table = table.append_column("coupon", pa.array(["SPRING"] * len(rows)))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    platform.bucket.put_object("sales/year=2026/month=05/day=05/other.parquet", sink.getvalue())
    lake.rows.extend(rows)
    assert "coupon" in " ".join(platform.crawl()["messages"])
    lake.delivery(1)  # an ordinary delivery, without the column
    assert_rows_are_the_raw_rows(platform, lake)
    platform.crawl()
    assert_rows_are_the_raw_rows(platform, lake)
    coupons = platform.query("SELECT count(coupon) AS n FROM orders_changes")
    assert coupons.n.tolist() == [5]


SNAPSHOTTING = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from helpers.local import athena_views
    from helpers.local.athena import Athena, _compare_timestamps_by_day, _parse
    from helpers.local.glue import Catalog
    from helpers.local.s3 import Bucket

    athena_views._SNAPSHOT_BYTES = 0
    root, bucket, region, account, database = sys.argv[1:6]
    catalog = Catalog(Path(root) / "glue.sqlite", region, account)
    engine = Athena(catalog, Bucket(Path(root) / "s3", bucket), Path(root) / "athena.sqlite")
    print("ready", flush=True)
    while True:
        engine.refresh(database)  # the crawl's refresh: merges and snapshots
        print("refreshed", flush=True)
    """
)


def test_kill_9_while_another_process_takes_snapshots(platform, lake, every_partition):
    """Another process refreshes the state in a loop (merging, writing snapshots and the
    manifest) while objects arrive, and is killed with SIGKILL at random moments: the
    answers stay the raw rows', and what a killed write left is removed later."""
    settings = platform.settings
    arguments = [str(settings.root), settings.bucket, settings.region, settings.account_id]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    randomness = random.Random(15)
    for _ in range(6):
        process = subprocess.Popen(
            [sys.executable, "-c", SNAPSHOTTING, *arguments, settings.database],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert process.stdout.readline().strip() == "ready"
            for _ in range(randomness.randrange(1, 4)):
                lake.delivery(randomness.randrange(3))
            for _ in range(randomness.randrange(1, 4)):
                assert process.stdout.readline().strip() == "refreshed"
            lake.delivery(randomness.randrange(3))
            time.sleep(randomness.uniform(0, 0.3))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert process.returncode == -signal.SIGKILL
        assert_rows_are_the_raw_rows(platform, lake)
    platform.crawl()
    platform.crawl()
    files = {path.name for path in state_of(platform).glob("latest-*.parquet")}
    assert files == {s["file"] for s in snapshots(platform)}


BY_DAY = [  # (condition, parameters, rewritten): the edges are rows at 23:59:59.999 and 00:00
    (
        "CAST(order_ts AS DATE) >= CAST(? AS DATE) AND CAST(order_ts AS DATE) < CAST(? AS DATE)",
        ["2026-05-02", "2026-05-03"],
        True,
    ),
    ("CAST(order_ts AS DATE) > DATE '2026-05-01'", None, True),
    ("CAST(order_ts AS DATE) <= DATE '2026-05-01'", None, True),
    ("DATE '2026-05-02' > CAST(order_ts AS DATE)", None, True),
    (
        "CAST(event_ts AS DATE) >= DATE '2026-05-01' AND (CAST(order_ts AS DATE) < DATE "
        "'2026-05-02' OR quantity > 7)",
        None,
        True,
    ),
    ("CAST(order_ts AS DATE) = DATE '2026-05-02'", None, False),  # not a range
    ("CAST(order_ts AS DATE) >= '2026-05-02'", None, False),  # a varchar, cast to a date
]


@pytest.mark.parametrize("snapshot", [False, True])
@pytest.mark.parametrize(("condition", "params", "rewritten"), BY_DAY)
def test_a_day_range_on_a_timestamp_is_compared_on_the_timestamp(
    platform, lake, monkeypatch, snapshot, condition, params, rewritten
):
    """``CAST(t AS DATE)`` against a date becomes a comparison of ``t`` that row-group
    statistics can skip by (hourly_profile's filter), with the same answers at the edges of
    a day, over orders_current (with or without snapshots) and the raw table."""
    for stamp in ("2026-05-01 23:59:59.999", "2026-05-02 00:00:00"):
        row = lake._event(f"edge-{stamp}", "INSERT", 1)
        row["order_ts"] = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
        lake.put(1, [row])
    if snapshot:
        monkeypatch.setattr(athena_views, "_SNAPSHOT_BYTES", 0)
    platform.crawl()
    assert bool(snapshots(platform)) == snapshot
    for sql in (
        f"SELECT order_id, quantity FROM orders_current WHERE {condition} ORDER BY order_id",
        f"SELECT order_id, event_seq FROM orders_changes WHERE {condition} "
        "ORDER BY order_id, event_seq",
        f"WITH t AS (SELECT order_id, CAST(order_ts AS VARCHAR) AS order_ts, quantity, "
        f"event_ts FROM orders_current) SELECT count(*) AS n FROM t WHERE {condition}",
    ):
        got = platform.athena.read_sql_query(sql, platform.settings.database, params)
        assert_same(got, raw_answer(lake, sql, params))
    tree = _parse(f"SELECT count(*) FROM orders_current WHERE {condition}")
    connection, registered = platform.athena._connection()
    platform.athena._register(connection, registered, tree, "sales", tree.sql(), {})
    _compare_timestamps_by_day(connection, tree, "sales")
    assert ("CAST(order_ts AS DATE)" not in tree.sql(dialect="trino")) == rewritten
