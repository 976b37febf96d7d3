"""Compaction of the lake's small objects: real Parquet objects, real queries, every step."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import types
import uuid
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import helpers
from helpers.exceptions import BackendError
from helpers.local import athena_views, compaction
from helpers.local.compaction import MARK, Compactor, record_key, visible_objects
from helpers.schema import LAKE_SCHEMA
from tests.local.test_athena import assert_answers_as_written

START = datetime(2026, 5, 1, tzinfo=UTC)
CURRENT = """
SELECT order_id, order_ts, customer_id, product_id, product_name, category, channel,
       quantity, unit_price, event_seq, event_ts
FROM (SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY event_seq DESC) AS newest
      FROM raw) WHERE newest = 1 AND event_name <> 'REMOVE'
"""
DAILY = f"""
SELECT CAST(order_ts AS DATE) AS ds, product_id, product_name, category,
       sum(quantity) AS units, sum(quantity * unit_price) AS revenue, count(*) AS orders
FROM ({CURRENT}) GROUP BY ALL
"""


class Lake:
    """Writes change-log objects in the lake's exact format and Firehose's naming, and
    keeps every row written (the raw change log, duplicates included)."""

    def __init__(self, platform, seed: int = 7):
        self.platform, self.random = platform, random.Random(seed)
        self.rows: list[dict] = []
        self.sequence = 0
        self.objects = 0
        self.latest: dict[str, dict] = {}

    def _event(self, order_id: str, name: str, day: int) -> dict:
        self.sequence += 1
        previous = self.latest.get(order_id)
        row = {
            "order_id": order_id,
            "order_ts": START + timedelta(days=day, hours=self.random.randrange(24)),
            "customer_id": f"c{self.random.randrange(50)}",
            "product_id": f"p{self.random.randrange(5)}",
            "product_name": "a product",
            "category": "things",
            "channel": "web",
            "quantity": self.random.randrange(1, 9),
            "unit_price": round(self.random.uniform(1, 50), 2),
            "event_name": name,
            "event_seq": str(self.sequence).zfill(40),
            "event_ts": START + timedelta(seconds=self.sequence),
        }
        if name == "REMOVE" and previous:
            row.update({k: previous[k] for k in ("order_ts", "product_id", "quantity")})
        self.latest[order_id] = row
        return row

    def put(self, day: int, rows: list[dict], name: str | None = None) -> str:
        """One object of ``rows`` in the partition of ``day``; returns its key."""
        stamp = (START + timedelta(seconds=self.objects)).strftime("%Y-%m-%d-%H-%M-%S")
        self.objects += 1
        date = START + timedelta(days=day)
        folder = f"sales/year={date:%Y}/month={date:%m}/day={date:%d}/"
        key = folder + (name or f"salescast-lake-delivery-1-{stamp}-{uuid.uuid4()}.parquet")
        table = pa.Table.from_pylist(rows, schema=LAKE_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="snappy")
        self.platform.bucket.put_object(key, sink.getvalue().to_pybytes())
        self.rows.extend(rows)
        return key

    def delivery(self, day: int, orders: int = 6) -> str:
        """An object of new orders, amendments and cancels of earlier ones (in this day's
        partition, as the order date says), sometimes delivered twice."""
        rows = [self._event(f"o{day}-{len(self.rows)}-{i}", "INSERT", day) for i in range(orders)]
        known = [k for k, v in self.latest.items() if v["order_ts"].day == START.day + day]
        for order_id in self.random.sample(known, min(2, len(known))):
            if self.latest[order_id]["event_name"] != "REMOVE":
                name = self.random.choice(["MODIFY", "MODIFY", "REMOVE"])
                rows.append(self._event(order_id, name, day))
        key = self.put(day, rows)
        if self.random.random() < 0.2:  # a redelivery: the same rows in another object
            self.put(day, rows)
        return key

    def expected(self, sql: str) -> pd.DataFrame:
        raw = pa.Table.from_pylist(self.rows, schema=LAKE_SCHEMA)  # noqa: F841 (read by DuckDB)
        return duckdb.sql(sql).df()


def assert_answers_are_the_raw_rows(platform, lake: Lake) -> None:
    """orders_current and daily_sales equal a plain DuckDB query over every row written, and
    the maintained answers equal the plain SQL's in this and a new engine."""
    current = platform.query("SELECT * FROM orders_current").sort_values("order_id")
    want = lake.expected(CURRENT).sort_values("order_id")
    assert list(current.order_id) == list(want.order_id)
    assert list(current.event_seq) == list(want.event_seq)
    assert list(current.quantity) == list(want.quantity)
    daily = platform.query("SELECT * FROM daily_sales")
    daily["ds"] = pd.to_datetime(daily.ds).dt.date
    daily = daily.sort_values(["ds", "product_id"]).reset_index(drop=True)
    want = lake.expected(DAILY)
    want["ds"] = pd.to_datetime(want.ds).dt.date
    want = want.sort_values(["ds", "product_id"]).reset_index(drop=True)
    assert list(daily.units) == list(want.units) and list(daily.orders) == list(want.orders)
    assert np.allclose(daily.revenue, want.revenue)
    assert_answers_as_written(platform)


