"""Positions and retention of a real local root: restored copies, trims, lifecycle rules."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime

import pytest

import helpers
from helpers.exceptions import QueryError
from helpers.local.s3 import expiry

DAY = 86400


def _ids(frame) -> set[str]:
    return set(frame.order_id)


@pytest.mark.slow
def test_new_changes_reach_the_lake_after_the_stream_folder_is_restored_from_an_older_copy(
    tmp_path, make_orders, caplog
):
    """A kinesis/ folder older than firehose.sqlite: its shards end under the delivery
    checkpoints, and new records numbered from there would be skipped while flush says done."""
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(200, seed=1))
        platform.flush(timeout=60)
    shutil.copytree(root / "kinesis", tmp_path / "kinesis-copy")
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(300, seed=2))
        platform.flush(timeout=60)
    shutil.rmtree(root / "kinesis")
    shutil.copytree(tmp_path / "kinesis-copy", root / "kinesis")

    with caplog.at_level(logging.WARNING), helpers.connect(root=root, buffer_interval_s=0.1) as p:
        assert "firehose.sqlite: the checkpoint of shardId-" in caplog.text
        assert "new records continue above the checkpoint" in caplog.text
        new = make_orders(50, seed=3)
        p.orders.put(new)
        p.flush(timeout=60)
        lake = p.read_lake()
        assert _ids(new) <= _ids(lake)
        assert p.status().set_index("stage").pending.sum() == 0


def test_a_shard_log_that_lost_its_tail_numbers_new_records_above_it(tmp_path, make_orders):
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(300, seed=1))
        platform.flush(timeout=60)
    for log in (root / "kinesis").glob("*.log"):  # the tails are gone, index and all
        index = log.with_suffix(".idx")
        entries = index.read_bytes()
        keep = len(entries) // 16
        with open(log, "r+b") as handle:
            handle.truncate(int.from_bytes(entries[(keep - 1) * 8 : keep * 8], "little"))
        index.write_bytes(entries[: keep * 8])
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        new = make_orders(80, seed=4)
        platform.orders.put(new)
        platform.flush(timeout=60)
        assert _ids(new) <= _ids(platform.read_lake())


@pytest.mark.slow
def test_new_changes_reach_the_lake_after_the_table_file_is_restored_from_an_older_copy(
    tmp_path, make_orders, caplog
):
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(100, seed=1))
        platform.flush(timeout=60)
    shutil.copy(root / "dynamodb.sqlite", tmp_path / "dynamodb-copy.sqlite")
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(200, seed=2))
        platform.flush(timeout=60)
    shutil.copy(tmp_path / "dynamodb-copy.sqlite", root / "dynamodb.sqlite")

    with caplog.at_level(logging.WARNING), helpers.connect(root=root, buffer_interval_s=0.1) as p:
        assert "pipes.sqlite: the pipe's checkpoint is at position 300" in caplog.text
        new = make_orders(30, seed=3)
        p.orders.put(new)
        p.flush(timeout=60)
        assert _ids(new) <= _ids(p.read_lake())


@pytest.mark.slow
def test_retention_trims_only_what_reached_the_lake(tmp_path, make_orders):
    root = tmp_path / "root"
    delivered, waiting = make_orders(300, seed=1), make_orders(200, seed=2)
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(delivered)
        platform.flush(timeout=60)
    # accepted, not yet consumed: nothing runs the pipe or the delivery stream
    with helpers.connect(root=root, consume=False) as platform:
        platform.orders.put(waiting)
        before = platform.status().set_index("stage")
        assert before.loc["change stream", "pending"] == 200
        trimmed = platform.trim(now=time.time() + 2 * DAY)
        assert trimmed["change_stream_records"] == 300  # the pipe passed these, not the rest
        assert trimmed["kinesis_records"] == 300 and trimmed["kinesis_bytes"] > 0
        assert platform.table.stream_retained() == 200
        assert platform.stream.count() == 0
        assert platform.trim(now=time.time() + 2 * DAY)["change_stream_records"] == 0
        detail = platform.status().set_index("stage").detail
        assert (
            "200 kept" in detail["change stream"] and "0 records kept" in detail["kinesis stream"]
        )
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.flush(timeout=60)
        lake = platform.read_lake()
        assert _ids(delivered) | _ids(waiting) <= _ids(lake)
        assert platform.trim(now=time.time() + 2 * DAY)["kinesis_records"] == 200
        status = platform.status().set_index("stage")
        assert status.pending.sum() == 0
        assert status.loc["change stream", "records"] == 500  # positions, not records kept
        later = make_orders(10, seed=3)
        platform.orders.put(later)
        platform.flush(timeout=60)
        assert _ids(later) <= _ids(platform.read_lake())


def test_athena_results_and_executions_expire_as_the_template_says(platform, make_orders):
    platform.orders.put(make_orders(20))
    platform.flush(timeout=60)
    platform.crawl()
    frame = platform.query("SELECT count(*) AS n FROM orders_changes")
    execution = frame.attrs["query_execution_id"]
    key = f"{platform.settings.athena_prefix}{execution}.csv"
    created = platform.bucket.list_objects(key)[0].last_modified
    due = expiry(created, platform.settings.athena_results_retention_days)
    assert platform.trim(now=due.timestamp() - 1)["athena_results"] == 0
    assert platform.bucket.list_objects(key)
    assert platform.trim(now=due.timestamp())["athena_results"] >= 1
    assert not platform.bucket.list_objects(key)
    submitted = platform.athena.get_query_execution(execution)["Status"]["SubmissionDateTime"]
    edge = submitted.timestamp() + 45 * DAY
    assert platform.trim(now=edge - 1)["athena_executions"] == 0
    assert platform.athena.get_query_execution(execution)["Status"]["State"] == "SUCCEEDED"
    assert platform.trim(now=edge + 1)["athena_executions"] >= 1
    with pytest.raises(QueryError, match="INVALID_REQUEST"):
        platform.athena.get_query_execution(execution)


@pytest.mark.parametrize(
    "created, days, expires",
    [
        ("2026-03-01T10:00:00", 7, "2026-03-09T00:00:00"),  # rounded up to the next midnight
        ("2026-03-01T00:00:00", 7, "2026-03-08T00:00:00"),  # already at midnight
        ("2026-03-01T23:59:59", 1, "2026-03-03T00:00:00"),
        ("2026-12-31T12:00:00", 30, "2027-01-31T00:00:00"),
    ],
)
def test_s3_lifecycle_expiry_rounds_to_the_next_midnight_utc(created, days, expires):
    moment = datetime.fromisoformat(created).replace(tzinfo=UTC)
    assert expiry(moment, days) == datetime.fromisoformat(expires).replace(tzinfo=UTC)


def test_delivery_records_expire_and_the_counts_stay(platform, make_orders):
    platform.orders.put(make_orders(50))
    platform.flush(timeout=60)
    objects = platform.status().set_index("stage").loc["lake", "detail"]
    rows = platform.delivery.deliveries()
    newest = max(row[5] for row in rows)
    days = platform.settings.log_retention_days
    assert platform.trim(now=newest + days * DAY - 1)["delivery_records"] == 0
    time.sleep(1.5)  # the next deliveries are more than 1 s younger
    platform.orders.put(make_orders(50, seed=2))
    platform.flush(timeout=60)
    kept = platform.delivery.delivery_count()
    # the first records are older than the period: they go, but the newest of each kind stays
    assert platform.trim(now=newest + days * DAY + 1)["delivery_records"] == len(rows)
    assert platform.delivery.delivery_count() == kept - len(rows) >= 1
    assert (
        platform.status()
        .set_index("stage")
        .loc["lake", "detail"]
        .startswith(str(int(objects.split()[0]) + kept - len(rows)) + " objects")
    )


def test_scheduled_retention_runs_in_the_consumer(tmp_path, make_orders, monkeypatch):
    monkeypatch.setattr("helpers.local.platform._retention_clock", lambda: time.time() + 2 * DAY)
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1, retention_interval_s=0.2) as platform:
        platform.orders.put(make_orders(100))
        platform.flush(timeout=60)
        deadline = time.monotonic() + 30
        while platform.stream.count() or platform.table.stream_retained():
            assert time.monotonic() < deadline, "the retention poller did not trim"
            time.sleep(0.1)
        assert "retention" in [poller.stage for poller in platform._pollers]
        assert len(platform.read_lake()) == 100


def test_failed_records_expire_by_the_error_prefix_rule(platform):
    key = f"{platform.settings.error_prefix}processing-failed/2026/01/01/failed-1"
    platform.bucket.put_object(key, b"{}\n")
    created = platform.bucket.list_objects(key)[0].last_modified
    due = expiry(created, platform.settings.error_retention_days).timestamp()
    assert platform.trim(now=due - 1)["error_objects"] == 0
    assert platform.trim(now=due)["error_objects"] == 1
    assert not platform.bucket.list_objects(platform.settings.error_prefix)
    assert not platform.bucket.local_path(platform.settings.error_prefix).exists()  # no folders


def _put_through_the_pipe_only(root, orders) -> None:
    """Orders the pipe puts into the stream while nothing delivers them."""
    with helpers.connect(root=root, consume=False) as platform:
        platform.orders.put(orders)
        platform.pipe.request_flush()
        while platform.pipe.step():
            pass
        assert platform.pipe.checkpoint() == platform.table.latest_sequence()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["older copy", "lost tail"])
def test_records_the_stream_lost_before_they_were_delivered_are_sent_again(
    tmp_path, make_orders, caplog, damage
):
    root = tmp_path / "root"
    first, second = make_orders(100, seed=1), make_orders(200, seed=2)
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(first)
        platform.flush(timeout=60)
    shutil.copytree(root / "kinesis", tmp_path / "kinesis-copy")
    _put_through_the_pipe_only(root, second)
    if damage == "older copy":
        shutil.rmtree(root / "kinesis")
        shutil.copytree(tmp_path / "kinesis-copy", root / "kinesis")
    else:  # the logs end where the copy's did; the high-water marks stay
        for log in (tmp_path / "kinesis-copy").glob("*.*"):
            if log.suffix in (".log", ".idx"):
                shutil.copy(log, root / "kinesis" / log.name)
    with caplog.at_level(logging.WARNING), helpers.connect(root=root, buffer_interval_s=0.1) as p:
        p.flush(timeout=60)
        assert "the pipe sends again from change 101" in caplog.text
        assert _ids(first) | _ids(second) <= _ids(p.read_lake())
        assert p.status().set_index("stage").pending.sum() == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING), helpers.connect(root=root, buffer_interval_s=0.1) as p:
        p.flush(timeout=60)
        assert "sends again" not in caplog.text  # once only


def test_records_lost_after_the_change_stream_trimmed_them_are_named(tmp_path, make_orders, caplog):
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(100, seed=1))
        platform.flush(timeout=60)
    shutil.copytree(root / "kinesis", tmp_path / "kinesis-copy")
    _put_through_the_pipe_only(root, make_orders(50, seed=2))
    with helpers.connect(root=root, consume=False) as platform:
        platform.table.trim_stream(platform.pipe.checkpoint(), now=time.time() + 2 * DAY)
    shutil.rmtree(root / "kinesis")
    shutil.copytree(tmp_path / "kinesis-copy", root / "kinesis")
    with caplog.at_level(logging.WARNING), helpers.connect(root=root, buffer_interval_s=0.1) as p:
        assert "changes 101..150 are not in the lake" in caplog.text
        assert "Restore the stream's folder from a newer copy" in caplog.text
        later = make_orders(10, seed=3)
        p.orders.put(later)
        p.flush(timeout=60)
        assert _ids(later) <= _ids(p.read_lake())


def test_the_functions_logs_follow_the_log_retention(platform, make_orders):
    """platform.trim rotates <root>/logs and deletes what is older than log_retention_days."""
    logs = platform.function.log_path.parent
    platform.orders.put(make_orders(5))
    platform.flush(timeout=60)
    with platform.function.log_path.open("a") as log:  # as the Lambda logs a failed record
        log.write("2026-01-05 10:00:00,000 WARNING a failed record\n")
    live = sorted(path.name for path in logs.glob("*.log") if path.stat().st_size)
    assert platform.trim()["log_files"] == 0  # rotated, not deleted
    assert sorted(p.name.rpartition(".")[0] for p in logs.glob("*.log.*")) == live
    days = platform.settings.log_retention_days
    assert platform.trim(now=time.time() + days * DAY + 60)["log_files"] == len(live)
    assert not list(logs.glob("*.log.*"))
