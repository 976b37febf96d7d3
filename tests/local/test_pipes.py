"""The pipe from the table's change stream to Kinesis (helpers/local/pipes.py)."""

from __future__ import annotations

import json
import time

import pytest

from helpers.local.kinesis import Stream
from helpers.local.pipes import MAX_RETRY_ATTEMPTS, Pipe, PipeRunner

from .conftest import ACCOUNT, REGION, orders


def make_pipe(tmp_path, table, stream, batch_size=100, window=0.0) -> Pipe:
    return Pipe(
        tmp_path / "pipes.sqlite", "pipe", table, stream, batch_size, window, REGION, ACCOUNT
    )


def kinesis_records(stream: Stream) -> list:
    """Every Kinesis record, all shards, in (shard, seq) order."""
    return [r for s in stream.shards for r in stream.get_records(s.index, 0)]


def test_moves_records_unchanged_with_order_id_partition_key(tmp_path, table, stream):
    table.put_items(orders(*range(20)))
    table.put_items(orders(*range(5), quantity=5))
    table.delete_items(["o-00003", "o-00019"])
    pipe = make_pipe(tmp_path, table, stream)
    assert pipe.step() == 27
    assert pipe.step() == 0
    assert pipe.checkpoint() == table.latest_sequence() == 27

    source = {json.loads(text)["eventID"]: text for _, _, text, _ in table.read_stream(0, 100)}
    moved = kinesis_records(stream)
    assert len(moved) == 27
    for record in moved:
        assert record.data == source[json.loads(record.data)["eventID"]]  # byte for byte
        assert record.partition_key == json.loads(record.data)["dynamodb"]["Keys"]["order_id"]["S"]
    assert {json.loads(r.data)["eventID"] for r in moved} == set(source)

    # per key, the Kinesis shard holds the key's changes in stream order
    for key in ("o-00003", "o-00001", "o-00019"):
        shard = stream.shard_for(key)
        names = [
            json.loads(r.data)["eventName"]
            for r in stream.get_records(shard, 0)
            if r.partition_key == key
        ]
        expected = {
            "o-00003": ["INSERT", "MODIFY", "REMOVE"],
            "o-00001": ["INSERT", "MODIFY"],
            "o-00019": ["INSERT", "REMOVE"],
        }
        assert names == expected[key]
        sequences = [
            json.loads(r.data)["dynamodb"]["SequenceNumber"] for r in stream.get_records(shard, 0)
        ]
        assert sequences == sorted(sequences, key=int)


def test_honours_batch_size(tmp_path, table, stream):
    table.put_items(orders(*range(25)))
    pipe = make_pipe(tmp_path, table, stream, batch_size=10)
    assert pipe.step() == 10
    assert stream.count() == 10 and pipe.checkpoint() == 10
    assert pipe.step() == 10
    assert pipe.step() == 5  # window 0: a partial batch goes at once
    assert pipe.step() == 0
    assert stream.count() == 25 and pipe.checkpoint() == 25


def test_batch_size_outside_the_pipes_range_is_refused(tmp_path, table, stream):
    for size in (0, 10_001):
        with pytest.raises(ValueError, match="batch size"):
            make_pipe(tmp_path, table, stream, batch_size=size)


def test_batching_window_holds_a_partial_batch(tmp_path, table, stream):
    pipe = make_pipe(tmp_path, table, stream, batch_size=10, window=0.3)
    table.put_items(orders(*range(4)))
    started = time.monotonic()
    assert pipe.step() == 0
    assert pipe.step() == 0
    assert stream.count() == 0 and pipe.checkpoint() == 0
    while time.monotonic() - started < 0.3:
        time.sleep(0.02)
    assert pipe.step() == 4
    assert stream.count() == 4


def test_batching_window_does_not_hold_a_full_batch(tmp_path, table, stream):
    pipe = make_pipe(tmp_path, table, stream, batch_size=5, window=60)
    table.put_items(orders(*range(7)))
    assert pipe.step() == 5
    assert pipe.step() == 0  # the remaining 2 wait for the window
    assert stream.count() == 5


