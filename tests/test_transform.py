"""Tests of the Firehose transformation Lambda (``helpers/transform.py``)."""

from __future__ import annotations

import ast
import base64
import binascii
import copy
import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import transform
from helpers.schema import LAKE_FIELDS, PARTITION_KEYS

FIXTURES = Path(__file__).parent / "fixtures"
TRANSFORM_PY = Path(transform.__file__)


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def insert() -> dict:
    return load("dynamodb_stream_insert.json")


@pytest.fixture
def modify() -> dict:
    return load("dynamodb_stream_modify.json")


@pytest.fixture
def remove() -> dict:
    return load("dynamodb_stream_remove.json")


@pytest.fixture
def warnings(caplog):
    """Captured WARNING records of the transform logger (works even if propagation is off)."""
    logger = logging.getLogger("salescast.transform")
    propagate = logger.propagate
    logger.propagate = False
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate


def encode(stream_record) -> str:
    """A stream record as the Kinesis data the pipe writes (compact JSON, base64)."""
    return base64.b64encode(json.dumps(stream_record, separators=(",", ":")).encode()).decode()


def event(*datas: str) -> dict:
    """A Firehose transformation event (Kinesis source) with the given base64 datas."""
    template = load("firehose_kinesis_event.json")
    first = template["records"][0]
    records = []
    for i, data in enumerate(datas):
        record = copy.deepcopy(first)
        record["recordId"] = f"{49546986683135544286507457936321625675700192471156785154 + i}000000"
        record["data"] = data
        records.append(record)
    return {**template, "records": records}


def run(*stream_records) -> list[dict]:
    """Transform stream records (dicts) or raw datas (str); return the output records."""
    datas = [r if isinstance(r, str) else encode(r) for r in stream_records]
    return transform.lambda_handler(event(*datas), None)["records"]


def row(out: dict) -> dict:
    """The JSON row of an Ok output record, checked to be one object and a newline."""
    assert out["result"] == "Ok", out
    text = base64.b64decode(out["data"], validate=True).decode("ascii")
    assert text.endswith("\n") and text.count("\n") == 1
    return json.loads(text)


