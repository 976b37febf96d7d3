"""Athena SQL over the lake: views, named queries, functions, errors, executions."""

from __future__ import annotations

import json
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

import helpers
from helpers import queries
from helpers.generate import SalesParams, backfill
from helpers.local import athena_views
from helpers.local.athena import (
    Athena,
    QueryError,
    _aggregate_pattern,
    _latest_pattern,
    _parse,
)
from helpers.local.glue import dataset_table_input
from helpers.schema import ORDER_FIELDS, item_to_order


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """30 days of generated orders with amendments, cancels and a duplicated delivery."""
    root = tmp_path_factory.mktemp("athena") / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        history = backfill(30, end="2026-03-01", params=SalesParams(orders_per_day=150, seed=3))
        platform.apply(history, progress=False, batch_rows=5000)
        platform.flush()
        # a redelivered object: every change in it appears twice in the change log
        key = platform.lake_objects().key.iloc[3]
        platform.bucket.put_object(
            key.replace(".parquet", "-again.parquet"), platform.bucket.get_object(key)
        )
        platform.crawl()
        yield platform


def table_orders(platform) -> pd.DataFrame:
    orders = [item_to_order(item) for item in platform.table.scan()]
    return pd.DataFrame(orders, columns=list(ORDER_FIELDS))


def test_orders_current_equals_the_table(platform):
    lake = platform.read_lake()
    assert lake.duplicated(["order_id", "event_seq"]).any(), "the fixture should hold duplicates"
    current = platform.query("SELECT * FROM orders_current").set_index("order_id").sort_index()
    table = table_orders(platform).set_index("order_id").sort_index()
    assert current.index.equals(table.index)
    assert (current.quantity == table.quantity).all()
    assert np.allclose(current.unit_price, table.unit_price)
    assert (current.product_id == table.product_id).all()
    order_ts = pd.to_datetime(current.order_ts).dt.tz_localize("UTC")
    assert (order_ts == table.order_ts).all()


def test_daily_sales_equals_totals_from_the_table(platform):
    table = table_orders(platform)
    table["ds"] = table.order_ts.dt.date
    table["revenue"] = table.quantity * table.unit_price
    expected = table.groupby(["ds", "product_id"]).agg(
        units=("quantity", "sum"), revenue=("revenue", "sum"), orders=("order_id", "count")
    )
    daily = platform.query("SELECT * FROM daily_sales")
    daily["ds"] = pd.to_datetime(daily.ds).dt.date
    daily = daily.set_index(["ds", "product_id"]).sort_index()
    assert daily.index.equals(expected.index)
    assert (daily.units == expected.units).all() and (daily.orders == expected.orders).all()
    assert np.allclose(daily.revenue, expected.revenue)
    assert pd.api.types.is_integer_dtype(daily.units)  # bigint, as on Athena


def test_named_queries_agree_with_pandas(platform):
    daily = platform.query("SELECT * FROM daily_sales")
    revenue = platform.named_query("daily_revenue")
    assert len(revenue) == daily.ds.nunique()
    assert np.isclose(revenue.revenue.sum(), daily.revenue.sum())
    top = platform.named_query("top_products")
    by_product = daily.groupby("product_id").revenue.sum().sort_values(ascending=False)
    assert top.product_id.tolist() == by_product.index[:20].tolist()
    assert np.isclose(top.revenue_share.iloc[0], by_product.iloc[0] / by_product.sum())
    channels = platform.named_query("revenue_by_category_channel")
    assert np.isclose(channels.revenue.sum(), daily.revenue.sum())
    weekly = platform.named_query("week_over_week")
    assert pd.to_datetime(weekly.week).dt.dayofweek.eq(0).all()  # weeks start on Monday
    second = weekly.iloc[1]
    assert np.isclose(second.growth, second.revenue / weekly.revenue.iloc[0] - 1)
    freshness = platform.named_query("data_freshness")
    assert freshness.events.sum() == len(platform.read_lake())