def test_request_flush_sends_a_partial_batch_at_once(tmp_path, table, stream):
    pipe = make_pipe(tmp_path, table, stream, batch_size=10, window=60)
    table.put_items(orders(*range(3)))
    assert pipe.step() == 0
    pipe.request_flush()
    assert pipe.step() == 3
    assert pipe.checkpoint() == 3 and stream.count() == 3


def test_request_flush_applies_to_one_batch_only(tmp_path, table, stream):
    pipe = make_pipe(tmp_path, table, stream, batch_size=10, window=60)
    table.put_items(orders(*range(3)))
    pipe.request_flush()
    assert pipe.step() == 3
    table.put_items(orders(*range(3, 6)))
    assert pipe.step() == 0  # a new partial batch waits for the window again
    assert stream.count() == 3


def test_checkpoint_persists_across_a_new_pipe(tmp_path, table, stream):
    table.put_items(orders(*range(12)))
    first = make_pipe(tmp_path, table, stream, batch_size=5)
    assert first.step() == 5
    first.close()
    second = make_pipe(tmp_path, table, stream, batch_size=5)
    assert second.checkpoint() == second.position == 5
    assert second.step() == 5
    assert second.step() == 2
    second.close()
    moved = sorted(
        json.loads(r.data)["dynamodb"]["SequenceNumber"] for r in kinesis_records(stream)
    )
    source = sorted(
        json.loads(t)["dynamodb"]["SequenceNumber"] for _, _, t, _ in table.read_stream(0, 100)
    )
    assert moved == source  # every record once


def test_crash_between_put_and_checkpoint_resends_the_batch(tmp_path, table, stream, monkeypatch):
    table.put_items(orders(*range(8)))
    pipe = make_pipe(tmp_path, table, stream, batch_size=5)
    assert pipe.step() == 5  # committed

    def crash():
        raise OSError("killed before the checkpoint")

    monkeypatch.setattr(pipe.db, "write", crash)
    with pytest.raises(OSError, match="killed"):
        pipe.step()
    assert stream.count() == 8  # the batch was put ...
    assert pipe.checkpoint() == 5  # ... but its checkpoint was not
    monkeypatch.undo()
    pipe.close()

    restarted = make_pipe(tmp_path, table, stream, batch_size=5)
    assert restarted.step() == 3
    assert restarted.checkpoint() == 8
    ids = [json.loads(r.data)["eventID"] for r in kinesis_records(stream)]
    source = [json.loads(t)["eventID"] for _, _, t, _ in table.read_stream(0, 100)]
    assert set(ids) == set(source)  # no loss
    assert sorted(ids.count(i) for i in source) == [1] * 5 + [2] * 3  # the batch, twice
    restarted.close()


def test_failed_put_does_not_advance(tmp_path, table, stream, monkeypatch):
    table.put_items(orders(*range(3)))
    pipe = make_pipe(tmp_path, table, stream)

    def full_disk(records):
        raise OSError("disk full")

    monkeypatch.setattr(stream, "put_records", full_disk)
    with pytest.raises(OSError):
        pipe.step()
    assert pipe.position == pipe.checkpoint() == 0
    monkeypatch.undo()
    assert pipe.step() == 3
    assert stream.count() == 3


def test_runner_steps_the_pipe_in_a_runtime_process_with_its_window(tmp_path, table, stream):
    table.put_items(orders(*range(7)))
    pipe = make_pipe(tmp_path, table, stream, batch_size=5, window=60)
    runner = PipeRunner(pipe, tmp_path / "logs")
    try:
        assert runner.step() == 5  # the full batch; the partial one waits for the window
        assert runner.step() == 0
        runner.request_flush()
        assert runner.step() == 2
        assert runner.step() == 0
        assert pipe.checkpoint() == 7 and stream.count() == 7
        assert pipe.position == 0  # this process's pipe never stepped: the runtime's did
    finally:
        runner.close()


