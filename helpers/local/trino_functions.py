"""Trino's functions that DuckDB lacks, under their Trino names, for the local Athena.

Three kinds, all installed in every connection by :func:`install` and reached through
:func:`rename_functions` (a tree transform of :mod:`helpers.local.trino`):

- SQL macros over DuckDB's built-ins (``MACROS``), where DuckDB has the pieces: ``nan()``,
  ``width_bucket``, ``arrays_overlap``, ``any_match`` and the other lambda matchers,
  ``json_size``, ``map_agg``...
- Python functions (``PYTHON``) where the rule is easier said in Python than in SQL, and
  exact: ``format_number``, ``parse_duration``, ``human_readable_seconds``, ``luhn_check``,
  ``regexp_position``, ``from_base``, ``json_array_contains`` (Trino's type-strict match).
- Lambda rewrites (``LAMBDA_REWRITES``) where a Trino function calls its lambda with more
  than one argument, which a DuckDB macro cannot do: ``zip_with``, ``transform_keys``,
  ``transform_values``, ``map_filter``, ``map_zip_with`` become DuckDB list functions with
  the lambda's parameters bound to list or map elements.

Every macro and function is named ``__trino_<name>``, so DuckDB's own functions of the same
name (``to_milliseconds`` makes an interval in DuckDB) keep their meaning inside macros. An
invalid argument fails with Trino's error name (``INVALID_FUNCTION_ARGUMENT``), as Trino does.
The behaviour of each follows Trino's documentation; the conformance cases in
``tests/athena/conformance`` name the page or test each fact comes from.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from sqlglot import exp

from helpers.exceptions import QueryError
from helpers.local import trino_zones

PREFIX = "__trino_"
ARGUMENT = "INVALID_FUNCTION_ARGUMENT"


def _fail(message: str) -> str:
    return f"error('{ARGUMENT}: {message}')"


_ELEMENT = "'$[' || CASE WHEN i < 0 THEN '#' ELSE '' END || i || ']'"  # of json_array_get

MACROS = {
    "nan": "() AS CAST('NaN' AS DOUBLE)",
    "infinity": "() AS CAST('Infinity' AS DOUBLE)",
    "e": "() AS exp(1)",
    "is_finite": "(x) AS isfinite(CAST(x AS DOUBLE))",
    "is_infinite": "(x) AS isinf(CAST(x AS DOUBLE))",
    # width_bucket(x, bound1, bound2, n): the bucket of x among n equal ones, 0 below and n + 1
    # above (bounds may descend); width_bucket(x, bins): how many bins are <= x
    "width_bucket": (
        "(x, bins) AS CAST(len(list_filter(bins, lambda b: b <= x)) AS BIGINT),"
        " (x, lo, hi, n) AS CASE"
        f" WHEN n <= 0 THEN {_fail('bucketCount must be greater than 0')}"
        f" WHEN lo = hi THEN {_fail('bounds cannot equal each other')}"
        f" WHEN isnan(CAST(x AS DOUBLE)) THEN {_fail('operand must not be NaN')}"
        " WHEN lo < hi AND x < lo THEN 0 WHEN lo < hi AND x >= hi THEN n + 1"
        " WHEN lo > hi AND x > lo THEN 0 WHEN lo > hi AND x <= hi THEN n + 1"
        " ELSE CAST(floor((x - lo) / (hi - lo) * n) + 1 AS BIGINT) END"
    ),
    "codepoint": (  # Trino takes varchar(1) only
        "(c) AS CASE WHEN length(c) <> 1 THEN error('FUNCTION_NOT_FOUND: Unexpected parameters"
        " for function codepoint: it takes one character (varchar(1))')"
        " ELSE CAST(unicode(c) AS INTEGER) END"
    ),
    "hamming_distance": (
        f"(a, b) AS CASE WHEN length(a) <> length(b) THEN {_fail('The input strings to hamming_distance function must have the same length')}"
        " ELSE CAST(hamming(a, b) AS BIGINT) END"
    ),
    "to_iso8601": (
        f"(t {trino_zones.ZONED}) AS strftime({PREFIX}wall(t), '%Y-%m-%dT%H:%M:%S.%g') ||"
        f" CASE WHEN t.__zone = 'UTC' THEN 'Z' ELSE {PREFIX}offset_text(t, true) END,"
        " (d DATE) AS strftime(d, '%Y-%m-%d'),"
        " (t TIMESTAMP) AS strftime(t, '%Y-%m-%dT%H:%M:%S.%g'),"
        " (t TIMESTAMPTZ) AS strftime(t, '%Y-%m-%dT%H:%M:%S.%gZ')"
    ),
    "to_milliseconds": "(i) AS CAST(epoch_ms(TIMESTAMP '1970-01-01' + i) AS BIGINT)",
    "current_timezone": "() AS 'UTC'",
    # lambda matchers: NULL where no element decides and one gives NULL, as in Trino
    "any_match": (
        "(a, f) AS CASE WHEN a IS NULL THEN NULL WHEN len(a) = 0 THEN false"
        " WHEN list_bool_or(list_transform(a, f)) THEN true"
        " WHEN list_count(list_transform(a, f)) < len(a) THEN NULL ELSE false END"
    ),
    "all_match": (
        "(a, f) AS CASE WHEN a IS NULL THEN NULL WHEN len(a) = 0 THEN true"
        " WHEN NOT list_bool_and(list_transform(a, f)) THEN false"
        " WHEN list_count(list_transform(a, f)) < len(a) THEN NULL ELSE true END"
    ),
    "none_match": f"(a, f) AS NOT {PREFIX}any_match(a, f)",
    "arrays_overlap": (
        "(a, b) AS CASE WHEN a IS NULL OR b IS NULL THEN NULL"
        " WHEN len(list_intersect(a, b)) > 0 THEN true"
        " WHEN list_count(a) < len(a) OR list_count(b) < len(b) THEN NULL ELSE false END"
    ),
    "trim_array": (
        f"(a, n) AS CASE WHEN n < 0 OR n > len(a) THEN {_fail('size to trim must be between 0 and the array length')}"
        " ELSE a[1:len(a) - n] END"
    ),
    "array_histogram": "(a) AS list_aggregate(a, 'histogram')",
    "array_position": (
        "(a, x) AS CASE WHEN x IS NULL THEN NULL"
        " ELSE CAST(coalesce(list_position(a, x), 0) AS BIGINT) END"
    ),
    "repeat": (
        f"(x, n) AS CASE WHEN n < 0 THEN {_fail('count argument of repeat function must be greater than or equal to 0')}"
        f" WHEN n > 10000 THEN {_fail('count argument of repeat function must be less than or equal to 10000')}"
        " ELSE list_transform(range(n), lambda i: x) END"
    ),
    "millisecond": "(t) AS CAST(millisecond(t) % 1000 AS BIGINT)",
    "cosine_similarity": (
        "(a, b) AS list_cosine_similarity(CAST(a AS DOUBLE[]), CAST(b AS DOUBLE[]))"
    ),
    "zip": "(a, b) AS list_zip(a, b)",
    # entries (key, value) grouped by key into arrays, in the keys' first order
    "multimap": (
        "(entries) AS map_from_entries(list_transform(list_distinct(list_transform(entries,"
        " lambda e: e.key)), lambda k: {'key': k, 'value': list_transform(list_filter(entries,"
        " lambda e: e.key IS NOT DISTINCT FROM k), lambda e: e.value)}))"
    ),
    "multimap_from_entries": (
        f"(a) AS {PREFIX}multimap(list_transform(a, lambda r: {{'key': r[1], 'value': r[2]}}))"
    ),
    # one value per key (Trino keeps one of a key's values), NULL keys left out
    "map_agg": (
        f"(k, v) AS map_from_entries(list_transform(map_entries({PREFIX}multimap("
        "list({'key': k, 'value': v}) FILTER (WHERE k IS NOT NULL))),"
        " lambda e: {'key': e.key, 'value': e.value[1]}))"
    ),
    "multimap_agg": f"(k, v) AS {PREFIX}multimap(list({{'key': k, 'value': v}}))",
    "every": "(b) AS bool_and(b)",
    "split_to_map": (
        f"(s, entry, kv) AS map_from_entries(list_transform(string_split(s, entry), lambda p:"
        f" CASE WHEN strpos(p, kv) = 0 THEN {_fail('Key-value delimiter must appear exactly once in each entry')}"
        " ELSE {'key': p[1:strpos(p, kv) - 1], 'value': p[strpos(p, kv) + length(kv):]} END))"
    ),
    "split_to_multimap": (
        f"(s, entry, kv) AS {PREFIX}multimap(list_transform(string_split(s, entry), lambda p:"
        " {'key': p[1:strpos(p, kv) - 1], 'value': p[strpos(p, kv) + length(kv):]}))"
    ),
    # JSON: invalid documents give NULL where Trino's do
    "json_size": (
        "(j, path) AS CASE WHEN NOT json_valid(j) THEN NULL"
        f" WHEN NOT starts_with(path, '$') THEN {_fail('Invalid JSON path')}"
        " WHEN json_type(j, path) = 'ARRAY' THEN CAST(json_array_length(j, path) AS BIGINT)"
        " WHEN json_type(j, path) = 'OBJECT' THEN CAST(len(json_keys(j, path)) AS BIGINT)"
        " WHEN json_type(j, path) IS NULL THEN NULL ELSE CAST(0 AS BIGINT) END"
    ),
    "json_array_get": (
        "(j, i) AS CASE WHEN NOT json_valid(j) OR json_type(j) <> 'ARRAY' THEN NULL"
        " WHEN i >= json_array_length(j) OR -i > json_array_length(j) THEN NULL"
        " WHEN json_type(j, " + _ELEMENT + ") = 'VARCHAR' THEN error('NOT_SUPPORTED: json_array_get"
        " of a string element (Trino gives it unquoted, which is not JSON);"
        " use json_extract_scalar(j, ''$[i]'')')"
        " ELSE nullif(json_extract(j, " + _ELEMENT + "), 'null'::JSON) END"
    ),
    "is_json_scalar": (
        f"(j) AS CASE WHEN NOT json_valid(j) THEN {_fail('Invalid JSON value')}"
        " ELSE json_type(j) NOT IN ('ARRAY', 'OBJECT') END"
    ),
    "json_text": "(x) AS CAST(to_json(x) AS VARCHAR)",
    # regexp_replace(s, p, f): the pieces between the matches joined by f of each match's
    # groups (r, already applied); NULL where f gives NULL, as in Trino
    "regexp_join": (
        "(p, r) AS CASE WHEN list_count(r) < len(r) THEN NULL ELSE p[1] || array_to_string("
        "list_transform(range(1, len(r) + 1), lambda i: r[i] || p[i + 1]), '') END"
    ),  # what format passes to Python
    "json_array_contains": (
        f"(j, v) AS {PREFIX}json_contains_value(j, to_json(v)::VARCHAR, typeof(v))"
    ),
}
"""Trino name -> the parameters and body of its ``__trino_`` DuckDB macro."""


def _format_number(x: float) -> str:
    """Trino's ``format_number``: three significant digits and a unit symbol (K, M, B, T)."""
    value = Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
    suffix = ""
    for unit, symbol in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= unit:
            value, suffix = value / unit, symbol
            break
    whole = len(str(int(abs(value)))) if abs(value) >= 1 else 1
    places = max(0, 3 - whole)
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return ("0" if text in ("-0", "") else text) + suffix


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
_DURATION_UNITS = {
    "ns": Decimal("1e-6"),
    "us": Decimal("1e-3"),
    "ms": Decimal(1),
    "s": Decimal(1000),
    "m": Decimal(60_000),
    "h": Decimal(3_600_000),
    "d": Decimal(86_400_000),
}


