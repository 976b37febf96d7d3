"""The order schema: fields, their Arrow and Glue types, validation, and item conversion.

One place says what an order is. The table stores orders as DynamoDB AttributeValue JSON
(``{"quantity": {"N": "3"}}``); the lake stores the change log with the columns of
``LAKE_SCHEMA`` plus the hive partition keys ``year``, ``month`` and ``day``.

Examples
--------
>>> order = validate_orders([{"order_id": "o-1", "order_ts": "2026-01-05T10:00:00Z",
...     "customer_id": "c-1", "product_id": "p-1", "product_name": "Teal Lamp",
...     "category": "home", "channel": "web", "quantity": 2, "unit_price": 9.5}])[0]
>>> order_to_item(order)["quantity"]
{'N': '2'}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from helpers.exceptions import InvalidOrderError

KEY = "order_id"
STRING_FIELDS = ("order_id", "customer_id", "product_id", "product_name", "category", "channel")
ORDER_FIELDS: dict[str, str] = {
    "order_id": "string",
    "order_ts": "timestamp",
    "customer_id": "string",
    "product_id": "string",
    "product_name": "string",
    "category": "string",
    "channel": "string",
    "quantity": "int",
    "unit_price": "double",
}
EVENT_FIELDS: dict[str, str] = {
    "event_name": "string",
    "event_seq": "string",
    "event_ts": "timestamp",
}
LAKE_FIELDS: dict[str, str] = {**ORDER_FIELDS, **EVENT_FIELDS}
PARTITION_KEYS = ("year", "month", "day")
EVENT_SEQ_DIGITS = 40

_ARROW_TYPES = {
    "string": pa.string(),
    "timestamp": pa.timestamp("ms"),
    "int": pa.int32(),
    "double": pa.float64(),
}
LAKE_SCHEMA = pa.schema([pa.field(name, _ARROW_TYPES[kind]) for name, kind in LAKE_FIELDS.items()])
"""Arrow schema of the lake's Parquet objects (partition keys live in the object key)."""


def glue_columns() -> list[dict[str, str]]:
    """The lake columns as Glue ``Columns`` (``Name``/``Type``), in file order."""
    return [{"Name": name, "Type": kind} for name, kind in LAKE_FIELDS.items()]


def glue_partition_keys() -> list[dict[str, str]]:
    """The hive partition keys as Glue ``PartitionKeys``."""
    return [{"Name": name, "Type": "string"} for name in PARTITION_KEYS]