def test_athena_functions_give_athena_answers(platform):
    row = platform.query(
        """
        SELECT date_trunc('month', TIMESTAMP '2026-02-17 10:30:00') AS month_start,
               date_format(TIMESTAMP '2026-02-17 10:30:00', '%Y-%m-%d %H:%i') AS formatted,
               date_add('day', 3, DATE '2026-02-27') AS later,
               date_diff('day', DATE '2026-01-01', DATE '2026-03-01') AS days,
               CAST(10.0 / 3 AS DECIMAL(10, 2)) AS third,
               year(DATE '2026-02-17') AS y, day_of_week(DATE '2026-02-17') AS dow
        """
    ).iloc[0]
    assert row.month_start == pd.Timestamp("2026-02-01")
    assert row.formatted == "2026-02-17 10:30"
    assert pd.Timestamp(row.later) == pd.Timestamp("2026-03-02")
    assert row.days == 59 and float(row.third) == 3.33 and row.y == 2026 and row.dow == 2
    unnest = platform.query("SELECT sum(x) AS total FROM UNNEST(ARRAY[1, 2, 3]) AS t(x)")
    assert unnest.total.iloc[0] == 6
    window = platform.query(
        """
        SELECT ds, revenue,
               rank() OVER (ORDER BY revenue DESC) AS place,
               sum(revenue) OVER (ORDER BY ds ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS running
        FROM daily_revenue_source ORDER BY ds
        """.replace("daily_revenue_source", f"({queries.load('daily_revenue')})")
    )
    assert np.isclose(window.running.iloc[-1], window.revenue.sum())
    assert window.sort_values("place").revenue.is_monotonic_decreasing
    median = platform.query("SELECT approx_percentile(unit_price, 0.5) AS p50 FROM orders_current")
    prices = platform.query("SELECT unit_price FROM orders_current").unit_price
    assert abs(median.p50.iloc[0] - prices.median()) <= prices.std() * 0.1


def test_only_crawled_partitions_are_visible(tmp_path, make_orders):
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(50).assign(order_ts="2026-05-01T10:00:00Z"))
        platform.flush()
        platform.crawl()
        platform.orders.put(make_orders(20, seed=2).assign(order_ts="2026-05-02T10:00:00Z"))
        platform.flush()
        count = "SELECT count(*) AS n FROM orders_changes"
        current = "SELECT count(*) AS n FROM orders_current"  # a view, its result reused
        assert platform.query(count).n.iloc[0] == platform.query(current).n.iloc[0] == 50
        assert platform.crawl()["partitions_added"] == 1
        assert platform.query(count).n.iloc[0] == platform.query(current).n.iloc[0] == 70
        # a new object in a known partition changes the view's inputs: no reuse
        platform.orders.put(make_orders(5, seed=3).assign(order_ts="2026-05-02T11:00:00Z"))
        platform.flush()
        assert platform.query(current).n.iloc[0] == 75


@pytest.mark.parametrize(
    ("sql", "code", "position"),
    [
        ("SELECT order_id FROM orders_current WHERE", "SYNTAX_ERROR", (1, 41)),
        ("SELECT *\nFROM no_such_table", "TABLE_NOT_FOUND", (2, 6)),
        ("SELECT order_id, colour\nFROM orders_current", "COLUMN_NOT_FOUND", (1, 18)),
        (
            "SELECT bing_tile_at(quantity, unit_price, 3) FROM orders_current",
            "FUNCTION_NOT_FOUND",
            None,
        ),
        ("DROP TABLE orders_changes", "NOT_SUPPORTED", None),
    ],
)
def test_errors_name_the_problem_and_where(platform, sql, code, position):
    with pytest.raises(QueryError) as caught:
        platform.query(sql)
    assert caught.value.code == code
    assert str(caught.value).startswith(code)
    if position:
        assert (caught.value.line, caught.value.column) == position


