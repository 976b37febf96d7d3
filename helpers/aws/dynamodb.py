"""The orders table on DynamoDB: the :class:`~helpers.platform.OrdersTable` writes and reads;
and the batch writes and queries of the real-time tables (:func:`batch_put`, :func:`query`).

Puts go through boto3's batch writer (BatchWriteItem, 25 items a request, unprocessed items
retried); updates are UpdateItem with the condition ``attribute_exists(order_id)``; deletes
are DeleteItem returning the old item (so the count of existing orders is exact). Updates and
deletes run on a few threads, each order's own changes in the order given.

Not handled: the existence check and the writes of an update are not one transaction, so a
concurrent delete between them raises OrderNotFoundError after other updates of the same call
were written; a batch of puts that fails half way leaves the first part written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import pyarrow as pa
from boto3.dynamodb.table import BatchWriter

from helpers.exceptions import OrderNotFoundError, SalescastError
from helpers.platform import merge_updates
from helpers.schema import KEY, items_json

THREADS = 16
GET_BATCH = 100
WRITE_BATCH = 25
"""The most requests one BatchWriteItem takes."""
UNPROCESSED_PAUSE_S = 0.2
UNPROCESSED_ATTEMPTS = 8
"""BatchWriteItem calls per batch before its unprocessed items are an error (the pauses
between them double from :data:`UNPROCESSED_PAUSE_S`, about 50 s in all)."""


class Table:
    """The orders table.

    Parameters
    ----------
    client
        A boto3 DynamoDB client (items are AttributeValue JSON, as on the wire).
    name
        The table's name.
    on_write
        Called with the orders written (a validated Arrow table) or with the old items of
        deleted orders, after they are written (how :mod:`helpers.aws.flush` keeps count).
    """

    def __init__(
        self,
        client: Any,
        name: str,
        on_write: Callable[[pa.Table | None, list[dict] | None], None] | None = None,
    ):
        self.client, self.name = client, name
        self._on_write = on_write or (lambda orders, removed: None)

    def put_items(self, orders: pa.Table) -> None:
        """PutItem for each validated order: a new key is inserted, an existing one overwritten."""
        texts, _ = items_json(orders)
        with BatchWriter(self.name, self.client, overwrite_by_pkeys=[KEY]) as writer:
            for text in texts:
                writer.put_item(Item=json.loads(text))
        self._on_write(orders, None)

    def update_items(self, changes: Sequence[Mapping[str, Any]]) -> pa.Table:
        """UpdateItem on existing orders; returns the new orders, one per change.

        Every change is checked (existence and schema) before anything is written.
        """
        orders = merge_updates(changes, self._get_items([change[KEY] for change in changes]))
        final = {key: row for row, key in enumerate(orders[KEY].to_pylist())}
        latest = orders.take(list(final.values()))
        texts, _ = items_json(latest)
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(self._update, texts))
        self._on_write(latest, None)
        return orders

    def _update(self, text: str) -> None:
        item = json.loads(text)
        key = item.pop(KEY)
        names = {f"#f{i}": name for i, name in enumerate(item)}
        values = {f":v{i}": value for i, value in enumerate(item.values())}
        try:
            self.client.update_item(
                TableName=self.name,
                Key={KEY: key},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(item))),
                ConditionExpression="attribute_exists(#key)",
                ExpressionAttributeNames={**names, "#key": KEY},
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise OrderNotFoundError(key["S"]) from None

    def delete_items(self, keys: Iterable[str]) -> int:
        """DeleteItem for each key; a missing key is a no-op. Returns how many existed."""
        unique = list(dict.fromkeys(keys))
        with ThreadPoolExecutor(THREADS) as pool:
            old = [item for item in pool.map(self._delete, unique) if item is not None]
        if old:
            self._on_write(None, old)
        return len(old)

    def _delete(self, key: str) -> dict | None:
        response = self.client.delete_item(
            TableName=self.name, Key={KEY: {"S": key}}, ReturnValues="ALL_OLD"
        )
        return response.get("Attributes")

    def batch(self) -> nullcontext:
        """DynamoDB has no transaction across calls: writes inside a batch stand alone."""
        return nullcontext()

    def get_item(self, key: str) -> dict | None:
        """GetItem (strongly consistent): the item as AttributeValue JSON, or None."""
        response = self.client.get_item(
            TableName=self.name, Key={KEY: {"S": key}}, ConsistentRead=True
        )
        return response.get("Item")

    def _get_items(self, keys: Sequence[str]) -> dict[str, dict]:
        """BatchGetItem (strongly consistent) of the keys that exist, by key."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, dict] = {}
        for start in range(0, len(unique), GET_BATCH):
            request = {
                self.name: {
                    "Keys": [{KEY: {"S": key}} for key in unique[start : start + GET_BATCH]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.name, []):
                    found[item[KEY]["S"]] = item
                request = response.get("UnprocessedKeys") or None
                if request:
                    time.sleep(UNPROCESSED_PAUSE_S)  # throttled: give capacity a moment
        return found

    def count(self) -> int:
        """Number of items, exactly (a Scan with Select=COUNT: reads the whole table)."""
        pages = self.client.get_paginator("scan").paginate(TableName=self.name, Select="COUNT")
        return sum(page["Count"] for page in pages)

    def scan(self) -> list[dict]:
        """Every item as AttributeValue JSON (a strongly consistent Scan of the whole table)."""
        pages = self.client.get_paginator("scan").paginate(TableName=self.name, ConsistentRead=True)
        return [item for page in pages for item in page["Items"]]

    def approximate_count(self) -> int:
        """DynamoDB's item count (DescribeTable), refreshed about every six hours; free."""
        return self.client.describe_table(TableName=self.name)["Table"]["ItemCount"]


def batch_put(
    client: Any,
    table: str,
    items: Sequence[dict],
    attempts: int = UNPROCESSED_ATTEMPTS,
    pause: float = UNPROCESSED_PAUSE_S,
) -> int:
    """PutItem of every item (AttributeValue JSON) by BatchWriteItem, 25 a request; returns the
    count.

    DynamoDB may leave some items of a request unprocessed (throttling, or a partition over its
    throughput) and says which: those are sent again after a pause that doubles each time, as
    its documentation advises. Raises :class:`~helpers.exceptions.SalescastError` naming the
    table when items are still unprocessed after ``attempts`` requests.

    Examples
    --------
    >>> batch_put(boto3.client("dynamodb"), "salescast-expectations", items)  # 60: 3 requests
    60
    """
    for start in range(0, len(items), WRITE_BATCH):
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + WRITE_BATCH]]
        for attempt in range(attempts):
            response = client.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            if attempt + 1 < attempts:
                time.sleep(pause * 2**attempt)
        else:
            raise SalescastError(
                f"{len(pending)} item(s) still unprocessed by {table} after {attempts} "
                f"BatchWriteItem requests (throttled); {start} of {len(items)} were written. "
                "Retry later, or raise the table's throughput."
            )
    return len(items)


def query(client: Any, table: str, **parameters: Any) -> list[dict]:
    """Every item a Query returns (all its pages), as AttributeValue JSON."""
    pages = client.get_paginator("query").paginate(TableName=table, **parameters)
    return [item for page in pages for item in page["Items"]]
