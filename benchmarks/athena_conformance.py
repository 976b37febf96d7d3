"""How far the local Athena answers as Athena (Trino) does: a conformance report.

The cases are the project's own, in ``tests/athena/conformance/*.yaml`` (one file per group):
each is an Athena SQL expression (run as ``SELECT <expr>``) or a small query over inline
VALUES, with the answer Trino gives and where that fact comes from (a page of the Trino
documentation or a test of trinodb/trino). Every case runs through the real local engine
(``platform.query``), and its outcome falls in one of four classes:

- **agree**: the same value (and the same type, where the case names one: checked with
  ``typeof``), the same column names where the case gives them, or the same error name where
  Trino fails;
- **silent**: a different answer and no error, the worst kind: nothing tells the user, and a
  forecast built on it is wrong (an answer where Trino fails is silent too);
- **refused**: an error where Trino answers; the user knows, and can rewrite the query.
  Counted apart: *unnamed* refusals, where the engine crashed instead of naming an Athena
  error (anything but a ``QueryError``);
- **wrong error**: Trino fails too, but under another error name.

Values are compared after normalising what the engine returns (a pandas frame) to plain
Python: lists for arrays, dicts for maps, tuples for rows, ``Decimal`` for decimals (value and
scale), ``date``, ``datetime`` (naive for ``timestamp``; ``Zoned``, the wall clock and zone,
for ``timestamp with time zone``), ``timedelta`` for day-to-second intervals. NULL and NaN
are told apart from the result's CSV (Athena's output: a NULL is an empty unquoted field);
a column of integers that holds a NULL arrives as floats in pandas, and is read back as
integers. Doubles agree within a relative 1e-12. Types compare as ``typeof`` spells them,
ignoring case and blanks (so that ``decimal(5, 1)`` and ``DECIMAL(5,1)`` are one type);
cases whose value *is* a ``typeof`` compare its exact text.

Run: ``python -m benchmarks.athena_conformance [--json out.json] [--write-known]``; the last
rewrites ``tests/athena/conformance/known_disagreements.txt``, the list that lets today's
disagreements pass CI as expected failures (see ``tests/athena/test_conformance.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import tempfile
import time as clock
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import helpers
from helpers.config import PROJECT_ROOT
from helpers.exceptions import QueryError

CASES_DIR = PROJECT_ROOT / "tests" / "athena" / "conformance"
KNOWN_PATH = CASES_DIR / "known_disagreements.txt"
AGREE, SILENT, REFUSED, WRONG_ERROR = "agree", "silent", "refused", "wrong_error"
OUTCOMES = (AGREE, SILENT, REFUSED, WRONG_ERROR)
GROUP_ORDER = (
    "arithmetic",
    "dates",
    "strings",
    "collections",
    "results",
    "aggregates",
    "windows",
    "nulls",
)
_MISSING = object()
_TYPE_ONLY = "typeof says "  # the shape of a miss in the type alone (the value agrees)


# expected values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlType:
    """A Trino type parsed from its name: ``decimal(5,2)``, ``array(row(x integer))``..."""

    name: str
    params: tuple = ()


_TYPE_HEADS = {
    "array",
    "bigint",
    "boolean",
    "char",
    "date",
    "decimal",
    "double",
    "integer",
    "interval",
    "json",
    "map",
    "real",
    "row",
    "smallint",
    "time",
    "timestamp",
    "tinyint",
    "unknown",
    "uuid",
    "varbinary",
    "varchar",
}


def parse_type(text: str) -> SqlType:
    """The type named ``text`` (Trino's spelling, as ``typeof`` gives it)."""
    text = " ".join(text.strip().lower().split())
    head = re.match(r"[a-z_]+", text)
    if head is None:
        raise ValueError(f"not a type: {text!r}")
    rest, inner = text[head.end() :], None
    if rest.startswith("("):
        end = _closing(rest)
        inner, rest = rest[1:end], rest[end + 1 :]
    name = f"{head.group(0)} {rest.strip()}".strip()
    args = _split_top_level(inner) if inner else []
    if name == "array":
        return SqlType(name, (parse_type(args[0]),))
    if name == "map":
        return SqlType(name, (parse_type(args[0]), parse_type(args[1])))
    if name == "row":
        return SqlType(name, tuple(_row_field(arg) for arg in args))
    return SqlType(name, tuple(int(arg) for arg in args))


def _closing(text: str) -> int:
    """The index of the parenthesis that closes the one ``text`` starts with."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def _row_field(text: str) -> tuple[str | None, SqlType]:
    named = re.match(r'^"?([a-z_][a-z0-9_]*)"?\s+(.+)$', text)
    if named and named.group(1) not in _TYPE_HEADS:
        return named.group(1), parse_type(named.group(2))
    return None, parse_type(text)


@dataclass(frozen=True)
class Zoned:
    """A ``timestamp with time zone``: its wall clock in its zone, and the zone's name."""

    wall: datetime
    zone: str

    @classmethod
    def parse(cls, text: str) -> Zoned:
        stamp, zone = text.rsplit(" ", 1)
        return cls(datetime.fromisoformat(stamp), zone_name(zone))

    def __str__(self) -> str:
        return f"{self.wall.isoformat(sep=' ')} {self.zone}"


@dataclass(frozen=True)
class YearMonth:
    """An ``interval year to month``, as its months."""

    months: int

    @classmethod
    def parse(cls, text: str) -> YearMonth:
        sign = -1 if text.startswith("-") else 1
        years, months = text.lstrip("-").split("-")
        return cls(sign * (12 * int(years) + int(months)))


def zone_name(zone: str) -> str:
    """Trino's name of a zone: ``UTC`` for every alias of UTC, ``+05:00`` for offsets."""
    if zone.upper() in {"UTC", "Z", "GMT", "UT", "ETC/UTC", "ETC/GMT", "+00:00", "UTC+00:00"}:
        return "UTC"
    return zone


def _day_time(text: str) -> timedelta:
    sign = -1 if text.startswith("-") else 1
    days, clock_text = text.lstrip("-").split(" ")
    hours, minutes, seconds = clock_text.split(":")
    return sign * timedelta(
        days=int(days), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
    )


def _float(value: Any) -> float:
    named = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}
    return named[value.lower()] if isinstance(value, str) else float(value)


