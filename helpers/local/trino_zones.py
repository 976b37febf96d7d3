"""Trino's ``timestamp with time zone`` over DuckDB: an instant that keeps its zone.

Trino's zoned timestamp is an instant and the zone it is seen in: ``TIMESTAMP '2001-08-22
03:04:05.321 Asia/Tokyo'`` shows Tokyo's wall clock, ``hour`` of it is 3, and it equals the
same instant seen in any other zone. DuckDB's ``TIMESTAMPTZ`` is an instant only (shown in
the session's zone), so a zoned value is carried as a DuckDB ``STRUCT(__instant TIMESTAMPTZ,
__zone VARCHAR)`` (:data:`ZONED`), the zone in Trino's spelling (``Asia/Tokyo``, ``+07:09``,
``UTC``). A DuckDB ``TIMESTAMPTZ`` (a UTC literal, ``from_unixtime(x)``, a lake timestamp
cast to a zoned one) stays what it was: a zoned value in the session's zone, UTC.

:func:`zoned_values`, a tree transform, makes the values (zoned literals, ``AT TIME ZONE``,
``with_timezone``, ``at_timezone``, ``from_unixtime`` with a zone or an offset,
``from_iso8601_timestamp`` with an offset, casts from varchar) and rewrites what reads them,
where the query text tells that an operand is zoned (:func:`is_zoned`): fields (``hour``,
``day_of_week``, ``date_format``...) read the wall clock in the value's zone (``__trino_wall``),
comparisons and differences the instant, ``+ INTERVAL`` and ``date_add`` add days and months
to the wall clock and hours to the instant, ``date_trunc`` truncates the wall clock, casts to
varchar, date and timestamp say what Trino's do. The result (``athena.py``) turns the struct
into a pandas timestamp in its zone, and Athena's text (``2001-08-22 03:04:05.321 Asia/Tokyo``)
in the CSV. The DuckDB macros these calls need (``MACROS``) use DuckDB's ICU time zones;
offsets are ICU's ``GMT+07:09``.

Not emulated: a zoned value whose type the query text does not show (a column of a catalog
view built on one) compares by instant and zone together under ``=``, and a zone's short name
(Joda's ``z``) is not supported.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlglot import exp

from helpers.exceptions import QueryError
from helpers.local.trino_types import ZONED_PRODUCERS as PRODUCERS
from helpers.local.trino_types import known_kind, sources

ZONED = "STRUCT(__instant TIMESTAMPTZ, __zone VARCHAR)"
"""DuckDB's type of a Trino ``timestamp with time zone`` in a zone of its own."""

FIELDS = ("__instant", "__zone")  # the struct's fields, as the result reader finds them

