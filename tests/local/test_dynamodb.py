"""The orders table and its change stream (helpers/local/dynamodb.py)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time

import pytest

from helpers.exceptions import (
    InvalidOrderError,
    OrderNotFoundError,
    StateFileError,
    TrimmedDataAccessError,
)
from helpers.local.dynamodb import CHECKPOINT_PAGES, FREE_SHARE, Table
from helpers.schema import items_json, validated_table

from .conftest import ACCOUNT, REGION, order, orders, stream_records

RECORD_KEYS = [
    "eventID",
    "eventName",
    "eventVersion",
    "eventSource",
    "awsRegion",
    "dynamodb",
    "eventSourceARN",
]
ARN = re.compile(
    rf"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders/stream/"
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}"
)


def item_of(number: int, **changes) -> dict:
    """The AttributeValue item that put_items stores for ``order(number)``."""
    texts, _ = items_json(orders(number, **changes))
    return json.loads(texts[0])


def check_shape(record: dict, name: str, before: float, after: float) -> None:
    assert list(record) == RECORD_KEYS
    assert re.fullmatch(r"[0-9a-f]{32}", record["eventID"])
    assert record["eventName"] == name
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == REGION
    assert ARN.fullmatch(record["eventSourceARN"]), record["eventSourceARN"]
    change = record["dynamodb"]
    images = {"INSERT": ["NewImage"], "MODIFY": ["NewImage", "OldImage"], "REMOVE": ["OldImage"]}
    assert set(change) == {
        "ApproximateCreationDateTime",
        "Keys",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
        *images[name],
    }
    created = change["ApproximateCreationDateTime"]
    assert type(created) is int
    assert int(before) <= created <= after
    assert re.fullmatch(r"[1-9]\d{20,39}", change["SequenceNumber"])
    assert type(change["SizeBytes"]) is int and change["SizeBytes"] > 0
    assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    key = change["Keys"]["order_id"]["S"]
    assert change["Keys"] == {"order_id": {"S": key}}
    for image in images[name]:
        assert change[image]["order_id"] == {"S": key}


def test_insert_modify_remove_records_have_the_aws_shape(table):
    before = time.time()
    table.put_items(orders(1))
    table.put_items(orders(1, quantity=4, channel="store"))
    assert table.delete_items(["o-00001"]) == 1
    after = time.time()

    insert, modify, remove = stream_records(table)
    check_shape(insert, "INSERT", before, after)
    check_shape(modify, "MODIFY", before, after)
    check_shape(remove, "REMOVE", before, after)

    first, second = item_of(1), item_of(1, quantity=4, channel="store")
    assert insert["dynamodb"]["NewImage"] == first
    assert modify["dynamodb"]["OldImage"] == first
    assert modify["dynamodb"]["NewImage"] == second
    assert second["quantity"] == {"N": "4"} and second["channel"] == {"S": "store"}
    assert remove["dynamodb"]["OldImage"] == second
    # a MODIFY carries both images, so it is bigger than the INSERT of the same item
    assert modify["dynamodb"]["SizeBytes"] > insert["dynamodb"]["SizeBytes"]

    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in (insert, modify, remove)]
    assert sequences == sorted(set(sequences))
    assert len({r["eventID"] for r in (insert, modify, remove)}) == 3
    assert table.get_item("o-00001") is None
    assert table.count() == 0


def test_stored_item_is_attribute_value_json(table):
    table.put_items(orders(3))
    item = table.get_item("o-00003")
    assert item == {
        "order_id": {"S": "o-00003"},
        "order_ts": {"S": "2026-01-04T10:03:00.250Z"},
        "customer_id": {"S": "c-3"},
        "product_id": {"S": "p-0"},
        "product_name": {"S": 'Teal "Desk" Lamp ø'},
        "category": {"S": "home"},
        "channel": {"S": "web"},
        "quantity": {"N": "4"},
        "unit_price": {"N": "12.5"},
    }
    assert table.scan() == [item]


def test_put_of_existing_key_is_modify_with_old_image(table):
    table.put_items(orders(1, 2))
    table.put_items(orders(2, unit_price=99.0))
    records = stream_records(table)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["order_id"]["S"]) for r in records] == [
        ("INSERT", "o-00001"),
        ("INSERT", "o-00002"),
        ("MODIFY", "o-00002"),
    ]
    assert records[2]["dynamodb"]["OldImage"]["unit_price"] == {"N": "11.5"}
    assert records[2]["dynamodb"]["NewImage"]["unit_price"] == {"N": "99"}
    assert table.count() == 2


def test_same_key_twice_in_one_put_is_insert_then_modify(table):
    first, second = orders(5).to_pylist()[0], orders(5, quantity=3).to_pylist()[0]
    table.put_items(validated_table([first, second]))
    insert, modify = stream_records(table)
    assert (insert["eventName"], modify["eventName"]) == ("INSERT", "MODIFY")
    assert modify["dynamodb"]["OldImage"] == insert["dynamodb"]["NewImage"]
    assert modify["dynamodb"]["NewImage"]["quantity"] == {"N": "3"}
    assert table.get_item("o-00005")["quantity"] == {"N": "3"}
    assert table.count() == 1


def test_one_put_of_new_existing_and_repeated_keys_keeps_each_change_in_order(table):
    table.put_items(orders(2))
    before = table.get_item("o-00002")
    table.put_items(
        validated_table(
            [
                *orders(1).to_pylist(),
                *orders(2, quantity=4).to_pylist(),
                *orders(1, quantity=5).to_pylist(),
                *orders(3).to_pylist(),
                *orders(1, quantity=2).to_pylist(),
            ]
        )
    )
    records = stream_records(table)[1:]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["order_id"]["S"]) for r in records] == [
        ("INSERT", "o-00001"),
        ("MODIFY", "o-00002"),
        ("MODIFY", "o-00001"),
        ("INSERT", "o-00003"),
        ("MODIFY", "o-00001"),
    ]
    assert records[1]["dynamodb"]["OldImage"] == before
    assert records[2]["dynamodb"]["OldImage"] == records[0]["dynamodb"]["NewImage"]
    assert records[4]["dynamodb"]["OldImage"] == records[2]["dynamodb"]["NewImage"]
    assert [table.get_item(f"o-0000{n}")["quantity"] for n in (1, 2, 3)] == [
        {"N": "2"},
        {"N": "4"},
        records[3]["dynamodb"]["NewImage"]["quantity"],
    ]
    assert table.count() == 3


def test_delete_of_missing_key_writes_no_stream_record(table):
    table.put_items(orders(1))
    assert table.delete_items(["o-99999"]) == 0
    assert table.delete_items(["o-00001", "o-00001", "o-77777"]) == 1
    assert [r["eventName"] for r in stream_records(table)] == ["INSERT", "REMOVE"]
    assert table.delete_items([]) == 0
    assert table.latest_sequence() == 2


def test_update_merges_changes_into_the_existing_order(table):
    table.put_items(orders(1, 2))
    new = table.update_items([{"order_id": "o-00002", "quantity": 5}]).to_pylist()
    assert new[0]["quantity"] == 5 and new[0]["product_name"] == 'Teal "Desk" Lamp ø'
    modify = stream_records(table)[-1]
    assert modify["eventName"] == "MODIFY"
    assert modify["dynamodb"]["OldImage"]["quantity"] == {"N": "3"}
    assert modify["dynamodb"]["NewImage"]["quantity"] == {"N": "5"}
    assert modify["dynamodb"]["NewImage"]["order_ts"] == modify["dynamodb"]["OldImage"]["order_ts"]


def test_update_of_missing_order_raises_and_writes_nothing(table):
    table.put_items(orders(1))
    before = (table.scan(), table.latest_sequence())
    with pytest.raises(OrderNotFoundError, match="o-00404"):
        table.update_items([{"order_id": "o-00001", "quantity": 2}, {"order_id": "o-00404"}])
    assert (table.scan(), table.latest_sequence()) == before
    assert table.get_item("o-00001")["quantity"] == {"N": "2"}  # unchanged: 1 + 1 % 5


def test_invalid_update_writes_nothing(table):
    table.put_items(orders(1, 2))
    before = (table.scan(), table.latest_sequence())
    with pytest.raises(InvalidOrderError, match="quantity"):
        table.update_items(
            [{"order_id": "o-00001", "quantity": 3}, {"order_id": "o-00002", "quantity": 0}]
        )
    assert (table.scan(), table.latest_sequence()) == before


def test_an_order_deleted_by_another_writer_during_an_update_is_not_written_back(
    table, tmp_path, monkeypatch
):
    """The existence check and the write share one transaction: a delete from another
    connection (another process) waits for the update, and the order stays deleted."""
    import helpers.platform

    table.put_items(orders(1))
    other = Table(tmp_path / "dynamodb.sqlite", "orders", REGION, ACCOUNT)
    deleted = threading.Event()
    merge_updates = helpers.platform.merge_updates

    def merge_while_another_writer_deletes(changes, current):
        threading.Thread(
            target=lambda: (other.delete_items(["o-00001"]), deleted.set()), daemon=True
        ).start()
        deleted.wait(0.5)  # the delete lands here unless the update holds the write lock
        return merge_updates(changes, current)

    monkeypatch.setattr(helpers.platform, "merge_updates", merge_while_another_writer_deletes)
    table.update_items([{"order_id": "o-00001", "quantity": 4}])
    assert deleted.wait(10)
    other.close()
    assert [r["eventName"] for r in stream_records(table)] == ["INSERT", "MODIFY", "REMOVE"]
    assert table.get_item("o-00001") is None and table.count() == 0


def test_a_batch_commits_its_writes_together_or_not_at_all(table):
    table.put_items(orders(1))
    with table.batch():
        table.put_items(orders(2))
        assert table.update_items([{"order_id": "o-00002", "quantity": 4}]).num_rows == 1
        assert table.delete_items(["o-00001"]) == 1
    names = [r["eventName"] for r in stream_records(table)]
    assert names == ["INSERT", "INSERT", "MODIFY", "REMOVE"]

    before = (table.scan(), table.latest_sequence())
    with pytest.raises(OrderNotFoundError, match="o-00404"), table.batch():
        table.put_items(orders(3))
        table.delete_items(["o-00002"])
        table.update_items([{"order_id": "o-00404", "quantity": 1}])
    assert (table.scan(), table.latest_sequence()) == before
    assert not table.db.connection.in_transaction


def test_item_and_stream_record_commit_together(table):
    table.put_items(orders(1))
    # make the stream insert fail inside the write transaction, as a full disk would
    table.db.connection.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON stream BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        table.put_items(orders(1, 2, quantity=5))
    with pytest.raises(sqlite3.IntegrityError):
        table.delete_items(["o-00001"])
    assert table.count() == 1
    assert table.get_item("o-00001")["quantity"] == {"N": "2"}
    assert table.get_item("o-00002") is None
    table.db.connection.execute("DROP TRIGGER fail")
    assert table.delete_items(["o-00001"]) == 1
    assert [r["eventName"] for r in stream_records(table)] == ["INSERT", "REMOVE"]


def test_stream_count_equals_number_of_changes(table):
    changes = 0
    table.put_items(orders(*range(10)))
    changes += 10
    table.put_items(orders(*range(5, 15)))  # 5 modifies, 5 inserts
    changes += 10
    table.update_items(
        [{"order_id": "o-00003", "quantity": 2}, {"order_id": "o-00003", "channel": "store"}]
    )
    changes += 2
    changes += table.delete_items(["o-00000", "o-00001", "o-99999"])
    records = stream_records(table)
    assert changes == 24 == len(records) == table.latest_sequence()
    names = [r["eventName"] for r in records]
    assert names.count("INSERT") == 15 and names.count("MODIFY") == 7 and names.count("REMOVE") == 2
    assert table.count() == 13
    # replaying the stream onto an empty dict rebuilds the table exactly
    replay = {}
    for record in records:
        key = record["dynamodb"]["Keys"]["order_id"]["S"]
        if record["eventName"] == "REMOVE":
            del replay[key]
        else:
            replay[key] = record["dynamodb"]["NewImage"]
    assert sorted(replay.values(), key=lambda i: i["order_id"]["S"]) == sorted(
        table.scan(), key=lambda i: i["order_id"]["S"]
    )


def test_read_stream_after_a_position(table):
    table.put_items(orders(*range(6)))
    rows = table.read_stream(2, 3)
    assert [row[0] for row in rows] == [3, 4, 5]
    assert [row[1] for row in rows] == ["o-00002", "o-00003", "o-00004"]
    assert [json.loads(row[2])["dynamodb"]["Keys"]["order_id"]["S"] for row in rows] == [
        row[1] for row in rows
    ]
    assert table.read_stream(6, 10) == []


def test_stream_label_and_sequence_survive_reopen(tmp_path):
    path = tmp_path / "dynamodb.sqlite"
    first = Table(path, "orders", REGION, ACCOUNT)
    first.put_items(orders(1))
    arn = first.stream_arn
    first.close()
    time.sleep(0.01)
    second = Table(path, "orders", REGION, ACCOUNT)
    try:
        assert second.stream_arn == arn
        assert ARN.fullmatch(arn)
        second.put_items(orders(1, quantity=2))
        old, new = stream_records(second)
        assert old["eventSourceARN"] == new["eventSourceARN"] == arn
        assert int(new["dynamodb"]["SequenceNumber"]) > int(old["dynamodb"]["SequenceNumber"])
        assert new["eventName"] == "MODIFY"
    finally:
        second.close()
    other = Table(tmp_path / "other.sqlite", "orders", REGION, ACCOUNT)
    other.close()


def test_sequence_numbers_sort_as_strings_and_numbers(table):
    for number in range(12):
        table.put_items(orders(number))
    sequences = [r["dynamodb"]["SequenceNumber"] for r in stream_records(table)]
    assert sequences == sorted(sequences) == sorted(sequences, key=int)
    assert len(set(sequences)) == 12


def test_order_values_round_trip_through_the_item(table):
    table.put_items(orders(9, product_name='back\\slash "quote"\nnewline'))
    record = stream_records(table)[0]
    assert record["dynamodb"]["NewImage"]["product_name"] == {"S": 'back\\slash "quote"\nnewline'}
    assert record["dynamodb"]["NewImage"]["unit_price"] == {"N": str(order(9)["unit_price"])}


def test_every_connection_of_the_table_checkpoints_its_wal_less_often_than_sqlite(table):
    """Large writes dirty most pages of the random-key index; fewer checkpoints copy each
    page fewer times."""

    def setting() -> int:
        return table.db.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]

    seen = [setting()]
    other = threading.Thread(target=lambda: seen.append(setting()))  # its own connection
    other.start()
    other.join()
    assert seen == [CHECKPOINT_PAGES, CHECKPOINT_PAGES]
    assert CHECKPOINT_PAGES > 1000  # SQLite's default


@pytest.mark.parametrize(
    "damage", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_damaged_state_file_is_named_with_its_fix(tmp_path, damage):
    """A corrupt dynamodb.sqlite fails on open with the file and what to do, not a raw
    sqlite3.DatabaseError from deep inside."""
    path = tmp_path / "dynamodb.sqlite"
    path.write_bytes(damage)
    with pytest.raises(StateFileError) as error:
        Table(path, "orders", REGION, ACCOUNT)
    message = str(error.value)
    assert str(path) in message and "Restore it from a copy" in message


# --- retention and positions -------------------------------------------------------------

DAY = 24 * 3600


def test_stream_records_older_than_24_hours_are_trimmed_and_younger_ones_kept(table):
    table.put_items(orders(1, 2, 3))
    created = table.read_stream(0, 10)[-1][3]
    assert table.trim_stream(3, now=created + DAY - 1) == 0  # 1 s younger than 24 h
    assert [row[0] for row in table.read_stream(0, 10)] == [1, 2, 3]
    assert table.trim_stream(3, now=created + DAY + 1) == 3  # 1 s older
    assert table.read_stream(0, 10) == [] and table.trim_horizon() == 3
    assert table.read_stream(3, 10) == []  # a reader at the horizon reads on
    for after in (1, 2):
        with pytest.raises(TrimmedDataAccessError, match="TrimmedDataAccessException"):
            table.read_stream(after, 10)
    # positions are never given out again, though no record is left to number from
    assert table.latest_sequence() == 3
    table.put_items(orders(4))
    assert [row[0] for row in table.read_stream(3, 10)] == [4]
    assert table.count() == 4  # the items stay: retention is the stream's


def test_the_stream_is_trimmed_only_up_to_the_readers_checkpoint(table):
    table.put_items(orders(1, 2, 3, 4))
    later = time.time() + 2 * DAY
    assert table.trim_stream(0, now=later) == 0  # nothing read: nothing goes
    assert table.trim_stream(2, now=later) == 2
    assert [row[0] for row in table.read_stream(2, 10)] == [3, 4]
    assert table.stream_retained() == 2


def test_a_trim_stops_at_the_first_young_record(table, monkeypatch):
    monkeypatch.setattr("helpers.local.dynamodb.TRIM_CHUNK", 2)
    table.put_items(orders(1, 2, 3, 4, 5))
    created = table.read_stream(0, 10)[-1][3]
    with table.db.write() as connection:  # the last two are younger
        connection.execute("UPDATE stream SET created = ? WHERE seq > 3", (created + 100,))
    assert table.trim_stream(5, now=created + DAY + 1) == 3  # in chunks of two
    assert [row[0] for row in table.read_stream(0, 10)] == [4, 5]


def test_continue_above_raises_the_next_position(table):
    table.put_items(orders(1))
    assert not table.continue_above(1)
    assert table.continue_above(40)
    assert table.latest_sequence() == 40
    table.put_items(orders(2))
    assert [row[0] for row in table.read_stream(1, 10)] == [41]
    assert table.read_stream(40, 10)[0][0] == 41


def _file_bytes(table) -> int:
    table.db.read("PRAGMA wal_checkpoint(TRUNCATE)")
    return table.db.path.stat().st_size


def test_a_trim_gives_the_stream_space_back_beyond_a_reserve(table):
    """After a burst is trimmed the file shrinks to its items and a quarter free for new
    records; a trim that frees less than that quarter (a steady rate) keeps its pages."""
    for start in range(0, 8000, 2000):
        table.put_items(orders(*range(start, start + 2000)))
    full = _file_bytes(table)
    latest = table.latest_sequence()
    assert table.trim_stream(1000, now=time.time() + 2 * DAY) == 1000  # an eighth: kept
    assert _file_bytes(table) == full
    assert table.db.scalar("PRAGMA freelist_count") > 0
    assert table.trim_stream(latest, now=time.time() + 2 * DAY) == 7000
    after = _file_bytes(table)
    pages, free = table.db.scalar("PRAGMA page_count"), table.db.scalar("PRAGMA freelist_count")
    assert after < full / 2 and free <= pages * FREE_SHARE + 1
    assert table.count() == 8000 and table.get_item("o-07999") == item_of(7999)
    table.put_items(orders(9000))  # new records go on in the reused pages
    assert [row[0] for row in table.read_stream(latest, 10)] == [latest + 1]


def test_a_file_made_before_incremental_vacuum_keeps_its_size(tmp_path):
    """auto_vacuum is fixed when a file is made: an older file reuses its pages instead."""
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()  # auto_vacuum NONE
    table = Table(path, "orders", REGION, ACCOUNT)
    try:
        table.put_items(orders(*range(3000)))
        full = _file_bytes(table)
        assert table.trim_stream(3000, now=time.time() + 2 * DAY) == 3000
        assert _file_bytes(table) == full and table.db.release_free_pages(0.0) == 0
    finally:
        table.close()