def format_timestamp(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, the form the table and the lake JSON carry."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_timestamp(value: Any, field: str = "order_ts") -> datetime:
    """Parse a timestamp given as datetime, pandas Timestamp, epoch seconds or ISO 8601 text.

    Naive values are taken as UTC, the project's one time zone.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InvalidOrderError(field, "is missing", "give a UTC timestamp")
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        if value != value:  # NaT
            raise InvalidOrderError(field, "is missing (NaT)", "give a UTC timestamp")
        value = value.to_pydatetime()
    if isinstance(value, bool):
        raise InvalidOrderError(field, f"is a boolean ({value!r})", "give a UTC timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidOrderError(field, f"is not finite ({value!r})", "give a UTC timestamp")
        value = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InvalidOrderError(
                field,
                f"is not a timestamp ({value!r})",
                "use ISO 8601, e.g. '2026-01-05T10:00:00Z'",
            ) from None
    if not isinstance(value, datetime):
        raise InvalidOrderError(
            field, f"has type {type(value).__name__}", "give a datetime or ISO 8601 text"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if not 1970 <= value.year <= 2999:
        raise InvalidOrderError(field, f"is out of range ({value.isoformat()})", "use years 1970-2999")
    return value


def _validate_one(record: Mapping[str, Any], position: int) -> dict[str, Any]:
    order_id = record.get(KEY)
    where = f"order {order_id!r}" if isinstance(order_id, str) and order_id else f"record {position}"
    try:
        unknown = set(record) - set(ORDER_FIELDS)
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidOrderError(
                name, "is not an order field", f"use only {', '.join(ORDER_FIELDS)}"
            )
        order: dict[str, Any] = {}
        for name in STRING_FIELDS:
            value = record.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise InvalidOrderError(name, "is missing", "give a non-empty string")
            if not isinstance(value, str):
                raise InvalidOrderError(
                    name, f"has type {type(value).__name__} ({value!r})", "give a string"
                )
            if not value.strip():
                raise InvalidOrderError(name, "is empty", "give a non-empty string")
            order[name] = value
        order["order_ts"] = parse_timestamp(record.get("order_ts"))
        order["quantity"] = _quantity(record.get("quantity"))
        order["unit_price"] = _unit_price(record.get("unit_price"))
    except InvalidOrderError as error:
        raise error.at(where) from None
    return {name: order[name] for name in ORDER_FIELDS}


def _quantity(value: Any) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InvalidOrderError("quantity", "is missing", "give a whole number of units, 1 or more")
    if isinstance(value, bool) or not isinstance(value, int | float) and not hasattr(value, "dtype"):
        raise InvalidOrderError(
            "quantity", f"has type {type(value).__name__} ({value!r})", "give a whole number"
        )
    if float(value) != int(value):
        raise InvalidOrderError("quantity", f"is not whole ({value!r})", "give a whole number")
    if int(value) < 1:
        raise InvalidOrderError(
            "quantity", f"is {int(value)}", "give 1 or more; cancel an order with orders.delete"
        )
    if int(value) > 2**31 - 1:
        raise InvalidOrderError("quantity", f"is too large ({value!r})", "give at most 2147483647")
    return int(value)


def _unit_price(value: Any) -> float:
    if value is None:
        raise InvalidOrderError("unit_price", "is missing", "give a price of 0 or more")
    if isinstance(value, bool) or not isinstance(value, int | float) and not hasattr(value, "dtype"):
        raise InvalidOrderError(
            "unit_price", f"has type {type(value).__name__} ({value!r})", "give a number"
        )
    price = float(value)
    if not math.isfinite(price):
        raise InvalidOrderError("unit_price", f"is not finite ({value!r})", "give a finite price")
    if price < 0:
        raise InvalidOrderError("unit_price", f"is negative ({price})", "give a price of 0 or more")
    return price


def validate_orders(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check and normalise orders; raise :class:`InvalidOrderError` naming the first bad field.

    Returns orders with every field present, ``order_ts`` as an aware UTC datetime,
    ``quantity`` as int and ``unit_price`` as float.
    """
    return [_validate_one(record, position) for position, record in enumerate(records)]


def order_to_item(order: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """A validated order as a DynamoDB item in AttributeValue JSON."""
    item = {name: {"S": order[name]} for name in STRING_FIELDS}
    item["order_ts"] = {"S": format_timestamp(order["order_ts"])}
    item["quantity"] = {"N": str(order["quantity"])}
    item["unit_price"] = {"N": repr(float(order["unit_price"]))}
    return {name: item[name] for name in ORDER_FIELDS}


def item_to_order(item: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A DynamoDB item (AttributeValue JSON) back to an order dict."""
    order: dict[str, Any] = {name: item[name]["S"] for name in STRING_FIELDS}
    order["order_ts"] = parse_timestamp(item["order_ts"]["S"])
    order["quantity"] = int(item["quantity"]["N"])
    order["unit_price"] = float(item["unit_price"]["N"])
    return {name: order[name] for name in ORDER_FIELDS}


def item_size(item: Mapping[str, Mapping[str, str]]) -> int:
    """Approximate DynamoDB item size in bytes: attribute names plus values, UTF-8."""
    size = 0
    for name, value in item.items():
        ((kind, text),) = value.items()
        size += len(name.encode())
        size += len(text.encode()) if kind == "S" else (len(text.strip("-").replace(".", "")) + 1) // 2 + 1
    return size
