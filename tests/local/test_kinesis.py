"""The Kinesis data stream (helpers/local/kinesis.py)."""

from __future__ import annotations

import hashlib
import itertools
import re
import time

import pytest

from helpers.local.kinesis import Stream, even_shards

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
    log = path / f"shardId-{shard:012d}.log"
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
    index = path / f"shardId-{shard:012d}.idx"
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
