"""The salescast command, run in-process on a temporary root."""

from __future__ import annotations

from typer.testing import CliRunner

from helpers.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_stream_lake_status_teardown(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESCAST_SCALE", "0.5")  # scales the notebooks, not --rate
    root = str(tmp_path / "root")
    output = invoke(
        "stream",
        "--days",
        "5",
        "--end",
        "2026-03-01",
        "--orders-per-day",
        "80",
        "--rate",
        "50",
        "--duration",
        "1",
        "--root",
        root,
    )
    assert "waiting for the lake" in output and "lake" in output
    live = output.split("streaming 50 orders/s for 1s")[1]
    assert "'put': 50," in live and "reached the lake in p50" in live
    lake = invoke("lake", "--root", root, "--records", "3")
    assert "partitions" in lake and "0 error objects" in lake and "order_id" in lake
    partitions = int(lake.split(" partitions")[0].split()[-1])
    assert partitions == 6  # five backfilled days and today's live orders
    status = invoke("status", "--root", root)
    lines = {line.split()[0]: line.split() for line in status.splitlines()[1:]}
    assert lines["table"][1] != "0"
    assert lines["lake"][2] == "0"  # nothing pending
    refused = runner.invoke(app, ["teardown", "--root", root])
    assert refused.exit_code == 2 and "--yes" in refused.output
    invoke("teardown", "--yes", "--root", root)
    assert not (tmp_path / "root").exists()


def test_bad_settings_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESCAST_SHARD_COUNT", "many")
    result = runner.invoke(app, ["status", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "SALESCAST_SHARD_COUNT" in result.output


def test_crawl_and_query(tmp_path):
    root = str(tmp_path / "root")
    invoke("stream", "--days", "4", "--end", "2026-03-01", "--orders-per-day", "60", "--root", root)
    crawled = invoke("crawl", "--root", root)
    assert "tables created: ['orders_changes']" in crawled and "partitions added: 4" in crawled
    table = invoke("query", "daily_revenue", "--root", root)
    assert "revenue" in table and "(4 rows; result at s3://" in table
    csv = invoke(
        "query", "SELECT count(*) AS n FROM orders_current", "--output", "csv", "--root", root
    )
    assert csv.splitlines()[0] == "n" and int(csv.splitlines()[1]) > 0
    failed = runner.invoke(app, ["query", "SELECT nope FROM daily_sales", "--root", root])
    assert failed.exit_code == 1 and "COLUMN_NOT_FOUND" in failed.output


def test_trim_applies_retention_now(tmp_path, monkeypatch):
    import helpers
    import helpers.local.platform as local

    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(
            [
                {
                    "order_id": f"o-{i}",
                    "order_ts": "2026-01-02T10:00:00Z",
                    "customer_id": "c-1",
                    "product_id": "p-1",
                    "product_name": "Lamp",
                    "category": "home",
                    "channel": "web",
                    "quantity": 1,
                    "unit_price": 9.5,
                }
                for i in range(40)
            ]
        )
        platform.flush(timeout=60)
    output = invoke("trim", "--root", str(root))
    assert "change_stream_records: 0" in output  # all younger than 24 h
    real = local.time.time
    monkeypatch.setattr(local.time, "time", lambda: real() + 2 * 86400)
    output = invoke("trim", "--root", str(root))
    assert "change_stream_records: 40" in output and "kinesis_records: 40" in output