def typed(value: Any, kind: SqlType) -> Any:
    """The Python value that stands for ``value`` (as written in a case) of type ``kind``."""
    if value is None:
        return None
    name = kind.name
    if name in {"tinyint", "smallint", "integer", "bigint"}:
        return int(value)
    if name in {"double", "real"}:
        return _float(value)
    if name == "decimal":
        return Decimal(str(value))
    if name in {"varchar", "char", "json", "uuid", "ipaddress"}:
        return str(value)
    if name == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a boolean")
        return value
    if name == "date":
        return date.fromisoformat(value)
    if name == "timestamp":
        return datetime.fromisoformat(value)
    if name == "timestamp with time zone":
        return Zoned.parse(value)
    if name in {"time", "time with time zone"}:
        return time.fromisoformat(value)
    if name == "interval day to second":
        return _day_time(value)
    if name == "interval year to month":
        return YearMonth.parse(value)
    if name == "varbinary":
        return bytes.fromhex(value)
    if name == "array":
        return [typed(item, kind.params[0]) for item in value]
    if name == "map":
        pairs = value.items() if isinstance(value, dict) else value
        return {typed(k, kind.params[0]): typed(v, kind.params[1]) for k, v in pairs}
    if name == "row":
        return tuple(typed(item, f) for item, (_, f) in zip(value, kind.params, strict=True))
    if name == "unknown":
        return None
    raise ValueError(f"no Python form for type {name}")


def inferred(value: Any) -> Any:
    """A value written without a type: YAML's own (lists stay lists)."""
    if isinstance(value, list):
        return [inferred(item) for item in value]
    if isinstance(value, dict):
        raise ValueError("a map needs its type: write {value: ..., type: map(...)}")
    return value


# cases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fact about Trino: ``sql`` (an expression, or a query) and what Trino answers.

    ``rows`` is the expected result (an expression gives one row of one column), ``types``
    the Trino types the columns must have (``typeof``; None where not checked), ``error`` the
    error name where Trino fails instead.
    """

    id: str
    group: str
    sql: str
    source: str
    query: bool
    rows: list | None = None
    columns: list | None = None
    types: list | None = None
    error: str | None = None
    ordered: bool = False
    note: str = ""


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: ``2001-08-22`` stays the text the case wrote."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of the group files, in group then file order."""
    cases = []
    for path in sorted(directory.glob("*.yaml"), key=_group_rank):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        for raw in document["cases"]:
            cases.append(_case(document["group"], raw))
    return cases