def only_warning(caplog) -> dict:
    records = [r for r in caplog.records if r.name == "salescast.transform"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.WARNING
    message = json.loads(records[0].getMessage())
    assert set(message) == {"recordId", "reason"}
    return message


# --- the output contract ----------------------------------------------------------------


def test_fields_match_the_lake_schema():
    assert tuple(LAKE_FIELDS) == transform.FIELDS
    assert transform.PARTITION_KEYS == PARTITION_KEYS
    assert transform.EVENT_SEQ_DIGITS == 40


def test_fixture_event_gives_one_ok_row_per_record_in_order():
    fixture = load("firehose_kinesis_event.json")
    out = transform.lambda_handler(fixture, None)
    assert set(out) == {"records"}
    assert [r["recordId"] for r in out["records"]] == [r["recordId"] for r in fixture["records"]]
    rows = [row(r) for r in out["records"]]
    assert [list(r) for r in rows] == [list(transform.FIELDS)] * 3
    assert [r["event_name"] for r in rows] == ["INSERT", "MODIFY", "REMOVE"]
    for r in out["records"]:
        assert set(r) == {"recordId", "result", "data", "metadata"}
        assert r["metadata"] == {"partitionKeys": {"year": "2026", "month": "01", "day": "05"}}


def test_insert_row(insert):
    (out,) = run(insert)
    assert row(out) == {
        "order_id": "o-000001",
        "order_ts": "2026-01-05 10:00:00.123",
        "customer_id": "c-0042",
        "product_id": "p-007",
        "product_name": 'Teal "Lamp" Ø30',
        "category": "home",
        "channel": "web",
        "quantity": 2,
        "unit_price": 9.5,
        "event_name": "INSERT",
        "event_seq": "0000000000004421584500000000017450439091",
        "event_ts": "2026-01-05 10:00:01.000",
        "attributes": None,
    }
    assert out["metadata"] == {"partitionKeys": {"year": "2026", "month": "01", "day": "05"}}


def test_modify_takes_the_new_image(modify):
    (out,) = run(modify)
    got = row(out)
    assert (got["quantity"], got["unit_price"], got["event_name"]) == (5, 8.75, "MODIFY")
    assert got["event_seq"] == "0000000000004421584500000000017450439092"
    assert got["event_ts"] == "2026-01-05 11:00:00.000"  # float epoch seconds


def test_remove_takes_the_old_image(remove):
    # even if a NewImage were present, a REMOVE row carries the old image's values
    remove["dynamodb"]["NewImage"] = copy.deepcopy(remove["dynamodb"]["OldImage"])
    remove["dynamodb"]["NewImage"]["quantity"] = {"N": "99"}
    remove["dynamodb"]["NewImage"]["order_ts"] = {"S": "2027-07-07T07:07:07.000Z"}
    (out,) = run(remove)
    got = row(out)
    assert (got["event_name"], got["quantity"], got["order_ts"]) == (
        "REMOVE",
        5,
        "2026-01-05 10:00:00.123",
    )
    assert out["metadata"]["partitionKeys"] == {"year": "2026", "month": "01", "day": "05"}


def test_rows_are_ascii_json_and_round_trip_unicode(insert):
    insert["dynamodb"]["NewImage"]["product_name"] = {"S": 'Lampe "Été" \\ 灯\n'}
    (out,) = run(insert)
    text = base64.b64decode(out["data"]).decode("ascii")
    assert json.loads(text)["product_name"] == 'Lampe "Été" \\ 灯\n'


@pytest.mark.parametrize(
    ("order_ts", "expected", "day"),
    [
        ("2026-01-05T10:00:00.123Z", "2026-01-05 10:00:00.123", ("2026", "01", "05")),
        ("2026-01-05T10:00:00Z", "2026-01-05 10:00:00.000", ("2026", "01", "05")),
        ("2026-01-05T10:00:00.5+00:00", "2026-01-05 10:00:00.500", ("2026", "01", "05")),
        ("2026-01-05T10:00:00.123456Z", "2026-01-05 10:00:00.123", ("2026", "01", "05")),
        ("2026-01-05 10:00:00.1", "2026-01-05 10:00:00.100", ("2026", "01", "05")),  # naive: UTC
        ("2026-01-06T01:30:00.250+02:00", "2026-01-05 23:30:00.250", ("2026", "01", "05")),
        ("2026-12-31T20:15:00-05:00", "2027-01-01 01:15:00.000", ("2027", "01", "01")),
        ("2024-03-01T00:10:00+0030", "2024-02-29 23:40:00.000", ("2024", "02", "29")),
    ],
)
def test_order_ts_is_converted_to_utc(insert, order_ts, expected, day):
    insert["dynamodb"]["NewImage"]["order_ts"] = {"S": order_ts}
    (out,) = run(insert)
    assert row(out)["order_ts"] == expected
    assert out["metadata"]["partitionKeys"] == dict(zip(("year", "month", "day"), day, strict=True))


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (1767607201, "2026-01-05 10:00:01.000"),
        (1767607201.0, "2026-01-05 10:00:01.000"),
        (1767607201.123, "2026-01-05 10:00:01.123"),
        (1767607201.9999, "2026-01-05 10:00:02.000"),
        (0, "1970-01-01 00:00:00.000"),
    ],
)
def test_event_ts_from_approximate_creation_time(insert, created, expected):
    insert["dynamodb"]["ApproximateCreationDateTime"] = created
    (out,) = run(insert)
    assert row(out)["event_ts"] == expected


def test_event_seq_padding_keeps_string_order_equal_to_numeric_order(insert):
    rng = random.Random(3)
    numbers = [rng.randrange(10 ** rng.randrange(1, 40)) for _ in range(300)]
    numbers += [0, 1, 9, 10, 10**21, 10**40 - 1]
    records = []
    for number in numbers:
        record = copy.deepcopy(insert)
        record["dynamodb"]["SequenceNumber"] = str(number)
        records.append(record)
    seqs = [row(out)["event_seq"] for out in run(*records)]
    assert all(len(s) == 40 and s.isdigit() for s in seqs)
    assert [int(s) for s in seqs] == numbers
    assert sorted(seqs) == [s for _, s in sorted(zip(numbers, seqs, strict=True))]