@pytest.fixture
def platform(tmp_path):
    with helpers.connect(root=tmp_path / "root", consume=False) as platform:
        yield platform


def crawled_lake(platform, days: tuple[int, ...], orders: int = 6) -> Lake:
    """A lake of one delivery per day in ``days`` (day indexes), crawled."""
    lake = Lake(platform)
    for day in days:
        lake.delivery(day, orders)
    platform.crawl()
    return lake


@pytest.fixture
def lake(platform):
    return crawled_lake(platform, (0, 0, 0, 1, 0, 1, 1, 0, 2, 2))


def visible_keys(platform) -> list[str]:
    listing = platform.bucket.list_objects("sales/")
    return [info.key for info in visible_objects(platform.bucket, listing)[0]]


def data_keys(platform) -> list[str]:
    return [k for k in platform.lake_objects().key if not compaction.is_record(k)]


def test_compaction_merges_each_partition_into_one_firehose_like_object(platform, lake):
    before = data_keys(platform)
    seqs = {
        k: pq.read_table(platform.bucket.local_path(k))["event_seq"].to_pylist() for k in before
    }
    assert_answers_are_the_raw_rows(platform, lake)
    result = platform.compact(grace_s=0)
    after = data_keys(platform)
    assert len(result["partitions"]) == 3 and len(after) == 3 == len(result["outputs"])
    assert result["sources"] == len(before) and result["deleted"] == len(before)
    assert result["rows"] == len(lake.rows)
    for output in after:
        folder = output[: output.rfind("/") + 1]
        sources = sorted(k for k in before if k.startswith(folder))
        # named after its first source, so it sorts where its rows came from
        assert output.startswith(sources[0].removesuffix(".parquet") + MARK)
        path = platform.bucket.local_path(output)
        assert pq.read_schema(path).remove_metadata().equals(LAKE_SCHEMA)
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"
        record = json.loads(platform.bucket.get_object(record_key(output)))
        assert [name for name, _ in record["sources"]] == [s[len(folder) :] for s in sources]
        assert [rows for _, rows in record["sources"]] == [len(seqs[s]) for s in sources]
        # the rows in the order of their objects' keys
        in_order = [seq for source in sources for seq in seqs[source]]
        assert pq.read_table(path)["event_seq"].to_pylist() == in_order
    assert len(platform.read_lake()) == len(lake.rows)
    assert_answers_are_the_raw_rows(platform, lake)
    assert platform.crawl()["partitions_added"] == 0