def _parse_duration(text: str):
    """Trino's ``parse_duration``: ``'3.81 d'`` as a day-to-second interval, to the millisecond."""
    from datetime import timedelta

    match = _DURATION.match(text)
    if not match or match.group(2) not in _DURATION_UNITS:
        raise ValueError(f"{ARGUMENT}: duration is not a valid data duration string: {text}")
    millis = Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return timedelta(milliseconds=int(millis.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def _human_readable_seconds(seconds: float) -> str:
    """Trino's ``human_readable_seconds``: ``96`` -> ``'1 minute, 36 seconds'``."""
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{ARGUMENT}: Invalid argument found: {seconds}")
    left = int(Decimal(repr(seconds)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    parts = []
    for size, name in ((604_800, "week"), (86_400, "day"), (3_600, "hour"), (60, "minute")):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    if left or not parts:
        parts.append(f"{left} second{'s' if left != 1 else ''}")
    return ", ".join(parts)


def _luhn_check(digits: str) -> bool:
    """Trino's ``luhn_check``: whether a string of digits passes the Luhn checksum."""
    if not digits or not digits.isdigit():
        raise ValueError(f"{ARGUMENT}: Input contains non-digit character")
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def _regexp_position(text: str, pattern: str, start: int, occurrence: int) -> int:
    """Trino's ``regexp_position``: the 1-based position of the ``occurrence``-th match of
    ``pattern`` from ``start``, or -1."""
    if start < 1:
        raise ValueError(f"{ARGUMENT}: start position cannot be smaller than 1")
    if occurrence < 1:
        raise ValueError(f"{ARGUMENT}: occurrence cannot be smaller than 1")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{ARGUMENT}: {error}") from None
    for count, match in enumerate(compiled.finditer(text, start - 1), start=1):
        if count == occurrence:
            return match.start() + 1
    return -1


def _from_base(text: str, radix: int) -> int:
    """Trino's ``from_base``: the BIGINT a string of digits in ``radix`` stands for."""
    if not 2 <= radix <= 36:
        raise ValueError(f"{ARGUMENT}: Radix must be between 2 and 36")
    try:
        value = int(text, radix)
    except ValueError:
        raise ValueError(f"{ARGUMENT}: Not a valid base-{radix} number: {text}") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{ARGUMENT}: Not a valid base-{radix} number: {text}")
    return value


_JSON_KINDS = {  # DuckDB's typeof of the value looked for -> the Python types that match it
    "BOOLEAN": (bool,),
    "TINYINT": (int,),
    "SMALLINT": (int,),
    "INTEGER": (int,),
    "BIGINT": (int,),
    "DOUBLE": (float,),
    "VARCHAR": (str,),
}


def _json_contains_value(document: str, value: str, kind: str) -> bool | None:
    """Trino's ``json_array_contains``: whether the array holds the value as the same JSON
    kind (``1`` is not ``1.0``, nor ``'1'``); NULL for a document that is not JSON."""
    if document is None or value is None:
        return None
    try:
        elements = json.loads(document)
    except ValueError:
        return None
    if not isinstance(elements, list):
        return None
    kinds = _JSON_KINDS.get(kind.split("(")[0])
    if kinds is None:
        raise ValueError(f"{ARGUMENT}: json_array_contains does not take a {kind}")
    wanted = json.loads(value)
    return any(
        type(element) in kinds and element == wanted  # type(True) is bool, not int
        for element in elements
    )


def _double_text(x: float) -> str:
    """A double as Trino casts it to varchar: scientific, shortest digits (``3.77E1``)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0E0" if math.copysign(1, x) < 0 else "0.0E0"
    sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
    text = "".join(map(str, digits))
    mantissa = f"{text[0]}.{text[1:] or '0'}"
    return f"{'-' if sign else ''}{mantissa}E{exponent + len(text) - 1}"


_SPECIFIER = re.compile(
    r"%(?:(?P<index>\d+)\$)?(?P<flags>[-#+ 0,(]*)(?P<width>\d+)?(?:\.(?P<precision>\d+))?"
    r"(?P<time>[tT])?(?P<conversion>[a-zA-Z%])"
)
_JAVA_TIME = {  # Java's date/time conversions (after %t) as strftime, where they match
    "A": "%A", "a": "%a", "B": "%B", "b": "%b", "h": "%b", "d": "%d", "m": "%m", "Y": "%Y",
    "y": "%y", "H": "%H", "M": "%M", "S": "%S", "p": "%p", "F": "%Y-%m-%d", "D": "%m/%d/%y",
    "T": "%H:%M:%S", "R": "%H:%M", "j": "%j", "I": "%I",
}  # fmt: skip


def _format_value(text: str | None, kind: str):
    """A ``format`` argument (its JSON text and DuckDB type) as the Java value Trino gives."""
    from datetime import date, datetime

    if text is None:
        return None
    if kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION")):
        raise ValueError(f"NOT_SUPPORTED: format does not take a {kind}")
    if kind == "JSON":  # a JSON value formats as its text
        return text
    value = json.loads(text, parse_float=Decimal)
    if kind in ("DOUBLE", "FLOAT"):
        return float(value)
    if kind == "DATE":
        return date.fromisoformat(value)
    if kind.startswith("TIMESTAMP"):
        return datetime.fromisoformat(value.replace(" ", "T")[:26])
    return value


def _java_text(value) -> str:
    """``String.valueOf`` of a Trino value in Java: ``true``, ``null``, ``1.0E10``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e7:
            return f"{value:.1f}"
        return repr(value) if 1e-3 <= abs(value) < 1e7 else _double_text(value)
    return str(value)


def _format_one(match: re.Match, value) -> str:
    conversion, flags = match.group("conversion"), match.group("flags")
    precision = match.group("precision")
    if match.group("time"):
        if conversion == "e":
            text = str(value.day)
        elif conversion == "L":
            text = f"{value.microsecond // 1000:03d}"
        else:
            text = value.strftime(_JAVA_TIME[conversion])
        text = text.upper() if match.group("time") == "T" else text
    elif conversion in "sS":
        text = _java_text(value)
        text = text[: int(precision)] if precision is not None else text
        text = text.upper() if conversion == "S" else text
    elif conversion in "bB":
        text = "false" if value is None or value is False else "true"
    elif conversion in "dxXo":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{ARGUMENT}: %{conversion} needs an integer, got {value!r}")
        spec = {"d": "d", "x": "x", "X": "X", "o": "o"}[conversion]
        text = format(value, ("," if "," in flags else "") + spec)
        text = ("+" + text) if "+" in flags and value >= 0 else text
    elif conversion in "fe":
        if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
            raise ValueError(f"{ARGUMENT}: %{conversion} needs a number, got {value!r}")
        places = int(precision) if precision is not None else 6
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if conversion == "f":
            rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
            text = format(rounded, ("," if "," in flags else "") + f".{places}f")
        else:
            text = format(number, f".{places}e")
        text = ("+" + text) if "+" in flags and number >= 0 else text
    elif conversion == "c":
        text = chr(value) if isinstance(value, int) else str(value)[:1]
    else:
        raise ValueError(f"{ARGUMENT}: format conversion %{conversion} is not known")
    width = int(match.group("width") or 0)
    if len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and conversion in "dxXofe":
        sign = text[0] if text[0] in "+-" else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _format(pattern: str, texts: list, kinds: list) -> str | None:
    """Trino's ``format``: Java's ``String.format`` over the arguments (``%s``, ``%d``,
    ``%,.2f``, ``%-7s``, ``%2$s``, ``%1$tA``...)."""
    if pattern is None:
        return None
    values = [_format_value(text, kind) for text, kind in zip(texts, kinds, strict=True)]
    position = 0

    def replace(match: re.Match) -> str:
        nonlocal position
        conversion = match.group("conversion")
        if conversion == "%":
            return "%"
        if conversion == "n":
            return "\n"
        if match.group("index"):
            index = int(match.group("index")) - 1
        else:
            index, position = position, position + 1
        if not 0 <= index < len(values):
            raise ValueError(f"{ARGUMENT}: format needs argument {index + 1}, has {len(values)}")
        return _format_one(match, values[index])

    return _SPECIFIER.sub(replace, pattern)


_PARSE_FIELD = re.compile(r"%(-?)([A-Za-z%])")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH_NAMES = ["january", "february", "march", "april", "may", "june", "july", "august"]
_MONTH_NAMES += ["september", "october", "november", "december"]
_DATE_PARSE_FIELDS = {  # the specifier (as sqlglot writes date_parse's) -> what it reads
    "Y": r"(?P<Y>\d{1,4})", "y": r"(?P<y>\d{2})", "G": r"(?P<G>\d{1,4})",
    "m": r"(?P<m>\d{1,2})", "d": r"(?P<d>\d{1,2})", "H": r"(?P<H>\d{1,2})",
    "I": r"(?P<I>\d{1,2})", "M": r"(?P<M>\d{1,2})", "S": r"(?P<S>\d{1,2})",
    "f": r"(?P<f>\d{1,9})", "p": r"(?P<p>[AaPp][Mm])", "j": r"(?P<j>\d{1,3})",
    "v": r"(?P<v>\d{1,2})", "V": r"(?P<v>\d{1,2})", "b": r"(?P<b>[A-Za-z]{3})",
    "B": r"(?P<B>[A-Za-z]+)", "a": r"[A-Za-z]{3}", "A": r"[A-Za-z]+", "%": "%",
}  # fmt: skip


def _date_parse(text: str, pattern: str):
    """Trino's ``date_parse`` (Joda-Time under MySQL's specifiers, as sqlglot writes them):
    1970-01-01 for the fields not given, a two-digit year from 1970 to 2069, a twelve-hour
    clock without a meridian in the morning, the fraction cut to milliseconds, week years
    (``%x %v``) by ISO week."""
    from datetime import date, datetime, timedelta

    parts, end = [], 0
    for match in _PARSE_FIELD.finditer(pattern):
        parts.append(re.escape(pattern[end : match.start()]))
        field = _DATE_PARSE_FIELDS.get(match.group(2))
        if field is None:
            raise ValueError(f"{ARGUMENT}: %{match.group(2)} not supported in date format string")
        named = re.match(r"\(\?P<(\w)>(.*)\)$", field)
        if named and f"(?P<{named.group(1)}>" in "".join(parts):
            field = f"(?:{named.group(2)})"  # a field given twice: read, not used again
        parts.append(field)
        end = match.end()
    parts.append(re.escape(pattern[end:]))
    found = re.fullmatch("".join(parts), text, re.IGNORECASE)
    if found is None:
        raise ValueError(f'{ARGUMENT}: Invalid format: "{text}"')
    fields = {key: value for key, value in found.groupdict().items() if value is not None}
    year = int(fields.get("Y", 1970))
    if "y" in fields:
        two = int(fields["y"])
        year = 2000 + two if two < 70 else 1900 + two
    month = int(fields.get("m", 1))
    if "b" in fields or "B" in fields:
        name = fields.get("b", fields.get("B", "")).lower()
        names = _MONTHS if "b" in fields else _MONTH_NAMES
        if name not in names:
            raise ValueError(f'{ARGUMENT}: Invalid format: "{text}"')
        month = names.index(name) + 1
    hour = int(fields.get("H", 0))
    if "I" in fields:
        hour = int(fields["I"]) % 12 + (12 if fields.get("p", "am").lower() == "pm" else 0)
    millis = int((fields.get("f", "") + "000")[:3])
    try:
        if "G" in fields or "v" in fields:
            day = date.fromisocalendar(int(fields.get("G", year)), int(fields.get("v", 1)), 1)
        elif "j" in fields:
            day = date(year, 1, 1) + timedelta(days=int(fields["j"]) - 1)
        else:
            day = date(year, month, int(fields.get("d", 1)))
        return datetime(
            day.year, day.month, day.day, hour, int(fields.get("M", 0)),
            int(fields.get("S", 0)), millis * 1000,
        )  # fmt: skip
    except ValueError as error:
        raise ValueError(f'{ARGUMENT}: Invalid format: "{text}" ({error})') from None


@lru_cache(maxsize=256)
def _java_regex(pattern: str) -> re.Pattern:
    """A Java regular expression as Python's (named groups ``(?<name>`` are ``(?P<name>``);
    Python's ``re`` matches empty strings after a match as Java's ``find`` does."""
    try:
        return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pattern))
    except re.error as error:
        raise ValueError(f"{ARGUMENT}: {error}") from None


def _regexp_groups(text: str, pattern: str) -> list[list[str | None]]:
    """The groups of each match of ``pattern`` in ``text`` (NULL for a group that did not
    take part), for regexp_replace with a function."""
    return [list(match.groups()) for match in _java_regex(pattern).finditer(text)]


def _regexp_pieces(text: str, pattern: str) -> list[str]:
    """The text before, between and after the matches (one more than the matches)."""
    pieces, end = [], 0
    for match in _java_regex(pattern).finditer(text):
        pieces.append(text[end : match.start()])
        end = match.end()
    return [*pieces, text[end:]]


def _regexp_replace_java(text: str, pattern: str, template: str) -> str:
    """regexp_replace with a replacement RE2 cannot say (a group above 9), as Python's
    template (``\\g<10>``)."""
    return _java_regex(pattern).sub(template, text)


def _regexp_extract_group(text: str, pattern: str, group: int) -> str | None:
    """regexp_extract of a group: NULL without a match or where the group did not take
    part (DuckDB gives '')."""
    if text is None or pattern is None or group is None:
        return None
    compiled = _java_regex(pattern)
    if not 0 <= group <= compiled.groups:
        raise ValueError(
            f"{ARGUMENT}: Pattern has {compiled.groups} groups. Cannot access group {group}"
        )
    match = compiled.search(text)
    return match.group(group) if match else None


def _to_base(number: int, radix: int) -> str:
    """Trino's ``to_base``: the digits of ``number`` in ``radix`` (2 to 36), lower case, with
    a minus sign for a negative number."""
    if not 2 <= radix <= 36:
        raise ValueError(f"{ARGUMENT}: Radix must be between 2 and 36")
    digits, left = [], abs(number)
    while True:
        left, digit = divmod(left, radix)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
        if not left:
            break
    return ("-" if number < 0 else "") + "".join(reversed(digits))


def _normalize(text: str, form: str) -> str:
    """Trino's ``normalize(s, form)``: Unicode normalization NFC, NFD, NFKC or NFKD."""
    import unicodedata

    if form not in ("NFC", "NFD", "NFKC", "NFKD"):
        raise ValueError(f"{ARGUMENT}: Normalization form must be one of [NFD, NFC, NFKD, NFKC]")
    return unicodedata.normalize(form, text)


_ISO_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?:W(?P<w>\d{2})(?:-(?P<wd>\d))?|(?P<o>\d{3})|(?P<m>\d{2})(?:-(?P<d>\d{2}))?))?$"
)