def _group_rank(path: Path) -> tuple[int, str]:
    rank = GROUP_ORDER.index(path.stem) if path.stem in GROUP_ORDER else len(GROUP_ORDER)
    return rank, path.stem


def _case(group: str, raw: dict) -> Case:
    sql = raw["sql"].strip()
    query = bool(re.match(r"(?is)^\s*(select|with|values)\b", sql))
    expected = raw["expected"]
    base = {
        "id": f"{group}.{raw['id']}",
        "group": group,
        "sql": sql,
        "source": raw.get("source", ""),
        "query": query,
        "note": raw.get("note", ""),
    }
    if isinstance(expected, dict) and "error" in expected:
        return Case(**base, error=expected["error"])
    if query:
        if not isinstance(expected, dict) or "rows" not in expected:
            raise ValueError(f"{base['id']}: a query expects {{rows: [...]}}")
        types, readings = expected.get("types"), expected.get("as")
        width = _width(expected["rows"])
        kinds = [
            _kind((types or [None] * width)[i] or (readings or [None] * width)[i])
            for i in range(width)
        ]
        rows = [
            [_value(value, kind) for value, kind in zip(row, kinds, strict=True)]
            for row in expected["rows"]
        ]
        return Case(
            **base,
            rows=rows,
            columns=expected.get("columns"),
            types=types,
            ordered=expected.get("ordered", False),
        )
    if isinstance(expected, dict) and "value" in expected:
        asserted = expected.get("type")
        kind = _kind(asserted or expected.get("as"))
        return Case(
            **base,
            rows=[[_value(expected["value"], kind)]],
            types=[asserted] if asserted else None,
        )
    return Case(**base, rows=[[inferred(expected)]])


def _width(rows: list) -> int:
    return len(rows[0]) if rows else 0


def _kind(name: str | None) -> SqlType | None:
    return parse_type(name) if name else None


def _value(value: Any, kind: SqlType | None) -> Any:
    return inferred(value) if kind is None else typed(value, kind)


def load_known(path: Path = KNOWN_PATH) -> dict[str, str]:
    """The listed disagreements: case id -> outcome class."""
    known = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                case_id, outcome = line.split()
                known[case_id] = outcome
    return known


def write_known(outcomes: Iterable[Outcome], path: Path = KNOWN_PATH) -> int:
    """Rewrite the list from a run; returns how many cases it lists."""
    lines = [
        "# Conformance cases the local engine does not yet answer as Trino does (case id, then",
        "# outcome: silent | refused | wrong_error). They run as expected failures; a listed case",
        "# that starts to agree fails, so that the list only shrinks. Regenerate with",
        "#   python -m benchmarks.athena_conformance --write-known",
    ]
    listed = [f"{o.case.id} {o.kind}" for o in outcomes if o.kind != AGREE]
    path.write_text("\n".join(lines + listed) + "\n", encoding="utf-8")
    return len(listed)


# running ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How the engine answered a case: the class, what it said, and the shape of the miss."""

    case: Case
    kind: str
    detail: str = ""
    shape: str = ""
    error: str | None = None
    named: bool = True
    seconds: float = 0.0


def run_case(platform, case: Case) -> Outcome:
    """Run one case through ``platform.query`` and classify the answer."""
    start = clock.perf_counter()
    outcome = _run(platform, case)
    outcome.seconds = clock.perf_counter() - start
    return outcome


def _run(platform, case: Case) -> Outcome:
    sql = case.sql if case.query else f"SELECT {case.sql}"
    try:
        frame = platform.query(sql)
    except Exception as error:  # the engine may fail in any way; that is the finding
        return _on_error(case, error)
    try:
        rows = _frame_rows(platform, frame, case)
    except Exception as error:
        return Outcome(case, REFUSED, f"result unreadable: {error!r}", "result unreadable")
    if case.error:
        return Outcome(
            case,
            SILENT,
            f"answered {_show(rows)} where Trino fails with {case.error}",
            f"answers where Trino fails with {case.error}",
        )
    problem = _compare(case, frame, rows)
    if problem:
        return Outcome(case, SILENT, *problem)
    if case.types:
        return _check_types(platform, case)
    return Outcome(case, AGREE)


