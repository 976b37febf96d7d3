"""The Kinesis data stream (helpers/local/kinesis.py)."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import re
import time

import pytest

from helpers.exceptions import DiskFullError, StateFileError, TrimmedDataAccessError
from helpers.local.kinesis import TRIMMED_POSITION, Stream, even_shards

from .conftest import ACCOUNT, REGION

TOP = 2**128 - 1


def md5_int(key: str) -> int:
    return int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_even_shards_cover_the_hash_space_contiguously(count):
    shards = even_shards(count)
    assert [s.index for s in shards] == list(range(count))
    assert [s.shard_id for s in shards] == [f"shardId-{i:012d}" for i in range(count)]
    assert shards[0].starting_hash_key == 0
    assert shards[-1].ending_hash_key == TOP
    for before, after in itertools.pairwise(shards):
        assert after.starting_hash_key == before.ending_hash_key + 1
    for i, shard in enumerate(shards):
        assert shard.starting_hash_key == i * 2**128 // count
        assert shard.starting_hash_key <= shard.ending_hash_key
    sizes = [s.ending_hash_key - s.starting_hash_key + 1 for s in shards]
    assert sum(sizes) == 2**128
    assert max(sizes) - min(sizes) <= 1


def test_three_shards_match_the_aws_cli_example():
    ranges = [(s.starting_hash_key, s.ending_hash_key) for s in even_shards(3)]
    assert ranges == [
        (0, 113427455640312821154458202477256070484),
        (113427455640312821154458202477256070485, 226854911280625642308916404954512140969),
        (226854911280625642308916404954512140970, 340282366920938463463374607431768211455),
    ]


def test_shard_for_follows_md5_of_the_partition_key(tmp_path):
    stream = Stream(tmp_path / "kinesis", "s", 5, REGION, ACCOUNT)
    keys = [f"o-{i:05d}" for i in range(500)] + ["", "ünïcode-ключ", "x" * 256]
    seen = set()
    for key in keys:
        digest = md5_int(key)
        expected = [
            s.index for s in stream.shards if s.starting_hash_key <= digest <= s.ending_hash_key
        ]
        assert len(expected) == 1
        assert stream.shard_for(key) == expected[0], key
        seen.add(expected[0])
    assert seen == set(range(5))
    # known digests: md5("") = d41d8cd9..., in the upper part of the space
    assert stream.shard_for("") == 4
    stream.close()


def test_put_records_places_records_in_their_shards(stream):
    keys = [f"k-{i}" for i in range(40)]
    placed = stream.put_records([(key, key.encode()) for key in keys])
    assert len(placed) == 40
    for key, (shard_id, _) in zip(keys, placed, strict=True):
        assert shard_id == stream.shards[stream.shard_for(key)].shard_id
    found = {}
    for shard in stream.shards:
        for record in stream.get_records(shard.index, 0):
            assert record.shard_id == shard.shard_id
            assert stream.shard_for(record.partition_key) == shard.index
            assert record.data == record.partition_key.encode()
            found[record.partition_key] = (record.shard_id, record.sequence_number)
    assert found == dict(zip(keys, placed, strict=True))
    assert stream.count() == 40


def test_sequence_numbers_increase_per_shard_and_sort_as_strings(stream):
    for round_ in range(3):
        stream.put_records([(f"k-{i}", f"{round_}".encode()) for i in range(30)])
    for shard in stream.shards:
        records = stream.get_records(shard.index, 0)
        numbers = [r.sequence_number for r in records]
        assert all(re.fullmatch(r"[1-9]\d{55}", n) for n in numbers)
        assert numbers == sorted(numbers) == sorted(numbers, key=int)
        assert len(set(numbers)) == len(numbers)
        assert all(int(a) < int(b) for a, b in itertools.pairwise(numbers))
        positions = [r.seq for r in records]
        assert positions == sorted(set(positions))
    assert stream.latest_sequences() == {
        s.index: len(stream.get_records(s.index, 0)) for s in stream.shards
    }


def test_records_of_one_partition_key_keep_their_order(stream):
    for batch in range(5):
        stream.put_records(
            [(f"key-{k}", f"{k}:{batch}:{i}".encode()) for i in range(3) for k in range(4)]
        )
    for k in range(4):
        shard = stream.shard_for(f"key-{k}")
        data = [
            r.data.decode() for r in stream.get_records(shard, 0) if r.partition_key == f"key-{k}"
        ]
        assert data == [f"{k}:{b}:{i}" for b in range(5) for i in range(3)]


def test_get_records_after_a_position_and_limit(stream):
    stream.put_records([("same", str(i).encode()) for i in range(10)])
    shard = stream.shard_for("same")
    everything = stream.get_records(shard, 0)
    assert [r.data for r in everything] == [str(i).encode() for i in range(10)]
    after = stream.get_records(shard, everything[3].seq, limit=4)
    assert [r.data for r in after] == [b"4", b"5", b"6", b"7"]
    assert after[0].sequence_number == everything[4].sequence_number
    assert stream.get_records(shard, everything[-1].seq) == []
    other = 1 - shard
    assert stream.get_records(other, 0) == []
    assert stream.latest_sequences()[other] == 0


def test_arrival_timestamps_and_binary_data(stream):

    before = time.time()
    payload = bytes(range(256))
    stream.put_records([("bin", payload)])
    (record,) = stream.get_records(stream.shard_for("bin"), 0)
    assert record.data == payload
    assert before <= record.approximate_arrival_timestamp <= time.time()


def test_state_survives_reopen_and_other_shard_count_is_refused(tmp_path):
    path = tmp_path / "kinesis"
    first = Stream(path, "changes", 2, REGION, ACCOUNT)
    first.put_records([("a", b"1")])
    first.close()
    with pytest.raises(ValueError, match=r"already exists with 2 shards, not 4"):
        Stream(path, "changes", 4, REGION, ACCOUNT)
    again = Stream(path, "changes", 2, REGION, ACCOUNT)
    again.put_records([("a", b"2")])
    shard = again.shard_for("a")
    assert [r.data for r in again.get_records(shard, 0)] == [b"1", b"2"]
    assert again.arn == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/changes"
    again.close()


@pytest.mark.parametrize(
    "record, message",
    [
        (("", b"x"), "partition key"),
        (("k" * 257, b"x"), "partition key"),
        (("k", b"x" * (1024 * 1024)), "1 MiB"),
    ],
)
def test_invalid_records_are_refused_and_nothing_is_written(stream, record, message):
    with pytest.raises(ValueError, match=message):
        stream.put_records([("good", b"ok"), record])
    assert stream.count() == 0


# --- the shard logs after a crash --------------------------------------------------------


def _put_then_close(path, rounds: int) -> tuple[Stream, int]:
    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    for round_ in range(rounds):
        stream.put_records([(f"k-{i}", f"{round_}:{i}".encode() * 20) for i in range(10)])
    shard = stream.shard_for("k-0")
    stream.close()
    return shard


def _data(path, shard: int) -> list[bytes]:
    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    try:
        return [record.data for record in stream.get_records(shard, 0)]
    finally:
        stream.close()


@pytest.mark.parametrize(
    "tail", [b"\x00" * 5, b"\x00" * 64, b"\x40\x00\x00\x00garbage", b"\xff" * 200]
)
def test_a_torn_frame_at_the_end_of_a_log_is_cut_off(tmp_path, tail):
    path = tmp_path / "kinesis"
    shard = _put_then_close(path, 3)
    before = _data(path, shard)
    log = path / f"shardId-{shard:012d}-{1:020d}.log"
    size = log.stat().st_size
    with open(log, "ab") as handle:  # a put killed while writing its frames
        handle.write(tail)
    assert _data(path, shard) == before
    assert log.stat().st_size == size
    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    stream.put_records([("k-0", b"after")])
    assert [r.data for r in stream.get_records(shard, 0)] == [*before, b"after"]
    assert [r.seq for r in stream.get_records(shard, 0)] == list(range(1, len(before) + 2))
    stream.close()


@pytest.mark.parametrize("damage", ["lost", "zeros", "torn entry", "zeros inside"])
def test_durable_frames_missing_from_the_index_are_indexed_again(tmp_path, damage):
    """The index is not synced: after a machine crash its tail may be gone or zeros."""
    path = tmp_path / "kinesis"
    shard = _put_then_close(path, 4)
    before = _data(path, shard)
    index = path / f"shardId-{shard:012d}-{1:020d}.idx"
    entries = index.read_bytes()
    kept = entries[: len(entries) // 2]
    index.write_bytes(
        {
            "lost": kept,
            "zeros": kept + bytes(len(entries) - len(kept)),
            "torn entry": kept + b"\x01\x02\x03",
            # unsynced pages reach the disk in any order: a hole before entries that did
            "zeros inside": entries[:8] + bytes(16) + entries[24:],
        }[damage]
    )
    assert _data(path, shard) == before
    assert index.read_bytes() == entries


def test_a_second_handle_sees_what_the_first_put(tmp_path):
    writer = Stream(tmp_path / "kinesis", "changes", 2, REGION, ACCOUNT)
    reader = Stream(tmp_path / "kinesis", "changes", 2, REGION, ACCOUNT)
    writer.put_records([("a", b"1"), ("b", b"2")])
    assert reader.count() == 2
    assert reader.latest_sequences() == writer.latest_sequences()
    shard = writer.shard_for("a")
    assert [r.data for r in reader.get_records(shard, 0) if r.partition_key == "a"] == [b"1"]
    reader.put_records([("a", b"3")])  # positions continue across handles
    assert [r.seq for r in writer.get_records(shard, 0)] == list(
        range(1, writer.latest_sequences()[shard] + 1)
    )
    writer.close()
    reader.close()


# --- positions are never given out twice -------------------------------------------------


def _segment(path, shard: int, first: int, suffix: str):
    return path / f"shardId-{shard:012d}-{first:020d}{suffix}"


def test_a_log_that_lost_its_tail_goes_on_above_its_high_water_mark(tmp_path):
    """A shard log cut short (a tail lost, or the log restored from an older copy) must not
    number new records under positions it gave out: a consumer checkpointed there would skip
    them."""
    path = tmp_path / "kinesis"
    shard = _put_then_close(path, 4)  # 4 rounds: positions 1..n of the shard
    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    top = stream.latest_sequences()[shard]
    kept = stream.get_records(shard, 0)[: top // 2]
    stream.close()
    log, index = _segment(path, shard, 1, ".log"), _segment(path, shard, 1, ".idx")
    ends = index.read_bytes()
    cut = int.from_bytes(ends[(len(kept) - 1) * 8 : len(kept) * 8], "little")
    with open(log, "r+b") as handle:  # the tail is gone, whole frames at a time
        handle.truncate(cut)
    index.write_bytes(ends[: len(kept) * 8])

    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    assert [r.data for r in stream.get_records(shard, 0)] == [r.data for r in kept]
    ((_, number),) = stream.put_records([("k-0", b"new")])
    (new,) = stream.get_records(shard, top)  # a consumer that had read up to the old top
    assert new.data == b"new" and new.seq == top + 1 and new.sequence_number == number
    assert _segment(path, shard, top + 1, ".log").exists()  # a segment of its own
    # every position is still found, across the gap
    assert [r.seq for r in stream.get_records(shard, 0)] == [*range(1, len(kept) + 1), top + 1]
    assert [r.seq for r in stream.get_records(shard, len(kept) - 1)] == [len(kept), top + 1]
    stream.close()
    again = Stream(path, "changes", 2, REGION, ACCOUNT)  # and after reopening
    again.put_records([("k-0", b"newer")])
    assert [r.seq for r in again.get_records(shard, top)] == [top + 1, top + 2]
    again.close()


def test_an_unchanged_log_continues_without_a_gap(tmp_path):
    path = tmp_path / "kinesis"
    shard = _put_then_close(path, 2)
    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    top = stream.latest_sequences()[shard]
    stream.put_records([("k-0", b"x")])
    assert stream.latest_sequences()[shard] == top + 1
    assert not _segment(path, shard, top + 1, ".log").exists()
    stream.close()


def test_continue_above_moves_new_positions_above_a_consumer_checkpoint(stream):
    shard = stream.shard_for("a")
    stream.put_records([("a", b"1")])
    assert not stream.continue_above(shard, 1)  # at the end: nothing to do
    assert stream.continue_above(shard, 50)
    assert not stream.continue_above(shard, 50)
    stream.put_records([("a", b"2")])
    assert [(r.seq, r.data) for r in stream.get_records(shard, 0)] == [(1, b"1"), (51, b"2")]
    assert stream.get_records(shard, 50)[0].data == b"2"
    assert stream.latest_sequences()[shard] == 51


@pytest.mark.parametrize(
    "text", ["", "{", '{"shard_count": "two"}', "[]", '{"shards": 2}', '{"shard_count": 0}']
)
def test_a_damaged_meta_file_is_named_with_its_fix(tmp_path, text):
    path = tmp_path / "kinesis"
    Stream(path, "changes", 2, REGION, ACCOUNT).close()
    (path / "meta.json").write_text(text)
    with pytest.raises(StateFileError) as caught:
        Stream(path, "changes", 2, REGION, ACCOUNT)
    message = str(caught.value)
    assert str(path / "meta.json") in message
    assert '{"shard_count": 2}' in message and "restore it from a copy" in message


def test_a_full_disk_is_named_and_loses_nothing_accepted(tmp_path, monkeypatch):
    stream = Stream(tmp_path / "kinesis", "changes", 2, REGION, ACCOUNT)
    stream.put_records([("a", b"kept")])
    shard = stream.shard_for("a")
    real = os.pwrite

    def full(descriptor, data, offset):
        if len(data) > 8:  # the frames; a torn half of them reaches the disk
            real(descriptor, bytes(data)[: len(data) // 2], offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(descriptor, data, offset)

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(DiskFullError, match=r"the disk mounted at /.* is full .*stream appended"):
        stream.put_records([("a", b"refused" * 10)])
    monkeypatch.setattr(os, "pwrite", real)
    assert [r.data for r in stream.get_records(shard, 0)] == [b"kept"]
    stream.put_records([("a", b"after")])  # the torn frames are cut off
    assert [(r.seq, r.data) for r in stream.get_records(shard, 0)] == [(1, b"kept"), (2, b"after")]
    stream.close()


# --- retention ---------------------------------------------------------------------------

DAY = 24 * 3600


def _filled(tmp_path, monkeypatch, rounds: int, **options) -> Stream:
    """A stream of one shard whose segments hold about one round each."""
    monkeypatch.setattr("helpers.local.kinesis.SEGMENT_BYTES", 500)
    stream = Stream(tmp_path / "kinesis", "changes", 1, REGION, ACCOUNT, **options)
    for round_ in range(rounds):
        stream.put_records([(f"k-{i}", f"{round_}:{i}".encode() * 30) for i in range(5)])
    return stream


def test_retention_trims_records_older_than_the_period_and_not_younger(tmp_path, monkeypatch):
    stream = _filled(tmp_path, monkeypatch, 3)
    records = stream.get_records(0, 0)
    newest = records[-1].approximate_arrival_timestamp
    everything = {0: 15}
    # the newest record 1 s younger than 24 h: everything is kept
    assert stream.trim(everything, now=newest + DAY - 1) == {"records": 0, "bytes": 0}
    assert stream.get_records(0, 0) == records
    # 1 s older: every segment goes, and positions go on where they were
    removed = stream.trim(everything, now=newest + DAY + 1)
    assert removed["records"] == 15 and removed["bytes"] > 15 * 90
    assert stream.get_records(0, 0) == []  # from the trim horizon: nothing left
    assert stream.count() == 0 and stream.trim_horizon(0) == 15
    assert stream.latest_sequences() == {0: 15}
    with pytest.raises(TrimmedDataAccessError, match="TrimmedPosition: position 3") as error:
        stream.get_records(0, 3)
    assert error.value.code == TRIMMED_POSITION and "after 0" in str(error.value)
    with pytest.raises(TrimmedDataAccessError):  # the last trimmed position's reader too
        stream.get_records(0, 14)
    assert stream.get_records(0, 15) == []  # one past the last trimmed: reads on
    stream.put_records([("k-0", b"later")])
    assert [(r.seq, r.data) for r in stream.get_records(0, 15)] == [(16, b"later")]
    assert [r.seq for r in stream.get_records(0, 0)] == [16]
    stream.close()


def test_retention_never_trims_what_a_consumer_has_not_read(tmp_path, monkeypatch):
    stream = _filled(tmp_path, monkeypatch, 4)
    segments = sorted(p.name for p in (tmp_path / "kinesis").glob("*.log"))
    assert len(segments) == 4  # positions 1, 6, 11, 16
    later = time.time() + 2 * DAY
    # a consumer at 10 (the end of the second segment) lets two segments go, not the third
    assert stream.trim({0: 10}, now=later)["records"] == 10
    assert [r.seq for r in stream.get_records(0, 0)] == list(range(11, 21))
    assert stream.get_records(0, 10)[0].seq == 11  # the consumer reads on
    with pytest.raises(TrimmedDataAccessError):
        stream.get_records(0, 9)
    # one record short of the third segment's end: it stays
    assert stream.trim({0: 14}, now=later)["records"] == 0
    assert stream.trim({0: 15}, now=later)["records"] == 5
    # no checkpoint at all: nothing goes
    assert stream.trim({}, now=later)["records"] == 0
    assert stream.count() == 5
    stream.close()


def test_a_second_handle_reads_on_after_another_trimmed_and_rolled(tmp_path, monkeypatch):
    writer = _filled(tmp_path, monkeypatch, 2)
    reader = Stream(tmp_path / "kinesis", "changes", 1, REGION, ACCOUNT)
    assert len(reader.get_records(0, 0)) == 10
    writer.trim({0: 10}, now=time.time() + 2 * DAY)
    writer.put_records([("k-1", b"x" * 2000), ("k-2", b"y")])
    assert [r.seq for r in reader.get_records(0, 10)] == [11, 12]
    with pytest.raises(TrimmedDataAccessError):
        reader.get_records(0, 4)
    assert reader.latest_sequences() == {0: 12} and reader.count() == 2
    writer.close()
    reader.close()


def test_a_trim_killed_between_its_two_unlinks_is_finished_on_open(tmp_path, monkeypatch):
    stream = _filled(tmp_path, monkeypatch, 3)
    stream.close()
    path = tmp_path / "kinesis"
    _segment(path, 0, 1, ".idx").unlink()  # the index went first; the log is left
    stream = Stream(path, "changes", 1, REGION, ACCOUNT)
    assert not _segment(path, 0, 1, ".log").exists()
    assert [r.seq for r in stream.get_records(0, 0)] == list(range(6, 16))
    stream.close()


@pytest.mark.parametrize("first", [11, 8])
def test_a_new_segment_killed_before_its_index_is_made_is_removed_on_open(
    tmp_path, monkeypatch, first
):
    """A roll killed between its two files; another writer may have put records past the
    orphan's first position meanwhile (8): the orphan must not hide them."""
    stream = _filled(tmp_path, monkeypatch, 2)
    stream.close()
    path = tmp_path / "kinesis"
    _segment(path, 0, first, ".log").touch()
    stream = Stream(path, "changes", 1, REGION, ACCOUNT)
    assert not _segment(path, 0, first, ".log").exists()
    assert [r.seq for r in stream.get_records(0, 0)] == list(range(1, 11))
    stream.put_records([("k-0", b"z")])
    assert [r.seq for r in stream.get_records(0, 7)] == [8, 9, 10, 11]
    stream.close()