def test_executions_have_states_and_csv_results(platform):
    frame = platform.query("SELECT ds, revenue FROM daily_sales ORDER BY ds LIMIT 3")
    execution = platform.athena.get_query_execution(frame.attrs["query_execution_id"])
    assert execution["Status"]["State"] == "SUCCEEDED"
    location = execution["ResultConfiguration"]["OutputLocation"]
    assert location == frame.attrs["output_location"]
    key = location.removeprefix(f"s3://{platform.bucket.name}/")
    lines = platform.bucket.get_object(key).decode().splitlines()
    assert lines[0] == '"ds","revenue"' and len(lines) == 4
    with pytest.raises(QueryError):
        platform.query("SELECT nope FROM daily_sales")
    failed = platform.athena.db.read(
        "SELECT id FROM executions WHERE state = 'FAILED' ORDER BY submitted DESC LIMIT 1"
    )[0][0]
    status = platform.athena.get_query_execution(failed)["Status"]
    assert status["State"] == "FAILED" and "COLUMN_NOT_FOUND" in status["StateChangeReason"]


def test_parameters_qmark_and_named(platform):
    product = platform.query("SELECT product_id FROM daily_sales LIMIT 1").product_id.iloc[0]
    by_qmark = platform.query(
        "SELECT sum(units) AS u FROM daily_sales WHERE product_id = ?", params=[product]
    )
    by_name = platform.query(
        "SELECT sum(units) AS u FROM daily_sales WHERE product_id = :product",
        params={"product": product},
    )
    assert by_qmark.u.iloc[0] == by_name.u.iloc[0] > 0
    with pytest.raises(QueryError, match="no value given for parameter :other"):
        platform.query("SELECT :other AS x", params={"product": product})


def test_named_parameters_are_bound_in_the_query_not_in_its_text(platform):
    """A ``:name`` inside a string literal or a comment is text: an injected value cannot
    widen a LIKE, and a time literal beside a parameter stays a literal."""
    sql = (
        "SELECT count(*) AS n FROM daily_sales WHERE product_id LIKE '%:term%'"
        " AND product_id <> :term -- :term"
    )
    assert platform.query(sql, params={"term": "OR 1=1 --"}).n.iloc[0] == 0
    frame = platform.query("SELECT '10:00:00' AS t, :v AS v", params={"v": "it's"})
    assert frame.iloc[0].tolist() == ["10:00:00", "it's"]


def test_the_crawler_runs_on_a_schedule_while_consuming(tmp_path, make_orders):
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1, crawl_interval_s=0.2) as p:
        p.orders.put(make_orders(40).assign(order_ts="2026-05-01T10:00:00Z"))
        p.flush()
        tables: list[str] = []
        for _ in range(100):  # the schedule, not this test, runs the crawler
            if p.settings.database in p.catalog.databases():
                tables = [t["Name"] for t in p.catalog.tables(p.settings.database)]
            if "daily_sales" in tables:
                break
            time.sleep(0.1)
        assert {"orders_changes", "orders_current", "daily_sales"} <= set(tables)
        assert p.query("SELECT count(*) AS n FROM orders_current").n.iloc[0] == 40


LATEST = "SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY event_seq DESC) AS n"


@pytest.mark.parametrize(
    ("sql", "maintained"),
    [
        (f"SELECT order_id FROM ({LATEST} FROM orders_changes) WHERE n = 1", True),
        (f"SELECT * FROM ({LATEST} FROM orders_changes) AS e WHERE 1 = e.n AND quantity > 2", True),
        (f"SELECT * FROM ({LATEST} FROM orders_changes) WHERE n = 2", False),
        (f"SELECT * FROM ({LATEST} FROM orders_changes) WHERE n = 1 OR quantity > 2", False),
        (f"SELECT * FROM ({LATEST} FROM orders_changes WHERE quantity > 2) WHERE n = 1", False),
        (f"SELECT * FROM ({LATEST.replace('row_number', 'rank')} FROM t) WHERE n = 1", False),
        (f"SELECT max(n) FROM ({LATEST} FROM orders_changes)", False),
    ],
)
def test_which_subqueries_are_maintained(sql, maintained):
    patterns = [_latest_pattern(select) for select in _parse(sql).find_all(exp.Select)]
    assert any(patterns) == maintained