def test_the_views_move_their_rows_instead_of_reading_the_lake_again(platform, lake, monkeypatch):
    assert_answers_are_the_raw_rows(platform, lake)
    state = next(platform.athena.state_root.iterdir())
    partials = sorted(p.name for p in state.rglob("partial-*.parquet"))
    calls = []

    def refuse(name):
        def method(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} should not run")

        return method

    with monkeypatch.context() as patch:
        patch.setattr(athena_views._LatestRows, "_merge", refuse("_merge"))
        patch.setattr(athena_views._LatestRows, "_partial", refuse("_partial"))
        platform.compact(grace_s=0)
        assert_answers_are_the_raw_rows(platform, lake)
    assert not calls
    manifest = json.loads((state / "manifest.json").read_text())
    assert manifest["batches"][0]["replaces"] and len(manifest["objects"]) == 3
    assert sorted(p.name for p in state.rglob("partial-*.parquet")) == partials

    # new deliveries into a compacted partition, then compacted with its output again
    lake.delivery(0)
    lake.delivery(0)
    assert_answers_are_the_raw_rows(platform, lake)
    outputs = data_keys(platform)
    result = platform.compact(grace_s=0)
    assert result["sources"] == 3 and result["partitions"] == ["sales/year=2026/month=05/day=01/"]
    first = next(k for k in outputs if "day=01" in k)
    assert not platform.bucket.local_path(record_key(first)).exists()  # with its output
    assert_answers_are_the_raw_rows(platform, lake)


def test_an_output_of_rows_never_merged_is_merged_as_new(platform, lake):
    platform.compact(grace_s=0)  # nothing queried yet: the state knows none of the sources
    assert_answers_are_the_raw_rows(platform, lake)


def test_an_output_of_merged_and_unmerged_rows_starts_the_state_again(platform, lake):
    assert_answers_are_the_raw_rows(platform, lake)
    lake.delivery(1)  # not merged yet when it is compacted with merged objects
    platform.compactor.run(force=True)
    state = next(platform.athena.state_root.iterdir())
    assert_answers_are_the_raw_rows(platform, lake)
    manifest = json.loads((state / "manifest.json").read_text())
    assert "replaces" not in manifest["batches"][0]  # started again from the lake


def test_sources_are_hidden_during_their_grace_and_deleted_after_it(platform, lake):
    assert_answers_are_the_raw_rows(platform, lake)
    sources = data_keys(platform)
    result = platform.compact(grace_s=60)
    assert result["deleted"] == 0
    assert set(sources) <= set(data_keys(platform))  # still there, for readers of before
    listing, compactions = visible_objects(platform.bucket, platform.bucket.list_objects("sales/"))
    assert sorted(info.key for info in listing) == sorted(compactions) == sorted(result["outputs"])
    assert len(platform.read_lake()) == len(lake.rows)
    assert_answers_are_the_raw_rows(platform, lake)
    compactor = Compactor(platform.bucket, "sales/", platform.compactor.lock_path, grace_s=60)
    assert compactor.run(now=time.time() + 55).deleted == 0  # one side of the grace
    assert compactor.run(now=time.time() + 65).deleted == len(sources)  # and the other
    assert sorted(data_keys(platform)) == sorted(result["outputs"])
    assert_answers_are_the_raw_rows(platform, lake)


def small_partition(platform, count: int, size: int = 3, day: int = 5) -> Lake:
    lake = Lake(platform, seed=count)
    for _ in range(count):
        lake.delivery(day, orders=size)
        lake.random.random()
    return lake


def compactor(platform, **options) -> Compactor:
    return Compactor(platform.bucket, "sales/", platform.compactor.lock_path, **options)


@pytest.mark.parametrize(("count", "compacted"), [(1, False), (3, False), (4, True)])
def test_a_partition_over_max_small_objects_is_compacted_while_written(platform, count, compacted):
    lake = Lake(platform)
    for _ in range(count):
        lake.put(5, [lake._event(f"o{lake.sequence}", "INSERT", 5)])
    result = compactor(platform, max_small=3, quiet_s=3600).run()
    assert bool(result.outputs) == compacted
    assert len(visible_keys(platform)) == (1 if compacted else count)


