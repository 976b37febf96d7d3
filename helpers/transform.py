"""Firehose transformation Lambda: DynamoDB Streams records in, lake rows with partition keys out.

The same file runs on both backends: the local engine imports ``helpers.transform`` and calls
:func:`lambda_handler`; for AWS it is zipped alone, unchanged, as ``transform.py`` (handler
``transform.lambda_handler``). It therefore uses the standard library only and imports nothing
from ``helpers``. Base64 is the one exception: where ``pybase64`` is installed (the local engine
depends on it) it decodes and encodes about four times faster, with the same bytes; binascii
answers whenever pybase64 refuses, so what is accepted is exactly what binascii's strict mode
accepts.

What it does
------------
Firehose (source: a Kinesis Data Stream fed by an EventBridge Pipe) invokes
``lambda_handler(event, context)`` with ``records[]`` of ``recordId``, ``data`` (base64) and
``kinesisRecordMetadata``. Each ``data`` is the JSON of one DynamoDB Streams record
(``eventName`` INSERT|MODIFY|REMOVE, ``eventSource`` ``aws:dynamodb``, ``dynamodb`` with
``ApproximateCreationDateTime``, ``NewImage``/``OldImage`` in AttributeValue JSON and
``SequenceNumber``). Every ``recordId`` comes back once, in order, with ``result``:

- ``Ok``: ``data`` is base64 of one JSON object and ``"\\n"`` with the keys of :data:`FIELDS`, in
  that order. ``order_ts`` and ``event_ts`` are UTC in Hive's timestamp text form
  ``yyyy-MM-dd HH:mm:ss.SSS`` (what Firehose's JSON deserializer parses into a ``timestamp``);
  ``event_seq`` is ``SequenceNumber`` left-padded with zeros to 40 digits, so string order is
  stream order. INSERT and MODIFY take their values from ``NewImage``; REMOVE from ``OldImage``.
  ``metadata.partitionKeys`` holds ``year``, ``month``, ``day`` of ``order_ts`` (UTC).
  ``attributes`` holds the image's attributes beyond the order's (DynamoDB is schemaless:
  another writer may add any) as the text of one JSON object in AttributeValue JSON, names and
  values as in the image (``{"gift_wrap":{"BOOL":true}}``), or null when there are none. They
  are kept whole, in the form DynamoDB's export to S3 uses, rather than as columns of their own:
  Firehose converts JSON to Parquet with the Glue table's columns and would drop a name the
  table does not have yet, so a new attribute would be lost until someone altered the table.
- ``Dropped``: a well-formed record of an event it does not handle (``eventSource`` other than
  ``aws:dynamodb``, or another ``eventName``); ``data`` is returned as received.
- ``ProcessingFailed``: anything malformed; ``data`` is returned as received, so the raw record
  lands under Firehose's error prefix, and one WARNING line of JSON ``{"recordId", "reason"}``
  naming the field and the problem goes to the logger ``salescast.transform``.

What it does not handle
-----------------------
Record-level problems never raise; an event without a ``records`` list does (Firehose then
retries the batch). Not handled: MSK or Direct PUT specifics (``kafkaRecordValue``),
KPL-aggregated or compressed Kinesis payloads, several stream records in one Kinesis record
(a Pipe with an input template that batches them), DynamoDB types other than ``S`` and ``N`` for
the order attributes, and tables other than the orders table (its attributes are required;
other attributes are kept as they are, without checking their AttributeValue shape).
Naive ``order_ts`` values are taken as UTC; fractions beyond milliseconds are truncated; only
years 1970-2999 (after conversion to UTC) are accepted; empty strings fail. Needs a Python 3.11+
runtime (``binascii.a2b_base64(strict_mode=True)``).

Speed
-----
It is on the hot path. Records in the exact shape the local pipe writes (compact JSON in the
stream's key order, strings without escapes, no other attributes) are read by one regex
without building JSON objects; other canonical records without other attributes (``...Z``
timestamps, plain digits) are parsed and take an inlined fast path; anything else, valid or
not, takes the reference path (:func:`_convert`), which also names the problem and keeps
other attributes. The tests check that all three give the same answers. Order days, event
seconds and the ``metadata`` dicts are cached, so ``Ok`` records of one day share one
``metadata`` object (treat the response as read-only), and the cyclic GC is paused for the
length of a batch.
"""

