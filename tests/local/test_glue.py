"""The Glue catalog and crawler over a real lake written by the delivery stream."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import helpers
from helpers.local.glue import LOG, Catalog, Crawler, EntityNotFoundError, glue_type
from helpers.schema import glue_columns, glue_partition_keys


@pytest.fixture
def lake(tmp_path, make_orders):
    """A platform whose lake holds 300 orders over 2025, delivered."""
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(300))
        platform.flush()
        yield platform


def crawler(platform, update_behavior="UPDATE_IN_DATABASE") -> Crawler:
    catalog = Catalog(platform.settings.root / "glue.sqlite", "us-east-1", "000000000000")
    return Crawler(
        catalog,
        platform.bucket,
        "orders-crawler",
        "sales",
        "orders_changes",
        platform.settings.lake_prefix,
        update_behavior,
    )


def test_first_crawl_creates_the_table_with_glue_types(lake):
    result = crawler(lake).run()
    assert result.tables_created == ["orders_changes"] and result.tables_updated == []
    days = {tuple(p) for p in lake.lake_objects()[["year", "month", "day"]].itertuples(index=False)}
    assert result.partitions_added == len(days)
    table = crawler(lake).catalog.get_table("sales", "orders_changes")
    assert table["StorageDescriptor"]["Columns"] == glue_columns()
    assert table["PartitionKeys"] == glue_partition_keys()
    assert table["StorageDescriptor"]["Location"] == lake.bucket.uri("sales/")
    assert table["Parameters"]["classification"] == "parquet"
    assert table["VersionId"] == "1"


def test_second_crawl_adds_only_new_partitions(lake, make_orders):
    first = crawler(lake).run()
    again = crawler(lake).run()
    assert again.partitions_added == 0 and again.tables_created == []
    new = make_orders(5, seed=9).assign(order_ts="2027-06-01T12:00:00Z")
    lake.orders.put(new)
    lake.flush()
    third = crawler(lake).run()
    assert third.partitions_added == 1
    partitions = crawler(lake).catalog.partitions("sales", "orders_changes")
    assert len(partitions) == first.partitions_added + 1
    assert ["2027", "06", "01"] in [p["Values"] for p in partitions]
    located = {p["StorageDescriptor"]["Location"] for p in partitions}
    assert lake.bucket.uri("sales/year=2027/month=06/day=01/") in located


def write_object_with_a_new_column(platform) -> None:
    table = pq.read_table(platform.bucket.local_path(platform.lake_objects().key[0]))
    table = table.append_column("coupon", pa.array(["SAVE10"] * table.num_rows))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    platform.bucket.put_object(
        "sales/year=2030/month=01/day=01/extra.parquet", sink.getvalue().to_pybytes()
    )


def test_new_columns_follow_the_schema_change_policy(lake):
    crawler(lake).run()
    write_object_with_a_new_column(lake)
    logged = crawler(lake, LOG).run()
    assert logged.tables_updated == [] and "coupon (string)" in logged.messages[0]
    columns = crawler(lake).catalog.get_table("sales", "orders_changes")["StorageDescriptor"]
    assert "coupon" not in [c["Name"] for c in columns["Columns"]]

    write_object_with_a_new_column(lake)  # written again, into a partition known now
    updated = crawler(lake).run()
    assert updated.tables_updated == ["orders_changes"]
    table = crawler(lake).catalog.get_table("sales", "orders_changes")
    assert table["StorageDescriptor"]["Columns"][-1] == {"Name": "coupon", "Type": "string"}
    assert table["VersionId"] == "2"


def test_a_new_column_in_a_crawled_partition_is_found_by_the_next_crawl(lake):
    """Every object written since the last crawl is read (its footer), wherever it lands;
    objects read by an earlier crawl are not read again."""
    crawler(lake).run()
    first = lake.lake_objects().key[0]
    table = pq.read_table(lake.bucket.local_path(first))
    table = table.append_column("coupon", pa.array(["SAVE10"] * table.num_rows))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    folder = first.rsplit("/", 1)[0]
    lake.bucket.put_object(f"{folder}/other-producer.parquet", sink.getvalue().to_pybytes())
    lake.bucket.put_object(f"{folder}/broken.parquet", b"not parquet")
    found = crawler(lake).run()
    assert found.tables_updated == ["orders_changes"] and found.partitions_added == 0
    assert "columns added: coupon (string)" in found.messages
    assert any(f"{folder}/broken.parquet" in message for message in found.messages)
    assert crawler(lake).run().messages == []  # read once: the next crawl has nothing new
    lake.bucket.delete_object(f"{folder}/broken.parquet")  # else SQL over it fails, as Athena
    coupons = lake.query("SELECT coupon, count(*) AS n FROM orders_changes GROUP BY 1 ORDER BY 1")
    assert coupons.coupon.tolist() == ["SAVE10", None]


def test_an_empty_lake_creates_nothing(tmp_path):
    with helpers.connect(root=tmp_path / "root") as platform:
        result = crawler(platform).run()
        assert result.tables_created == [] and "no data" in result.messages[0]
        with pytest.raises(EntityNotFoundError, match="Table orders_changes not found"):
            crawler(platform).catalog.get_table("sales", "orders_changes")


def test_views_and_catalog_errors(tmp_path):
    catalog = Catalog(tmp_path / "glue.sqlite", "us-east-1", "000000000000")
    with pytest.raises(EntityNotFoundError, match="Database sales not found"):
        catalog.create_view("sales", "v", "SELECT 1 AS one", [{"Name": "one", "Type": "int"}])
    catalog.create_database("sales")
    catalog.create_view("sales", "v", "SELECT 1 AS one", [{"Name": "one", "Type": "int"}])
    catalog.create_view("sales", "v", "SELECT 2 AS one", [{"Name": "one", "Type": "int"}])
    view = catalog.get_table("sales", "v")
    assert view["TableType"] == "VIRTUAL_VIEW" and view["ViewOriginalText"] == "SELECT 2 AS one"
    assert view["VersionId"] == "2"
    assert [t["Name"] for t in catalog.tables("sales")] == ["v"]


@pytest.mark.parametrize(
    ("arrow_type", "glue"),
    [
        (pa.string(), "string"),
        (pa.timestamp("ms"), "timestamp"),
        (pa.int32(), "int"),
        (pa.int64(), "bigint"),
        (pa.float64(), "double"),
        (pa.bool_(), "boolean"),
        (pa.decimal128(10, 2), "decimal(10,2)"),
        (pa.list_(pa.string()), "array<string>"),
        (pa.struct([("a", pa.int32())]), "struct<a:int>"),
    ],
)
def test_glue_types(arrow_type, glue):
    assert glue_type(arrow_type) == glue