_UTC_NAMES = {
    "UTC", "Z", "GMT", "UT", "UCT", "ZULU", "GMT0", "UTC0", "ETC/UTC", "ETC/GMT", "ETC/UCT",
    "ETC/UT", "ETC/ZULU", "ETC/GMT0", "ETC/GMT+0", "ETC/GMT-0", "GREENWICH", "UNIVERSAL",
}  # fmt: skip
_OFFSET = re.compile(r"^(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@lru_cache(maxsize=512)
def zone_name(text: str) -> str:
    """Trino's name of the zone ``text`` names: ``UTC`` for every spelling of UTC,
    ``+07:09`` for an offset (``GMT-08:30`` is ``-08:30``), a region's IANA name; raises
    ValueError for a zone Trino does not know."""
    text = text.strip()
    if text.upper() in _UTC_NAMES:
        return "UTC"
    offset = _OFFSET.match(text)
    if offset:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        if hours > 14 or minutes > 59 or hours * 60 + minutes > 14 * 60:
            raise ValueError(f"Invalid offset {text}")
        if hours == minutes == 0:
            return "UTC"
        return f"{sign}{hours:02d}:{minutes:02d}"
    if "/" not in text and not text.isalpha():
        raise ValueError(f"Time zone not supported: {text}")
    try:
        ZoneInfo(text)
        return text
    except (ZoneInfoNotFoundError, ValueError):
        pass
    folded = {name.lower(): name for name in available_timezones()}
    if text.lower() in folded:
        return folded[text.lower()]
    raise ValueError(f"Time zone not supported: {text}")


def _zone_or_null(text: str | None) -> str | None:
    """``zone_name`` for DuckDB (a Python function): Trino's error for an unknown zone."""
    if text is None:
        return None
    try:
        return zone_name(text)
    except ValueError as error:
        raise ValueError(f"INVALID_FUNCTION_ARGUMENT: {error}") from None


PYTHON = {"zone_name": (_zone_or_null, ["VARCHAR"], "VARCHAR")}
"""Trino name -> (Python function, DuckDB argument types, result type), as in
:mod:`helpers.local.trino_functions`."""

_ISO_OFFSET = r"'(Z|[+-]\d\d(:?\d\d)?)$'"

MACROS = {
    # any timestamp as a zoned value (a TIMESTAMPTZ or a timestamp in the session's zone,
    # UTC), and its instant: overloads, so only called from the query, where DuckDB knows
    # the argument's type (a macro that calls one cannot be created)
    "as_zoned": (
        f"(x {ZONED}) AS x, (x) AS {{'__instant': CAST(x AS TIMESTAMPTZ), '__zone': 'UTC'}}"
    ),
    "as_instant": f"(x {ZONED}) AS x.__instant, (x) AS CAST(x AS TIMESTAMPTZ)",
    # the rest take a zoned value (the struct)
    "icu_zone": "(z) AS CASE WHEN z[1] IN ('+', '-') THEN 'GMT' || z ELSE z END",
    "zoned": "(i, z) AS {'__instant': CAST(i AS TIMESTAMPTZ), '__zone': CAST(z AS VARCHAR)}",
    # the instant at which the wall clock w reads in zone z
    "with_zone": (
        "(w, z) AS __trino_zoned(timezone(__trino_icu_zone(z), CAST(w AS TIMESTAMP)), z)"
    ),
    # the wall clock of a zoned value in its zone
    "wall": "(x) AS timezone(__trino_icu_zone(x.__zone), x.__instant)",
    "zone_of": "(x) AS x.__zone",
    "tz_plus": "(x, i) AS __trino_zoned(x.__instant + i, x.__zone)",
    "tz_plus_wall": "(x, i) AS __trino_with_zone(__trino_wall(x) + i, x.__zone)",
    "tz_trunc": "(u, x) AS __trino_with_zone(date_trunc(u, __trino_wall(x)), x.__zone)",
    "offset_seconds": (
        "(x) AS CAST(epoch(__trino_wall(x)) - epoch(CAST(x.__instant AS TIMESTAMP)) AS BIGINT)"
    ),
    "timezone_hour": "(x) AS CAST(trunc(__trino_offset_seconds(x) / 3600) AS BIGINT)",
    "timezone_minute": "(x) AS CAST(trunc(__trino_offset_seconds(x) / 60) % 60 AS BIGINT)",
    # the offset as text: +07:09 (with a colon) or +0709
    "offset_text": (
        "(x, colon) AS CASE WHEN __trino_offset_seconds(x) < 0 THEN '-' ELSE '+' END"
        " || lpad(CAST(abs(__trino_offset_seconds(x)) // 3600 AS VARCHAR), 2, '0')"
        " || CASE WHEN colon THEN ':' ELSE '' END"
        " || lpad(CAST(abs(__trino_offset_seconds(x)) // 60 % 60 AS VARCHAR), 2, '0')"
    ),
    # Trino's text of a zoned value of precision p: 2001-08-22 03:04:05.321 Asia/Tokyo
    "tz_text": (
        "(x, p) AS strftime(__trino_wall(x), '%Y-%m-%d %H:%M:%S')"
        " || CASE WHEN p > 0 THEN '.' || rpad(left(strftime(__trino_wall(x), '%f'), p), p, '0')"
        " ELSE '' END || ' ' || x.__zone"
    ),
    # varchar to a zoned value: the zone after the date and time, else the session's (UTC)
    "parse_zoned": (
        "(s) AS __trino_with_zone(CAST(rtrim(left(trim(s), length(trim(s))"
        " - length(__trino_text_zone(s)))) AS TIMESTAMP),"
        " coalesce(__trino_zone_name(nullif(__trino_text_zone(s), '')), 'UTC'))"
    ),
    "text_zone": r"(s) AS regexp_extract(trim(s), '\s([A-Za-z+-][^\s]*)$', 1)",
    # from_iso8601_timestamp: the instant, in the offset the text ends with
    "iso_zoned": (
        "(s) AS __trino_zoned(CAST(s AS TIMESTAMPTZ), CASE WHEN regexp_matches(s,"
        f" 'T.*[+-]\\d\\d(:?\\d\\d)?$') THEN __trino_zone_name(regexp_extract(s, {_ISO_OFFSET}, 1))"
        " ELSE 'UTC' END)"
    ),
    # from_unixtime(x, hours, minutes): the offset's zone, within Trino's range
    "offset_zone": (
        "(h, m) AS CASE WHEN abs(h * 60 + m) > 14 * 60 THEN"
        " error('INVALID_FUNCTION_ARGUMENT: Invalid offset minutes ' || (h * 60 + m))"
        " WHEN h * 60 + m = 0 THEN 'UTC'"
        " ELSE CASE WHEN h * 60 + m < 0 THEN '-' ELSE '+' END"
        " || lpad(CAST(abs(h * 60 + m) // 60 AS VARCHAR), 2, '0') || ':'"
        " || lpad(CAST(abs(h * 60 + m) % 60 AS VARCHAR), 2, '0') END"
    ),
}
"""Trino name -> the parameters and body of its ``__trino_`` DuckDB macro."""

_MADE_ZONED = (exp.UnixToTime, exp.FromISO8601Timestamp, exp.ParseDatetime, exp.AtTimeZone)


def is_zoned(node: exp.Expression | None) -> bool:
    """Whether the query text shows ``node`` is a ``timestamp with time zone``."""
    if node is None:
        return False
    if isinstance(node, exp.Paren):
        return is_zoned(node.this)
    if isinstance(node, exp.Anonymous) and node.name.lower() in PRODUCERS:
        return True
    if isinstance(node, _MADE_ZONED):
        return True
    if isinstance(node, exp.Column):
        found = [source for source in sources(node) if not isinstance(source, exp.Null)]
        if found and None not in found:
            return all(is_zoned(source) for source in found)
    return known_kind(node) in (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ)


def precision_of(node: exp.Expression) -> int:
    """The fractional digits of a zoned value, where the text says them (else 3)."""
    if isinstance(node, exp.Paren):
        return precision_of(node.this)
    digits = node.meta.get("trino_precision") if node.meta else None
    if digits is not None:
        return digits
    if isinstance(node, exp.Cast) and node.to.expressions:
        return int(node.to.expressions[0].name)
    if isinstance(node, exp.Column):
        found = [source for source in sources(node) if source is not None]
        if found:
            return max(precision_of(source) for source in found)
    return 3


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=f"__trino_{name}", expressions=list(args))