from __future__ import annotations

import binascii
import gc
import json
import logging
import re
import time
from datetime import date, datetime, timedelta

logger = logging.getLogger("salescast.transform")

FIELDS = (
    "order_id",
    "order_ts",
    "customer_id",
    "product_id",
    "product_name",
    "category",
    "channel",
    "quantity",
    "unit_price",
    "event_name",
    "event_seq",
    "event_ts",
    "attributes",
)
"""Keys of an ``Ok`` record's JSON row, in order (the lake's columns)."""
PARTITION_KEYS = ("year", "month", "day")
EVENT_SOURCE = "aws:dynamodb"
EVENT_SEQ_DIGITS = 40
MAX_QUANTITY = 2**31 - 1

_IMAGE = {"INSERT": "NewImage", "MODIFY": "NewImage", "REMOVE": "OldImage"}
_STRINGS = ("order_id", "customer_id", "product_id", "product_name", "category", "channel")
_MIN_EPOCH, _END_EPOCH = 0, 32503680000  # 1970-01-01 <= t < 3000-01-01 (UTC)
_ZERO_OFFSETS = frozenset(("Z", "+00:00", "-00:00", "+0000", "-0000"))
_ISO = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
    r"(?:\.([0-9]{1,9}))?(Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?"
).fullmatch
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}"
_CANONICAL_TS = re.compile(f"{_DAY}T{_CLOCK}Z").fullmatch
_ATTRIBUTES = tuple(
    (name, "N" if name in ("quantity", "unit_price") else "S") for name in FIELDS[:9]
)
_ORDER_ATTRIBUTES = frozenset(name for name, _ in _ATTRIBUTES)


def _canonical_record_regex():
    """The stream record exactly as the local pipe writes it, with canonical values; groups:
    eventName, ApproximateCreationDateTime, NewImage's ten values (``order_ts`` as date and
    time), OldImage's ten, SequenceNumber."""
    other = r'"[^"\\\x00-\x1f]*"'  # a JSON string without escapes
    number = r"(?:0|[1-9][0-9]*)"  # a JSON integer
    values = {
        "S": r'("[^"\\\x00-\x1f]+")',  # not empty: its JSON literal, quotes included
        "order_ts": f'"({_DAY})T({_CLOCK})Z"',
        "quantity": r'"([0-9]{1,9})"',
        "unit_price": r'"([0-9]+\.?[0-9]*|\.[0-9]+)"',
    }

    def image(name):
        attributes = ",".join(
            rf'"{attribute}":\{{"{kind}":{values.get(attribute, values["S"])}\}}'
            for attribute, kind in _ATTRIBUTES
        )
        return rf'(?:,"{name}":\{{{attributes}\}})?'

    return re.compile(
        rf'\{{"eventID":{other},"eventName":"(INSERT|MODIFY|REMOVE)","eventVersion":{other},'
        rf'"eventSource":"{EVENT_SOURCE}","awsRegion":{other},'
        rf'"dynamodb":\{{"ApproximateCreationDateTime":({number}),'
        rf'"Keys":\{{"order_id":\{{"S":{other}\}}\}}'
        + image("NewImage")
        + image("OldImage")
        + rf',"SequenceNumber":"([0-9]{{1,{EVENT_SEQ_DIGITS}}})","SizeBytes":{number},'
        rf'"StreamViewType":{other}\}},"eventSourceARN":{other}\}}'
    ).fullmatch


_CANONICAL_RECORD = _canonical_record_regex()
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch
_quote = json.encoder.encode_basestring_ascii  # C-accelerated JSON string literal
_b64decode = binascii.a2b_base64
try:  # the SIMD codec, where installed; the deployed zip has only the standard library
    import pybase64
except ImportError:
    pybase64 = None