def assert_answers_as_written(platform) -> None:
    """orders_current, daily_sales and top products equal the plain SQL's answers, in this
    engine and in a new one (another process would find the same state on disk)."""
    database = platform.settings.database
    root = platform.settings.root
    plain = Athena(platform.catalog, platform.bucket, root / "plain.sqlite", maintain_latest=False)
    new = Athena(platform.catalog, platform.bucket, root / "athena.sqlite")
    try:
        for sql in (
            "SELECT * FROM orders_current",
            "SELECT * FROM daily_sales",
            queries.load("top_products"),
        ):
            want = plain.read_sql_query(sql, database)
            columns = list(want.columns)
            want = want.sort_values(columns[:4]).reset_index(drop=True)
            for got in (platform.query(sql), new.read_sql_query(sql, database)):
                got = got.sort_values(columns[:4]).reset_index(drop=True)
                pd.testing.assert_frame_equal(got, want, check_exact=False)
    finally:
        plain.close()
        new.close()


def test_latest_rows_are_maintained_exactly(tmp_path, make_orders, monkeypatch):
    monkeypatch.setattr(athena_views, "_MAX_BATCHES", 2)  # compact within the test
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        orders = make_orders(200)
        orders["order_ts"] = ["2026-05-01T10:00:00Z"] * 100 + ["2026-05-02T10:00:00Z"] * 100
        platform.orders.put(orders)
        moved, cancelled = orders.order_id[0], orders.order_id[1]
        platform.orders.update(moved, order_ts="2026-05-02T09:00:00Z", quantity=7)
        platform.orders.update(cancelled, order_ts="2026-05-02T09:30:00Z")
        platform.orders.delete([cancelled])  # its REMOVE lands in another partition
        platform.flush()
        key = platform.lake_objects().key.iloc[0]
        again = key.replace(".parquet", "-again.parquet")  # a duplicate delivery
        platform.bucket.put_object(again, platform.bucket.get_object(key))
        platform.crawl()
        assert_answers_as_written(platform)
        current = platform.query("SELECT * FROM orders_current").set_index("order_id")
        assert len(current) == 199 and cancelled not in current.index
        assert current.loc[moved, "quantity"] == 7
        assert list(platform.athena.state_root.rglob("superseded-*.parquet"))  # maintained
        assert list(platform.athena.state_root.rglob("partial-*.parquet"))  # daily_sales too

        # appended after the first query: a new day, an order moved into it, a delete
        platform.orders.put(make_orders(30, seed=2).assign(order_ts="2026-05-03T10:00:00Z"))
        platform.orders.update(orders.order_id[2], order_ts="2026-05-03T11:00:00Z")
        platform.orders.delete([orders.order_id[150]])
        platform.flush()
        assert_answers_as_written(platform)  # the new partition is not crawled yet
        assert platform.crawl()["partitions_added"] == 1
        assert_answers_as_written(platform)
        assert len(platform.query("SELECT * FROM orders_current")) == 199 + 30 - 1

        platform.bucket.delete_objects(again)  # a merged object is gone: start again
        assert_answers_as_written(platform)
        assert_frame_matches_table(platform)


def assert_frame_matches_table(platform) -> None:
    current = platform.query("SELECT * FROM orders_current").set_index("order_id").sort_index()
    table = table_orders(platform).set_index("order_id").sort_index()
    assert current.index.equals(table.index)
    assert (current.quantity == table.quantity).all()