def other_writer_put(table, key: str, number: int = 99) -> None:
    """A change written past the put door (another producer): DynamoDB takes a 2048-byte key."""
    item = json.loads(
        json.dumps({"order_id": {"S": key}, "quantity": {"N": str(number)}}, separators=(",", ":"))
    )
    table._write([(key, json.dumps(item, separators=(",", ":")), 30)])


def test_a_record_the_stream_refuses_goes_to_the_dead_letter_queue_and_the_pipe_goes_on(
    tmp_path, table, stream
):
    table.put_items(orders(*range(3)))
    other_writer_put(table, "k" * 300)  # Kinesis partition keys hold 256 characters
    table.put_items(orders(*range(3, 6)))
    pipe = make_pipe(tmp_path, table, stream)

    assert pipe.step() == 7
    assert pipe.checkpoint() == table.latest_sequence() == 7  # past the refused record
    moved = [
        json.loads(r.data)["dynamodb"]["Keys"]["order_id"]["S"] for r in kinesis_records(stream)
    ]
    assert sorted(moved) == [f"o-{n:05d}" for n in range(6)]  # every other record, once
    (letter,) = pipe.dead_letters()
    refused = json.loads(table.read_stream(3, 1)[0][2])
    info = letter["DDBStreamBatchInfo"]
    assert (
        info["startSequenceNumber"]
        == info["endSequenceNumber"]
        == refused["dynamodb"]["SequenceNumber"]
    )
    assert info["batchSize"] == 1 and info["streamArn"] == table.stream_arn
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["approximateInvokeCount"] == MAX_RETRY_ATTEMPTS + 1
    assert "256" in letter["responseContext"]["errorMessage"]
    pipe.close()
    assert make_pipe(tmp_path, table, stream).dead_letter_count() == 1  # durable


def test_an_update_whose_two_images_outgrow_a_kinesis_record_is_dead_lettered(
    tmp_path, table, stream
):
    """A 300 KB item of quotes is 600 KB of JSON: its INSERT fits in 1 MiB, an update with
    both images does not."""
    table.put_items(orders(1, product_name='"' * 300_000))
    table.put_items(orders(1, product_name='"' * 300_000, quantity=2))
    pipe = make_pipe(tmp_path, table, stream)

    assert pipe.step() == 2
    assert [json.loads(r.data)["eventName"] for r in kinesis_records(stream)] == ["INSERT"]
    assert "1 MiB" in pipe.dead_letters()[0]["responseContext"]["errorMessage"]


@pytest.mark.parametrize(
    ("failures", "dead"), [(MAX_RETRY_ATTEMPTS, 0), (MAX_RETRY_ATTEMPTS + 1, 1)]
)
def test_a_refused_record_is_retried_as_configured_before_its_dead_letter(
    tmp_path, table, stream, monkeypatch, failures, dead
):
    table.put_items(orders(1))
    pipe = make_pipe(tmp_path, table, stream)
    real_put, calls = stream.put_records, []

    def refuse_then_take(records):
        calls.append(len(records))
        if len(calls) <= failures:
            raise ValueError("refused for now")
        return real_put(records)

    monkeypatch.setattr(stream, "put_records", refuse_then_take)
    assert pipe.step() == 1
    assert pipe.dead_letter_count() == dead and stream.count() == 1 - dead
    assert len(calls) == min(failures + 1, MAX_RETRY_ATTEMPTS + 1)


def test_a_crash_before_the_dead_letter_is_written_resends_and_letters_once(
    tmp_path, table, stream, monkeypatch
):
    table.put_items(orders(1))
    other_writer_put(table, "k" * 257)
    pipe = make_pipe(tmp_path, table, stream)

    def crash():
        raise OSError("killed before the checkpoint")

    monkeypatch.setattr(pipe.db, "write", crash)
    with pytest.raises(OSError, match="killed"):
        pipe.step()
    assert pipe.dead_letter_count() == 0 and pipe.checkpoint() == 0
    monkeypatch.undo()
    pipe.close()

    restarted = make_pipe(tmp_path, table, stream)
    assert restarted.step() == 2
    assert restarted.dead_letter_count() == 1  # once, not once per attempt
    assert stream.count() == 2  # the good record, sent twice (at least once)
    restarted.close()