def _from_iso8601_date(text: str):
    """Trino's ``from_iso8601_date``: calendar (``2020-05-11``, ``2020-05``, ``2020``), week
    (``2020-W10``, ``2020-W10-3``) and ordinal (``2020-123``) dates."""
    from datetime import date, timedelta

    found = _ISO_DATE.match(text.strip())
    try:
        if found is None:
            raise ValueError("not an ISO 8601 date")
        year = int(found.group("y"))
        if found.group("w"):
            return date.fromisocalendar(year, int(found.group("w")), int(found.group("wd") or 1))
        if found.group("o"):
            ordinal = int(found.group("o"))
            if not 1 <= ordinal <= (date(year, 12, 31) - date(year, 1, 1)).days + 1:
                raise ValueError("day of year out of range")
            return date(year, 1, 1) + timedelta(days=ordinal - 1)
        return date(year, int(found.group("m") or 1), int(found.group("d") or 1))
    except ValueError as error:
        raise ValueError(f'{ARGUMENT}: Invalid format: "{text}" ({error})') from None


PYTHON: dict[str, tuple[Callable, list[str], str]] = {
    "format": (_format, ["VARCHAR", "VARCHAR[]", "VARCHAR[]"], "VARCHAR"),
    "date_parse": (_date_parse, ["VARCHAR", "VARCHAR"], "TIMESTAMP"),
    "to_base": (_to_base, ["BIGINT", "BIGINT"], "VARCHAR"),
    "normalize": (_normalize, ["VARCHAR", "VARCHAR"], "VARCHAR"),
    "from_iso8601_date": (_from_iso8601_date, ["VARCHAR"], "DATE"),
    "regexp_groups": (_regexp_groups, ["VARCHAR", "VARCHAR"], "VARCHAR[][]"),
    "regexp_pieces": (_regexp_pieces, ["VARCHAR", "VARCHAR"], "VARCHAR[]"),
    "regexp_replace_java": (_regexp_replace_java, ["VARCHAR", "VARCHAR", "VARCHAR"], "VARCHAR"),
    "regexp_extract_group": (_regexp_extract_group, ["VARCHAR", "VARCHAR", "BIGINT"], "VARCHAR"),
    "double_text": (_double_text, ["DOUBLE"], "VARCHAR"),
    "format_number": (_format_number, ["DOUBLE"], "VARCHAR"),
    "parse_duration": (_parse_duration, ["VARCHAR"], "INTERVAL"),
    "human_readable_seconds": (_human_readable_seconds, ["DOUBLE"], "VARCHAR"),
    "luhn_check": (_luhn_check, ["VARCHAR"], "BOOLEAN"),
    "regexp_position4": (_regexp_position, ["VARCHAR", "VARCHAR", "BIGINT", "BIGINT"], "INTEGER"),
    "from_base": (_from_base, ["VARCHAR", "BIGINT"], "BIGINT"),
    "json_contains_value": (_json_contains_value, ["VARCHAR", "VARCHAR", "VARCHAR"], "BOOLEAN"),
}
"""Trino name -> (the Python function, DuckDB argument types, result type) of a
``__trino_`` function."""