@pytest.mark.parametrize(
    ("sql", "maintained"),
    [
        ("SELECT ds, sum(units) AS u, count(*) AS n FROM daily_sales GROUP BY ds", True),
        (
            "SELECT d.ds AS day, count(units) FROM daily_sales AS d WHERE units > 1 GROUP BY d.ds",
            True,
        ),
        ("SELECT sum(units) AS u FROM daily_sales GROUP BY ds", False),  # the group is no output
        ("SELECT ds, avg(units) AS u FROM daily_sales GROUP BY ds", False),
        ("SELECT ds, count(DISTINCT product_id) AS p FROM daily_sales GROUP BY ds", False),
        ("SELECT ds, sum(units) / 2 AS u FROM daily_sales GROUP BY ds", False),
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds HAVING sum(units) > 1", False),
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds ORDER BY u LIMIT 3", True),
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds ORDER BY ds DESC", True),
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds LIMIT 3", False),  # any 3
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds ORDER BY sum(units)", False),
        ("SELECT ds, sum(units) AS u FROM daily_sales AS d GROUP BY ds ORDER BY d.ds", False),
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds ORDER BY u LIMIT ALL", False),
        ("SELECT ds, sum(units) AS u FROM daily_sales GROUP BY ds OFFSET 2", False),
        ("SELECT sum(units) AS u FROM daily_sales", True),  # one row
        ("SELECT count(*) FROM daily_sales WHERE units > 2", True),
        ("SELECT 1 AS one, count(*) AS n FROM daily_sales", False),
        ("SELECT count(*) AS n FROM daily_sales WHERE units > ?", False),  # bound at run
    ],
)
def test_which_aggregates_are_maintained(sql, maintained):
    assert (_aggregate_pattern(_parse(sql)) is not None) == maintained


def put_events(platform, part: str, rows: list[tuple], name: str) -> None:
    """An object of (k1, k2, seq, v, g) rows under partition ``part`` of table ``events``."""
    table = pa.Table.from_pylist(
        [dict(zip(("k1", "k2", "seq", "v", "g"), row, strict=True)) for row in rows],
        schema=pa.schema(
            [
                ("k1", pa.string()),
                ("k2", pa.string()),
                ("seq", pa.int64()),
                ("v", pa.float64()),
                ("g", pa.string()),
            ]
        ),
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    platform.bucket.put_object(f"events/part={part}/{name}.parquet", sink.getvalue().to_pybytes())
    platform.catalog.batch_create_partition(
        "sales",
        "events",
        [
            {
                "Values": [part],
                "StorageDescriptor": {"Location": platform.bucket.uri(f"events/part={part}/")},
            }
        ],
    )


def test_maintained_views_over_any_latest_row_table(tmp_path):
    """Two key columns (one NULL), keys across partitions, a sum whose inputs become NULL."""
    with helpers.connect(root=tmp_path / "root", consume=False) as platform:
        columns = [
            {"Name": "k1", "Type": "string"},
            {"Name": "k2", "Type": "string"},
            {"Name": "seq", "Type": "bigint"},
            {"Name": "v", "Type": "double"},
            {"Name": "g", "Type": "string"},
        ]
        platform.catalog.create_database("sales")
        platform.catalog.create_table(
            "sales",
            dataset_table_input("events", columns, ["part"], platform.bucket.uri("events/")),
        )
        latest = (
            "SELECT k1, k2, v, g FROM (SELECT *, row_number() OVER (PARTITION BY k1, k2 "
            "ORDER BY seq DESC) AS rn FROM events) AS e WHERE rn = 1"
        )
        totals = "SELECT g, sum(v) AS total, count(*) AS n, count(v) AS nv FROM latest GROUP BY g"
        for name, sql in (("latest", latest), ("totals", totals)):
            platform.catalog.create_view("sales", name, sql, platform.athena.describe(sql, "sales"))
        plain = Athena(
            platform.catalog, platform.bucket, tmp_path / "plain.sqlite", maintain_latest=False
        )

        def same(sql):
            got, want = platform.query(sql), plain.read_sql_query(sql, "sales")
            got, want = (f.sort_values(list(f.columns)).reset_index(drop=True) for f in (got, want))
            pd.testing.assert_frame_equal(got, want)
            return got

        put_events(
            platform,
            "a",
            [
                ("x", "1", 1, 1.0, "A"),
                ("y", None, 2, 2.0, "B"),
                ("y", None, 3, 3.0, "B"),
                ("w", "1", 4, 5.0, "C"),
            ],
            "one",
        )
        same("SELECT * FROM totals")
        put_events(
            platform,
            "b",
            [("x", "1", 5, None, "A"), ("y", None, 1, 9.0, "B"), ("w", "1", 6, 1.0, "D")],
            "two",
        )
        totals_now = same("SELECT * FROM totals").set_index("g")
        assert pd.isna(totals_now.loc["A", "total"]) and totals_now.loc["A", "n"] == 1
        assert "C" not in totals_now.index and totals_now.loc["B", "total"] == 3.0
        assert len(same("SELECT * FROM latest")) == 3
        assert list(platform.athena.state_root.rglob("partial-*.parquet"))
        plain.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM orders_current, read_parquet('/tmp/x.parquet')",
        "SELECT * FROM TABLE(sequence(1, 2))",
    ],
)
def test_table_functions_are_refused_before_they_run(platform, sql):
    """Athena reads only the catalog's tables: no file of the machine through SQL."""
    with pytest.raises(QueryError) as caught:
        platform.query(sql)
    assert caught.value.code == "NOT_SUPPORTED" and "catalog" in str(caught.value)