@pytest.mark.parametrize(("age", "compacted"), [(599, False), (601, True)])
def test_a_quiet_partition_is_compacted(platform, age, compacted):
    lake = Lake(platform)
    for _ in range(2):
        lake.put(5, [lake._event(f"o{lake.sequence}", "INSERT", 5)])
    newest = max(info.last_modified.timestamp() for info in platform.bucket.list_objects())
    result = compactor(platform, max_small=100, quiet_s=600).run(now=newest + age)
    assert bool(result.outputs) == compacted


def test_only_small_objects_before_the_cutoff_are_compacted(platform):
    lake = Lake(platform)
    keys = [lake.put(5, [lake._event(f"o{i}", "INSERT", 5)]) for i in range(4)]
    sizes = sorted(platform.bucket.local_path(key).stat().st_size for key in keys)
    big = platform.bucket.local_path(keys[0])
    os.utime(big, (time.time() - 100, time.time() - 100))
    # at small_bytes == its size an object is not small; one byte more, it is
    assert not compactor(platform, small_bytes=sizes[0]).run(force=True).outputs
    cutoff = time.time() - 50  # keys[0] only, backdated: one object, nothing to merge
    assert not compactor(platform, small_bytes=sizes[-1] + 1).run(force=True, before=cutoff).outputs
    result = compactor(platform, small_bytes=sizes[-1] + 1).run(force=True)
    assert result.sources == 4


def test_outputs_hold_about_target_bytes_each(platform):
    lake = Lake(platform)
    keys = [lake.put(5, [lake._event(f"o{i}", "INSERT", 5)]) for i in range(6)]
    size = max(platform.bucket.local_path(key).stat().st_size for key in keys)
    result = compactor(platform, target_bytes=3 * size).run(force=True)
    assert result.sources == 6 and len(result.outputs) == 2
    platform.crawl()
    assert_answers_are_the_raw_rows(platform, lake)


def test_objects_of_other_schemas_are_compacted_apart_and_bad_ones_left(platform):
    lake = Lake(platform)
    for i in range(2):
        lake.put(5, [lake._event(f"o{i}", "INSERT", 5)])
    wider = pa.Table.from_pylist([lake._event("o9", "INSERT", 5) | {"coupon": "X"}])
    for i in range(2):
        sink = pa.BufferOutputStream()
        pq.write_table(wider, sink)
        platform.bucket.put_object(
            f"sales/year=2026/month=05/day=06/z{i}.parquet", sink.getvalue().to_pybytes()
        )
    platform.bucket.put_object("sales/year=2026/month=05/day=06/bad.parquet", b"not parquet")
    result = compactor(platform).run(force=True)
    assert len(result.outputs) == 2 and result.sources == 4
    assert len(result.skipped) == 1 and "bad.parquet" in result.skipped[0]
    schemas = {pq.read_schema(platform.bucket.local_path(k)).names[-1] for k in result.outputs}
    assert schemas == {"attributes", "coupon"}  # the lake's last column, and the wider one's


STEPS = ["write", "write record", "commit", "committed", "delete source"]


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_any_step_leaves_the_old_or_the_new_objects(platform, lake, step):
    lake.put(0, [lake._event(f"big{i}", "INSERT", 0) for i in range(300)])  # two writes
    platform.crawl()
    assert_answers_are_the_raw_rows(platform, lake)
    failing = compactor(platform, grace_s=0)

    def fail(name):
        if name == step:
            raise OSError("disk full")

    failing._step = fail
    compaction._ROWS_PER_WRITE, saved = 100, compaction._ROWS_PER_WRITE
    try:
        with pytest.raises(OSError, match="disk full"):
            failing.run(force=True)
    finally:
        compaction._ROWS_PER_WRITE = saved
    assert not list(platform.bucket._staging.iterdir())  # no temporary file left
    assert len(platform.read_lake()) == len(lake.rows)
    assert_answers_are_the_raw_rows(platform, lake)
    result = compactor(platform, grace_s=0).run()  # the next run finishes or rolls back
    assert result.rolled_back == (step in ("commit",))
    if step in ("committed", "delete source"):
        assert result.deleted > 0
    assert len(platform.read_lake()) == len(lake.rows)
    assert_answers_are_the_raw_rows(platform, lake)
    compactor(platform, grace_s=0).run(force=True)
    assert len(data_keys(platform)) == 3
    assert_answers_are_the_raw_rows(platform, lake)


