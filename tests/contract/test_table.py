"""The orders table on every backend: PutItem/UpdateItem/DeleteItem semantics, reads, and the
NEW_AND_OLD_IMAGES stream records the writes produce."""

from __future__ import annotations

import base64
import json

import pandas as pd
import pytest

from helpers import transform
from helpers.exceptions import InvalidOrderError, OrderNotFoundError
from helpers.schema import ORDER_FIELDS


def test_put_get_count_and_overwrite(platform, make_orders):
    orders = make_orders(30)
    assert platform.orders.put(orders) == 30
    assert platform.orders.count() == 30
    first = platform.orders.get(orders.order_id[0])
    assert first["quantity"] == orders.quantity[0]
    assert first["unit_price"] == orders.unit_price[0]
    assert first["product_name"] == orders.product_name[0]  # quotes, backslash, unicode
    assert pd.Timestamp(first["order_ts"]) == orders.order_ts[0]
    assert platform.orders.get("no-such-order") is None

    again = orders.head(2).assign(quantity=[7, 8], channel="store")
    platform.orders.put(again)  # PutItem overwrites the whole item
    assert platform.orders.count() == 30
    assert platform.orders.get(orders.order_id[1])["quantity"] == 8
    assert platform.orders.get(orders.order_id[1])["channel"] == "store"


def test_update_changes_existing_orders_only(platform, make_orders):
    orders = make_orders(3)
    platform.orders.put(orders)
    updated = platform.orders.update(
        [
            {"order_id": orders.order_id[0], "quantity": 4},
            {"order_id": orders.order_id[0], "unit_price": 2.5},
        ]
    )
    assert updated.quantity.tolist() == [4, 4]
    assert updated.unit_price.tolist() == [orders.unit_price[0], 2.5]
    assert updated.order_ts.tolist() == [orders.order_ts[0]] * 2
    assert platform.orders.get(orders.order_id[0])["quantity"] == 4
    assert platform.orders.get(orders.order_id[0])["unit_price"] == 2.5
    assert platform.orders.get(orders.order_id[0])["customer_id"] == orders.customer_id[0]

    with pytest.raises(OrderNotFoundError, match="'nope' is not in the table"):
        platform.orders.update(
            [{"order_id": orders.order_id[1], "quantity": 9}, {"order_id": "nope", "quantity": 1}]
        )
    with pytest.raises(InvalidOrderError, match="field 'quantity'"):
        platform.orders.update(orders.order_id[1], quantity=0)
    assert (
        platform.orders.get(orders.order_id[1])["quantity"] == orders.quantity[1]
    )  # nothing written
    assert platform.orders.get("nope") is None


def test_delete_counts_the_orders_that_existed(platform, make_orders):
    orders = make_orders(4)
    platform.orders.put(orders)
    assert platform.orders.delete([orders.order_id[0], orders.order_id[0], "nope"]) == 1
    assert platform.orders.delete(orders.order_id[0]) == 0
    assert platform.orders.get(orders.order_id[0]) is None
    assert platform.orders.count() == 3


def test_writes_produce_new_and_old_image_stream_records(platform, probe, make_orders):
    orders = make_orders(2)
    platform.orders.put(orders)
    platform.orders.put(orders.head(1).assign(quantity=5))
    platform.orders.update(orders.order_id[1], unit_price=1.25)
    platform.orders.delete([orders.order_id[0], "nope"])

    records = probe.stream_records()
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY", "MODIFY", "REMOVE"]
    for record in records:
        assert record["eventSource"] == "aws:dynamodb"
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["SequenceNumber"].isdigit()
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int | float)
    first_id = {"order_id": {"S": orders.order_id[0]}}
    overwrite, update, remove = (
        records[2]["dynamodb"],
        records[3]["dynamodb"],
        records[4]["dynamodb"],
    )
    assert overwrite["Keys"] == first_id
    assert overwrite["OldImage"]["quantity"] == {"N": str(orders.quantity[0])}
    assert overwrite["NewImage"]["quantity"] == {"N": "5"}
    assert update["OldImage"]["unit_price"] == {"N": str(orders.unit_price[1])}
    assert update["NewImage"]["unit_price"] == {"N": "1.25"}
    assert update["NewImage"]["customer_id"] == {"S": orders.customer_id[1]}
    assert remove["Keys"] == first_id and "NewImage" not in remove
    assert remove["OldImage"]["quantity"] == {"N": "5"}
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence[0] < sequence[2] < sequence[4]  # per key, in write order

    # the transform Lambda takes them as the pipe forwards them
    event = {
        "records": [
            {"recordId": str(i), "data": base64.b64encode(json.dumps(r).encode()).decode()}
            for i, r in enumerate(records)
        ]
    }
    results = transform.lambda_handler(event, None)["records"]
    assert [r["result"] for r in results] == ["Ok"] * 5
    rows = [json.loads(base64.b64decode(r["data"])) for r in results]
    assert [row["event_name"] for row in rows] == ["INSERT", "INSERT", "MODIFY", "MODIFY", "REMOVE"]
    assert rows[4]["quantity"] == 5  # a REMOVE carries the old image


def test_a_generated_history_leaves_the_same_table(platform, history):
    expected: dict[str, int] = {}  # order -> quantity, replaying the history by hand
    for change in history:
        for row in change.frame.to_dict("records"):
            if change.action == "delete":
                expected.pop(row["order_id"], None)
            else:
                expected[row["order_id"]] = row["quantity"]
    counts = platform.apply(history, progress=False, batch_rows=500)
    assert counts["update"] > 0 and counts["delete"] > 0
    assert platform.orders.count() == len(expected)
    for order_id in list(expected)[::97]:
        assert platform.orders.get(order_id)["quantity"] == expected[order_id]


def test_scan_returns_every_order_as_it_stands(platform, make_orders):
    orders = make_orders(25)
    platform.orders.put(orders)
    platform.orders.update(orders.order_id[1], quantity=9)
    platform.orders.delete([orders.order_id[0]])
    scanned = platform.orders.scan().sort_values("order_id").reset_index(drop=True)
    assert list(scanned.columns) == list(ORDER_FIELDS)
    assert scanned.order_id.tolist() == orders.order_id[1:].tolist()
    assert scanned.quantity.tolist() == [9, *orders.quantity[2:]]
    assert (pd.to_datetime(scanned.order_ts) == orders.order_ts[1:].reset_index(drop=True)).all()
