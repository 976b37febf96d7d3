"""The platform end to end on the local backend: orders in, change log in the lake."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import helpers
from helpers.exceptions import (
    BackendError,
    InvalidOrderError,
    OrderNotFoundError,
    PipelineStuckError,
)
from helpers.schema import LAKE_FIELDS, ORDER_FIELDS, item_size, items_json, validated_table


def latest_per_order(lake: pd.DataFrame) -> pd.DataFrame:
    """The newest event of every order in the change log, by event_seq."""
    return lake.sort_values("event_seq").groupby("order_id").tail(1).set_index("order_id")


def table_frame(platform) -> pd.DataFrame:
    from helpers.schema import item_to_order

    orders = [item_to_order(item) for item in platform.table.scan()]
    return pd.DataFrame(orders, columns=list(ORDER_FIELDS)).set_index("order_id")


def assert_lake_matches_table(platform) -> None:
    latest = latest_per_order(platform.read_lake())
    live = latest[latest.event_name != "REMOVE"]
    table = table_frame(platform)
    assert sorted(live.index) == sorted(table.index)
    joined = table.join(live, rsuffix="_lake")
    assert (joined.quantity == joined.quantity_lake).all()
    assert (joined.unit_price == joined.unit_price_lake).all()
    assert (joined.product_id == joined.product_id_lake).all()
    lake_ts = pd.to_datetime(joined.order_ts_lake).dt.tz_localize("UTC")
    assert (lake_ts == pd.to_datetime(joined.order_ts, utc=True)).all()


def test_put_update_delete_reach_the_lake(platform, make_orders):
    orders = make_orders(500)
    assert platform.orders.put(orders) == 500
    updated = platform.orders.update(orders.order_id[0], quantity=9)
    assert updated.quantity.tolist() == [9]
    assert platform.orders.delete([orders.order_id[1], "no-such-order"]) == 1
    platform.flush(timeout=60)

    assert platform.orders.count() == 499
    assert platform.orders.get(orders.order_id[0])["quantity"] == 9
    assert platform.orders.get(orders.order_id[1]) is None
    lake = platform.read_lake()
    assert len(lake) == 502
    assert lake.event_name.value_counts().to_dict() == {"INSERT": 500, "MODIFY": 1, "REMOVE": 1}
    removed = lake[lake.event_name == "REMOVE"].iloc[0]
    assert removed.order_id == orders.order_id[1]
    assert removed.quantity == orders.quantity[1]  # a REMOVE carries the old image
    assert lake.product_name.iloc[0] == orders.product_name[0]  # quotes, backslash, unicode
    assert_lake_matches_table(platform)


def test_partitions_follow_the_order_date(platform, make_orders):
    orders = make_orders(300)
    platform.orders.put(orders)
    platform.flush()
    lake = platform.read_lake()
    dates = pd.to_datetime(lake.order_ts)
    assert (lake.year == dates.dt.strftime("%Y")).all()
    assert (lake.month == dates.dt.strftime("%m")).all()
    assert (lake.day == dates.dt.strftime("%d")).all()
    objects = platform.lake_objects()
    assert objects.key.str.match(
        r"^sales/year=\d{4}/month=\d{2}/day=\d{2}/salescast-lake-delivery-1-"
        r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}\.parquet$"
    ).all()


def test_generated_history_with_amendments_and_cancels(platform, history):
    counts = platform.apply(history, progress=False)
    assert counts["update"] > 0 and counts["delete"] > 0
    platform.flush()
    status = platform.status().set_index("stage")
    assert status.loc["lake", "records"] == counts["put"] + counts["update"] + counts["delete"]
    assert status.pending.sum() == 0 and status.failed.sum() == 0
    assert_lake_matches_table(platform)


def test_event_seq_orders_events_of_an_order(platform, make_orders):
    orders = make_orders(3)
    platform.orders.put(orders)
    for quantity in (2, 3, 4):
        platform.orders.update(orders.order_id[0], quantity=quantity)
    platform.flush()
    events = platform.read_lake().query("order_id == @orders.order_id[0]").sort_values("event_seq")
    assert events.event_name.tolist() == ["INSERT", "MODIFY", "MODIFY", "MODIFY"]
    assert events.quantity.tolist() == [orders.quantity[0], 2, 3, 4]
    assert events.event_seq.str.len().eq(40).all()


def test_bad_orders_are_refused_whole(platform, make_orders):
    orders = make_orders(10)
    orders.loc[7, "quantity"] = -2
    with pytest.raises(InvalidOrderError, match=r"order 'o-1-000007': field 'quantity' is -2"):
        platform.orders.put(orders)
    assert platform.orders.count() == 0
    with pytest.raises(OrderNotFoundError, match="not in the table"):
        platform.orders.update("nope", quantity=1)
    platform.orders.put(make_orders(2))
    with pytest.raises(InvalidOrderError, match="field 'quantity'"):
        platform.orders.update("o-1-000000", quantity=0)
    assert platform.orders.get("o-1-000000")["quantity"] == make_orders(2).quantity[0]


def test_flush_names_the_stuck_stage(tmp_path, make_orders):
    with helpers.connect(root=tmp_path, consume=False) as producer:
        producer.orders.put(make_orders(5))
        producer._consume = False  # nobody may consume: the pipe cannot move
        with pytest.raises(PipelineStuckError, match="pipe did not catch up") as caught:
            producer.flush(timeout=0.3)
        assert caught.value.pending == 5


def test_a_second_process_does_not_consume(tmp_path, make_orders):
    root = tmp_path / "root"
    with helpers.connect(root=root) as owner:
        assert owner.consuming
        script = textwrap.dedent(
            f"""
            import helpers
            with helpers.connect(root={str(root)!r}) as other:
                print(other.consuming)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == "False"
        owner.orders.put(make_orders(20))
        owner.flush()
        assert len(owner.read_lake()) == 20


