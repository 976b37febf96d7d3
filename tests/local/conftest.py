"""Fixtures of the local engine's unit tests: real SQLite files, folders and runtimes in tmp_path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers.local.awslambda import Function
from helpers.local.dynamodb import Table
from helpers.local.kinesis import Stream
from helpers.local.s3 import Bucket
from helpers.schema import validated_table

REGION = "eu-west-3"
ACCOUNT = "123456789012"
TRANSFORM = "helpers.transform.lambda_handler"


def order(number: int, **changes: Any) -> dict[str, Any]:
    """One valid order; ``number`` picks its id and day (in January 2026)."""
    base = {
        "order_id": f"o-{number:05d}",
        "order_ts": f"2026-01-{1 + number % 28:02d}T10:{number % 60:02d}:00.250Z",
        "customer_id": f"c-{number % 7}",
        "product_id": f"p-{number % 3}",
        "product_name": 'Teal "Desk" Lamp ø',
        "category": "home",
        "channel": "web",
        "quantity": 1 + number % 5,
        "unit_price": 9.5 + number,
    }
    return {**base, **changes}


def orders(*numbers: int, **changes: Any):
    """Validated orders, as ``Table.put_items`` takes them."""
    return validated_table([order(number, **changes) for number in numbers])


def stream_records(table: Table) -> list[dict]:
    """Every stream record of a table, parsed, in stream order."""
    return [json.loads(text) for _, _, text, _ in table.read_stream(0, 1_000_000)]


@pytest.fixture
def table(tmp_path):
    table = Table(tmp_path / "dynamodb.sqlite", "orders", REGION, ACCOUNT)
    yield table
    table.close()


@pytest.fixture
def stream(tmp_path):
    stream = Stream(tmp_path / "kinesis", "changes", 2, REGION, ACCOUNT)
    yield stream
    stream.close()


@pytest.fixture
def bucket(tmp_path):
    return Bucket(tmp_path / "s3", "lake")


@pytest.fixture(scope="session")
def transform_function(tmp_path_factory):
    """The transform Lambda, shared by the tests (one cold start for the session)."""
    function = Function(
        "transform",
        TRANSFORM,
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:transform",
        tmp_path_factory.mktemp("logs"),
        "salescast.transform",
        timeout_s=30,
    )
    yield function
    function.close()
