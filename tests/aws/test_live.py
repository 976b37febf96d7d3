"""The live view on aws (moto): the frame and ``salescast watch`` read the stack's
expectations and nowcast tables, which the consumer's handler wrote from stream records."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from helpers import live
from helpers import realtime as rt
from helpers.cli import app
from helpers.local.dynamodb import Table
from helpers.schema import item_to_order, validated_table
from tests.aws.test_realtime import create_tables_of_the_template
from tests.test_realtime import (
    FUTURE,
    expectation,
    expected_totals,
    kinesis_event,
    order,
    stream_texts,
)


@pytest.fixture
def applied(aws_platform, tmp_path, monkeypatch):
    """The stack's real-time tables on moto, the consumer's handler pointed at them, and 30
    orders of FUTURE (amended, cancelled) applied through it; yields the platform and the
    orders as the table holds them."""
    names = aws_platform.names
    create_tables_of_the_template(aws_platform.settings)
    monkeypatch.delenv("REALTIME_DB", raising=False)
    monkeypatch.setenv("EXPECTATIONS_TABLE", names.expectations_table_name)
    monkeypatch.setenv("NOWCAST_TABLE", names.nowcast_table_name)
    rt._stores.clear()
    aws_platform.publish_expectations(
        pd.DataFrame([expectation("total", FUTURE, 200), expectation("product#p-1", FUTURE, 90)])
    )
    table = Table(tmp_path / "dynamodb.sqlite", "orders", "us-east-1", "000000000000")
    table.put_items(validated_table([order(n) for n in range(30)]))
    table.update_items([{"order_id": "o-00004", "quantity": 9}])
    table.delete_items(["o-00007"])
    assert rt.lambda_handler(kinesis_event(stream_texts(table)), None) == {"batchItemFailures": []}
    orders = [item_to_order(item) for item in table.scan()]
    table.close()
    yield aws_platform, orders
    rt._stores.clear()


def test_the_frame_reads_the_stacks_tables(applied):
    platform, orders = applied
    frame = live.live_frame(platform, top=3).set_index("series_id")
    units = {key: value[0] for key, value in expected_totals(orders).items()}
    # the latest order is at 23:15 of FUTURE: the consumer's "now"
    assert frame.attrs["day"] == str(FUTURE) and frame.attrs["now"].hour == 23
    assert frame.index.tolist() == ["total", "product#p-1"]  # the products with expectations
    assert frame["actual"].to_dict() == {
        "total": units["total"],
        "product#p-1": units["product#p-1"],
    }
    share = rt.profile_share(expectation("total", FUTURE, 1)["profile"], 23.25)
    assert frame.loc["total", "expected_so_far"] == pytest.approx(200 * share)
    assert frame.loc["total", "band_lo_90"] == pytest.approx(
        expectation("total", FUTURE, 200)["units_lo_90"] * share
    )


def test_watch_prints_the_stacks_view(applied):
    result = CliRunner().invoke(app, ["watch", "--once", "--backend", "aws"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{FUTURE} 23:15:00 UTC (the consumer's clock)"
    assert [line.split()[0] for line in lines[2:4]] == ["total", "product#p-1"]