def test_the_engine_cannot_reach_files_outside_the_lake_even_when_asked_directly(platform):
    """Behind the refusal, DuckDB itself is sandboxed to the bucket and the views' state."""
    connection, _ = platform.athena._connection()
    with pytest.raises(duckdb.PermissionException):
        connection.sql("SELECT * FROM read_text('/proc/self/environ')").fetchall()
    with pytest.raises(duckdb.Error):
        connection.sql("SELECT getenv('HOME')").fetchall()


def test_query_results_are_readable_by_their_owner_only(platform, make_orders):
    platform.orders.put(make_orders(3))
    platform.flush()
    platform.query("SELECT count(*) AS n FROM orders_current")
    results = list((platform.bucket.path / "athena-results").glob("*.csv"))
    assert results and all(path.stat().st_mode & 0o777 == 0o600 for path in results)


@pytest.mark.parametrize("damage", [b"", b'{"objects": {"s3', b"\xff\xfe", b"[1, 2]"])
def test_an_unreadable_view_manifest_is_rebuilt_from_the_lake(tmp_path, make_orders, damage):
    """A truncated or foreign manifest (a crash without its fsync, a stray write) makes the
    view's state start again from the lake, with the same answer, instead of failing."""
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(60))
        platform.flush()
        platform.crawl()
        before = platform.query("SELECT count(*) AS n, sum(quantity) AS q FROM orders_current")
        manifests = list(platform.athena.state_root.rglob("manifest.json"))
        assert manifests
        for manifest in manifests:
            manifest.write_bytes(damage)
    with helpers.connect(root=tmp_path / "root", consume=False) as reopened:
        after = reopened.query("SELECT count(*) AS n, sum(quantity) AS q FROM orders_current")
        assert after.values.tolist() == before.values.tolist()
        reopened.crawl()  # maintains the views: their state is saved whole again
        for manifest in manifests:
            assert isinstance(json.loads(manifest.read_text()), dict)
        again = reopened.query("SELECT count(*) AS n, sum(quantity) AS q FROM orders_current")
        assert again.values.tolist() == before.values.tolist()