def _on_error(case: Case, error: Exception) -> Outcome:
    named = isinstance(error, QueryError)
    name = error.code if named else type(error).__name__
    message = (str(error).strip().splitlines() or [""])[0][:300]
    if case.error is None:
        return Outcome(case, REFUSED, message, _error_shape(name, message), name, named)
    if name == case.error:
        return Outcome(case, AGREE, error=name, named=named)
    return Outcome(
        case,
        WRONG_ERROR,
        f"{message} (Trino: {case.error})",
        f"{name} where Trino fails with {case.error}",
        name,
        named,
    )


def _error_shape(name: str, message: str) -> str:
    """The message with its particulars (quoted names, numbers) masked, to count kinds."""
    shape = re.sub(rf"^{re.escape(name)}: ", "", message)
    shape = re.sub(r"line \d+:\d+: ", "", shape)
    shape = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", shape)
    shape = re.sub(r"\d+", "N", shape)
    return f"{name}: {shape[:90]}"


def _frame_rows(platform, frame: pd.DataFrame, case: Case) -> list[list]:
    """The frame's cells as plain Python values, NULLs as None (from the result's CSV)."""
    nulls = _null_mask(platform, frame)
    hints = _column_hints(case, frame.shape[1])
    columns = []
    for index in range(frame.shape[1]):
        values = frame.iloc[:, index].tolist()
        if nulls is not None:
            values = [None if nulls[r][index] else v for r, v in enumerate(values)]
        else:
            values = [None if _is_na(v) else v for v in values]
        column = [normalize(v, hints[index]) for v in values]
        if (
            str(frame.dtypes.iloc[index]) == "float64"
            and any(v is None for v in column)
            and _expects_integers(case, index)
        ):
            column = [int(v) if isinstance(v, float) and v.is_integer() else v for v in column]
        columns.append(column)
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _is_na(value: Any) -> bool:
    try:
        return value is None or value is pd.NaT or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _column_hints(case: Case, width: int) -> list:
    hints = [_MISSING] * width
    for row in case.rows or []:
        for index, value in enumerate(row[:width]):
            if hints[index] is _MISSING and value is not None:
                hints[index] = value
    return hints


def _expects_integers(case: Case, index: int) -> bool:
    values = [row[index] for row in case.rows or [] if index < len(row)]
    return any(isinstance(v, int) and not isinstance(v, bool) for v in values) and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values
    )


def _null_mask(platform, frame: pd.DataFrame) -> list[list[bool]] | None:
    """Which cells are NULL, from the CSV the query left at its output location."""
    location = frame.attrs.get("output_location", "")
    bucket = getattr(platform, "bucket", None)
    if not location.startswith("s3://") or bucket is None:
        return None
    key = location.split("/", 3)[3]
    try:
        text = bucket.get_object(key).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None
    mask = csv_null_mask(text)
    if len(mask) != len(frame) or any(len(row) != frame.shape[1] for row in mask):
        return None
    return mask


def csv_null_mask(text: str) -> list[list[bool]]:
    """For each data row of a CSV whose values are all quoted, which fields are NULL (empty
    and unquoted), skipping the header."""
    rows, row, index, size = [], [], 0, len(text)
    while index < size:
        if text[index] == '"':
            index += 1
            while True:
                end = text.index('"', index)
                if end + 1 < size and text[end + 1] == '"':
                    index = end + 2
                    continue
                index = end + 1
                break
            row.append(False)
        else:
            end = index
            while end < size and text[end] not in ",\r\n":
                end += 1
            row.append(end == index)
            index = end
        if index < size and text[index] == ",":
            index += 1
            if index >= size or text[index] in "\r\n":
                row.append(True)
            else:
                continue
        if index < size and text[index] == "\r":
            index += 1
        if index < size and text[index] == "\n":
            index += 1
        rows.append(row)
        row = []
    return rows[1:]