MACROS["regexp_position"] = (
    f"(s, p) AS {PREFIX}regexp_position4(s, p, 1, 1),"
    f" (s, p, start) AS {PREFIX}regexp_position4(s, p, start, 1),"
    f" (s, p, start, n) AS {PREFIX}regexp_position4(s, p, start, n)"
)

_MAY_ANSWER_NULL = {
    "json_contains_value",
    "format",
    "regexp_extract_group",
}  # and take NULL arguments
_INTERNAL = {
    "date_parse",  # reached through mysql_dates
    "normalize",  # and these through their sqlglot nodes
    "from_iso8601_date",
    "regexp_groups",  # these through the regexp rewrites
    "regexp_pieces",
    "regexp_replace_java",
    "regexp_extract_group",
    "regexp_join",
    "multimap",
    "regexp_position4",
    "json_contains_value",
    "double_text",
}  # what macros call
TRINO_NAMES = (set(MACROS) | set(PYTHON)) - _INTERNAL

# sqlglot's own nodes for some of them
_NODES = {
    exp.WidthBucket: "width_bucket",
    exp.FromBase: "from_base",
    exp.StrToMap: "split_to_map",
    exp.JSONArrayContains: "json_array_contains",
    exp.CurrentTimezone: "current_timezone",
    exp.ArrayPosition: "array_position",
    exp.Repeat: "repeat",
}