def _strict_b64decode(data):
    """Base64 text -> bytes, accepting exactly what ``binascii`` accepts in strict mode."""
    if pybase64 is not None:
        try:
            return pybase64.b64decode(data, validate=True)
        except ValueError:  # pybase64 is stricter about excess padding: binascii decides
            pass
    return _b64decode(data, strict_mode=True)


def _b64text(raw):
    """Bytes -> base64 text without a newline."""
    if pybase64 is not None:
        return pybase64.b64encode_as_string(raw)
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


_loads = json.loads
_scan = json.JSONDecoder().scan_once  # C scanner: (value, end) at an index
_dumps = json.dumps

# Small caches: a batch carries few distinct order dates and event seconds.
_CACHE_LIMIT = 4096
_dates: dict[str, bool] = {}
_seconds: dict[int, str] = {}
_metadata: dict[str, dict] = {}  # shared by the Ok records of one day: treat as read-only


class _Malformed(Exception):
    """A record-level problem; the message names the field and the problem."""


def lambda_handler(event, context):
    """Transform one Firehose batch of DynamoDB Streams records into lake rows.

    Parameters
    ----------
    event : dict
        The Firehose data-transformation event (``invocationId``, ``deliveryStreamArn``,
        ``sourceKinesisStreamArn``, ``region``, ``records``).
    context : object
        The Lambda context (unused).

    Returns
    -------
    dict
        ``{"records": [...]}``: every input ``recordId`` once, in order, with ``result``,
        ``data`` and, for ``Ok`` records, ``metadata.partitionKeys``.

    Raises
    ------
    ValueError
        Only if the event itself has no ``records`` list; record problems never raise.
    """
    records = event.get("records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise ValueError("event.records: is missing or not a list; expected a Firehose event")
    # A batch allocates many small containers and frees them by reference counting; the
    # cyclic GC would only rescan the growing output, so it is paused for the batch.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return {"records": [transform_record(record) for record in records]}
    finally:
        if paused:
            gc.enable()


def transform_record(record):
    """Transform one Firehose input record; never raises.

    Parameters
    ----------
    record : dict
        One element of the event's ``records`` (``recordId``, ``data``, ...).

    Returns
    -------
    dict
        ``recordId``, ``result`` (``Ok``|``Dropped``|``ProcessingFailed``), ``data`` (base64)
        and, for ``Ok``, ``metadata`` ``{"partitionKeys": {"year", "month", "day"}}``.
    """
    try:
        record_id = record["recordId"]
        data = record["data"]
    except Exception:  # not a dict, or a key missing: report what we can
        record_id = record.get("recordId") if isinstance(record, dict) else None
        data = record.get("data") if isinstance(record, dict) else None
        field = "recordId" if record_id is None else "data"
        return _failed(record_id, data, f"{field}: is missing from the Firehose record")
    try:
        row = _row(data)
    except _Malformed as problem:
        return _failed(record_id, data, str(problem))
    except Exception as error:  # a bug or an input nobody foresaw: still one record only
        return _failed(record_id, data, f"record: unexpected {type(error).__name__}: {error}")
    if row is None:
        return {"recordId": record_id, "result": "Dropped", "data": data}
    line, order_ts = row
    metadata = _metadata.get(order_ts[:10])
    if metadata is None:
        metadata = _partition_metadata(order_ts)
    return {
        "recordId": record_id,
        "result": "Ok",
        "data": _b64text(line.encode("ascii")),
        "metadata": metadata,
    }


def _partition_metadata(order_ts):
    """``{"partitionKeys": {"year", "month", "day"}}`` of a UTC ``order_ts``, cached by day."""
    if len(_metadata) >= _CACHE_LIMIT:
        _metadata.clear()
    metadata = _metadata[order_ts[:10]] = {
        "partitionKeys": {"year": order_ts[:4], "month": order_ts[5:7], "day": order_ts[8:10]}
    }
    return metadata


def _failed(record_id, data, reason):
    logger.warning(_dumps({"recordId": record_id, "reason": reason}))
    return {
        "recordId": record_id,
        "result": "ProcessingFailed",
        "data": data if isinstance(data, str) else "",
    }


def _row(data):
    """The JSON line and UTC ``order_ts`` of one record's ``data``, or None to drop it.

    Three paths give the same answer: a regex over the exact shape the local pipe writes
    (compact JSON, keys in the stream's order, strings without escapes) reads the values
    without building the JSON objects; otherwise the JSON is parsed and canonical values
    (``...Z`` timestamps, plain digits) are taken from it; anything else, valid or not, goes
    to :func:`_decode` / :func:`_convert`, the reference, which also names the problem.
    """
    try:
        text = _strict_b64decode(data).decode()
    except Exception:
        return _convert(_decode(data))
    match = _CANONICAL_RECORD(text)
    if match is not None:  # canonical by its shape, but for the date and a zero quantity
        groups = match.groups()
        event_name = groups[0]
        order_id, day, clock, customer_id, product_id, name, category, channel, quantity, price = (
            groups[2:12] if event_name != "REMOVE" else groups[12:22]
        )
        if order_id is not None and _dates.get(day) and quantity.strip("0"):
            if not text.isascii():  # the lake's JSON is ASCII: escape the literals as json does
                order_id, customer_id, product_id, name, category, channel = (
                    _quote(literal[1:-1])
                    for literal in (order_id, customer_id, product_id, name, category, channel)
                )
            return _line(
                event_name,
                order_id,
                f"{day} {clock}",
                customer_id,
                product_id,
                name,
                category,
                channel,
                quantity,
                price,
                groups[22],
                int(groups[1]),
            )
    try:
        stream_record, end = _scan(text, 0)
        if end != len(text):
            raise ValueError("trailing text")
    except Exception:
        stream_record = _decode(data)
    try:
        if stream_record["eventSource"] != EVENT_SOURCE:
            raise LookupError
        event_name = stream_record["eventName"]
        change = stream_record["dynamodb"]
        image = change[_IMAGE[event_name]]
        if len(image) != len(_ATTRIBUTES):  # attributes beyond the order's: the reference
            raise LookupError
        values = tuple(image[name][kind] for name, kind in _ATTRIBUTES)
        seq = change["SequenceNumber"]
        created = change["ApproximateCreationDateTime"]
    except Exception:  # a key missing or a value of another type
        return _convert(stream_record)
    try:
        row = _canonical_row(event_name, values, seq, created)
    except (TypeError, AttributeError):  # a value of another type
        row = None
    return _convert(stream_record) if row is None else row


def _canonical_row(event_name, values, seq, created):
    """(line, order_ts) from the image's attributes in lake order, or None when one is not
    canonical."""
    order_id, order_ts, customer_id, product_id, name, category, channel, quantity, price = values
    digits = price.replace(".", "", 1)
    if (
        "" in (order_id, customer_id, product_id, name, category, channel)
        or _CANONICAL_TS(order_ts) is None
        or not _dates.get(order_ts[:10])
        or not (quantity.isdigit() and quantity.isascii() and len(quantity) <= 9)
        or quantity == "0" * len(quantity)
        or not (digits.isdigit() and digits.isascii())
        or type(seq) is not str
        or not (seq.isdigit() and seq.isascii() and len(seq) <= EVENT_SEQ_DIGITS)
        or (type(created) is not int and type(created) is not float)
    ):
        return None
    order_ts = order_ts[:10] + " " + order_ts[11:23]
    return _line(
        event_name,
        _quote(order_id),
        order_ts,
        _quote(customer_id),
        _quote(product_id),
        _quote(name),
        _quote(category),
        _quote(channel),
        quantity,
        price,
        seq,
        created,
    )


def _line(
    event_name,
    order_id,
    order_ts,
    customer_id,
    product_id,
    name,
    category,
    channel,
    quantity,
    price,
    seq,
    created,
):
    """(line, order_ts) of canonical values: the six strings as ASCII JSON literals, and
    ``order_ts`` already in the lake's form."""
    event_ts = _seconds.get(created) if type(created) is int else None
    event_ts = _epoch(created) if event_ts is None else event_ts + ".000"
    line = (
        f'{{"order_id":{order_id},"order_ts":"{order_ts}",'
        f'"customer_id":{customer_id},"product_id":{product_id},'
        f'"product_name":{name},"category":{category},'
        f'"channel":{channel},"quantity":{int(quantity)},"unit_price":{float(price)!r},'
        f'"event_name":"{event_name}","event_seq":"{seq.zfill(EVENT_SEQ_DIGITS)}",'
        f'"event_ts":"{event_ts}","attributes":null}}\n'
    )
    return line, order_ts


def _decode(data):
    """Base64 text -> JSON object, step by step, naming the problem."""
    if type(data) is not str:
        raise _Malformed(f"data: is {type(data).__name__}, not base64 text")
    try:
        raw = _b64decode(data, strict_mode=True)
    except ValueError as error:
        raise _Malformed(f"data: is not valid base64 ({error})") from None
    try:
        stream_record = _loads(raw)
    except (ValueError, RecursionError) as error:
        raise _Malformed(f"data: is not JSON ({type(error).__name__}: {error})") from None
    if type(stream_record) is not dict:
        raise _Malformed(f"data: is JSON {type(stream_record).__name__}, not an object")
    return stream_record


def _convert(stream_record):
    """Reference conversion of one stream record: (line, order_ts), None to drop, or raise."""
    if type(stream_record) is not dict:
        raise _Malformed(f"data: is JSON {type(stream_record).__name__}, not an object")
    source = stream_record.get("eventSource")
    if type(source) is not str:
        raise _Malformed(_absent("eventSource", source, "a string"))
    if source != EVENT_SOURCE:
        return None
    event_name = stream_record.get("eventName")
    if type(event_name) is not str:
        raise _Malformed(_absent("eventName", event_name, "a string"))
    image_name = _IMAGE.get(event_name)
    if image_name is None:
        return None
    change = stream_record.get("dynamodb")
    if type(change) is not dict:
        raise _Malformed(_absent("dynamodb", change, "an object"))
    image = change.get(image_name)
    if type(image) is not dict:
        raise _Malformed(
            _absent(f"dynamodb.{image_name}", image, f"an object (needed by {event_name})")
        )

    where = "dynamodb." + image_name + "."
    values = []
    for name in _STRINGS:
        value = _attribute(image, name, "S", where)
        if not value:
            raise _Malformed(f"{where}{name}: is empty")
        values.append(_quote(value))

    text = _attribute(image, "order_ts", "S", where)
    order_ts = _timestamp(text)
    if order_ts is None:
        raise _Malformed(
            f"{where}order_ts: is not an ISO 8601 timestamp in 1970-2999 ({text[:64]!r})"
        )

    quantity = _quantity(_attribute(image, "quantity", "N", where), where)

    text = _attribute(image, "unit_price", "N", where)
    if _NUMBER(text) is None:
        raise _Malformed(f"{where}unit_price: is not a number ({text[:64]!r})")
    price = float(text)
    if not 0.0 <= price < float("inf"):
        raise _Malformed(f"{where}unit_price: is negative or not finite ({text[:64]})")
    price += 0.0  # -0.0 -> 0.0

    seq = change.get("SequenceNumber")
    if type(seq) is not str:
        raise _Malformed(_absent("dynamodb.SequenceNumber", seq, "a string of 1-40 digits"))
    if not (seq.isdigit() and seq.isascii() and len(seq) <= EVENT_SEQ_DIGITS):
        raise _Malformed(f"dynamodb.SequenceNumber: is not 1-40 digits ({seq[:64]!r})")

    event_ts = _epoch(change.get("ApproximateCreationDateTime"))
    attributes = _other_attributes(image, where)

    line = (
        f'{{"order_id":{values[0]},"order_ts":"{order_ts}","customer_id":{values[1]},'
        f'"product_id":{values[2]},"product_name":{values[3]},"category":{values[4]},'
        f'"channel":{values[5]},"quantity":{quantity},"unit_price":{price!r},'
        f'"event_name":"{event_name}","event_seq":"{seq.zfill(EVENT_SEQ_DIGITS)}",'
        f'"event_ts":"{event_ts}","attributes":{attributes}}}\n'
    )
    return line, order_ts


def _other_attributes(image, where):
    """The image's attributes beyond the order's as the JSON literal of their AttributeValue
    JSON object text (names and values as in the image), or ``null`` when there are none."""
    if len(image) == len(_ATTRIBUTES):  # every order attribute is there: nothing else
        return "null"
    others = {name: value for name, value in image.items() if name not in _ORDER_ATTRIBUTES}
    try:
        text = _dumps(others, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity, which JSON parsers accept and JSON cannot hold
        raise _Malformed(f"{where}{', '.join(others)}: hold NaN or Infinity") from None
    return _quote(text)


def _absent(field, value, expected):
    if value is None:
        return f"{field}: is missing"
    return f"{field}: is {type(value).__name__}; expected {expected}"


def _attribute(image, name, kind, where):
    """The ``kind`` (``S`` or ``N``) text of attribute ``name``, or raise naming it."""
    value = image.get(name)
    if type(value) is dict:
        text = value.get(kind)
        if type(text) is str:
            return text
    if value is None:
        raise _Malformed(f"{where}{name}: is missing")
    found = "/".join(value) if type(value) is dict else type(value).__name__
    raise _Malformed(f"{where}{name}: has type {found}; expected {{{kind!r}: text}}")


def _quantity(text, where):
    """Quantity text as an int in 1..MAX_QUANTITY (``3.0`` and ``3E0`` are whole), or raise."""
    if _NUMBER(text) is None:
        raise _Malformed(f"{where}quantity: is not a number ({text[:64]!r})")
    number = float(text)
    if not 1 <= number <= MAX_QUANTITY:
        raise _Malformed(
            f"{where}quantity: is {text[:64]}; expected a whole number 1-{MAX_QUANTITY}"
        )
    if not number.is_integer():
        raise _Malformed(f"{where}quantity: is not a whole number ({text[:64]})")
    return int(number)


def _timestamp(text):
    """ISO 8601 text as UTC ``yyyy-MM-dd HH:mm:ss.SSS``, or None if it is not valid."""
    match = _ISO(text)
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    valid = _dates.get(day)
    if valid is None:
        valid = _check_date(day)
    if not valid:
        return None
    millis = "000" if fraction is None else (fraction + "00")[:3]
    if zone is None or zone in _ZERO_OFFSETS:
        return f"{day} {clock}.{millis}"
    sign = -1 if zone[0] == "+" else 1  # local time minus the offset is UTC
    offset = timedelta(minutes=sign * (int(zone[1:3]) * 60 + int(zone[-2:])))
    utc = datetime.fromisoformat(f"{day}T{clock}") + offset
    if not 1970 <= utc.year <= 2999:
        return None
    return f"{utc:%Y-%m-%d %H:%M:%S}.{millis}"


def _check_date(day):
    try:
        valid = 1970 <= date.fromisoformat(day).year <= 2999
    except ValueError:
        valid = False
    if len(_dates) >= _CACHE_LIMIT:
        _dates.clear()
    _dates[day] = valid
    return valid


def _epoch(value):
    """``ApproximateCreationDateTime`` (epoch seconds) as ``yyyy-MM-dd HH:mm:ss.SSS`` UTC."""
    kind = type(value)
    if kind is int:
        seconds, millis = value, 0
    elif kind is float and -1e13 < value < 1e13:  # also rejects nan and inf
        seconds, millis = divmod(round(value * 1000), 1000)
    elif value is None:
        raise _Malformed("dynamodb.ApproximateCreationDateTime: is missing")
    else:
        raise _Malformed(
            f"dynamodb.ApproximateCreationDateTime: is {kind.__name__} ({str(value)[:64]}); "
            "expected finite epoch seconds"
        )
    if not _MIN_EPOCH <= seconds < _END_EPOCH:
        raise _Malformed(
            f"dynamodb.ApproximateCreationDateTime: is out of range ({value}); "
            "expected epoch seconds in 1970-2999"
        )
    text = _seconds.get(seconds)
    if text is None:
        text = "%04d-%02d-%02d %02d:%02d:%02d" % time.gmtime(seconds)[:6]
        if len(_seconds) >= _CACHE_LIMIT:
            _seconds.clear()
        _seconds[seconds] = text
    return f"{text}.{millis:03d}"