def normalize(value: Any, hint: Any = _MISSING) -> Any:
    """A value from the engine's frame as plain Python (see the module docstring); ``hint``,
    the expected value, tells a map given as pairs from an array of pairs."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return Zoned(value.replace(tzinfo=None), zone_name(_tz_name(value.tzinfo, value)))
        return value
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if all(hasattr(value, a) for a in ("months", "days", "nanoseconds")):
        if value.days == 0 and value.nanoseconds == 0:
            return YearMonth(value.months)
        return timedelta(days=value.days, microseconds=value.nanoseconds / 1000)
    if isinstance(value, list):
        if isinstance(hint, dict) and all(
            isinstance(item, tuple | list) and len(item) == 2 for item in value
        ):
            return {normalize(k): normalize(v, _hint_at(hint, k)) for k, v in value}
        element = _first(hint) if isinstance(hint, list) else _MISSING
        return [normalize(item, element) for item in value]
    if isinstance(value, dict):
        if isinstance(hint, tuple):
            items = list(value.values())
            return tuple(
                normalize(v, h) for v, h in zip(items, _pad(hint, len(items)), strict=True)
            )
        if isinstance(hint, dict):
            return {normalize(k): normalize(v, _hint_at(hint, k)) for k, v in value.items()}
        return tuple(normalize(v) for v in value.values())
    if isinstance(value, tuple):
        hints = _pad(hint, len(value)) if isinstance(hint, tuple) else [_MISSING] * len(value)
        return tuple(normalize(v, h) for v, h in zip(value, hints, strict=True))
    return value


def _tz_name(tzinfo, stamp: datetime) -> str:
    name = getattr(tzinfo, "key", None) or getattr(tzinfo, "zone", None)
    if name:
        return name
    offset = stamp.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _first(values: list) -> Any:
    return next((v for v in values if v is not None), _MISSING)


def _pad(values: tuple, size: int) -> list:
    return list(values[:size]) + [_MISSING] * (size - len(values))


def _hint_at(mapping: dict, key: Any) -> Any:
    return mapping.get(key, _first(list(mapping.values())))


def same(actual: Any, expected: Any) -> bool:
    """Whether the engine's (normalised) value is the value Trino gives."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, int):
        return type(actual) is int and actual == expected
    if isinstance(expected, float):
        if not isinstance(actual, float):
            return False
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return actual == expected or math.isclose(actual, expected, rel_tol=1e-12)
    if isinstance(expected, Decimal):
        return (
            isinstance(actual, Decimal)
            and actual == expected
            and actual.as_tuple().exponent == expected.as_tuple().exponent
        )
    if isinstance(expected, datetime):
        return isinstance(actual, datetime) and actual == expected
    if isinstance(expected, date):
        return type(actual) is date and actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, tuple):
        return (
            isinstance(actual, tuple)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and len(actual) == len(expected)
            and all(k in actual and same(actual[k], v) for k, v in expected.items())
        )
    return type(actual) is type(expected) and actual == expected


def _compare(case: Case, frame: pd.DataFrame, rows: list[list]) -> tuple[str, str] | None:
    """None if the result is Trino's, else (what differs, the shape of the difference)."""
    if case.columns is not None and list(frame.columns) != case.columns:
        return (
            f"columns {list(frame.columns)}, Trino: {case.columns}",
            "column names differ (Trino names unnamed columns _colN)",
        )
    expected = case.rows or []
    if not case.query:
        if len(rows) != 1 or len(rows[0]) != 1:
            return f"{len(rows)} rows of {frame.shape[1]} columns", "not one value"
        actual, wanted = rows[0][0], expected[0][0]
        if same(actual, wanted):
            return None
        shape = _value_shape(actual, wanted)
        if shape.startswith("another "):
            shape = f"{shape} from {_head(case.sql)}"
        return f"got {_show(actual)}, Trino: {_show(wanted)}", shape
    if rows and expected and len(rows[0]) != len(expected[0]):
        return f"{len(rows[0])} columns, Trino: {len(expected[0])}", "column count differs"
    if _rows_match(rows, expected, case.ordered):
        return None
    mismatch = _first_mismatch(rows, expected)
    shape = "rows differ"
    if len(rows) != len(expected):
        shape = "row count differs"
    elif mismatch is not None:
        shape = _value_shape(*mismatch)
    return f"rows {_show(rows)}, Trino: {_show(expected)}", shape


def _rows_match(actual: list[list], expected: list[list], ordered: bool) -> bool:
    if len(actual) != len(expected):
        return False
    if ordered:
        return all(same(a, e) for a, e in zip(actual, expected, strict=True))
    left = list(actual)
    for row in expected:
        match = next((i for i, candidate in enumerate(left) if same(candidate, row)), None)
        if match is None:
            return False
        left.pop(match)
    return True


