"""Aggregate queries over orders_current answered from kept partial results (issue 15):
the same answers as plain SQL over the raw change log, whatever happens to the lake."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import helpers
from helpers import queries
from helpers.local import athena_views
from helpers.local.athena import Athena, QueryError
from helpers.schema import LAKE_SCHEMA
from tests.local.test_compaction import CURRENT, DAILY, Lake, crawled_lake

AGGREGATES = [  # {current} is orders_current, or its SQL over the raw rows
    "SELECT count(*) AS n, sum(quantity) AS q FROM {current}",
    "SELECT count(*), sum(quantity * unit_price) FROM {current} WHERE product_id <> 'p1'",
    "SELECT count(*) AS n, sum(quantity) AS q FROM {current} WHERE quantity > 100",  # no rows
    "SELECT product_id, sum(quantity * unit_price) AS revenue, count(*) AS orders "
    "FROM {current} WHERE quantity > 2 GROUP BY product_id ORDER BY orders DESC, product_id "
    "LIMIT 3",
    "SELECT customer_id, count(*) AS n FROM {current} GROUP BY customer_id ORDER BY customer_id",
]


@pytest.fixture
def platform(tmp_path):
    with helpers.connect(root=tmp_path / "root", consume=False) as platform:
        yield platform


@pytest.fixture
def lake(platform):
    return crawled_lake(platform, (0, 0, 1, 0, 1, 2, 2), orders=12)


def aggregate_dirs(platform) -> list:
    return [path for path in platform.athena.state_root.glob("*/aggregates/*")]


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The same rows in the same order (names aside: DuckDB names unnamed columns apart);
    sums of doubles to the last digits a parallel sum may change."""
    assert got.shape == want.shape, (got, want)
    for (_, mine), (_, theirs) in zip(got.items(), want.items(), strict=True):
        if pd.api.types.is_float_dtype(mine) or pd.api.types.is_float_dtype(theirs):
            assert np.allclose(mine.astype(float), theirs.astype(float), equal_nan=True)
        else:
            assert mine.tolist() == theirs.tolist(), (got, want)


def assert_aggregates_are_the_raw_rows(platform, lake: Lake) -> None:
    """Each aggregate equals DuckDB's over every row written, in this engine and a new one
    (another process), and the named query equals the plain SQL's."""
    root, database = platform.settings.root, platform.settings.database
    new = Athena(platform.catalog, platform.bucket, root / "athena.sqlite")
    plain = Athena(platform.catalog, platform.bucket, root / "plain.sqlite", maintain_latest=False)
    try:
        for sql in AGGREGATES:
            want = lake.expected(sql.format(current=f"({CURRENT})"))
            for engine in (platform.athena, new):
                assert_same(
                    engine.read_sql_query(sql.format(current="orders_current"), database), want
                )
        named = queries.load("revenue_by_category_channel")
        assert_same(
            platform.named_query("revenue_by_category_channel"),
            plain.read_sql_query(named, database),
        )
    finally:
        new.close()
        plain.close()


def test_aggregates_over_orders_current_are_kept_and_stay_the_plain_answers(platform, lake):
    assert_aggregates_are_the_raw_rows(platform, lake)
    kept = aggregate_dirs(platform)
    assert len(kept) == len(AGGREGATES) + 2  # and the named query's, and daily_sales'
    empty = platform.query(AGGREGATES[2].format(current="orders_current"))
    assert empty.n.tolist() == [0] and empty.q.isna().all()  # one row, as over no rows

    for day in (0, 2, 2):  # new deliveries: amendments and cancels of merged rows
        lake.delivery(day)
    assert_aggregates_are_the_raw_rows(platform, lake)
    lake.delivery(3)  # a new partition, once crawled
    platform.crawl()
    assert_aggregates_are_the_raw_rows(platform, lake)
    assert sorted(aggregate_dirs(platform)) == sorted(kept)  # the same ones, brought up to date

    platform.compact(grace_s=0)  # the rows move; the partial results go on from them
    assert_aggregates_are_the_raw_rows(platform, lake)
    lake.delivery(1)
    assert_aggregates_are_the_raw_rows(platform, lake)