def test_unusual_but_valid_input_takes_the_careful_path_to_the_same_row(insert):
    (canonical,) = run(insert)
    pretty = base64.b64encode(json.dumps(insert, indent=2).encode()).decode()  # whitespace
    variant = copy.deepcopy(insert)
    variant["dynamodb"]["NewImage"]["quantity"] = {"N": "2.0"}
    variant["dynamodb"]["NewImage"]["unit_price"] = {"N": "9.50E0"}
    outs = run(pretty, variant)
    assert [row(o) for o in outs] == [row(canonical)] * 2
    assert [o["metadata"] for o in outs] == [canonical["metadata"]] * 2


def test_fast_paths_agree_with_the_reference_conversion(insert, modify, remove):
    for stream_record in (insert, modify, remove):
        assert transform._row(encode(stream_record)) == transform._convert(stream_record)
        plain = copy.deepcopy(stream_record)  # no escapes, whole seconds: the regex path
        for image in ("NewImage", "OldImage"):
            if image in plain["dynamodb"]:
                plain["dynamodb"][image]["product_name"] = {"S": "Teal Lamp"}
        plain["dynamodb"]["ApproximateCreationDateTime"] = 1767610800
        assert transform._CANONICAL_RECORD(json.dumps(plain, separators=(",", ":")))
        assert transform._row(encode(plain)) == transform._convert(plain)
        for image in ("NewImage", "OldImage"):  # not ASCII: the regex path escapes it
            if image in plain["dynamodb"]:
                plain["dynamodb"][image]["product_name"] = {"S": "Lampe ø ☃"}
        compact = json.dumps(plain, separators=(",", ":"), ensure_ascii=False)
        assert transform._CANONICAL_RECORD(compact)
        data = base64.b64encode(compact.encode()).decode()
        assert transform._row(data) == transform._convert(plain)
        assert "Lampe \\u00f8 \\u2603" in transform._row(data)[0]


# --- other attributes --------------------------------------------------------------------

OTHERS = {
    "gift_wrap": {"BOOL": True},
    "note": {"S": 'Grüße "bitte"'},
    "shipping": {"M": {"city": {"S": "Lyon"}, "floor": {"NULL": True}}},
    "tags": {"SS": ["red", "sale"]},
}


def with_others(stream_record: dict, image: str) -> dict:
    extended = copy.deepcopy(stream_record)
    extended["dynamodb"][image].update(OTHERS)
    return extended


def test_other_attributes_are_kept_whole_in_the_attributes_column(insert, modify, remove):
    """Another writer's attributes reach the lake as AttributeValue JSON, none dropped; an
    image without them gives NULL, and the order's own columns are unchanged."""
    for stream_record, image in ((insert, "NewImage"), (modify, "NewImage"), (remove, "OldImage")):
        extended = with_others(stream_record, image)
        plain_row, extended_row = (row(out) for out in run(stream_record, extended))
        assert plain_row["attributes"] is None
        assert json.loads(extended_row.pop("attributes")) == OTHERS
        assert list(json.loads(row(run(extended)[0])["attributes"])) == list(OTHERS)
        assert {**extended_row, "attributes": None} == plain_row


def test_other_attributes_in_the_local_pipe_shape_leave_the_fast_paths(insert):
    """The exact compact shape the pipe writes, with other attributes: the regex does not
    match it and the parsed path hands it to the reference, which keeps them."""
    plain = copy.deepcopy(insert)
    plain["dynamodb"]["NewImage"]["product_name"] = {"S": "Teal Lamp"}
    plain["dynamodb"]["ApproximateCreationDateTime"] = 1767610800
    extended = with_others(plain, "NewImage")
    assert transform._CANONICAL_RECORD(json.dumps(plain, separators=(",", ":")))
    assert not transform._CANONICAL_RECORD(json.dumps(extended, separators=(",", ":")))
    assert transform._row(encode(extended)) == transform._convert(extended)
    assert '"attributes":"{\\"gift_wrap\\"' in transform._row(encode(extended))[0]