@pytest.mark.parametrize("hours", [23, 8761])
def test_retention_outside_kinesis_limits_is_refused(tmp_path, hours):
    with pytest.raises(ValueError, match=r"outside Kinesis's 24\.\.8760"):
        Stream(tmp_path / "kinesis", "changes", 1, REGION, ACCOUNT, retention_hours=hours)


@pytest.mark.parametrize("hours", [24, 8760])
def test_retention_at_kinesis_limits_is_taken(tmp_path, hours):
    Stream(tmp_path / "kinesis", "changes", 1, REGION, ACCOUNT, retention_hours=hours).close()


def test_a_segment_rolls_after_an_hour_of_records(tmp_path, monkeypatch):
    stream = Stream(tmp_path / "kinesis", "changes", 1, REGION, ACCOUNT)
    started = time.time()
    stream.put_records([("a", b"1")])
    monkeypatch.setattr(time, "time", lambda: started + 3599)
    stream.put_records([("a", b"2")])
    assert len(list((tmp_path / "kinesis").glob("*.log"))) == 1
    monkeypatch.setattr(time, "time", lambda: started + 3601)
    stream.put_records([("a", b"3")])
    assert len(list((tmp_path / "kinesis").glob("*.log"))) == 2
    assert [r.data for r in stream.get_records(0, 0)] == [b"1", b"2", b"3"]
    stream.close()


def test_a_shard_log_of_one_file_pair_from_before_segments_is_read_on(tmp_path):
    path = tmp_path / "kinesis"
    shard = _put_then_close(path, 2)
    before = _data(path, shard)
    for suffix in (".log", ".idx"):  # the layout of earlier versions
        _segment(path, shard, 1, suffix).rename(path / f"shardId-{shard:012d}{suffix}")
    (path / "high-water").unlink()
    assert _data(path, shard) == before
    stream = Stream(path, "changes", 2, REGION, ACCOUNT)
    stream.put_records([("k-0", b"next")])
    assert [r.seq for r in stream.get_records(shard, 0)] == list(range(1, len(before) + 2))
    assert not (path / f"shardId-{shard:012d}.log").exists()
    stream.close()