def test_aggregates_follow_a_column_the_crawler_adds(platform, lake):
    assert_aggregates_are_the_raw_rows(platform, lake)
    rows = [lake._event(f"coupon-{i}", "INSERT", 4) for i in range(5)]
    table = pa.Table.from_pylist(rows, schema=LAKE_SCHEMA)
    table = table.append_column("coupon", pa.array(["SPRING"] * len(rows)))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    platform.bucket.put_object("sales/year=2026/month=05/day=05/other.parquet", sink.getvalue())
    lake.rows.extend(rows)
    assert "coupon" in " ".join(platform.crawl()["messages"])
    lake.delivery(1)  # an ordinary delivery, without the column
    assert_aggregates_are_the_raw_rows(platform, lake)


def test_a_corrupt_object_fails_the_aggregates_with_its_key_until_it_is_removed(platform, lake):
    """Athena's HIVE_BAD_DATA naming the object, for every aggregate that reads it; the
    kept partial results are not spoiled, and the answers are right once it is gone."""
    assert_aggregates_are_the_raw_rows(platform, lake)
    stray = "sales/year=2026/month=05/day=02/stray.parquet"
    platform.bucket.put_object(stray, b"not parquet at all")
    for sql in AGGREGATES:
        with pytest.raises(QueryError) as error:
            platform.query(sql.format(current="orders_current"))
        assert error.value.code == "HIVE_BAD_DATA" and stray in str(error.value)
    platform.bucket.delete_objects(stray)
    lake.delivery(1)
    assert_aggregates_are_the_raw_rows(platform, lake)


@pytest.mark.parametrize(("grace_s", "kept"), [(0.0, 2), (3600.0, 3)])
def test_the_least_recently_used_aggregates_are_forgotten_past_the_limit(
    platform, lake, monkeypatch, grace_s, kept
):
    """At most _MAX_AGGREGATES queries keep partial results, but none used within the grace
    (a query may be reading them); a forgotten one is rebuilt when asked again."""
    monkeypatch.setattr(athena_views, "_MAX_AGGREGATES", 2)
    monkeypatch.setattr(athena_views, "_AGGREGATE_GRACE_S", grace_s)
    daily_sales = aggregate_dirs(platform)  # built by the crawl
    first, second = (sql.format(current="orders_current") for sql in AGGREGATES[:2])
    time.sleep(0.01)
    platform.query(first)
    assert len(aggregate_dirs(platform)) == 2  # at the limit: none forgotten
    time.sleep(0.01)
    platform.query(second)  # past it: daily_sales' is the least recently used
    assert len(aggregate_dirs(platform)) == kept
    assert daily_sales[0].exists() == (kept == 3)
    assert_aggregates_are_the_raw_rows(platform, lake)
    assert len(platform.query("SELECT * FROM daily_sales")) > 0


def amend(lake: Lake, day: int) -> None:
    """An object of one new order and a change of a merged one (a partial result for the
    rows it adds and one for the rows it takes away)."""
    live = [k for k, v in lake.latest.items() if v["event_name"] != "REMOVE"]
    changed = lake._event(sorted(live)[0], "MODIFY", day)
    lake.put(day, [lake._event(f"amended-{lake.sequence}", "INSERT", day), changed])


@pytest.mark.parametrize(("deliveries", "files"), [(1, 3), (2, 1), (3, 3)])
def test_partial_results_are_added_up_into_one_file_past_max_batches(
    platform, lake, monkeypatch, deliveries, files
):
    """Each merge adds two files of partial results; past _MAX_BATCHES files they are added
    up into one. The state's own compaction (at _MAX_BATCHES merges, the third delivery
    here) does not start them again from the whole."""
    monkeypatch.setattr(athena_views, "_MAX_BATCHES", 3)
    sql = AGGREGATES[3].format(current="orders_current")
    want = AGGREGATES[3].format(current=f"({CURRENT})")
    platform.query(sql)
    folder = max(aggregate_dirs(platform), key=lambda path: path.stat().st_mtime)
    for _ in range(deliveries):
        amend(lake, 0)
        assert_same(platform.query(sql), lake.expected(want))
    assert len(json.loads((folder / "manifest.json").read_text())["files"]) == files
    assert_aggregates_are_the_raw_rows(platform, lake)