def test_other_attributes_json_cannot_hold_fail_the_record_by_name(insert, warnings):
    extended = copy.deepcopy(insert)
    extended["dynamodb"]["NewImage"]["score"] = {"N": float("nan")}  # json.loads takes NaN
    (out,) = run(encode(extended))
    assert out["result"] == "ProcessingFailed"
    assert "dynamodb.NewImage.score: hold NaN or Infinity" in only_warning(warnings)["reason"]


# --- Dropped ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"eventSource": "aws:kinesis"},
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"},
        {"eventName": "UPDATE"},
        {"eventName": "insert"},
    ],
)
def test_other_events_are_dropped_with_their_data(insert, change, warnings):
    data = encode({**insert, **change})
    (out,) = run(data)
    assert out["result"] == "Dropped"
    assert out["data"] == data
    assert "metadata" not in out
    assert not warnings.records


# --- ProcessingFailed ----------------------------------------------------------------------


def _without(path: str):
    def mutate(record):
        *parents, last = path.split(".")
        node = record
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _set(path: str, value):
    def mutate(record):
        *parents, last = path.split(".")
        node = record
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


IMAGE = "dynamodb.NewImage"
MALFORMED = [
    # (id, raw data or a mutation of the INSERT fixture, words the reason must contain)
    ("not-base64", "not base64 at all!", ["data", "base64"]),
    ("truncated-json", "eyJhIjox", ["data", "JSON"]),
    ("not-json", base64.b64encode(b"{oops").decode(), ["data", "not JSON"]),
    ("not-utf8", base64.b64encode(b"\xff\xfe{").decode(), ["data"]),
    ("json-array", base64.b64encode(b"[1, 2]").decode(), ["data", "not an object"]),
    ("empty", "", ["data", "JSON"]),
    ("no-event-source", _without("eventSource"), ["eventSource", "missing"]),
    ("no-event-name", _without("eventName"), ["eventName", "missing"]),
    ("no-dynamodb", _without("dynamodb"), ["dynamodb", "missing"]),
    ("dynamodb-list", _set("dynamodb", []), ["dynamodb", "list"]),
    ("no-new-image", _without("dynamodb.NewImage"), ["dynamodb.NewImage", "missing"]),
    ("missing-attribute", _without(f"{IMAGE}.customer_id"), [f"{IMAGE}.customer_id", "missing"]),
    ("ill-typed-attribute", _set(f"{IMAGE}.product_id", {"N": "7"}), [f"{IMAGE}.product_id"]),
    ("attribute-not-object", _set(f"{IMAGE}.channel", "web"), [f"{IMAGE}.channel", "str"]),
    ("empty-string", _set(f"{IMAGE}.category", {"S": ""}), [f"{IMAGE}.category", "empty"]),
    ("quantity-fraction", _set(f"{IMAGE}.quantity", {"N": "2.5"}), [f"{IMAGE}.quantity", "whole"]),
    ("quantity-zero", _set(f"{IMAGE}.quantity", {"N": "0"}), [f"{IMAGE}.quantity", "1-"]),
    ("quantity-negative", _set(f"{IMAGE}.quantity", {"N": "-3"}), [f"{IMAGE}.quantity"]),
    ("quantity-huge", _set(f"{IMAGE}.quantity", {"N": "9" * 12}), [f"{IMAGE}.quantity"]),
    ("quantity-text", _set(f"{IMAGE}.quantity", {"N": "two"}), [f"{IMAGE}.quantity", "number"]),
    ("quantity-json-number", _set(f"{IMAGE}.quantity", {"N": 2}), [f"{IMAGE}.quantity"]),
    ("price-json-number", _set(f"{IMAGE}.unit_price", {"N": 9.5}), [f"{IMAGE}.unit_price"]),
    ("ts-json-number", _set(f"{IMAGE}.order_ts", {"S": 1767607200}), [f"{IMAGE}.order_ts"]),
    ("name-json-number", _set(f"{IMAGE}.product_name", {"S": 7}), [f"{IMAGE}.product_name"]),
    ("quantity-as-S", _set(f"{IMAGE}.quantity", {"S": "2"}), [f"{IMAGE}.quantity", "'N'"]),
    ("price-negative", _set(f"{IMAGE}.unit_price", {"N": "-1.5"}), [f"{IMAGE}.unit_price", "neg"]),
    ("price-nan", _set(f"{IMAGE}.unit_price", {"N": "NaN"}), [f"{IMAGE}.unit_price"]),
    ("price-inf", _set(f"{IMAGE}.unit_price", {"N": "1e999"}), [f"{IMAGE}.unit_price", "finite"]),
    ("ts-words", _set(f"{IMAGE}.order_ts", {"S": "yesterday"}), [f"{IMAGE}.order_ts"]),
    ("ts-feb-30", _set(f"{IMAGE}.order_ts", {"S": "2026-02-30T10:00:00Z"}), [f"{IMAGE}.order_ts"]),
    ("ts-hour-24", _set(f"{IMAGE}.order_ts", {"S": "2026-01-05T24:00:00Z"}), [f"{IMAGE}.order_ts"]),
    ("ts-before-1970", _set(f"{IMAGE}.order_ts", {"S": "1970-01-01T00:30:00+01:00"}), ["order_ts"]),
    ("ts-epoch-number", _set(f"{IMAGE}.order_ts", {"N": "1767607200"}), [f"{IMAGE}.order_ts"]),
    ("seq-letters", _set("dynamodb.SequenceNumber", "44215845ab"), ["SequenceNumber", "digits"]),
    ("seq-too-long", _set("dynamodb.SequenceNumber", "1" * 41), ["SequenceNumber", "digits"]),
    ("seq-empty", _set("dynamodb.SequenceNumber", ""), ["SequenceNumber"]),
    ("seq-number", _set("dynamodb.SequenceNumber", 4421584500), ["SequenceNumber", "int"]),
    ("seq-missing", _without("dynamodb.SequenceNumber"), ["SequenceNumber", "missing"]),
    ("created-missing", _without("dynamodb.ApproximateCreationDateTime"), ["Approx", "missing"]),
    ("created-text", _set("dynamodb.ApproximateCreationDateTime", "2026-01-05"), ["Approx"]),
    ("created-bool", _set("dynamodb.ApproximateCreationDateTime", True), ["Approx", "bool"]),
    ("created-negative", _set("dynamodb.ApproximateCreationDateTime", -5), ["Approx", "range"]),
]


