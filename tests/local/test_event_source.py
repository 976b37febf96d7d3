"""The Lambda event source mapping on the local Kinesis stream (helpers/local/event_source.py)."""

from __future__ import annotations

import base64
import time

import pytest

from helpers.local.awslambda import FunctionError
from helpers.local.event_source import EventSourceMapping, MappingConfig
from helpers.local.kinesis import Stream

from .conftest import ACCOUNT, REGION

ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:realtime"


class Handler:
    """Records each batch's payloads; fails as told: raises while ``poison`` is in the batch
    (``mode="raise"``) or reports it (``mode="report"``), or returns ``response``."""

    def __init__(self, poison: bytes | None = None, mode: str = "raise", response=None):
        self.poison, self.mode, self.response = poison, mode, response
        self.batches: list[list[bytes]] = []
        self.events: list[dict] = []

    def __call__(self, event):
        self.events.append(event)
        payloads = [base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]]
        self.batches.append(payloads)
        if self.poison in payloads:
            if self.mode == "raise":
                raise FunctionError("ValueError", "poison")
            index = payloads.index(self.poison)
            failed = event["Records"][index]["kinesis"]["sequenceNumber"]
            return {"batchItemFailures": [{"itemIdentifier": failed}]}
        return self.response

    def processed(self) -> list[bytes]:
        """Payloads of the batches that succeeded (for ``raise``), in order."""
        return [p for batch in self.batches if self.poison not in batch for p in batch]


def put(stream: Stream, count: int, start: int = 0, key: str = "k") -> list[bytes]:
    payloads = [f"record-{number}".encode() for number in range(start, start + count)]
    stream.put_records([(key, payload) for payload in payloads])
    return payloads


def mapping(tmp_path, stream, handler, clock=time.time, **config) -> EventSourceMapping:
    settings = {"batching_window_s": 0.0, "starting_position": "TRIM_HORIZON", **config}
    return EventSourceMapping(
        tmp_path / "esm.sqlite",
        stream,
        ARN,
        handler,
        MappingConfig(**settings),
        REGION,
        ACCOUNT,
        clock=clock,
    )


def drain(esm: EventSourceMapping, steps: int = 200) -> None:
    for _ in range(steps):
        esm.step()


def test_event_is_kinesis_lambda_event_and_checkpoint_follows_success(tmp_path, stream):
    payloads = put(stream, 3)
    handler = Handler()
    esm = mapping(tmp_path, stream, handler)
    assert esm.step() == 3
    (event,) = handler.events
    shard = stream.shard_for("k")
    records = stream.get_records(shard, 0)
    for sent, record in zip(event["Records"], records, strict=True):
        assert set(sent) == {
            "kinesis",
            "eventSource",
            "eventVersion",
            "eventID",
            "eventName",
            "invokeIdentityArn",
            "awsRegion",
            "eventSourceARN",
        }
        assert sent["eventSource"] == "aws:kinesis"
        assert sent["eventVersion"] == "1.0"
        assert sent["eventName"] == "aws:kinesis:record"
        assert sent["eventID"] == f"{record.shard_id}:{record.sequence_number}"
        assert sent["eventSourceARN"] == stream.arn
        assert sent["awsRegion"] == REGION
        assert sent["invokeIdentityArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")
        assert set(sent["kinesis"]) == {
            "kinesisSchemaVersion",
            "partitionKey",
            "sequenceNumber",
            "data",
            "approximateArrivalTimestamp",
        }
        assert sent["kinesis"]["kinesisSchemaVersion"] == "1.0"
        assert sent["kinesis"]["partitionKey"] == "k"
        assert sent["kinesis"]["sequenceNumber"] == record.sequence_number
        assert sent["kinesis"]["approximateArrivalTimestamp"] == pytest.approx(
            record.approximate_arrival_timestamp, abs=1e-3
        )
    assert handler.batches == [payloads]
    assert esm.checkpoints()[shard] == 3
    assert esm.step() == 0  # nothing new: no invocation
    assert len(handler.events) == 1
    assert esm.counters()["invocations"] == 1 and esm.counters()["records"] == 3