KILLED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from helpers.local.athena import Athena
    from helpers.local.glue import Catalog
    from helpers.local.s3 import Bucket

    root, bucket, region, account, database = sys.argv[1:6]
    catalog = Catalog(Path(root) / "glue.sqlite", region, account)
    engine = Athena(catalog, Bucket(Path(root) / "s3", bucket), Path(root) / "athena.sqlite")
    print("ready", flush=True)
    while True:
        for sql in sys.argv[6:]:
            engine.read_sql_query(sql, database)
            print("answered", flush=True)
    """
)


def test_kill_9_while_another_process_updates_the_partial_results(platform, lake):
    """Another process queries in a loop while objects arrive, and is killed with SIGKILL
    at random moments (in a merge, writing partial results or a manifest): the answers
    stay the raw rows', here and in the next process."""
    settings = platform.settings
    statements = [sql.format(current="orders_current") for sql in AGGREGATES]
    arguments = [str(settings.root), settings.bucket, settings.region, settings.account_id]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    randomness = random.Random(15)
    for _ in range(6):
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED, *arguments, settings.database, *statements],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert process.stdout.readline().strip() == "ready"
            for _ in range(randomness.randrange(1, 4)):
                lake.delivery(randomness.randrange(3))
            for _ in range(randomness.randrange(1, 6)):
                assert process.stdout.readline().strip() == "answered"
            time.sleep(randomness.uniform(0, 0.2))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert process.returncode == -signal.SIGKILL
        assert_aggregates_are_the_raw_rows(platform, lake)


@pytest.mark.parametrize(("over", "indexed"), [(0, True), (1, False), (-(10**9), True)])
def test_large_state_files_are_looked_up_in_sorted_copies(
    platform, lake, monkeypatch, over, indexed
):
    """A keys or superseded file of _INDEXED_ROWS rows or more gets a sorted copy that
    merges search instead of reading it; a smaller one is read. Either way the same
    answers; a damaged copy is built again."""
    state = next(platform.athena.state_root.iterdir())
    keys = next(state.glob("keys-*.parquet"))  # the crawl's one merge
    threshold = max(1, pq.read_metadata(keys).num_rows + over)  # 1: every file, superseded too
    monkeypatch.setattr(athena_views, "_INDEXED_ROWS", threshold)
    lake.delivery(0)
    assert_aggregates_are_the_raw_rows(platform, lake)
    copy = keys.with_suffix(".npy")
    assert copy.exists() == indexed
    assert bool(list(state.glob("superseded-*.npy"))) == (threshold == 1)
    if indexed:
        copy.write_bytes(copy.read_bytes()[:-9])  # truncated
        lake.delivery(1)
        assert_aggregates_are_the_raw_rows(platform, lake)
        assert len(np.load(copy)) == 2 * pq.read_metadata(keys).num_rows


def test_a_merge_reads_only_the_row_numbers_its_older_rows_span(platform, lake):
    """``rows`` (first, last) keeps both ends and nothing beyond them."""
    definition = platform.catalog.get_table(platform.settings.database, "orders_changes")
    key = lake.put(0, [lake._event(f"span-{i}", "INSERT", 0) for i in range(5)])
    path = str(platform.bucket.local_path(key))
    for first, last in ((0, 0), (0, 4), (1, 3), (4, 4), (5, 9)):
        sql = platform.athena._typed_source(definition, [path], position=True, rows=(first, last))
        got = duckdb.sql(f"SELECT order_id FROM ({sql}) ORDER BY order_id").fetchall()
        assert [order_id for (order_id,) in got] == [
            f"span-{i}" for i in range(first, min(last, 4) + 1)
        ]