def _first_mismatch(actual: list[list], expected: list[list]) -> tuple[Any, Any] | None:
    for row_a, row_e in zip(actual, expected, strict=False):
        for a, e in zip(row_a, row_e, strict=False):
            if not same(a, e):
                return a, e
    return None


def _value_shape(actual: Any, expected: Any) -> str:
    """A coarse description of how a value differs, to count kinds of disagreement."""
    if expected is None:
        return "a value where Trino gives NULL"
    if actual is None:
        return f"NULL where Trino gives a {_type_word(expected)}"
    if isinstance(expected, float) and math.isnan(expected):
        return "not NaN where Trino gives NaN"
    if _type_word(actual) != _type_word(expected):
        return f"{_type_word(actual)} where Trino gives a {_type_word(expected)}"
    if isinstance(expected, Decimal) and actual == expected:
        return "decimal of another scale"
    return f"another {_type_word(expected)} value"


def _head(sql: str) -> str:
    """What an expression applies: its outer function or cast, else its first operator."""
    call = re.match(r"\s*(?:-\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\(", sql)
    if call and call.group(1).lower() not in {"array", "map", "row"}:
        return f"{call.group(1).lower()}(...)"
    operator = re.search(r"\|\||<>|!=|<=|>=|[-+*/%<>=]|\bAT TIME ZONE\b|\[", sql)
    if operator:
        return f"the {operator.group(0).strip()} operator"
    literal = re.match(r"\s*([A-Za-z]+)\s*'", sql)
    return f"a {literal.group(1).upper()} literal" if literal else "an expression"


def _type_word(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, date):
        return "date"
    return {
        bool: "boolean",
        int: "integer",
        float: "double",
        Decimal: "decimal",
        str: "string",
        list: "array",
        dict: "map",
        tuple: "row",
        Zoned: "timestamp with time zone",
        timedelta: "interval",
        bytes: "varbinary",
    }.get(type(value), type(value).__name__)


def _check_types(platform, case: Case) -> Outcome:
    """Compare the engine's ``typeof`` of each checked column with Trino's type."""
    if case.query:
        names = [f"c{index}" for index in range(len(case.types))]
        probes = ", ".join(f"typeof({name})" for name in names)
        sql = f"SELECT {probes} FROM ({case.sql}) AS conformance_t({', '.join(names)}) LIMIT 1"
    else:
        sql = f"SELECT typeof({case.sql})"
    try:
        frame = platform.query(sql)
    except Exception as error:
        outcome = _on_error(case, error)
        outcome.detail = f"typeof: {outcome.detail}"
        outcome.shape = f"typeof fails: {outcome.shape}"
        return outcome
    got = [str(v) for v in frame.iloc[0].tolist()] if len(frame) else []
    for index, wanted in enumerate(case.types):
        if wanted is None:
            continue
        actual = got[index] if index < len(got) else "?"
        if _type_key(actual) != _type_key(wanted):
            return Outcome(
                case,
                SILENT,
                f"type {actual}, Trino: {wanted}",
                f"{_TYPE_ONLY}{_type_family(actual)}, Trino: {_type_family(wanted)}",
            )
    return Outcome(case, AGREE)


def _type_key(name: str) -> str:
    return re.sub(r"\s+", "", name.lower())


def _type_family(name: str) -> str:
    """The type with its numbers masked, to count kinds (``decimal(p,s)``, ``varchar(n)``)."""
    return re.sub(r"\d+", "n", name)