def _wrap(node: exp.Expression, name: str, *more: exp.Expression) -> exp.Anonymous:
    """Put ``__trino_<name>(node, *more)`` where ``node`` is, keeping ``node`` itself (other
    transforms hold it)."""
    call = _call(name)
    node.replace(call)
    call.set("expressions", [node, *more])
    return call


def _as_zoned(node: exp.Expression) -> exp.Expression:
    """``node`` (a zoned value, or a timestamp in UTC) as the struct the macros take."""
    if isinstance(node, exp.Anonymous) and node.name.lower() in PRODUCERS:
        return node
    return _wrap(node, "as_zoned")


def _zoned_wrap(node: exp.Expression, name: str, *more: exp.Expression) -> exp.Anonymous:
    """``__trino_<name>`` of the zoned value ``node`` (``wall``, ``instant``...)."""
    if name == "instant":
        return _wrap(node, "as_instant")
    return _wrap(_as_zoned(node), name, *more)


def _zone_argument(node: exp.Expression, error: str) -> exp.Expression:
    """A zone argument in Trino's spelling: fixed here for a literal, else by
    ``__trino_zone_name`` when the query runs."""
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            return exp.Literal.string(zone_name(node.this))
        except ValueError as reason:
            raise QueryError(error, str(reason)) from None
    return _call("zone_name", node.copy())