def raw_answer(lake: Lake, sql: str, params: list | None = None) -> pd.DataFrame:
    """``sql`` in DuckDB over every row written, orders_changes with its partition keys
    (the lake partitions by order date) and the views as their plain SQL."""
    rows = pa.Table.from_pylist(lake.rows, schema=LAKE_SCHEMA)  # noqa: F841 (read by DuckDB)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(
        "CREATE VIEW raw AS SELECT *, strftime(order_ts, '%Y') AS year, "
        "strftime(order_ts, '%m') AS month, strftime(order_ts, '%d') AS day FROM rows"
    )
    current = f"({CURRENT})"
    sql = sql.replace("orders_changes", "raw").replace("orders_current", current)
    return connection.execute(sql.replace("daily_sales", f"({DAILY})"), params).df()


RAW = "SELECT count(*) AS n, sum(quantity) AS q FROM orders_changes"
LATEST_OF_A_DAY = (  # the latest rows of one day's partition; Trino prunes the inner WHERE
    "SELECT count(*) AS n, sum(quantity) AS q FROM (SELECT *, row_number() OVER "
    "(PARTITION BY order_id ORDER BY event_seq DESC) AS newest FROM orders_changes{inner}) "
    "WHERE newest = 1 AND event_name <> 'REMOVE'{outer}"
)


@pytest.mark.parametrize(
    ("sql", "days"),
    [  # days: the partitions (day=) the query reads, all of them if None
        (f"{RAW} WHERE day = '01'", {"01"}),
        (f"{RAW} WHERE day IN ('01', '03')", {"01", "03"}),
        (f"{RAW} WHERE day < '02'", {"01"}),  # the edge: below the bad day
        (f"{RAW} WHERE day <= '02'", None),  # the edge: up to it
        (f"{RAW} WHERE day = '02'", None),
        (
            f"{RAW} WHERE year = '2026' AND month = '05' AND day <> '02' AND quantity > 2",
            {"01", "03"},
        ),
        (f"{RAW} AS t WHERE t.day = '03' AND (t.quantity > 2 OR t.day = '02')", {"03"}),
        (f"{RAW} WHERE CAST(day AS integer) * 2 > 5", {"03"}),
        (f"{RAW} WHERE day = '01' OR quantity > 2", None),  # not a condition on days alone
        (f"{RAW} WHERE quantity > 2", None),
        (RAW, None),
        (LATEST_OF_A_DAY.format(inner=" WHERE day = '01'", outer=""), {"01"}),
        (LATEST_OF_A_DAY.format(inner="", outer=" AND day = '01'"), None),  # after the window
        ("SELECT count(*) AS n FROM orders_current WHERE order_ts < TIMESTAMP '2026-05-02'", None),
        ("SELECT count(*) AS n, sum(quantity) AS q FROM orders_current", None),
        (
            "SELECT product_id, units, revenue FROM daily_sales WHERE ds = DATE '2026-05-01' ORDER BY product_id",
            None,
        ),
        (
            "SELECT product_id, sum(units) AS units FROM daily_sales GROUP BY product_id "
            "ORDER BY product_id",
            None,
        ),
    ],
)
def test_a_corrupt_object_fails_only_the_queries_that_read_its_partition(platform, lake, sql, days):
    """Athena prunes a table's partitions by the WHERE on its partition keys and raises
    HIVE_BAD_DATA, naming the object and the fix, only when a query reads it. A filter on
    orders_current or an aggregate over it prunes nothing (it is applied after the latest row
    per order is found, which reads every partition), so they fail whatever the day."""
    want = raw_answer(lake, sql)
    assert_aggregates_are_the_raw_rows(platform, lake)
    stray = "sales/year=2026/month=05/day=02/stray.parquet"
    platform.bucket.put_object(stray, b"not parquet at all")
    if days is None:
        with pytest.raises(QueryError) as error:
            platform.query(sql)
        assert error.value.code == "HIVE_BAD_DATA" and stray in str(error.value)
        assert "remove or replace the object" in str(error.value)
    else:
        assert_same(platform.query(sql), want)
    platform.bucket.delete_objects(stray)
    assert_same(platform.query(sql), want)