def test_starting_position_latest_skips_what_was_there(tmp_path, stream):
    put(stream, 5)
    handler = Handler()
    esm = mapping(tmp_path, stream, handler, starting_position="LATEST")
    assert esm.step() == 0
    new = put(stream, 2, start=5)
    esm.step()
    assert handler.processed() == new


def test_batch_size_limits_each_invocation(tmp_path, stream):
    put(stream, 250)
    handler = Handler()
    esm = mapping(tmp_path, stream, handler, batch_size=100)
    drain(esm, 5)
    assert [len(batch) for batch in handler.batches] == [100, 100, 50]


def test_batching_window_waits_for_a_full_batch_until_it_passes(tmp_path, stream):
    put(stream, 5)
    handler = Handler()
    esm = mapping(tmp_path, stream, handler, batch_size=10, batching_window_s=0.3)
    assert esm.step() == 0  # 5 < 10 and the window has not passed
    assert handler.batches == []
    time.sleep(0.35)
    assert esm.step() == 5
    put(stream, 3, start=5)
    assert esm.step() == 0
    esm.request_flush()  # flush: no waiting
    assert esm.step() == 3
    put(stream, 10, start=8)
    assert esm.step() == 10  # a full batch goes at once


@pytest.mark.parametrize(
    "response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}]
)
def test_empty_or_null_failures_are_a_success(tmp_path, stream, response):
    put(stream, 4)
    esm = mapping(tmp_path, stream, Handler(response=response))
    assert esm.step() == 4