_LITERAL = re.compile(
    r"^(?P<wall>[+-]?\d+-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.(?P<fraction>\d+))?)?)?)"
    r"\s*(?P<zone>\S+)?$"
)


def _zoned_literal(cast: exp.Cast) -> exp.Expression | None:
    """``TIMESTAMP '2001-08-22 03:04:05.321 Asia/Tokyo'``: the wall clock in the zone (None
    for UTC or no zone: DuckDB's own TIMESTAMPTZ, in UTC, is that)."""
    match = _LITERAL.match(cast.this.this.strip())
    if not match or not match.group("zone"):
        return None
    try:
        zone = zone_name(match.group("zone"))
    except ValueError as reason:
        raise QueryError("INVALID_LITERAL", f"{reason}: {cast.this.this!r}") from None
    if zone == "UTC":
        return None
    digits = len(match.group("fraction") or "")
    if cast.to.expressions:
        digits = int(cast.to.expressions[0].name)
    wall = exp.cast(exp.Literal.string(match.group("wall")), "TIMESTAMP")
    made = _call("with_zone", wall, exp.Literal.string(zone))
    made.meta["trino_precision"] = digits
    return made


_DAY_UNITS = {"DAY", "DAYS", "WEEK", "WEEKS", "MONTH", "MONTHS", "QUARTER", "QUARTERS"}
_DAY_UNITS |= {"YEAR", "YEARS"}
_FIELD_NODES = (
    exp.Extract, exp.Hour, exp.Minute, exp.Second, exp.Day, exp.Month, exp.Year, exp.Quarter,
    exp.Week, exp.WeekOfYear, exp.DayOfWeek, exp.DayOfWeekIso, exp.DayOfMonth, exp.DayOfYear,
    exp.YearOfWeek, exp.LastDay, exp.Date, exp.TimeToStr, exp.TsOrDsToDate,
)  # fmt: skip
_FIELD_NAMES = {
    "millisecond", "yow", "year_of_week", "day_of_week", "dow", "day_of_month",
    "day_of_year", "doy", "week_of_year", "last_day_of_month", "date_format",
}  # fmt: skip
_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.NullSafeEQ)
_COMPARISONS += (exp.NullSafeNEQ,)


def _depth(node: exp.Expression) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return unit.name.upper() if unit is not None else ""


def _interval(unit: str, amount: exp.Expression) -> exp.Expression:
    unit = unit.rstrip("S") or "DAY"
    if unit == "QUARTER":
        unit, amount = (
            "MONTH",
            exp.Mul(this=exp.Paren(this=amount), expression=exp.Literal.number(3)),
        )
    return exp.Interval(this=exp.Paren(this=amount), unit=exp.var(unit))