def _show(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_all(platform, cases: list[Case]) -> list[Outcome]:
    """Every case, in order, through one platform."""
    return [run_case(platform, case) for case in cases]


# the report ---------------------------------------------------------------------------------


@dataclass
class Report:
    """The agreement per group and overall, with the kinds of disagreement."""

    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    unnamed_refusals: int = 0
    type_only: int = 0
    kinds: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def agreement(self) -> float:
        return self.total.get(AGREE, 0) / max(1, self.total.get("cases", 0))


def summarize(outcomes: list[Outcome], seconds: float = 0.0) -> Report:
    """Counts per group and outcome class, and the most common kinds of disagreement."""
    report = Report(seconds=seconds)
    for outcome in outcomes:
        group = report.groups.setdefault(
            outcome.case.group, {"cases": 0} | dict.fromkeys(OUTCOMES, 0)
        )
        group["cases"] += 1
        group[outcome.kind] += 1
    report.total = {"cases": len(outcomes)} | {
        kind: sum(1 for o in outcomes if o.kind == kind) for kind in OUTCOMES
    }
    report.unnamed_refusals = sum(1 for o in outcomes if o.kind == REFUSED and not o.named)
    report.type_only = sum(1 for o in outcomes if o.shape.startswith(_TYPE_ONLY))
    misses = [o for o in outcomes if o.kind != AGREE]
    counts = Counter((o.kind, o.shape) for o in misses)
    for (kind, shape), count in counts.most_common():
        example = next(o for o in misses if (o.kind, o.shape) == (kind, shape))
        report.kinds.append(
            {
                "outcome": kind,
                "kind": shape,
                "cases": count,
                "example": example.case.id,
                "sql": example.case.sql,
                "detail": example.detail,
            }
        )
    return report


def format_report(report: Report, top: int = 10) -> str:
    """The agreement table and the most common kinds of disagreement, as text."""
    header = f"{'group':<12} {'cases':>6} {'agree':>6} {'silent':>7} {'refused':>8} {'wrong error':>12} {'agree %':>8}"
    lines = [header, "-" * len(header)]
    ordered = sorted(report.groups, key=lambda g: _group_rank(Path(f"{g}.yaml")))
    for name in [*ordered, "total"]:
        row = report.total if name == "total" else report.groups[name]
        if name == "total":
            lines.append("-" * len(header))
        share = 100 * row[AGREE] / max(1, row["cases"])
        lines.append(
            f"{name:<12} {row['cases']:>6} {row[AGREE]:>6} {row[SILENT]:>7} {row[REFUSED]:>8}"
            f" {row[WRONG_ERROR]:>12} {share:>7.1f}%"
        )
    total = report.total
    lines += [
        "",
        f"agreement {100 * report.agreement:.1f}% of {total['cases']} cases "
        f"(target: at least 98%, and no silent disagreement)",
        f"silent disagreements (a different answer, no error): {total[SILENT]}"
        f" ({report.type_only} in the type alone: the value agrees, typeof names another type)",
        f"refusals (an error where Trino answers): {total[REFUSED]}"
        f" ({report.unnamed_refusals} unnamed: the engine crashed instead of naming an error)",
        f"wrong errors (another error name than Trino's): {total[WRONG_ERROR]}",
        f"ran in {report.seconds:.1f} s",
        "",
        f"most common kinds of disagreement (top {top}):",
    ]
    for index, kind in enumerate(report.kinds[:top], 1):
        lines.append(f"{index:>2}. [{kind['outcome']}] {kind['kind']} ({kind['cases']} cases)")
        lines.append(f"      e.g. {kind['example']}: {kind['sql'][:100]}")
        lines.append(f"      -> {kind['detail'][:160]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the report and every outcome")
    parser.add_argument(
        "--write-known",
        action="store_true",
        help=f"rewrite {KNOWN_PATH.relative_to(PROJECT_ROOT)} from this run",
    )
    args = parser.parse_args(argv)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its transpiling notes, not findings
    cases = load_cases()
    with (
        tempfile.TemporaryDirectory(prefix="athena-conformance-") as root,
        helpers.connect(root=Path(root) / "root", consume=False) as platform,
    ):
        start = clock.perf_counter()
        outcomes = run_all(platform, cases)
        report = summarize(outcomes, clock.perf_counter() - start)
    print(format_report(report))
    if args.write_known:
        listed = write_known(outcomes)
        print(f"\nwrote {listed} known disagreements to {KNOWN_PATH}")
    if args.json:
        document = {
            "groups": report.groups,
            "total": report.total,
            "agreement": report.agreement,
            "unnamed_refusals": report.unnamed_refusals,
            "type_only": report.type_only,
            "seconds": report.seconds,
            "kinds": report.kinds,
            "outcomes": [
                {
                    "id": o.case.id,
                    "outcome": o.kind,
                    "detail": o.detail,
                    "error": o.error,
                    "source": o.case.source,
                }
                | {"kind": o.shape}
                for o in outcomes
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