def test_report_batch_item_failures_checkpoints_before_the_failed_record(tmp_path, stream):
    payloads = put(stream, 10)
    handler = Handler(poison=payloads[6], mode="report")
    esm = mapping(tmp_path, stream, handler, batch_size=10, maximum_retry_attempts=1)
    assert esm.step() == 6  # records 0..5 are done
    shard = stream.shard_for("k")
    assert esm.checkpoints()[shard] == 6
    # the retry starts at the failed record; it fails at the head, so the batch is bisected
    # down to the record alone, which is retried once more and then discarded
    drain(esm, 20)
    assert esm.checkpoints()[shard] == 10
    (letter,) = esm.dead_letters()
    info = letter["KinesisBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert base64.b64decode(handler.events[1]["Records"][0]["kinesis"]["data"]) == payloads[6]
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["approximateInvokeCount"] == 2
    assert "functionError" not in letter["responseContext"]
    # every other record was processed, after the failure too
    done = {p for batch in handler.batches for p in batch} - {payloads[6]}
    assert done == set(payloads) - {payloads[6]}


@pytest.mark.parametrize(
    "failures",
    [
        [{"itemIdentifier": ""}],
        [{"itemIdentifier": None}],
        [{"itemId": "x"}],
        [{"itemIdentifier": "49000000999"}],  # not in the batch
        "not a list",
    ],
)
def test_invalid_item_identifier_fails_the_whole_batch(tmp_path, stream, failures):
    put(stream, 3)
    esm = mapping(
        tmp_path,
        stream,
        Handler(response={"batchItemFailures": failures}),
        bisect_on_function_error=False,
        maximum_retry_attempts=0,
    )
    assert esm.step() == 3  # failed once, no retry allowed: discarded
    (letter,) = esm.dead_letters()
    assert letter["KinesisBatchInfo"]["batchSize"] == 3


def test_bisect_isolates_a_poison_record_and_retries_it_then_dead_letters(tmp_path, stream):
    payloads = put(stream, 16)
    handler = Handler(poison=payloads[11])
    esm = mapping(tmp_path, stream, handler, batch_size=16, maximum_retry_attempts=3)
    drain(esm, 40)
    assert esm.checkpoints()[stream.shard_for("k")] == 16
    assert handler.processed() == payloads[:11] + payloads[12:]  # in order, each once
    single = [batch for batch in handler.batches if batch == [payloads[11]]]
    assert len(single) == 4  # the first try of the lone record and its 3 retries
    (letter,) = esm.dead_letters()
    assert letter["requestContext"]["functionArn"] == ARN
    assert letter["requestContext"]["approximateInvokeCount"] == 4
    assert letter["responseContext"]["functionError"] == "Unhandled"
    assert letter["version"] == "1.0"
    info = letter["KinesisBatchInfo"]
    assert info["shardId"] == "shardId-%012d" % stream.shard_for("k")
    assert info["streamArn"] == stream.arn and info["batchSize"] == 1
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    counters = esm.counters()
    assert counters["discarded"] == 1 and counters["records"] == 15
    assert counters["invocations"] == len(handler.batches)
    assert counters["function_errors"] == sum(payloads[11] in b for b in handler.batches)


def test_without_bisect_the_whole_batch_is_retried_then_discarded(tmp_path, stream):
    payloads = put(stream, 5)
    handler = Handler(poison=payloads[2])
    esm = mapping(tmp_path, stream, handler, bisect_on_function_error=False)
    drain(esm, 10)
    assert handler.batches == [payloads] * 4  # first try and 3 retries
    (letter,) = esm.dead_letters()
    assert letter["KinesisBatchInfo"]["batchSize"] == 5
    assert esm.checkpoints()[stream.shard_for("k")] == 5


def test_infinite_retries_never_discard(tmp_path, stream):
    payloads = put(stream, 1)
    handler = Handler(poison=payloads[0])
    esm = mapping(tmp_path, stream, handler, maximum_retry_attempts=-1)
    drain(esm, 30)
    assert len(handler.batches) == 30 and esm.dead_letter_count() == 0
    assert esm.checkpoints()[stream.shard_for("k")] == 0


def test_records_past_the_maximum_age_are_discarded_unprocessed(tmp_path, stream):
    put(stream, 3)
    arrival = stream.get_records(stream.shard_for("k"), 0)[0].approximate_arrival_timestamp
    now = [arrival + 3599]
    handler = Handler()
    esm = mapping(tmp_path, stream, handler, maximum_record_age_s=3600, clock=lambda: now[0])
    assert esm.step() == 3  # just under the age: processed
    put(stream, 2, start=3)
    now[0] = stream.get_records(stream.shard_for("k"), 3)[0].approximate_arrival_timestamp + 3601
    assert esm.step() == 2
    assert len(handler.batches) == 1
    (letter,) = esm.dead_letters()
    assert letter["requestContext"]["condition"] == "RecordAgeExceeded"
    assert letter["KinesisBatchInfo"]["batchSize"] == 2


def test_checkpoints_and_dead_letters_survive_a_reopen(tmp_path, stream):
    payloads = put(stream, 6)
    esm = mapping(tmp_path, stream, Handler(poison=payloads[5]), maximum_retry_attempts=0)
    drain(esm, 10)
    esm.close()
    handler = Handler()
    reopened = mapping(tmp_path, stream, handler)
    assert reopened.checkpoints()[stream.shard_for("k")] == 6
    assert reopened.dead_letter_count() == 1
    new = put(stream, 2, start=6)
    reopened.step()
    assert handler.processed() == new  # nothing delivered twice


@pytest.mark.parametrize(
    ("setting", "good", "bad"),
    [
        ("batch_size", [1, 10_000], [0, 10_001]),
        ("batching_window_s", [0, 300], [-0.1, 300.1]),
        ("maximum_retry_attempts", [-1, 0, 10_000], [-2, 10_001]),
        ("maximum_record_age_s", [-1, 60, 604_800], [59, 604_801, 0]),
        ("starting_position", ["LATEST", "TRIM_HORIZON"], ["AT_TIMESTAMP"]),
    ],
)
def test_settings_are_checked_at_both_sides_of_their_limits(setting, good, bad):
    for value in good:
        assert getattr(MappingConfig(**{setting: value}), setting) == value
    for value in bad:
        with pytest.raises(ValueError, match="Lambda's limits"):
            MappingConfig(**{setting: value})