def zoned_values(found) -> None:
    """Make Trino's zoned values and read them as Trino does (see the module docstring).
    Inner nodes first, so that an outer node sees what an inner one became."""
    kinds = (
        exp.Cast, exp.AtTimeZone, exp.Anonymous, exp.UnixToTime, exp.FromISO8601Timestamp,
        *_COMPARISONS, exp.Add, exp.Sub, exp.DateAdd, exp.DateTrunc, exp.TimestampTrunc,
        exp.DateDiff, exp.TimeToUnix, *_FIELD_NODES,
    )  # fmt: skip
    nodes = sorted(found(*kinds), key=_depth, reverse=True)
    for node in nodes:
        if node.parent is None and not isinstance(node, exp.Query):
            continue  # replaced already
        _rewrite(node)


def _rewrite(node: exp.Expression) -> None:
    if isinstance(node, exp.Cast):
        _cast(node)
    elif isinstance(node, exp.AtTimeZone):
        zone = node.args["zone"]
        if not isinstance(zone, exp.Interval) and not (
            isinstance(zone, exp.Literal) and zone.is_string
        ):  # Trino's grammar: TIME ZONE string | TIME ZONE interval
            raise QueryError(
                "SYNTAX_ERROR",
                f"AT TIME ZONE takes a string or an interval literal, not {zone.sql()}; "
                "at_timezone(value, zone) takes a parameter or a column",
            )
        _at_zone(node, node.this, _zone_argument(zone, "INVALID_FUNCTION_ARGUMENT"))
    elif isinstance(node, exp.UnixToTime):
        _from_unixtime(node)
    elif isinstance(node, exp.FromISO8601Timestamp):
        _from_iso8601(node)
    elif isinstance(node, exp.Anonymous):
        _function(node)
    elif isinstance(node, _COMPARISONS):
        if is_zoned(node.this) or is_zoned(node.expression):
            _zoned_wrap(node.this, "instant")
            _zoned_wrap(node.expression, "instant")
    elif isinstance(node, (exp.Add, exp.Sub)):
        _arithmetic(node)
    elif isinstance(node, exp.DateAdd):
        if is_zoned(node.this):
            unit = _unit(node)
            name = "tz_plus_wall" if unit in _DAY_UNITS else "tz_plus"
            operand, amount = node.this, _interval(unit, node.expression)
            node.replace(_call(name, operand, amount))
            _as_zoned(operand)
    elif isinstance(node, (exp.DateTrunc, exp.TimestampTrunc)):
        if is_zoned(node.this):
            unit = exp.Literal.string(_unit(node).lower() or "day")
            operand = node.this
            node.replace(_call("tz_trunc", unit, operand))
            _as_zoned(operand)
    elif isinstance(node, exp.DateDiff):
        name = "wall" if (_unit(node) or "DAY") in _DAY_UNITS else "instant"
        for side in (node.this, node.expression):
            if is_zoned(side):
                _zoned_wrap(side, name)
    elif isinstance(node, exp.TimeToUnix):
        if is_zoned(node.this):
            _zoned_wrap(node.this, "instant")
    elif isinstance(node, _FIELD_NODES):
        operand = node.expression if isinstance(node, exp.Extract) else node.this
        if is_zoned(operand):
            _zoned_wrap(operand, "wall")


def _cast(node: exp.Cast) -> None:
    target, operand = node.to.this, node.this
    if target in (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ):
        if isinstance(operand, exp.Literal) and operand.is_string:
            made = _zoned_literal(node)
            if made is not None:
                node.replace(made)
        elif known_kind(operand) in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT):
            made = _call("parse_zoned", operand)
            made.meta["trino_precision"] = 3
            node.replace(made)
        elif is_zoned(operand):
            node.replace(operand)
        return
    if not is_zoned(operand):
        return
    if target in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT) and not node.to.expressions:
        digits = exp.Literal.number(precision_of(operand))
        node.replace(_call("tz_text", operand, digits))
        _as_zoned(operand)
    elif target in (exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP):
        _zoned_wrap(operand, "wall")