def test_a_producer_takes_over_when_the_consumer_is_gone(tmp_path, make_orders):
    root = tmp_path / "root"
    owner = helpers.connect(root=root)
    with helpers.connect(root=root) as producer:
        assert not producer.consuming
        producer.orders.put(make_orders(30))
        owner.close()  # the consumer leaves; the producer's flush takes over
        producer.flush(timeout=30)
        assert producer.consuming
        assert len(producer.read_lake()) == 30


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SALESCAST_PREFIX", "envtest")
    monkeypatch.setenv("SALESCAST_SHARD_COUNT", "3")
    settings = helpers.Settings.from_env(root=tmp_path)
    assert settings.table_name == "envtest-orders" and settings.shard_count == 3
    monkeypatch.setenv("SALESCAST_SHARD_COUNT", "three")
    with pytest.raises(ValueError, match="SALESCAST_SHARD_COUNT"):
        helpers.Settings.from_env()
    with pytest.raises(ValueError, match="unknown backend 'gcp'"):
        helpers.Settings.from_env(backend="gcp", shard_count=1)


def test_apply_batches_changes_but_keeps_each_orders_order(platform, make_orders):
    from helpers.generate import Change

    orders = make_orders(4)
    first, second = orders.order_id[0], orders.order_id[1]
    changes = [
        Change("put", orders),
        Change("update", pd.DataFrame({"order_id": [first], "quantity": [9]})),
        Change("delete", pd.DataFrame({"order_id": [second]})),
        Change("put", orders.iloc[[1]].assign(quantity=7)),  # the same order, put again
        Change("put", make_orders(2, seed=2)),
        Change("update", pd.DataFrame({"order_id": [first], "quantity": [8]})),
        Change("put", orders.iloc[[0]].assign(quantity=5)),  # overwrites the update
    ]
    counts = platform.apply(changes, progress=False, batch_rows=100)
    assert counts == {"put": 8, "update": 2, "delete": 1}
    platform.flush()
    assert platform.orders.get(first)["quantity"] == 5
    assert platform.orders.get(second)["quantity"] == 7
    lake = platform.read_lake().sort_values("event_seq")
    assert lake.query("order_id == @second").event_name.tolist() == ["INSERT", "REMOVE", "INSERT"]
    assert lake.query("order_id == @first").quantity.tolist() == [orders.quantity[0], 9, 8, 5]
    assert_lake_matches_table(platform)