@pytest.mark.parametrize("body", [b"", b"not parquet at all", b"PAR1\x00\x01broken"])
def test_a_foreign_object_is_reported_by_the_crawler_and_named_by_the_queries_reading_it(
    tmp_path, make_orders, body
):
    """Glue logs and skips what it cannot read; Athena fails a query that reads it with
    HIVE_BAD_DATA naming the object. A partition holding only such an object is not added;
    one beside good objects is, and the good data stays queryable once it is removed."""
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(40).assign(order_ts="2026-05-01T10:00:00Z"))
        platform.flush()
        prefix = platform.settings.lake_prefix
        platform.bucket.put_object(f"{prefix}year=2026/month=05/day=09/stray.bin", body)
        result = platform.crawl()  # a new partition of one stray object: no freeze
        messages = " ".join(result["messages"])
        assert "unreadable object" in messages and "day=09/stray.bin" in messages
        partitions = platform.catalog.partitions(platform.settings.database, "orders_changes")
        values = [p["Values"] for p in partitions]
        assert ["2026", "05", "01"] in values and ["2026", "05", "09"] not in values
        assert platform.query("SELECT count(*) AS n FROM orders_current").n.iloc[0] == 40

        stray = f"{prefix}year=2026/month=05/day=01/stray.bin"  # beside good objects
        platform.bucket.put_object(stray, body)
        platform.crawl()
        with pytest.raises(QueryError) as error:
            platform.query("SELECT count(*) AS n FROM orders_current")
        assert error.value.code == "HIVE_BAD_DATA" and stray in str(error.value)
        platform.bucket.local_path(stray).unlink()
        assert platform.query("SELECT count(*) AS n FROM orders_current").n.iloc[0] == 40


def test_a_column_the_crawler_adds_leaves_views_and_named_queries_working(tmp_path, make_orders):
    """Another producer writes objects with a new column; the crawler adds it to the table.
    The next ordinary deliveries (without it) still read: views, named queries, and the new
    column, NULL where the objects lack it."""
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(20, seed=1).assign(order_ts="2026-05-01T10:00:00Z"))
        platform.flush()
        platform.crawl()
        prefix = platform.settings.lake_prefix
        key = next(k for k in platform.lake_objects().key if "day=01" in k)
        table = pq.read_table(platform.bucket.local_path(key))
        table = table.append_column("coupon", pa.array(["SPRING"] * table.num_rows))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        platform.bucket.put_object(
            f"{prefix}year=2026/month=05/day=02/other-producer.parquet",
            sink.getvalue().to_pybytes(),
        )
        assert "coupon" in " ".join(platform.crawl()["messages"])
        platform.orders.put(make_orders(5, seed=2).assign(order_ts="2026-05-03T10:00:00Z"))
        platform.flush()
        platform.crawl()
        assert platform.query("SELECT count(*) AS n FROM orders_current").n.iloc[0] == 25
        assert platform.query("SELECT sum(orders) AS n FROM daily_sales").n.iloc[0] == 25
        for name in queries.NAMED:
            platform.named_query(name)
        coupons = platform.query(
            "SELECT coupon, count(*) AS n FROM orders_changes GROUP BY coupon ORDER BY n"
        )
        assert coupons.values.tolist()[0] == ["SPRING", 20]
        assert coupons.coupon.isna().tolist() == [False, True]


def test_lake_timestamps_cast_to_timestamps_with_time_zone_in_utc(platform):
    """A catalog column's type is not known before the query runs: a timestamp column is
    taken in the session's zone, UTC, as Trino does, not refused."""
    frame = platform.query(
        "SELECT order_ts, CAST(order_ts AS timestamp with time zone) AS zoned"
        " FROM orders_current ORDER BY order_id LIMIT 1"
    )
    assert pd.Timestamp(frame.zoned.iloc[0]).tz_convert(None) == pd.Timestamp(
        frame.order_ts.iloc[0]
    )