def definitions() -> dict[str, tuple[Callable, str]]:
    """Each ``__trino_`` function of this module: how to create it in a connection, and the
    text it is made of (where the functions it calls are named)."""
    made: dict[str, tuple[Callable, str]] = {}
    for name, (function, arguments, result) in (PYTHON | trino_zones.PYTHON).items():

        def create(connection, name=name, function=function, arguments=arguments, result=result):
            connection.create_function(
                PREFIX + name,
                function,
                arguments,
                result,
                side_effects=False,
                # NULL in gives NULL out, but for the functions that answer NULL themselves
                null_handling="special" if name in _MAY_ANSWER_NULL else "default",
            )

        made[PREFIX + name] = (create, "")
    for name, body in (MACROS | trino_zones.MACROS).items():
        statement = f"CREATE OR REPLACE TEMP MACRO {PREFIX}{name}{body}"
        made[PREFIX + name] = (lambda connection, sql=statement: connection.execute(sql), body)
    return made


def _lambda_parts(node: exp.Expression) -> tuple[list[str], exp.Expression]:
    """The parameter names and body of a lambda argument."""
    if not isinstance(node, exp.Lambda):
        raise TypeError("not a lambda")
    return [parameter.name for parameter in node.expressions], node.this


_NAMING = (exp.Column, exp.Dot, exp.Alias, exp.PropertyEQ, exp.Lambda, exp.Table)