def _from_unixtime(node: exp.UnixToTime) -> None:
    zone, hours, minutes = (node.args.get(key) for key in ("zone", "hours", "minutes"))
    if zone is None and hours is None:
        return
    if zone is not None:
        zone = _zone_argument(zone, "INVALID_FUNCTION_ARGUMENT")
    elif all(isinstance(part, exp.Literal) and part.is_int for part in (hours, minutes or hours)):
        offset = int(hours.this) * 60 + (int(minutes.this) if minutes is not None else 0)
        if abs(offset) > 14 * 60:
            raise QueryError("INVALID_FUNCTION_ARGUMENT", f"Invalid offset minutes {offset}")
        sign = "-" if offset < 0 else "+"
        text = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}" if offset else "UTC"
        zone = exp.Literal.string(text)
    else:
        zone = _call("offset_zone", hours.copy(), (minutes or exp.Literal.number(0)).copy())
    if isinstance(zone, exp.Literal) and zone.this == "UTC":
        for key in ("zone", "hours", "minutes"):
            node.set(key, None)
        return
    bare = exp.UnixToTime(this=node.this)
    node.replace(_call("zoned", bare, zone))


def _from_iso8601(node: exp.FromISO8601Timestamp) -> None:
    text = node.this
    if not (isinstance(text, exp.Literal) and text.is_string):
        node.replace(_call("iso_zoned", text))
        return
    offset = re.search(r"T[\d:.,]*([+-]\d\d(?::?\d\d)?)$", text.this.strip())
    if offset is None:
        return
    zone = zone_name(offset.group(1))
    if zone != "UTC":
        bare = exp.FromISO8601Timestamp(this=text.copy())
        node.replace(_call("zoned", bare, exp.Literal.string(zone)))


def _arithmetic(node: exp.Add | exp.Sub) -> None:
    left, right = node.this, node.expression
    if isinstance(node, exp.Sub) and is_zoned(left) and is_zoned(right):
        _zoned_wrap(left, "instant")
        _zoned_wrap(right, "instant")
        return
    if isinstance(node, exp.Add) and isinstance(left, exp.Interval) and is_zoned(right):
        left, right = right, left
    if not (is_zoned(left) and isinstance(right, exp.Interval)):
        return
    unit = _unit(right)
    name = "tz_plus" if not unit.startswith(("YEAR", "MONTH", "QUARTER")) else "tz_plus_wall"
    amount = right if isinstance(node, exp.Add) else exp.Neg(this=exp.Paren(this=right))
    node.replace(_call(name, left, amount))
    _as_zoned(left)


def _at_zone(node: exp.Expression, value: exp.Expression, zone: exp.Expression) -> None:
    """``value`` (a zoned value, or a timestamp in UTC) seen in ``zone``."""
    made = _call("zoned", value, zone)
    node.replace(made)
    _wrap(value, "as_instant")


def _function(node: exp.Anonymous) -> None:
    name, args = node.name.lower(), node.expressions
    if name == "with_timezone" and len(args) == 2:
        zone = _zone_argument(args[1], "INVALID_FUNCTION_ARGUMENT")
        node.replace(_call("with_zone", args[0], zone))
    elif name == "at_timezone" and len(args) == 2:
        zone = _zone_argument(args[1], "INVALID_FUNCTION_ARGUMENT")
        _at_zone(node, args[0], zone)
    elif name in ("timezone_hour", "timezone_minute") and len(args) == 1:
        node.set("this", f"__trino_{name}")
        _as_zoned(args[0])
    elif name == "timezone" and len(args) == 1:
        operand = args[0]
        node.replace(operand)
        _zoned_wrap(operand, "zone_of")
    elif name in _FIELD_NAMES and args and is_zoned(args[0]):
        _zoned_wrap(args[0], "wall")


def utc_offset(zone: str) -> timedelta | None:
    """The fixed offset of a zone that is an offset (``+07:09``), else None."""
    match = re.match(r"^([+-])(\d\d):(\d\d)$", zone)
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