@pytest.mark.parametrize(("case", "bad", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_records_fail_with_original_data_and_a_logged_reason(
    insert, warnings, case, bad, words
):
    if isinstance(bad, str):
        data = bad
    else:
        bad(insert)
        data = encode(insert)
    (out,) = run(data)
    assert out == {"recordId": out["recordId"], "result": "ProcessingFailed", "data": data}
    message = only_warning(warnings)
    assert message["recordId"] == out["recordId"]
    for word in words:
        assert word in message["reason"], (case, message["reason"])
    assert "unexpected" not in message["reason"]


def test_remove_without_old_image_fails(remove, warnings):
    del remove["dynamodb"]["OldImage"]
    (out,) = run(remove)
    assert out["result"] == "ProcessingFailed"
    assert "dynamodb.OldImage: is missing" in only_warning(warnings)["reason"]
    assert "dynamodb.OldImage" in only_warning(warnings)["reason"]


def test_firehose_record_without_data_or_id_does_not_raise(warnings):
    out = transform.lambda_handler({"records": [{"recordId": "r1"}, {"data": "e30="}]}, None)
    assert [(r["recordId"], r["result"]) for r in out["records"]] == [
        ("r1", "ProcessingFailed"),
        (None, "ProcessingFailed"),
    ]
    reasons = [json.loads(r.getMessage())["reason"] for r in warnings.records]
    assert reasons[0].startswith("data:") and reasons[1].startswith("recordId:")


def test_event_without_records_raises():
    with pytest.raises(ValueError, match=r"event\.records"):
        transform.lambda_handler({"invocationId": "x"}, None)


def test_empty_batch():
    assert transform.lambda_handler({"records": []}, None) == {"records": []}


# --- batches ------------------------------------------------------------------------------


def test_mixed_batch_every_record_once_in_order_and_bad_ones_isolated(
    insert, modify, remove, warnings
):
    other = {**insert, "eventSource": "aws:kinesis"}
    bad_quantity = copy.deepcopy(modify)
    bad_quantity["dynamodb"]["NewImage"]["quantity"] = {"N": "1.5"}
    datas = [
        encode(insert),
        "%%%not-base64%%%",
        encode(modify),
        encode(other),
        encode(bad_quantity),
        encode(remove),
    ]
    batch = event(*datas)
    out = transform.lambda_handler(batch, None)["records"]
    assert [r["recordId"] for r in out] == [r["recordId"] for r in batch["records"]]
    assert len({r["recordId"] for r in out}) == len(datas)
    assert [r["result"] for r in out] == [
        "Ok",
        "ProcessingFailed",
        "Ok",
        "Dropped",
        "ProcessingFailed",
        "Ok",
    ]
    for position in (0, 2, 5):
        (alone,) = run(datas[position])
        assert {**out[position], "recordId": None} == {**alone, "recordId": None}
    assert [out[1]["data"], out[3]["data"], out[4]["data"]] == [datas[1], datas[3], datas[4]]
    failed = [json.loads(r.getMessage()) for r in warnings.records if r.levelno == logging.WARNING]
    assert [f["recordId"] for f in failed] == [out[1]["recordId"], out[4]["recordId"]]
    assert "quantity" in failed[-1]["reason"]


def test_large_batch_spanning_days(insert):
    records = []
    for i in range(2000):
        record = copy.deepcopy(insert)
        record["dynamodb"]["NewImage"]["order_id"] = {"S": f"o-{i}"}
        record["dynamodb"]["NewImage"]["order_ts"] = {
            "S": f"2025-12-{1 + i % 31:02d}T23:59:59.999Z"
        }
        records.append(record)
    out = run(*records)
    days = [o["metadata"]["partitionKeys"]["day"] for o in out]
    assert days == [f"{1 + i % 31:02d}" for i in range(2000)]
    assert [row(o)["order_id"] for o in out] == [f"o-{i}" for i in range(2000)]


# --- deployable as is ------------------------------------------------------------------------


def test_imports_only_the_standard_library_but_an_optional_codec():
    tree = ast.parse(TRANSFORM_PY.read_text(encoding="utf-8"))
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            modules.append(node.module)
    assert modules
    others = [name for name in modules if name.split(".")[0] not in sys.stdlib_module_names]
    assert others == ["pybase64"], others
    (optional,) = [
        node
        for node in tree.body
        if isinstance(node, ast.Try)
        and any(isinstance(n, ast.Import) and n.names[0].name == "pybase64" for n in node.body)
    ]
    assert [ast.unparse(handler.type) for handler in optional.handlers] == ["ImportError"]
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert len(top_level) + 1 == sum(
        isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)
    )


BASE64_EDGES = [
    "",
    "=",
    "QQ==",
    "QQ=",
    "QQ",
    "Q===",
    "QUJD",
    "QUJD=",
    "QUJD====",
    "QQ==QQ==",
    "QUJD\n",
    " QUJD",
    "QUJD RA==",
    "QR==",
    "QUJ=",
    "AAAA\x00",
    "\u00e9AAA",
    "-_AA",
]


def _random_base64ish(rng: random.Random) -> str:
    return "".join(rng.choice("QUJDRAab09+/=\n -_") for _ in range(rng.randint(0, 13)))


def _outcome(decode, text):
    try:
        return decode(text)
    except ValueError:
        return "refused"


@pytest.mark.parametrize("module", ["transform", "firehose"])
def test_the_fast_base64_codec_accepts_exactly_what_binascii_strict_mode_does(module):
    """pybase64 speeds up the Lambda and Firehose's side of it; the bytes and what is refused
    stay binascii's (strict mode), the codec the deployed Lambda uses."""
    from helpers.local import firehose

    decode = transform._strict_b64decode if module == "transform" else firehose._strict_b64decode
    rng = random.Random(3)
    texts = BASE64_EDGES + [_random_base64ish(rng) for _ in range(20_000)]
    texts += [base64.b64encode(rng.randbytes(rng.randint(0, 40))).decode() for _ in range(500)]
    for text in texts:
        reference = _outcome(lambda t: binascii.a2b_base64(t, strict_mode=True), text)
        assert _outcome(decode, text) == reference, text
    for raw in (b"", b"a", b"ab", b"abc", rng.randbytes(1000)):
        assert transform._b64text(raw) == base64.b64encode(raw).decode()


def test_runs_alone_as_lambda_function_py(tmp_path):
    (tmp_path / "lambda_function.py").write_text(TRANSFORM_PY.read_text(encoding="utf-8"))
    script = (
        "import json, sys, lambda_function\n"
        "event = json.load(open(sys.argv[1]))\n"
        "out = lambda_function.lambda_handler(event, None)\n"
        "print(json.dumps([r['result'] for r in out['records']]))\n"
        "assert lambda_function.pybase64 is None  # the standard library's codec, as deployed\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + script,
            str(FIXTURES / "firehose_kinesis_event.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert json.loads(done.stdout) == ["Ok", "Ok", "Ok"]


def test_fast_path_never_disagrees_with_the_reference(insert, remove):
    """Random odd values: the fast path gives the reference's row, drop, or failure."""
    rng = random.Random(11)
    odd = [
        None,
        "",
        " ",
        "0",
        "00",
        "-0",
        "1",
        "2.0",
        "1e3",
        "9" * 10,
        ".5",
        "5.",
        "NaN",
        "inf",
        "٣",
        "1_0",
        3,
        2.5,
        True,
        [],
        {},
        {"S": "x"},
        {"N": "4"},
        {"S": ""},
        {"N": "-1"},
        "2026-01-05T10:00:00.123Z",
        "2026-01-05T10:00:00Z",
        "2026-13-05T10:00:00.123Z",
        "2026-01-05T10:00:00.123+01:00",
        "1767607201",
        1767607201,
        1767607201.5,
        -1,
        1e20,
    ]
    paths = [
        ("dynamodb", "SequenceNumber"),
        ("dynamodb", "ApproximateCreationDateTime"),
        ("eventName",),
        ("eventSource",),
    ]
    plain = []  # without escapes, as the local pipe writes them: the regex path takes these
    for base, image in ((insert, "NewImage"), (remove, "OldImage")):
        record = copy.deepcopy(base)
        record["dynamodb"][image]["product_name"] = {"S": "Teal Lamp"}
        assert transform._CANONICAL_RECORD(json.dumps(record, separators=(",", ":")))
        plain.append((record, image))
    for base, image in ((insert, "NewImage"), (remove, "OldImage"), *plain):
        paths += [("dynamodb", image, name) for name in transform.FIELDS[:9]]
        paths += [("dynamodb", image, name, kind) for name in transform.FIELDS[:9] for kind in "SN"]
        for _ in range(1500):
            record = copy.deepcopy(base)
            for path in rng.sample(paths, rng.randint(1, 2)):
                node = record
                for key in path[:-1]:
                    node = node.setdefault(key, {}) if isinstance(node, dict) else {}
                if isinstance(node, dict):
                    node[path[-1]] = rng.choice(odd)
            try:
                expected = transform._convert(record)
            except transform._Malformed as problem:
                expected = ("failed", str(problem))
            try:
                got = transform._row(encode(record))
            except transform._Malformed as problem:
                got = ("failed", str(problem))
            assert got == expected, record