def test_apply_writes_each_change_as_it_comes_by_default(platform, make_orders):
    from helpers.generate import Change

    orders = make_orders(2)
    seen = []

    def live_changes():
        yield Change("put", orders.iloc[[0]])
        seen.append(platform.orders.count())  # the first is written before the next is asked
        yield Change("put", orders.iloc[[1]])

    platform.apply(live_changes(), progress=False)
    assert seen == [1]
    assert platform.orders.count() == 2


def test_a_folder_of_other_files_is_not_opened_as_a_root(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BackendError, match="holds files but no salescast state"):
        helpers.connect(root=tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_root_with_the_old_sqlite_stream_is_refused_untouched(tmp_path, make_orders):
    """Its delivery checkpoints would point past an empty shard log and skip new records."""
    with helpers.connect(root=tmp_path, consume=False) as platform:
        platform.orders.put(make_orders(2))
    (tmp_path / "kinesis.sqlite").write_bytes(b"SQLite format 3\x00")
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(BackendError, match="older salescast"):
        helpers.connect(root=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == before


def test_a_change_the_stream_refuses_is_dead_lettered_named_by_flush_and_counted(
    platform, make_orders
):
    """An order of 300 KB of quotes is accepted (DynamoDB holds 400 KB), but its update
    carries both images: 1.2 MB of JSON, more than a Kinesis record holds. The pipe letters
    it and goes on; flush says so; status counts it; the next changes still arrive."""
    big = make_orders(1, seed=7).assign(product_name='"' * 300_000)
    platform.orders.put(big)
    platform.flush()
    platform.orders.update(big.assign(quantity=9)[["order_id", "quantity"]])
    with pytest.raises(PipelineStuckError) as error:
        platform.flush()
    assert "dead-letter queue" in str(error.value) and "1 MiB" in str(error.value)
    letters = platform.dead_letters()
    assert len(letters) == 1 and "1 MiB" in letters.reason.iloc[0]
    stream_row = platform.status().set_index("stage").loc["change stream"]
    assert stream_row.failed == 1 and stream_row.pending == 0

    platform.orders.put(make_orders(3, seed=8))
    platform.flush()  # the pipe went on
    platform.crawl()
    assert platform.query("SELECT count(*) AS n FROM orders_current").n.iloc[0] == 4


def test_an_item_another_writer_shaped_otherwise_comes_back_as_it_is(platform):
    """DynamoDB is schemaless: get and scan return a foreign item's fields as they are
    (missing ones None, extra ones after the order's), instead of failing with a KeyError."""
    item = {"order_id": {"S": "x-1"}, "quantity": {"S": "three"}, "note": {"M": {"a": {"N": "1"}}}}
    platform.table._write([("x-1", json.dumps(item), 40)])
    got = platform.orders.get("x-1")
    assert got["order_id"] == "x-1" and got["quantity"] == "three" and got["unit_price"] is None
    assert got["note"] == {"a": 1}
    assert platform.orders.scan().order_id.tolist() == ["x-1"]
    with pytest.raises(InvalidOrderError, match="field 'customer_id' is missing"):
        platform.orders.update("x-1", unit_price=2.0)  # the merged order is checked


def test_other_attributes_reach_the_lake_and_sql_and_none_is_dropped(platform, make_orders):
    """Another producer writes items with attributes beyond the order's straight into the
    table; the put door takes them too. Every one reaches the lake's ``attributes`` column,
    the crawled catalog and SQL, and an update keeps the ones it does not name."""
    orders = make_orders(4)
    platform.orders.put(orders.iloc[:2])
    foreign = []
    for position in (2, 3):  # another producer: its own item JSON, the table's write path
        order = orders.iloc[position]
        item = json.loads(items_json(validated_table(orders.iloc[[position]]))[0][0])
        item["gift_wrap"] = {"BOOL": position == 2}
        item["shipping"] = {"M": {"city": {"S": f"city-{position}"}}}
        foreign.append((order.order_id, json.dumps(item), item_size(item)))
    platform.table._write(foreign)
    door = {**orders.iloc[0].to_dict(), "order_id": "o-door", "coupon": "WINTER", "points": 7}
    platform.orders.put([door])
    updated = platform.orders.update(orders.order_id[2], quantity=9)  # keeps the others
    assert json.loads(updated.attributes[0])["gift_wrap"] == {"BOOL": True}  # as the lake has it
    platform.flush(timeout=60)
    platform.crawl()

    columns = platform.catalog_tables().set_index("name").loc["orders_changes", "columns"]
    assert columns == len(LAKE_FIELDS)  # the crawler found the attributes column
    lake = platform.read_lake()
    assert len(lake) == 6 and lake.attributes.isna().sum() == 2  # the two plain puts
    result = platform.query(
        "SELECT order_id, quantity,"
        " json_extract_scalar(attributes, '$.gift_wrap.BOOL') AS gift_wrap,"
        " json_extract_scalar(attributes, '$.shipping.M.city.S') AS city,"
        " json_extract_scalar(attributes, '$.coupon.S') AS coupon"
        " FROM orders_current WHERE attributes IS NOT NULL ORDER BY order_id"
    ).set_index("order_id")
    assert result.loc[orders.order_id[2]].tolist() == [9, "true", "city-2", None]
    assert result.loc[orders.order_id[3]].tolist()[1:] == ["false", "city-3", None]
    assert result.loc["o-door"].tolist()[1:] == [None, None, "WINTER"]
    scanned = platform.orders.scan().set_index("order_id")
    assert (
        scanned.loc["o-door", "points"] == 7
        and scanned.loc[orders.order_id[3], "gift_wrap"] is False
    )
    with pytest.raises(InvalidOrderError, match="remove an attribute"):
        platform.orders.update("o-door", coupon=None)


@pytest.mark.parametrize("ids", [None, [None], ["o-ok", 5], [""], 7])
def test_delete_and_get_refuse_ids_that_are_not_strings_before_deleting_any(
    platform, make_orders, ids
):
    orders = make_orders(1)
    platform.orders.put(orders.assign(order_id="o-ok"))
    with pytest.raises(InvalidOrderError) as error:
        platform.orders.delete(ids)
    assert "order_id" in str(error.value) and "non-empty strings" in str(error.value)
    assert platform.orders.count() == 1  # nothing deleted, not even the good id
    with pytest.raises(InvalidOrderError):
        platform.orders.get(None)


def test_status_prints_while_a_stage_fails_and_names_its_error(platform):
    """A failing stage's error may hold an open connection: status stays printable."""

    class DiskError(OSError):
        def __init__(self):
            super().__init__("database or disk is full")
            self.connection = sqlite3.connect(":memory:")  # cannot be copied

    poller = platform._pollers[0]
    poller.error = DiskError()
    try:
        status = platform.status()
        text = status.head().to_string()
    finally:
        poller.error = None
    assert "change stream" in text
    assert status.attrs["errors"] == {poller.stage: "DiskError: database or disk is full"}


def test_status_names_the_codes_of_failed_records(platform):
    """A record the transform cannot read goes to the error prefix; status names its code."""
    platform.stream.put_records([("o-1", b"not a stream record")])
    platform.flush(timeout=30)
    lake = platform.status().set_index("stage").loc["lake"]
    assert lake["failed"] == 1
    code = platform.read_errors().errorCode[0]
    assert code and lake["detail"].endswith(f"error objects, 0 dropped (1 {code})")
