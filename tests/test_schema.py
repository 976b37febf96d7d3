"""Order validation and the item JSON the table stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from helpers.exceptions import InvalidOrderError
from helpers.schema import (
    KEY,
    LAKE_SCHEMA,
    MAX_ITEM_BYTES,
    MAX_KEY_CHARACTERS,
    ORDER_FIELDS,
    glue_columns,
    item_size,
    item_sizes,
    item_to_order,
    items_json,
    validate_orders,
    validated_table,
)


def order(**overrides):
    base = {
        "order_id": "o-1",
        "order_ts": "2026-01-05T10:00:00.123Z",
        "customer_id": "c-1",
        "product_id": "p-1",
        "product_name": "Teal Lamp",
        "category": "home",
        "channel": "web",
        "quantity": 2,
        "unit_price": 9.5,
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"quantity": -1}, "quantity", "is -1"),
        ({"quantity": 0}, "quantity", "is 0"),
        ({"quantity": 2.5}, "quantity", "is not whole"),
        ({"quantity": None}, "quantity", "is missing"),
        ({"quantity": "3"}, "quantity", "has type str"),
        ({"quantity": True}, "quantity", "has type bool"),
        ({"unit_price": -0.01}, "unit_price", "is negative"),
        ({"unit_price": float("inf")}, "unit_price", "is not finite"),
        ({"order_ts": "yesterday"}, "order_ts", "is not a timestamp"),
        ({"order_ts": None}, "order_ts", "is missing"),
        ({"order_ts": "1900-01-01T00:00:00Z"}, "order_ts", "is out of range"),
        ({"order_ts": "2300-01-05T10:00:00Z"}, "order_ts", "is out of range"),
        ({"order_ts": datetime(2300, 1, 5, tzinfo=UTC)}, "order_ts", "use years 1970-2261"),
        ({"order_ts": "2262-06-01T00:00:00Z"}, "order_ts", "use years 1970-2261"),
        ({"order_ts": [2026]}, "order_ts", "has type list"),
        ({"order_id": ""}, "order_id", "is empty"),
        ({"customer_id": 17}, "customer_id", "has type int"),
        ({"colour": float("inf")}, "colour", "is not finite"),
        ({"colour": set()}, "colour", "is an empty set"),
        ({"colour": {"red", 2}}, "colour", "of mixed types"),
        ({"colour": {"shade": object()}}, "colour", "has type object"),
        ({"colour": {1: "red"}}, "colour", "with a name that is not text"),
        ({"colour": 10**38 + 1}, "colour", "more than 38 significant digits"),
        ({"colour": 1e126}, "colour", "out of DynamoDB's range"),
        ({"colour": Decimal("1E-131")}, "colour", "out of DynamoDB's range"),
        ({"": "red"}, "", "is not an attribute name"),
    ],
)
def test_bad_orders_name_the_field(overrides, field, problem):
    good = [order(order_id=f"o-{i}") for i in range(3)]
    bad = order(**{"order_id": "o-bad", **overrides})
    with pytest.raises(InvalidOrderError) as caught:
        validate_orders([*good, bad])
    assert caught.value.field == field
    assert problem in str(caught.value)
    assert "Nothing in this call was written" in str(caught.value)


def test_a_missing_field_is_named():
    record = order()
    del record["channel"]
    with pytest.raises(InvalidOrderError, match="field 'channel' is missing"):
        validate_orders([record])


def test_timestamps_are_normalised_to_utc():
    plus_two = timezone(timedelta(hours=2))
    frame = validate_orders(
        [
            order(order_id="a", order_ts="2026-01-05T12:00:00+02:00"),
            order(order_id="b", order_ts=datetime(2026, 1, 5, 12, tzinfo=plus_two)),
            order(order_id="c", order_ts=datetime(2026, 1, 5, 10)),  # naive is UTC
            order(order_id="d", order_ts=pd.Timestamp("2026-01-05 10:00", tz="UTC")),
        ]
    )
    assert (frame.order_ts == pd.Timestamp("2026-01-05 10:00", tz="UTC")).all()
    epoch = validate_orders(pd.DataFrame([order(order_ts=0)]).astype({"order_ts": "int64"}))
    assert epoch.order_ts[0] == pd.Timestamp(0, tz="UTC")


def test_dataframe_and_dicts_validate_alike():
    records = [order(order_id=f"o-{i}", quantity=i + 1) for i in range(4)]
    from_dicts = validate_orders(records)
    from_frame = validate_orders(pd.DataFrame(records))
    pd.testing.assert_frame_equal(from_dicts, from_frame)
    assert list(from_dicts.columns) == list(ORDER_FIELDS)
    assert from_dicts.quantity.dtype == np.int64


def test_items_json_is_dynamodb_attribute_value_json():
    tricky = 'Say "hi" \\ to ünïcödé\tand\nlines'
    table = validated_table([order(product_name=tricky, unit_price=19.99, quantity=3)])
    texts, sizes = items_json(table)
    item = json.loads(texts[0])
    assert item["product_name"] == {"S": tricky}
    assert item["quantity"] == {"N": "3"}
    assert item["unit_price"] == {"N": "19.99"}
    assert item["order_ts"] == {"S": "2026-01-05T10:00:00.123Z"}
    assert list(item) == list(ORDER_FIELDS)
    assert sizes[0] == item_size(item)
    back = item_to_order(item)
    assert back["order_ts"] == datetime(2026, 1, 5, 10, 0, 0, 123000, tzinfo=UTC)
    assert back["product_name"] == tricky and back["unit_price"] == 19.99


def test_items_order_ts_is_iso_utc_with_milliseconds():
    rng = np.random.default_rng(5)
    millis = [*rng.integers(0, 9_000_000_000_000, 300).tolist(), 0, 951782400000]
    stamps = [datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms) for ms in millis]
    table = validated_table([order(order_id=f"o-{n}", order_ts=ts) for n, ts in enumerate(stamps)])
    texts, _ = items_json(table)
    expected = [
        f"{ts:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z" for ts, ms in zip(stamps, millis, strict=True)
    ]
    assert [json.loads(text)["order_ts"]["S"] for text in texts] == expected


def test_lake_schema_and_glue_columns_agree():
    assert [column["Name"] for column in glue_columns()] == LAKE_SCHEMA.names
    types = {column["Name"]: column["Type"] for column in glue_columns()}
    assert types["order_ts"] == "timestamp" and types["quantity"] == "int"
    assert types["event_seq"] == "string" and types["unit_price"] == "double"


@pytest.mark.parametrize(
    ("length", "accepted"), [(MAX_KEY_CHARACTERS, True), (MAX_KEY_CHARACTERS + 1, False)]
)
def test_order_ids_hold_as_many_characters_as_a_kinesis_partition_key(length, accepted):
    key = "é" * length  # characters, not bytes: 256 of them are 512 bytes
    if accepted:
        assert validated_table([order(order_id=key)])[KEY][0].as_py() == key
        return
    with pytest.raises(InvalidOrderError) as error:
        validated_table([order(order_id="o-ok"), order(order_id=key)])
    message = str(error.value)
    assert "order_id" in message and f"{length} characters" in message and "256" in message
    assert "record 1" in message or "order" in message


def size_of(name_length: int) -> int:
    return int(item_sizes(validated_table([order(product_name="x" * name_length)]))[0])


@pytest.mark.parametrize(("extra", "accepted"), [(0, True), (1, False)])
def test_items_hold_what_dynamodb_holds_400_kb_names_and_values(extra, accepted):
    base = size_of(1)
    length = 1 + MAX_ITEM_BYTES - base + extra  # the item at the limit, or one byte over
    if accepted:
        assert size_of(length) == MAX_ITEM_BYTES
        return
    with pytest.raises(InvalidOrderError) as error:
        validated_table([order(product_name="x" * length)])
    message = str(error.value)
    assert "product_name" in message and f"{MAX_ITEM_BYTES + 1:,} bytes" in message
    assert f"{MAX_ITEM_BYTES:,}" in message and "Nothing in this call was written" in message


def test_item_sizes_are_dynamodbs_for_each_item():
    """The column-wise sizes agree with the per-item rule on the item JSON the table writes."""
    table = validated_table([order(product_name="é" * 10, quantity=123), order(unit_price=0.5)])
    texts, sizes = items_json(table)
    assert sizes.tolist() == [item_size(json.loads(text)) for text in texts]


def test_a_nan_price_is_called_nan_not_just_missing():
    with pytest.raises(InvalidOrderError, match="is missing or NaN"):
        validated_table([order(unit_price=float("nan"))])
    with pytest.raises(InvalidOrderError, match="is missing"):
        validated_table([order(unit_price=None), order(unit_price="x")])


# --- other attributes (DynamoDB is schemaless) ----------------------------------------------


def test_other_attributes_are_stored_sized_and_read_back_unchanged():
    others = {
        "gift_wrap": True,
        "note": "leave at the door",
        "blank": "",
        "points": 2**60 + 1,  # beyond a float's precision: kept exact
        "ratio": Decimal("0.1234567890123456789012345678901234567"),  # 37 digits
        "weight": 2.5,
        "whole": 3.0,  # stored as DynamoDB keeps it: 3
        "photo": b"\x00\xff",
        "tags": {"red", "sale"},
        "sizes": {1, 2.5},
        "blobs": {b"a"},
        "shipping": {"city": "Lyon", "floor": None, "lines": ["a", 2]},
        "largest": 10**38 - 1,  # 38 significant digits: the most DynamoDB holds
        "huge": 9.99e125,
        "tiny": Decimal("1E-130"),
    }
    plain = order(order_id="o-x")
    table = validated_table([plain, {**order(order_id="o-y"), **others}])
    texts, sizes = items_json(table)
    assert json.loads(texts[0]) == json.loads(items_json(validated_table([plain]))[0][0])
    item = json.loads(texts[1])
    assert list(item) == [*ORDER_FIELDS, *others]  # the order's fields, then the others
    assert item["whole"] == {"N": "3"} and item["points"] == {"N": str(2**60 + 1)}
    assert item["shipping"]["M"]["floor"] == {"NULL": True}
    assert item["tags"] == {"SS": ["red", "sale"]} and item["photo"] == {"B": "AP8="}
    assert sizes.tolist() == [item_size(json.loads(texts[0])), item_size(item)]
    back = item_to_order(item)
    expected = {**others, "whole": 3, "huge": Decimal("9.99E+125")}  # N as boto3 reads it
    assert {name: back[name] for name in others} == expected
    again = items_json(validated_table([back]))[0][0]
    assert json.loads(again) == item  # a read and a write store the very same item


def test_other_attributes_missing_in_some_orders_are_absent_from_theirs():
    records = [order(order_id="o-1"), order(order_id="o-2", note="x", points=5)]
    for given in (records, pd.DataFrame(records)):
        texts, _ = items_json(validated_table(given))
        assert list(json.loads(texts[0])) == list(ORDER_FIELDS)
        assert json.loads(texts[1])["points"] == {"N": "5"}  # not 5.0 beside a missing value
    assert validated_table(records[:1]).column_names == list(ORDER_FIELDS)


def test_other_attributes_count_towards_the_item_size_limit():
    base = order(order_id="o-1", note="")
    room = MAX_ITEM_BYTES - item_sizes(validated_table([base]))[0]
    validated_table([{**base, "note": "x" * room}])  # exactly the limit
    with pytest.raises(InvalidOrderError, match="field 'note' makes the item 409,601 bytes"):
        validated_table([{**base, "note": "x" * (room + 1)}])


@pytest.mark.parametrize(
    "change",
    [
        {},  # the order's own shape: the direct path
        {"product_name": 'Say "hi" \\ ünï'},
        {"unit_price": {"N": "19.990000000000000000000001"}},
        {"unit_price": {"N": "7"}},
        {"quantity": {"N": "2.5"}},  # not whole: kept as the number it is
        {"quantity": {"S": "two"}},  # another writer's types
        {"order_ts": {"S": "yesterday"}},  # not a timestamp: the text
        {"order_ts": {"N": "1767607200000"}},
        {"channel": {"NULL": True}},
        {"category": None},  # lacks a field
        {"note": {"S": "gift"}},  # one attribute more
    ],
)
def test_every_item_reads_as_the_general_reading_does(change):
    from helpers.schema import _any_item_to_order

    (text,), _ = items_json(validated_table([order()]))
    item = json.loads(text)
    for name, value in change.items():
        if isinstance(value, str):
            item[name] = {"S": value}
        elif value is None:
            del item[name]
        else:
            item[name] = value
    read = item_to_order(item)
    assert read == _any_item_to_order(item)
    assert list(read) == list(_any_item_to_order(item))
    assert [type(value) for value in read.values()] == [
        type(value) for value in _any_item_to_order(item).values()
    ]
