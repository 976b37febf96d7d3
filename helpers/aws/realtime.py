"""The real-time tables on DynamoDB: expectations written by forecast runs, and the consumer's
running totals and alerts read back as frames.

Item shapes are those of ``helpers/realtime.py`` (the consumer writes the nowcast table):

- expectations: one item per ``series_id`` (hash key) and ``day`` (range key), the fields of
  :data:`helpers.realtime.EXPECTATION_FIELDS`, ``profile`` a JSON string;
- totals: ``pk = "TOTAL#<day>"``, ``sk = <series_id>``;
- alerts: ``pk = "ALERT#<day>"``, ``sk = "<series_id>#<kind>#<since>"``, with a ``state``
  (open or cleared) that only alerts have: the table's sparse index ``alerts-by-state``
  (``state``, ``since``) holds the alerts alone, so reading them never reads the orders' items.

DynamoDB numbers travel as :class:`~decimal.Decimal` (floats are refused by boto3's
serializer, and NaN or infinity by DynamoDB); they come back as floats, counts as integers.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

import pandas as pd
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from helpers.aws.dynamodb import batch_put, query
from helpers.exceptions import DeployError
from helpers.platform import realtime_frame
from helpers.realtime import (
    ALERT_FIELDS,
    EXPECTATION_FIELDS,
    MS_PER_DAY,
    NOWCAST_FIELDS,
    DynamoStore,
    day_of,
    wall_ms,
)

ALERTS_INDEX = "alerts-by-state"
GET_BATCH = 100  # BatchGetItem's most keys per request
UNPROCESSED_PAUSE_S = 0.2
ALERT_STATES = ("open", "cleared")

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


@contextlib.contextmanager
def stack_table(client: Any, table: str) -> Iterator[None]:
    """Turn DynamoDB's "no such table" into an error that says to deploy: a stack deployed
    before the real-time consumer has neither table."""
    try:
        yield
    except client.exceptions.ResourceNotFoundException:
        raise DeployError(
            f"the DynamoDB table {table} does not exist: the stack predates the real-time "
            "consumer (or is not deployed); run `salescast deploy` to add it"
        ) from None


def expectation_item(row: Mapping[str, Any]) -> dict[str, dict]:
    """One expectation as a DynamoDB item (AttributeValue JSON): numbers as Decimal, the
    profile as a JSON string.

    Raises ValueError naming the series, day and field when a field is missing or a number is
    not finite (DynamoDB stores neither NaN nor infinity).

    Examples
    --------
    >>> row = dict.fromkeys(EXPECTATION_FIELDS, 0) | {"series_id": "total", "units": 0.1}
    >>> item = expectation_item(row | {"profile": [0.5] * 23 + [1.0]})
    >>> item["series_id"], item["units"], item["profile"]["S"][:11]
    ({'S': 'total'}, {'N': '0.1'}, '[0.5, 0.5, ')
    """
    where = f"expectation {row.get('series_id')!r} of {row.get('day')!r}"
    missing = [name for name in EXPECTATION_FIELDS if name not in row]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; give every field of the spec")
    item = {}
    for name in EXPECTATION_FIELDS:
        value = row[name]
        if name == "profile" and not isinstance(value, str):
            value = json.dumps([float(share) for share in value])
        elif isinstance(value, Integral) and not isinstance(value, bool):
            value = Decimal(int(value))
        elif isinstance(value, Real):
            if not math.isfinite(value):
                raise ValueError(f"{where}: {name} is {value}; DynamoDB stores finite numbers only")
            value = Decimal(str(float(value)))  # the float's shortest repr, not its binary digits
        item[name] = _serialize(value)
    return item


def publish_expectations(client: Any, table: str, frame: pd.DataFrame) -> int:
    """Write a forecast run's expectations, replacing those of the same series and day;
    returns the rows given (a series and day given twice keeps the last, as locally)."""
    items = {}
    for row in frame.to_dict("records"):
        item = expectation_item(row)
        items[(row["series_id"], row["day"])] = item  # one request may not repeat a key
    batch_put(client, table, list(items.values()))
    return len(frame)


def plain(item: Mapping[str, dict]) -> dict[str, Any]:
    """An item's attributes as Python values: numbers as int when whole, else float."""
    values = {name: _deserialize(value) for name, value in item.items()}
    return {
        name: (int(value) if value == value.to_integral_value() else float(value))
        if isinstance(value, Decimal)
        else value
        for name, value in values.items()
    }


def nowcasts(client: Any, names: Any, day: str | None) -> pd.DataFrame:
    """Every series' nowcast of ``day`` (today by the consumer's clock when None), as the
    consumer computes it from the running totals and the expectations: the columns of
    :data:`helpers.realtime.NOWCAST_FIELDS`, as on the local backend."""
    store = DynamoStore(names.expectations_table_name, names.nowcast_table_name, dynamodb=client)
    frame = realtime_frame(store.nowcasts(day), NOWCAST_FIELDS)
    return frame.sort_values("series_id", ignore_index=True)


def alerts(client: Any, table: str, open_only: bool = False) -> pd.DataFrame:
    """Every alert episode (or the open ones), oldest first: Queries of the sparse index of
    alerts by state, which holds no other item. An index is read eventually consistent: an
    alert written a moment ago may show a second later."""
    rows = []
    for state in ("open",) if open_only else ALERT_STATES:
        items = query(
            client,
            table,
            IndexName=ALERTS_INDEX,
            KeyConditionExpression="#state = :state",
            ExpressionAttributeNames={"#state": "state"},  # a reserved word in expressions
            ExpressionAttributeValues={":state": {"S": state}},
        )
        rows += [{**plain(item), "day": item["pk"]["S"].removeprefix("ALERT#")} for item in items]
    frame = realtime_frame(rows, ALERT_FIELDS)
    return frame.sort_values(["since", "series_id"], ignore_index=True)


def oldest_kept_day(client: Any, names: Any) -> str:
    """The first day (``YYYY-MM-DD``) whose orders the consumer keeps: the day before "now"
    by its clock (the later of the wall clock and the newest order it applied), as its
    handler reckons it; older orders it skips."""
    store = DynamoStore(names.expectations_table_name, names.nowcast_table_name, dynamodb=client)
    return day_of(store.now_ms(wall_ms()) - MS_PER_DAY)


def not_applied(client: Any, table: str, changes: Mapping[str, str]) -> dict[str, str]:
    """Of ``changes`` (order id -> the ``SequenceNumber`` of its latest change, as digits),
    those the consumer has not applied yet: no contribution item for the order, or one of an
    earlier change. Strongly consistent BatchGetItem reads of the ``ORDER#<id>`` items."""
    behind = dict(changes)
    keys = list(changes)
    for start in range(0, len(keys), GET_BATCH):
        request = {
            table: {
                "Keys": [
                    {"pk": {"S": f"ORDER#{key}"}, "sk": {"S": "ORDER"}}
                    for key in keys[start : start + GET_BATCH]
                ],
                "ProjectionExpression": "pk, seq",
                "ConsistentRead": True,
            }
        }
        while request:
            response = client.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(table, []):
                key = item["pk"]["S"].removeprefix("ORDER#")
                if int(item["seq"]["S"]) >= int(changes[key]):
                    behind.pop(key, None)
            request = response.get("UnprocessedKeys") or None
            if request:
                time.sleep(UNPROCESSED_PAUSE_S)  # throttled: give capacity a moment
    return behind