def _bind(body: exp.Expression, values: dict[str, exp.Expression]) -> exp.Expression:
    """``body`` with each column named like a lambda parameter replaced by its value."""

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in values:
            return values[node.name].copy()
        bare = isinstance(node, exp.Identifier) and not isinstance(node.parent, _NAMING)
        if bare and node.name in values:  # sqlglot reads a lambda's parameters as identifiers
            return values[node.name].copy()
        return node

    return body.copy().transform(replace)


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _element(source: exp.Expression, index: str) -> exp.Expression:
    """``source[index]``, NULL past the end or for a missing key (as ``element_at``)."""
    return exp.Bracket(this=source.copy(), expressions=[exp.column(index)], safe=True)


def _lambda(names: list[str], body: exp.Expression) -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(name) for name in names])


def _field(name: str, field: str) -> exp.Expression:
    return exp.Dot(this=exp.column(name), expression=exp.to_identifier(field))


def _zip_with(args: list[exp.Expression]) -> exp.Expression:
    """``zip_with(a, b, (x, y) -> f)``: f over the pairs by position, NULL past the shorter."""
    a, b, function = args
    (x, y), body = _lambda_parts(function)
    size = exp.func("greatest", exp.func("len", a.copy()), exp.func("len", b.copy()))
    index = "__trino_i"
    bound = _bind(body, {x: _element(a, index), y: _element(b, index)})
    positions = _call(
        "range", exp.Literal.number(1), exp.Add(this=size, expression=exp.Literal.number(1))
    )
    return _call("list_transform", positions, _lambda([index], bound))


def _array_sort_comparator(source: exp.Expression, function: exp.Lambda) -> exp.Expression:
    """``array_sort(a, (x, y) -> c)``: each element placed by how many elements the
    comparator puts before it (ties kept in their order); DuckDB's sorts take no comparator."""
    (x, y), body = _lambda_parts(function)
    i, j, k = "__trino_i", "__trino_j", "__trino_k"

    def at(index: str) -> exp.Expression:
        return _call("list_extract", source.copy(), exp.column(index))

    compare = exp.Paren(this=_bind(body, {x: at(j), y: at(i)}))
    reverse = exp.Paren(this=_bind(body, {x: at(i), y: at(j)}))
    earlier = exp.LT(this=exp.column(j), expression=exp.column(i))
    # j goes before i if the comparator says so (and not both ways, as NULLs may), or if
    # they tie and j came first
    before = exp.and_(
        exp.NEQ(this=exp.column(j), expression=exp.column(i)),
        exp.or_(
            exp.and_(
                exp.LT(this=compare, expression=exp.Literal.number(0)),
                exp.or_(exp.GTE(this=reverse, expression=exp.Literal.number(0)), earlier),
            ),
            exp.and_(exp.EQ(this=compare.copy(), expression=exp.Literal.number(0)), earlier.copy()),
        ),
    )
    positions = _call(
        "range",
        exp.Literal.number(1),
        exp.Add(this=_call("len", source.copy()), expression=exp.Literal.number(1)),
    )
    rank = _call("len", _call("list_filter", positions.copy(), _lambda([j], before)))
    ranks = _call("list_transform", positions.copy(), _lambda([i], rank))
    place = _call("list_extract", source.copy(), _call("list_position", ranks, exp.column(k)))
    order = _call("range", exp.Literal.number(0), _call("len", source.copy()))
    return _call("list_transform", order, _lambda([k], place))


def _map_entries_transform(args: list[exp.Expression], target: str) -> exp.Expression:
    """``transform_keys``/``transform_values``: the function of each entry as the new key or
    value."""
    source, function = args
    (k, v), body = _lambda_parts(function)
    entry = "__trino_e"
    bound = _bind(body, {k: _field(entry, "key"), v: _field(entry, "value")})
    pair = {"key": _field(entry, "key"), "value": _field(entry, "value"), target: bound}
    struct = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(key), expression=value)
            for key, value in pair.items()
        ]
    )
    entries = _call("map_entries", source.copy())
    return _call("map_from_entries", _call("list_transform", entries, _lambda([entry], struct)))