def test_an_unreadable_record_is_ignored(platform, lake):
    result = platform.compact(grace_s=60)
    output = result["outputs"][0]
    platform.bucket.put_object(record_key(output), b"{not json")
    compaction._read_record.cache_clear()
    objects, compactions = visible_objects(platform.bucket, platform.bucket.list_objects("sales/"))
    assert output not in compactions and output in {info.key for info in objects}
    assert compactor(platform, grace_s=0).run().deleted > 0  # the other records


KILLED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from helpers.local import compaction
    from helpers.local.s3 import Bucket

    bucket = Bucket(Path(sys.argv[1]), sys.argv[2])
    compaction._ROWS_PER_WRITE = 50
    compactor = compaction.Compactor(bucket, "sales/", Path(sys.argv[3]), grace_s=0)
    compactor._step = lambda name: (print(name, flush=True), time.sleep(0.001))
    print("ready", flush=True)
    compactor.run(force=True)
    print("done", flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_mid_compaction_leaves_the_old_or_the_new_objects(platform, lake):
    for day in range(3):
        for _ in range(40):
            lake.delivery(day, orders=4)
    platform.crawl()
    assert_answers_are_the_raw_rows(platform, lake)
    randomness = random.Random(15)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for _ in range(5):
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLED,
                str(platform.bucket.path.parent),
                platform.bucket.name,
                str(platform.compactor.lock_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdout.readline().strip() == "ready"
        for _ in range(randomness.randrange(1, 80)):  # killed after some step, mid-compaction
            assert process.stdout.readline().strip() != "done"
        process.send_signal(signal.SIGKILL)
        process.wait()
        # whatever the moment: every row once, no row twice, in any process
        assert len(platform.read_lake()) == len(lake.rows)
        assert_answers_are_the_raw_rows(platform, lake)
        lake.delivery(1)  # the stream goes on
        platform.crawl()
    platform.compact(grace_s=0)
    keys = list(platform.lake_objects().key)
    assert len(data_keys(platform)) == 3
    assert len(keys) == 6  # and one record for each, none left by a killed run
    assert_answers_are_the_raw_rows(platform, lake)


def test_the_scheduled_crawl_compacts_partitions_with_too_many_small_objects(platform):
    lake = small_partition(platform, 5)
    platform.compactor.max_small = 4
    time.sleep(0.01)
    platform._scheduled_crawl()
    assert len(visible_keys(platform)) == 1
    lake.delivery(5)  # the output and a new object: over a limit of one
    platform.compactor.max_small = 1
    time.sleep(0.01)
    platform._scheduled_crawl()
    assert len(visible_keys(platform)) == 1
    assert_answers_are_the_raw_rows(platform, lake)


def test_compact_refuses_a_negative_grace_and_compactor_a_limit_under_one(platform):
    with pytest.raises(ValueError, match="grace_s"):
        platform.compact(grace_s=-1)
    with pytest.raises(ValueError, match="max_small"):
        compactor(platform, max_small=0)


def test_compact_is_local_only():
    from helpers.platform import Platform

    other = types.SimpleNamespace(settings=helpers.Settings(backend="aws"))
    with pytest.raises(BackendError, match="Glue job or Athena CTAS"):
        Platform.compact(other)


def test_the_compact_command(platform, lake):
    from typer.testing import CliRunner

    from helpers.cli import app

    root = str(platform.settings.root)
    result = CliRunner().invoke(app, ["compact", "--root", root])
    assert result.exit_code == 0, result.output
    assert "in 3 partitions" in result.output
