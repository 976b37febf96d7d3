"""The order schema: fields, their Arrow and Glue types, validation, and item conversion.

One place says what an order is. The table stores orders as DynamoDB AttributeValue JSON
(``{"quantity": {"N": "3"}}``); the lake stores the change log with the columns of
``LAKE_SCHEMA`` plus the hive partition keys ``year``, ``month`` and ``day``.

Other attributes
----------------
DynamoDB is schemaless, so an order may carry attributes beyond ``ORDER_FIELDS`` (another
producer's ``gift_wrap``, or one given to ``orders.put``). None is dropped: the table keeps them
as attributes of the item, ``orders.get``/``scan`` return them beside the order's fields, an
update keeps them, and the lake's ``attributes`` column holds them as one JSON object in
AttributeValue JSON (``{"gift_wrap":{"BOOL":true}}``, NULL when there are none), which SQL reads
with ``json_extract_scalar(attributes, '$.gift_wrap.BOOL')``. Values given to the door map as
boto3's serializer maps them: text to ``S``, numbers to ``N`` (38 significant digits at most,
magnitudes 1E-130 to 1E+126), bool to ``BOOL``, bytes to ``B``, mappings to ``M``, lists and
tuples to ``L``, sets to ``SS``/``NS``/``BS`` and None inside them to ``NULL``; a missing value
(None or NaN, as pandas fills a column some orders lack) means the order has no such attribute.

Examples
--------
>>> orders = validated_table([{"order_id": "o-1", "order_ts": "2026-01-05T10:00:00Z",
...     "customer_id": "c-1", "product_id": "p-1", "product_name": "Teal Lamp",
...     "category": "home", "channel": "web", "quantity": 2, "unit_price": 9.5}])
>>> items_json(orders)[0][0][-46:]
'"quantity":{"N":"2"},"unit_price":{"N":"9.5"}}'
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from helpers.exceptions import InvalidOrderError

if TYPE_CHECKING:  # imported where validation needs it: the pipe's and the delivery's
    import pandas as pd  # runtime processes use this module and start without pandas

KEY = "order_id"
MAX_KEY_CHARACTERS = 256
"""The longest ``order_id``: the pipe keys the Kinesis stream by it, and Kinesis partition keys
hold 256 characters (DynamoDB's own limit, 2048 bytes, is looser)."""
MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item size limit: attribute names and values together, UTF-8."""
STRING_FIELDS = ("order_id", "customer_id", "product_id", "product_name", "category", "channel")
ORDER_FIELDS: dict[str, str] = {
    "order_id": "string",
    "order_ts": "timestamp",
    "customer_id": "string",
    "product_id": "string",
    "product_name": "string",
    "category": "string",
    "channel": "string",
    "quantity": "int",
    "unit_price": "double",
}
EVENT_FIELDS: dict[str, str] = {
    "event_name": "string",
    "event_seq": "string",
    "event_ts": "timestamp",
}
ATTRIBUTES = "attributes"
"""The lake column holding an order's other attributes (see the module docstring)."""
LAKE_FIELDS: dict[str, str] = {**ORDER_FIELDS, **EVENT_FIELDS, ATTRIBUTES: "string"}
PARTITION_KEYS = ("year", "month", "day")
EVENT_SEQ_DIGITS = 40

_ARROW_TYPES = {
    "string": pa.string(),
    "timestamp": pa.timestamp("ms"),
    "int": pa.int32(),
    "double": pa.float64(),
}
ORDER_SCHEMA = pa.schema(
    [pa.field(name, _ARROW_TYPES[kind]) for name, kind in ORDER_FIELDS.items()]
).set(1, pa.field("order_ts", pa.timestamp("ms", tz="UTC")))
"""Arrow schema of validated orders (int64 and float64 as pandas gives them)."""
ORDER_SCHEMA = ORDER_SCHEMA.set(7, pa.field("quantity", pa.int64()))
LAKE_SCHEMA = pa.schema([pa.field(name, _ARROW_TYPES[kind]) for name, kind in LAKE_FIELDS.items()])
"""Arrow schema of the lake's Parquet objects (partition keys live in the object key)."""


def glue_columns() -> list[dict[str, str]]:
    """The lake columns as Glue ``Columns`` (``Name``/``Type``), in file order."""
    return [{"Name": name, "Type": kind} for name, kind in LAKE_FIELDS.items()]


def glue_partition_keys() -> list[dict[str, str]]:
    """The hive partition keys as Glue ``PartitionKeys``."""
    return [{"Name": name, "Type": "string"} for name in PARTITION_KEYS]


def _as_frame(records: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(records, pd.DataFrame):
        return records.reset_index(drop=True)
    if isinstance(records, Mapping):
        records = [records]
    records = list(records)
    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidOrderError(
                "<record>",
                f"is a {type(record).__name__}, not a mapping",
                "pass dicts or a pandas DataFrame",
                f"record {position}",
            )
    if not records:
        return pd.DataFrame(columns=list(ORDER_FIELDS))
    frame = pd.DataFrame.from_records(records)
    for name in frame.columns:
        if name not in ORDER_FIELDS:  # as given: pandas would make [5, missing] [5.0, NaN]
            frame[name] = pd.Series([record.get(name) for record in records], dtype=object)
    return frame


def _where(frame: pd.DataFrame, row: int) -> str:
    order_id = frame[KEY].iloc[row] if KEY in frame else None
    return f"order {order_id!r}" if isinstance(order_id, str) and order_id else f"record {row}"


def _first_bad(frame: pd.DataFrame, bad: np.ndarray, field: str, problem, fix: str) -> None:
    """Raise for the first row flagged in ``bad``; ``problem`` formats that row's value."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = frame[field].iloc[row] if field in frame else None
        if isinstance(value, np.generic):
            value = value.item()
        raise InvalidOrderError(field, problem(value), fix, _where(frame, row))


def is_missing(value: Any) -> bool:
    """Whether a value stands for no value: None, NaT or NaN (how pandas fills a gap)."""
    import pandas as pd

    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _describe(value: Any) -> str:
    if isinstance(value, float | np.floating) and math.isnan(value):
        return "is missing or NaN (no number)"  # pandas reads a missing number as NaN
    if is_missing(value):
        return "is missing"
    return f"has type {type(value).__name__} ({value!r})"


def validate_orders(records: Any) -> pd.DataFrame:
    """Check and normalise orders; raise :class:`InvalidOrderError` naming the order and field.

    ``records`` is a DataFrame, a dict, or dicts. Returns a DataFrame with the columns of
    ``ORDER_FIELDS`` in order: strings, ``order_ts`` as UTC ``datetime64[ms]``, ``quantity`` as
    int64 and ``unit_price`` as float64, then, when some order has other attributes,
    ``attributes``: each order's as the lake holds them (AttributeValue JSON text, or None).
    Naive timestamps are taken as UTC.
    """
    return validated_table(records).to_pandas()


def validated_table(records: Any) -> pa.Table:
    """:func:`validate_orders` as an Arrow table, the form the table writes take."""
    frame = _as_frame(records)
    for name in ORDER_FIELDS:
        if name not in frame:
            raise InvalidOrderError(name, "is missing", "give every order field", _where(frame, 0))
    if frame.empty:
        return ORDER_SCHEMA.empty_table()
    arrays = [_strings(frame, name) for name in STRING_FIELDS]
    long_keys = pc.greater(pc.utf8_length(arrays[0]), MAX_KEY_CHARACTERS)
    _first_bad(
        frame,
        long_keys.to_numpy(zero_copy_only=False),
        KEY,
        lambda v: f"has {len(v)} characters",
        f"use at most {MAX_KEY_CHARACTERS}: the pipe keys the Kinesis stream by it, and"
        f" Kinesis partition keys hold {MAX_KEY_CHARACTERS}",
    )
    arrays.insert(1, pa.array(_timestamps(frame), ORDER_SCHEMA.field("order_ts").type))
    arrays.append(pa.array(_quantities(frame), pa.int64()))
    arrays.append(pa.array(_prices(frame), pa.float64()))
    table = pa.Table.from_arrays(arrays, schema=ORDER_SCHEMA)
    others = [name for name in frame.columns if name not in ORDER_FIELDS]
    if others:
        table = table.append_column(ATTRIBUTES, _other_attributes(frame, others))
    sizes = item_sizes(table)
    if (sizes > MAX_ITEM_BYTES).any():
        row = int(np.flatnonzero(sizes > MAX_ITEM_BYTES)[0])
        sizes_by_name = {name: len(str(table[name][row]).encode()) for name in STRING_FIELDS}
        if ATTRIBUTES in table.column_names and table[ATTRIBUTES][row].is_valid:
            others = json.loads(table[ATTRIBUTES][row].as_py())
            sizes_by_name.update({name: _value_size(value) for name, value in others.items()})
        longest = max(sizes_by_name, key=sizes_by_name.get)
        raise InvalidOrderError(
            longest,
            f"makes the item {int(sizes[row]):,} bytes",
            f"shorten it: DynamoDB items hold at most {MAX_ITEM_BYTES:,} bytes, names and"
            " values together",
            _where(frame, row),
        )
    return table


def _other_attributes(frame: pd.DataFrame, names: list[Any]) -> pa.Array:
    """Each order's other attributes as the text of their AttributeValue JSON object (None when
    it has none), in column order; raise naming the first bad name or value."""
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidOrderError(
                str(name),
                "is not an attribute name",
                "name attributes with non-empty strings",
                _where(frame, 0),
            )
    columns = [frame[name].tolist() for name in names]
    texts = []
    for row, values in enumerate(zip(*columns, strict=True)):
        parts = []
        for name, value in zip(names, values, strict=True):
            if is_missing(value):
                continue
            try:
                parts.append(f"{json.dumps(name)}:{attribute_value(value)}")
            except (TypeError, ValueError) as problem:
                raise InvalidOrderError(
                    name,
                    str(problem),
                    "give text, a number, a bool, bytes, or a list, set or mapping of them",
                    _where(frame, row),
                ) from None
        texts.append("{" + ",".join(parts) + "}" if parts else None)
    return pa.array(texts, pa.string())


def attribute_value(value: Any) -> str:
    """A plain value as DynamoDB AttributeValue JSON text, as boto3's serializer maps it.

    Raises TypeError or ValueError saying why a value cannot be stored.

    Examples
    --------
    >>> attribute_value({"wrap": True, "notes": ["red", 2]})
    '{"M":{"wrap":{"BOOL":true},"notes":{"L":[{"S":"red"},{"N":"2"}]}}}'
    """
    if value is None:
        return '{"NULL":true}'
    if isinstance(value, bool | np.bool_):
        return '{"BOOL":true}' if value else '{"BOOL":false}'
    if isinstance(value, str):
        return '{"S":' + json.dumps(value) + "}"
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        return '{"N":"' + _number_text(value) + '"}'
    if isinstance(value, bytes | bytearray):
        return '{"B":"' + base64.b64encode(value).decode() + '"}'
    if isinstance(value, Mapping):
        if not all(isinstance(name, str) for name in value):
            raise TypeError("is a mapping with a name that is not text")
        inner = ",".join(f"{json.dumps(name)}:{attribute_value(v)}" for name, v in value.items())
        return '{"M":{' + inner + "}}"
    if isinstance(value, list | tuple):
        return '{"L":[' + ",".join(attribute_value(element) for element in value) + "]}"
    if isinstance(value, set | frozenset):
        return _set_value(value)
    raise TypeError(f"has type {type(value).__name__}, which DynamoDB cannot store")


def _set_value(members: set | frozenset) -> str:
    if members and all(isinstance(member, str) for member in members):
        return '{"SS":' + json.dumps(sorted(members)) + "}"
    if members and all(isinstance(member, bytes) for member in members):
        return '{"BS":' + json.dumps([base64.b64encode(m).decode() for m in sorted(members)]) + "}"
    numbers = (int, float, Decimal, np.integer, np.floating)
    if members and all(isinstance(m, numbers) and not isinstance(m, bool) for m in members):
        return '{"NS":' + json.dumps(sorted(_number_text(m) for m in members)) + "}"
    raise ValueError("is an empty set or one of mixed types; DynamoDB sets hold one type, 1+")


def _number_text(value: Any) -> str:
    """A number's text for ``N``, within DynamoDB's precision and range, or raise."""
    if isinstance(value, float | np.floating):  # a whole float as DynamoDB keeps it: 5, not 5.0
        whole = float(value).is_integer() and abs(value) < 2**53
        text = str(int(value)) if whole else str(Decimal(repr(float(value))))
    else:
        text = str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"is not a number ({text!r})") from None
    if not number.is_finite():
        raise ValueError(f"is not finite ({text})")
    significant = "".join(map(str, number.as_tuple().digits)).strip("0")
    if len(significant) > 38:
        raise ValueError(f"has more than 38 significant digits ({text})")
    if number and not -130 <= number.adjusted() <= 125:
        raise ValueError(f"is out of DynamoDB's range 1E-130 to 9.99E+125 ({text})")
    return text


def _strings(frame: pd.DataFrame, name: str) -> pa.Array:
    fix = "give a non-empty string"
    values = frame[name].to_numpy(dtype=object)
    try:
        array = pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        array = None
    if array is None or array.null_count:
        is_text = np.fromiter((isinstance(value, str) for value in values), bool, len(values))
        _first_bad(frame, ~is_text, name, _describe, fix)
    empty = pc.equal(pc.utf8_trim_whitespace(array), "").to_numpy(zero_copy_only=False)
    _first_bad(frame, empty, name, lambda _: "is empty", fix)
    return array


def _timestamps(frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    column = frame["order_ts"]
    fix = "use ISO 8601 UTC, e.g. '2026-01-05T10:00:00Z'"
    if pd.api.types.is_bool_dtype(column):
        _first_bad(frame, np.ones(len(column), bool), "order_ts", _describe, fix)
    if pd.api.types.is_numeric_dtype(column):
        parsed = pd.to_datetime(column, unit="s", utc=True, errors="coerce")
    elif isinstance(column.dtype, pd.DatetimeTZDtype):
        parsed = column.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(column):
        parsed = column.dt.tz_localize("UTC")
    else:
        kinds = column.map(type)
        odd = ~kinds.isin((str, datetime, pd.Timestamp)).to_numpy()
        _first_bad(frame, odd, "order_ts", _describe, fix)
        parsed = pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns, UTC]")
        for kind in (str, datetime, pd.Timestamp):
            chosen = (kinds == kind).to_numpy()
            if chosen.any():
                values = column[chosen]
                try:
                    converted = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
                except (ValueError, TypeError):
                    converted = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
                parsed[chosen] = converted
    bad = parsed.isna().to_numpy()
    out_of_range = "use years 1970-2261"  # pandas holds timestamps to 2262-04-11
    if bad.any() and _beyond_nanoseconds(column.iloc[int(np.flatnonzero(bad)[0])]):
        _first_bad(frame, bad, "order_ts", lambda v: f"is out of range ({v!r})", out_of_range)
    _first_bad(
        frame,
        bad,
        "order_ts",
        lambda v: _describe(v) if is_missing(v) else f"is not a timestamp ({v!r})",
        fix,
    )
    years = parsed.dt.year.to_numpy()
    _first_bad(
        frame,
        (years < 1970) | (years > 2261),
        "order_ts",
        lambda v: f"is out of range ({v!r})",
        out_of_range,
    )
    return parsed.dt.floor("ms").astype("datetime64[ms, UTC]")


def _beyond_nanoseconds(value: Any) -> bool:
    """Whether a value pandas could not read as a timestamp is one all the same, beyond its
    nanosecond range (ISO text or a datetime in year 2300, epoch seconds of 1e12)."""
    if isinstance(value, datetime):
        return True
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    number = isinstance(value, int | float | np.integer | np.floating)
    return number and not isinstance(value, bool) and math.isfinite(value)


def _numbers(frame: pd.DataFrame, name: str, fix: str) -> np.ndarray:
    import pandas as pd

    column = frame[name]
    if pd.api.types.is_bool_dtype(column):
        _first_bad(frame, np.ones(len(column), bool), name, _describe, fix)
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        is_number = column.map(
            lambda v: (
                isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            )
        ).to_numpy()
        _first_bad(frame, ~is_number, name, _describe, fix)
        values = column.to_numpy(dtype=float)
    _first_bad(frame, np.isnan(values), name, _describe, fix)
    return values


def _quantities(frame: pd.DataFrame) -> np.ndarray:
    fix = "give a whole number of units, 1 or more (cancel an order with orders.delete)"
    values = _numbers(frame, "quantity", fix)
    _first_bad(
        frame, values != np.floor(values), "quantity", lambda v: f"is not whole ({v!r})", fix
    )
    _first_bad(frame, values < 1, "quantity", lambda v: f"is {v!r}", fix)
    _first_bad(frame, values > 2**31 - 1, "quantity", lambda v: f"is too large ({v!r})", fix)
    return values.astype(np.int64)


def _prices(frame: pd.DataFrame) -> np.ndarray:
    fix = "give a finite price of 0 or more"
    values = _numbers(frame, "unit_price", fix)
    _first_bad(frame, ~np.isfinite(values), "unit_price", lambda v: f"is not finite ({v!r})", fix)
    _first_bad(frame, values < 0, "unit_price", lambda v: f"is negative ({v!r})", fix)
    return values + 0.0


def items_json(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """Validated orders (:func:`validated_table`) as DynamoDB items in AttributeValue JSON
    text, and their item sizes.

    Built column-wise with Arrow compute, so writing a million orders costs seconds, not minutes.
    """
    pieces: list[Any] = []
    for position, name in enumerate(ORDER_FIELDS):
        opening = ("{" if position == 0 else ",") + f'"{name}":'
        column = table[name]
        if name == "order_ts":
            pieces += [opening + '{"S":"', _iso_text(column), 'Z"}']
        elif name in STRING_FIELDS:
            pieces += [opening + '{"S":"', _json_escape(column), '"}']
        else:
            pieces += [opening + '{"N":"', pc.cast(column, pa.string()), '"}']
    if ATTRIBUTES in table.column_names:  # ',' and the inside of the object, or nothing
        inner = pc.utf8_slice_codeunits(table[ATTRIBUTES], 1, -1)
        pieces.append(pc.fill_null(pc.binary_join_element_wise(",", inner, ""), ""))
    pieces.append("}")
    joined = pc.binary_join_element_wise(*pieces, "")
    return joined.to_pylist(), item_sizes(table)


def item_sizes(table: pa.Table) -> np.ndarray:
    """DynamoDB's size of each order's item (:func:`item_size`, column-wise): names plus
    values, strings in UTF-8 bytes, numbers by their digits."""
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for name in ORDER_FIELDS:
        column = table[name]
        if name == "order_ts":
            sizes += pc.binary_length(_iso_text(column)).to_numpy() + 1  # and the 'Z'
        elif name in STRING_FIELDS:
            sizes += pc.binary_length(column).to_numpy()
        else:
            text = pc.cast(column, pa.string())
            sizes += (pc.utf8_length(text).to_numpy() + 1) // 2 + 1
        sizes += len(name)
    if ATTRIBUTES in table.column_names:
        for row, text in enumerate(table[ATTRIBUTES].to_pylist()):
            if text is not None:
                sizes[row] += item_size(json.loads(text))
    return sizes


def _iso_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO text of the UTC wall clock, without the 'Z' (a cast is ~10x strftime)."""
    text = pc.cast(pc.cast(column, pa.timestamp("ms")), pa.string())
    return pc.replace_substring(text, " ", "T", max_replacements=1)


def _json_escape(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON string contents: backslash and quote escaped; control characters via json."""
    if not pc.any(pc.match_substring_regex(column, r'[\x00-\x1f\x7f"\\]')).as_py():
        return column  # the usual case: nothing to escape
    if pc.any(pc.match_substring_regex(column, r"[\x00-\x1f\x7f]")).as_py():
        return pa.chunked_array(
            [pa.array([json.dumps(v, ensure_ascii=False)[1:-1] for v in column.to_pylist()])]
        )
    escaped = pc.replace_substring(column, "\\", "\\\\")
    return pc.replace_substring(escaped, '"', '\\"')


_TEXT_FIELDS = tuple(name for name, kind in ORDER_FIELDS.items() if kind == "string")


def item_to_order(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A DynamoDB item (AttributeValue JSON) back to an order dict.

    An item another writer put in another shape (DynamoDB is schemaless) comes back as it
    is: a field it lacks is None, a value of another type is its plain value, and attributes
    beyond the order's fields follow them. An item of the order's own shape, nearly every
    one, takes a direct path three times faster (a scan of a million orders).
    """
    if len(item) == len(ORDER_FIELDS):
        try:
            order = {name: item[name]["S"] for name in _TEXT_FIELDS}
            ts, quantity = item["order_ts"]["S"], float(item["quantity"]["N"])
            order["order_ts"] = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            order["quantity"] = int(quantity) if quantity.is_integer() else quantity
            order["unit_price"] = float(item["unit_price"]["N"])
            return {name: order[name] for name in ORDER_FIELDS}
        except (KeyError, TypeError, ValueError):
            pass  # another shape: read as any item is
    return _any_item_to_order(item)


def _any_item_to_order(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """:func:`item_to_order` of an item of any shape."""
    plain = {name: _plain(value) for name, value in item.items()}
    order: dict[str, Any] = {name: plain.pop(name, None) for name in ORDER_FIELDS}
    kinds = {name: next(iter(item[name])) for name in ORDER_FIELDS if name in item}
    if kinds.get("order_ts") == "S":
        with contextlib.suppress(ValueError):  # not a timestamp's text: the text, as it is
            order["order_ts"] = datetime.fromisoformat(order["order_ts"].replace("Z", "+00:00"))
    for name, number in (("quantity", int), ("unit_price", float)):
        if kinds.get(name) == "N":
            value = float(order[name])
            order[name] = int(value) if number is int and value.is_integer() else value
    return {**order, **plain}


def _plain(value: Mapping[str, Any]) -> Any:
    """An AttributeValue as a plain value, as boto3's deserializer gives it (numbers as int or
    Decimal, binary as bytes, sets as sets), so that writing it back stores the same value."""
    (kind, inner), *_ = value.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return _number(inner)
    if kind == "B":
        return base64.b64decode(inner)
    if kind == "L":
        return [_plain(element) for element in inner]
    if kind == "M":
        return {name: _plain(element) for name, element in inner.items()}
    if kind == "SS":
        return set(inner)
    if kind == "NS":
        return {_number(text) for text in inner}
    if kind == "BS":
        return {base64.b64decode(text) for text in inner}
    return inner


def _number(text: str) -> int | Decimal:
    return int(text) if text.lstrip("-").isdigit() else Decimal(text)


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Approximate DynamoDB item size in bytes: attribute names plus values, UTF-8.

    Follows DynamoDB's rules: strings by their UTF-8 bytes, numbers about one byte per two
    digits plus one, binary by its bytes, BOOL and NULL one byte, lists and maps 3 bytes
    plus one per element and their contents.
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return (len(inner) + 1) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(n.encode()) + _value_size(v) for n, v in inner.items())
    return sum(_value_size({kind[0]: member}) for member in inner)  # SS, NS, BS