def _map_filter(args: list[exp.Expression]) -> exp.Expression:
    """``map_filter(m, (k, v) -> p)``: the entries for which p is true."""
    source, function = args
    (k, v), body = _lambda_parts(function)
    entry = "__trino_e"
    bound = _bind(body, {k: _field(entry, "key"), v: _field(entry, "value")})
    entries = _call("map_entries", source.copy())
    return _call("map_from_entries", _call("list_filter", entries, _lambda([entry], bound)))


def _map_zip_with(args: list[exp.Expression]) -> exp.Expression:
    """``map_zip_with(m1, m2, (k, v1, v2) -> f)``: f over every key of either map, with NULL
    for the value a map lacks."""
    first, second, function = args
    (k, v1, v2), body = _lambda_parts(function)
    key = "__trino_k"
    bound = _bind(
        body,
        {
            k: exp.column(key),
            v1: _element(first, key),
            v2: _element(second, key),
        },
    )
    keys = _call(
        "list_distinct",
        _call("list_concat", _call("map_keys", first.copy()), _call("map_keys", second.copy())),
    )
    struct = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("key"), expression=exp.column(key)),
            exp.PropertyEQ(this=exp.to_identifier("value"), expression=bound),
        ]
    )
    return _call("map_from_entries", _call("list_transform", keys, _lambda([key], struct)))


def _reduce_agg(args: list[exp.Expression]) -> exp.Expression:
    """``reduce_agg(x, initial, input, combine)``: the input function folded over the group's
    values from the initial state (one partial state, so ``combine`` is not needed)."""
    value, initial, function, _combine = args
    collected = exp.func("list", value.copy())
    return _call("list_reduce", collected, function.copy(), initial.copy())


_JODA = re.compile(r"'[^']*'|([a-zA-Z])\1*")
_JODA_FIELDS = {  # Joda-Time's letters (by count) as DuckDB's strftime/strptime specifiers
    ("y", 4): "%Y", ("Y", 4): "%Y", ("y", 2): "%y", ("Y", 2): "%y", ("x", 4): "%G",
    ("M", 1): "%-m", ("M", 2): "%m", ("M", 3): "%b", ("M", 4): "%B",
    ("d", 1): "%-d", ("d", 2): "%d", ("D", 3): "%j",
    ("H", 1): "%-H", ("H", 2): "%H", ("h", 1): "%-I", ("h", 2): "%I",
    ("m", 1): "%-M", ("m", 2): "%M", ("s", 1): "%-S", ("s", 2): "%S",
    ("S", 3): "%g", ("S", 6): "%f", ("a", 1): "%p", ("E", 3): "%a", ("E", 4): "%A",
}  # fmt: skip


def joda_to_strftime(pattern: str) -> str:
    """A Joda-Time pattern (``format_datetime``, ``parse_datetime``) as DuckDB's format;
    a field DuckDB cannot say (zones, eras, week years) fails by name."""
    parts, end = [], 0
    for match in _JODA.finditer(pattern):
        parts.append(pattern[end : match.start()].replace("%", "%%"))
        token, end = match.group(0), match.end()
        if token.startswith("'"):  # quoted text; '' is a quote
            parts.append(token[1:-1].replace("%", "%%") or "'")
            continue
        field = _JODA_FIELDS.get((token[0], len(token))) or _JODA_FIELDS.get((token[0], 4))
        if field is None or (token[0] in "yYx" and len(token) not in (2, 4)):
            raise QueryError(
                "NOT_SUPPORTED",
                f"the date-time pattern letter {token!r} (in {pattern!r}) is not supported"
                " locally: zones, eras and week years are not",
            )
        parts.append(field)
    parts.append(pattern[end:].replace("%", "%%"))
    return "".join(parts)


_ZONE_TOKEN = re.compile(r"'[^']*'|(Z+)")  # Joda's zone letters: offsets and zone ids
_ZONE_TEXT = {  # what a zone field of a parse_datetime pattern reads at the end of the text
    "Z": r"(Z|[+-]\d\d:?\d\d)$",
    "ZZ": r"(Z|[+-]\d\d:?\d\d)$",
    "ZZZ": r"([A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*|[+-]\d\d:\d\d)$",
}


def _zone_parts(pattern: str) -> list[str]:
    """The pattern cut at its zone fields (``Z``, ``ZZ``, ``ZZZ``...): text between them and
    the fields themselves, in order."""
    parts, end = [], 0
    for match in _ZONE_TOKEN.finditer(pattern):
        if match.group(1):
            parts += [pattern[end : match.start()], match.group(1)[:3]]
            end = match.end()
    return [*parts, pattern[end:]]


def _format_datetime(value: exp.Expression, pattern: str) -> exp.Expression:
    """format_datetime: DuckDB's strftime of the wall clock in the value's zone, and the
    zone's fields (``Z`` +0709, ``ZZ`` +07:09, ``ZZZ`` its id) from the zoned value."""
    parts = _zone_parts(pattern)
    if len(parts) == 1 and not trino_zones.is_zoned(value):
        return _call("strftime", value.copy(), exp.Literal.string(joda_to_strftime(pattern)))
    zoned = _call(PREFIX + "as_zoned", value.copy())
    wall = _call(PREFIX + "wall", zoned)
    pieces: list[exp.Expression] = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            if part:
                pieces.append(
                    _call("strftime", wall.copy(), exp.Literal.string(joda_to_strftime(part)))
                )
        elif part == "ZZZ":
            pieces.append(_call(PREFIX + "zone_of", zoned.copy()))
        else:
            colon = exp.true() if part == "ZZ" else exp.false()
            pieces.append(_call(PREFIX + "offset_text", zoned.copy(), colon))
    return exp.DPipe(this=pieces[0], expression=_join(pieces[1:])) if len(pieces) > 1 else pieces[0]


def _join(pieces: list[exp.Expression]) -> exp.Expression:
    if len(pieces) == 1:
        return pieces[0]
    return exp.DPipe(this=pieces[0], expression=_join(pieces[1:]))


def _parse_datetime(value: exp.Expression, pattern: str) -> exp.Expression:
    """parse_datetime: DuckDB's strptime, as a timestamp with time zone in UTC; with a zone
    field at the end of the pattern, the wall clock before it in the zone it reads."""
    parts = _zone_parts(pattern)
    if len(parts) == 1:
        parsed = _call("strptime", value.copy(), exp.Literal.string(joda_to_strftime(pattern)))
        return exp.cast(parsed, "TIMESTAMPTZ")
    if len(parts) != 3 or parts[2]:
        raise QueryError(
            "NOT_SUPPORTED",
            f"parse_datetime with a zone field that does not end the pattern ({pattern!r})",
        )
    zone = _call(
        "regexp_extract",
        value.copy(),
        exp.Literal.string(_ZONE_TEXT[parts[1]]),
        exp.Literal.number(1),
    )
    rest = _call(
        "left",
        value.copy(),
        exp.Sub(this=_call("length", value.copy()), expression=_call("length", zone.copy())),
    )
    parsed = _call("strptime", rest, exp.Literal.string(joda_to_strftime(parts[0])))
    return _call(PREFIX + "with_zone", parsed, _call(PREFIX + "zone_name", zone))


def _datetime_pattern(name: str, args: list[exp.Expression]) -> exp.Expression:
    """format_datetime(ts, pattern) and parse_datetime(text, pattern) with a literal pattern:
    DuckDB's strftime and strptime (see ``_format_datetime``, ``_parse_datetime``)."""
    value, pattern = args
    if not isinstance(pattern, exp.Literal) or not pattern.is_string:
        raise QueryError("NOT_SUPPORTED", f"{name} with a pattern that is not a literal")
    if name == "format_datetime":
        return _format_datetime(value, pattern.this)
    return _parse_datetime(value, pattern.this)


LAMBDA_REWRITES: dict[str, Callable[[list[exp.Expression]], exp.Expression]] = {
    "zip_with": _zip_with,
    "transform_keys": lambda args: _map_entries_transform(args, "key"),
    "transform_values": lambda args: _map_entries_transform(args, "value"),
    "map_filter": _map_filter,
    "map_zip_with": _map_zip_with,
    "reduce_agg": _reduce_agg,
    "format_datetime": lambda args: _datetime_pattern("format_datetime", args),
    "parse_datetime": lambda args: _datetime_pattern("parse_datetime", args),
}


def _date_parse_needs_python(pattern: str) -> bool:
    """Whether DuckDB's strptime would read ``pattern`` (date_parse's, as sqlglot writes it)
    otherwise than Trino: a two-digit year (DuckDB's pivot is 1969), a fraction (DuckDB wants
    six digits at most), week years, a twelve-hour clock without a meridian (DuckDB keeps 12
    as noon), or no year at all (DuckDB's default is 1900, Trino's 1970)."""
    fields = {match.group(2) for match in _PARSE_FIELD.finditer(pattern)}
    if fields - set(_DATE_PARSE_FIELDS):
        return False  # a specifier Trino refuses: DuckDB's error says so
    twelve = "I" in fields and "p" not in fields
    return bool(fields & {"y", "f", "G", "v", "V"}) or twelve or not fields & {"Y", "G"}


def mysql_dates(found) -> None:
    """date_parse and date_format with a literal pattern, where DuckDB's reading of it differs
    from Trino's: date_parse through ``_date_parse`` (see ``_date_parse_needs_python``),
    date_format's ``%v`` (Trino's ISO week, DuckDB's ``%V``)."""
    for node in found(exp.StrToTime):
        pattern = node.args.get("format")
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            continue
        if _date_parse_needs_python(pattern.this):
            node.replace(_call(PREFIX + "date_parse", node.this, pattern))
    for node in found(exp.TimeToStr):
        pattern = node.args.get("format")
        if isinstance(pattern, exp.Literal) and pattern.is_string and "%v" in pattern.this:
            text = _PARSE_FIELD.sub(
                lambda m: "%V" if m.group(0) == "%v" else m.group(0), pattern.this
            )
            pattern.set("this", text)


def rename_functions(found) -> None:
    """Calls of Trino functions DuckDB lacks, to their ``__trino_`` equivalents (or, for
    the lambda functions, to the DuckDB list functions that mean the same)."""
    for node in found(exp.Anonymous):
        name = node.name.lower()
        if name in LAMBDA_REWRITES:
            try:
                node.replace(LAMBDA_REWRITES[name](list(node.expressions)))
            except (TypeError, ValueError):  # not the shape Trino takes: DuckDB will say so
                continue
        elif name in TRINO_NAMES:
            node.set("this", PREFIX + name)
    for node in found(exp.Format):
        args = list(node.expressions)
        texts = [_call(PREFIX + "json_text", arg.copy()) for arg in args]
        kinds = [_call("typeof", arg.copy()) for arg in args]  # DuckDB's own names
        node.replace(
            _call(
                PREFIX + "format",
                node.this.copy(),
                exp.Array(expressions=texts) if texts else exp.cast(exp.Array(), "VARCHAR[]"),
                exp.Array(expressions=kinds) if kinds else exp.cast(exp.Array(), "VARCHAR[]"),
            )
        )
    for node in found(exp.Normalize):
        form = node.args.get("form")
        form = exp.Literal.string(form.name.upper() if isinstance(form, exp.Expression) else "NFC")
        node.replace(_call(PREFIX + "normalize", node.this.copy(), form))
    for node in found(exp.FromISO8601Date):  # DuckDB's cast reads calendar dates only
        text = node.this
        if not (isinstance(text, exp.Literal) and re.match(r"^\d{4}-\d\d-\d\d$", text.this)):
            node.replace(_call(PREFIX + "from_iso8601_date", text.copy()))
    for node in found(exp.ArraySort):
        if isinstance(node.expression, exp.Lambda) and len(node.expression.expressions) == 2:
            node.replace(_array_sort_comparator(node.this, node.expression))
    for node in found(exp.ParseDatetime):  # sqlglot's node keeps Joda's pattern as it is
        node.replace(_datetime_pattern("parse_datetime", [node.this, node.args["format"]]))
    for kind, name in _NODES.items():
        for node in found(kind):
            args = [node.args[key] for key in node.arg_types if node.args.get(key) is not None]
            node.replace(_call(PREFIX + name, *args))
