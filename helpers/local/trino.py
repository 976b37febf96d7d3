"""Trino's meaning over DuckDB: how the local Athena reads Athena SQL and says it to DuckDB.

Athena (engine version 3) is Trino. sqlglot parses the query with its Athena dialect, and
``to_duckdb`` writes it for DuckDB with this module's dialect (``TrinoOnDuckDB``): sqlglot's
DuckDB dialect with tree transforms where Trino means something else than the same text means
to DuckDB, and DuckDB macros (``MACROS``, created in every connection by ``install``) where
the difference can only be told once DuckDB knows the operands' types.

What is Trino's here: integer ``/`` (truncating, failing on zero; NULL under ``try``) and
decimal ``/``, ``round``, ``floor``, ``mod``, ``avg`` (Trino's precision, scale and rounding);
casts (varchar to integers from digits only, doubles to varchar as ``3.77E1``, JSON to and
from varchar, ``varchar(n)``, ``char(n)``, timestamp precisions); a number and a varchar
refused together (``TYPE_MISMATCH``); unnamed columns as ``_col<i>``; ``typeof`` in Trino's
type names (bounded varchars from :mod:`helpers.local.trino_types`); decimal literals'
precision and scale; date arithmetic in days or months giving dates (hours on a date
refused); ``date_diff`` in whole units; interval fields; array subscripts out of range and
missing map keys failing; ``UNNEST`` of several arrays, of maps, ``WITH ORDINALITY``;
``slice``, ``sequence`` counting down, ``split`` with a limit, ``strpos`` with an instance,
``reduce`` with a finishing function; ``substr`` from 0 giving '', ``split_part`` past the end
and ``regexp_extract`` without a match giving NULL; ``regexp_replace`` reading Java's
replacement (``$1``, ``${name}``); the functions DuckDB lacks
(:mod:`helpers.local.trino_functions`); timestamps with time zone that keep their zone
(:mod:`helpers.local.trino_zones`). Whatever sqlglot knows DuckDB cannot say fails with
``NOT_SUPPORTED``.

Many of these need the operands' types before the query runs: sqlglot knows them for
literals, casts, many functions and columns of inline VALUES, not for the catalog's columns
(there DuckDB's meaning stays: a decimal column's ``avg`` is a double).
``tests/athena/conformance/known_disagreements.txt`` lists the known disagreements. A
division whose operand holds an aggregate or window and whose types are not known here fails
on a zero divisor even between doubles (Trino gives Infinity).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ErrorLevel, UnsupportedError

from helpers.exceptions import QueryError
from helpers.local import trino_functions, trino_types, trino_zones
from helpers.local.trino_rewrites import TREE_TRANSFORMS, _Found, unnest_rows
from helpers.local.trino_types import (
    READ,
    TEXT_TYPES,
    decimal_digits,
    known_kind,
    known_type,
    trino_type_name,
)

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT")

MACROS = [
    # ``a / b``: between integers, Trino divides as integers (truncating toward zero, the
    # type of the wider operand) and fails on a zero divisor, which DuckDB's ``//`` does
    # between integers (``TRY`` makes the failure NULL); between anything else it is DuckDB's
    # ``/``. The overload is chosen by the operands' types once DuckDB binds them.
    "CREATE OR REPLACE TEMP MACRO __trino_divide"
    + ", ".join(f"(a {kind}, b {kind}) AS a // b" for kind in _INTEGERS)
    + ", (a, b) AS a / b",
    # sequence(a, b) counts down when b < a (DuckDB's is empty), of dates by days
    "CREATE OR REPLACE TEMP MACRO __trino_sequence(a BIGINT, b BIGINT) AS"
    " generate_series(a, b, CASE WHEN a <= b THEN 1 ELSE -1 END),"
    " (a DATE, b DATE) AS list_transform(generate_series(a::TIMESTAMP, b::TIMESTAMP,"
    " CASE WHEN a <= b THEN INTERVAL 1 DAY ELSE INTERVAL '-1' DAY END), lambda t: t::DATE),"
    " (a, b) AS generate_series(a, b)",
    # date arithmetic in whole days or months stays a date in Trino (DuckDB's is a timestamp)
    "CREATE OR REPLACE TEMP MACRO __trino_keep_date(a DATE, r) AS CAST(r AS DATE), (a, r) AS r",
    # subscripts (see _subscript): out of range fails; element_at is NULL past the end
    "CREATE OR REPLACE TEMP MACRO __trino_subscript(a, i) AS CASE"
    " WHEN i < 1 THEN error('INVALID_FUNCTION_ARGUMENT: SQL array indices start at 1')"
    " WHEN i > len(a) THEN error('INVALID_FUNCTION_ARGUMENT: Array subscript must be less"
    " than or equal to array length: ' || i || ' > ' || len(a)) ELSE a[i] END",
    "CREATE OR REPLACE TEMP MACRO __trino_element_at(a, i) AS CASE"
    " WHEN i = 0 THEN error('INVALID_FUNCTION_ARGUMENT: SQL array indices start at 1')"
    " WHEN abs(i) > len(a) THEN NULL ELSE a[i] END",
    "CREATE OR REPLACE TEMP MACRO __trino_map_subscript(m, k) AS CASE"
    " WHEN NOT list_contains(map_keys(m), k)"
    " THEN error('INVALID_FUNCTION_ARGUMENT: Key not present in map: ' || k) ELSE m[k] END",
    # a date plus or minus hours, minutes or seconds: Trino refuses it (DuckDB: a timestamp)
    "CREATE OR REPLACE TEMP MACRO __trino_time_on_date(a DATE, r) AS"
    " error('INVALID_FUNCTION_ARGUMENT: Cannot add hour, minutes or seconds to a date'),"
    " (a, r) AS r",
    # strpos(s, t, n): the n-th match of t (overlapping ones too), from the end if n < 0
    "CREATE OR REPLACE TEMP MACRO __trino_strpos(s, t, n) AS CASE WHEN n = 0 THEN"
    " error('INVALID_FUNCTION_ARGUMENT: instance must not be zero') WHEN t = '' THEN 1"
    " ELSE coalesce(list_filter(range(1, length(s) + 1),"
    " lambda i: substring(s, i, length(t)) = t)[n], 0) END",
    # the quotient of unscaled decimals, rounded half away from zero (see _decimal_divide)
    "CREATE OR REPLACE TEMP MACRO __trino_decimal_divide(n, d) AS"
    " n // d + CASE WHEN 2 * abs(n % d) >= abs(d) THEN sign(n) * sign(d) ELSE 0 END",
    # casts (see _cast): integers from varchar only from digits; varchar from doubles in
    # scientific form, from JSON as the scalar's text; varchar(n) too short for the text
    "CREATE OR REPLACE TEMP MACRO __trino_integer_text(x) AS CASE"
    " WHEN typeof(x) <> 'VARCHAR' OR regexp_full_match(TRY_CAST(x AS VARCHAR), '[+-]?[0-9]+')"
    " THEN x ELSE error('INVALID_CAST_ARGUMENT: Cannot cast ''' ||"
    " TRY_CAST(x AS VARCHAR) || ''' to an integer type') END",
    "CREATE OR REPLACE TEMP MACRO __trino_integer_text_or_null(x) AS CASE"
    " WHEN typeof(x) <> 'VARCHAR' OR regexp_full_match(TRY_CAST(x AS VARCHAR), '[+-]?[0-9]+')"
    " THEN x END",
    "CREATE OR REPLACE TEMP MACRO __trino_varchar"
    f"(x {trino_zones.ZONED}) AS __trino_tz_text(x, 3), (x) AS CASE"
    " WHEN typeof(x) = 'DOUBLE' THEN __trino_double_text(TRY_CAST(x AS DOUBLE))"
    " WHEN typeof(x) <> 'JSON' THEN CAST(x AS VARCHAR)"
    " WHEN json_type(TRY_CAST(x AS JSON)) IN ('ARRAY', 'OBJECT')"
    " THEN error('INVALID_CAST_ARGUMENT: Cannot cast a JSON array or object to varchar')"
    " WHEN json_type(TRY_CAST(x AS JSON)) = 'NULL' THEN NULL"
    " ELSE json_extract_string(TRY_CAST(x AS JSON), '$') END",
    "CREATE OR REPLACE TEMP MACRO __trino_varchar_n(x, text, n) AS CASE"
    " WHEN typeof(x) = 'VARCHAR' THEN left(text, n) WHEN length(text) <= n THEN text"
    " ELSE error('INVALID_CAST_ARGUMENT: Value ' || text || ' cannot be represented as"
    " varchar(' || n || ')') END",
    "CREATE OR REPLACE TEMP MACRO __trino_to_json(x) AS CASE"
    " WHEN typeof(x) = 'VARCHAR' THEN to_json(TRY_CAST(x AS VARCHAR)) ELSE CAST(x AS JSON) END",
    # intervals as Trino writes them: day to second '12 10:45:32.123', year to month '1-2'
    "CREATE OR REPLACE TEMP MACRO __trino_interval_text(i) AS"
    " CASE WHEN epoch(i) < 0 THEN '-' ELSE '' END || __trino_millis_text("
    "abs(CAST(round(epoch(i) * 1000) AS BIGINT)))",
    "CREATE OR REPLACE TEMP MACRO __trino_millis_text(ms) AS CAST(ms // 86400000 AS VARCHAR)"
    " || ' ' || lpad(CAST(ms // 3600000 % 24 AS VARCHAR), 2, '0')"
    " || ':' || lpad(CAST(ms // 60000 % 60 AS VARCHAR), 2, '0')"
    " || ':' || lpad(CAST(ms // 1000 % 60 AS VARCHAR), 2, '0')"
    " || '.' || lpad(CAST(ms % 1000 AS VARCHAR), 3, '0')",
    "CREATE OR REPLACE TEMP MACRO __trino_months_text(i) AS"
    " CASE WHEN datepart('year', i) * 12 + datepart('month', i) < 0 THEN '-' ELSE '' END"
    " || CAST(abs(datepart('year', i) * 12 + datepart('month', i)) // 12 AS VARCHAR) || '-'"
    " || CAST(abs(datepart('year', i) * 12 + datepart('month', i)) % 12 AS VARCHAR)",
    # an interval divided by zero, or multiplied or divided by NaN or infinity, fails
    "CREATE OR REPLACE TEMP MACRO __trino_interval_factor(x) AS CASE"
    " WHEN NOT isfinite(TRY_CAST(x AS DOUBLE))"
    " THEN error('INVALID_FUNCTION_ARGUMENT: interval arithmetic with ' || x) ELSE x END",
    "CREATE OR REPLACE TEMP MACRO __trino_interval_divisor(x) AS CASE"
    " WHEN x = 0 THEN error('INVALID_FUNCTION_ARGUMENT: Cannot divide an interval by zero')"
    " ELSE __trino_interval_factor(x) END",
    # split(s, d, n): at most n parts, the last one the rest of the string
    "CREATE OR REPLACE TEMP MACRO __trino_split(s, d, n) AS CASE WHEN n <= 0 THEN"
    " error('INVALID_FUNCTION_ARGUMENT: Limit must be positive')"
    " WHEN len(str_split(s, d)) <= n THEN str_split(s, d)"
    " ELSE list_concat(str_split(s, d)[1:n - 1], [array_to_string(str_split(s, d)[n:], d)]) END",
]
"""DuckDB macros that the SQL of ``to_duckdb`` calls (``install`` creates them)."""


def _divide(generator: DuckDB.Generator, expression: exp.Div) -> str:
    """Trino's ``/``: between integers, integer division (see ``MACROS``). Where sqlglot
    knows both operands' types, the operator is chosen here; else ``__trino_divide`` chooses
    once DuckDB knows them, but DuckDB binds a macro before the aggregates and windows of its
    arguments (it would choose blindly), so an operand holding one gets ``//``, which is the
    same as ``/`` between non-integers but fails (``DIVISION_BY_ZERO``) on a zero divisor
    where Trino gives Infinity or NaN: an error, never another answer."""
    left, right = expression.this, expression.expression
    if known_kind(left) == exp.DataType.Type.INTERVAL:
        return f"{generator.sql(left)} / __trino_interval_divisor({generator.sql(right)})"
    known = [known_type(side) for side in (left, right)]
    decimal = _decimal_divide(generator, left, right, known)
    if decimal is not None:
        return decimal
    kinds = [None if kind is None else kind.this for kind in known]
    if all(kind in exp.DataType.INTEGER_TYPES for kind in kinds):
        return generator.binary(expression, "//")
    if any(kind is not None and kind not in exp.DataType.INTEGER_TYPES for kind in kinds):
        return generator.binary(expression, "/")
    if expression.find(exp.AggFunc, exp.Window):
        return generator.binary(expression, "//")
    return generator.func("__trino_divide", left, right)


def _multiply(generator: DuckDB.Generator, expression: exp.Mul) -> str:
    """An interval times NaN or infinity fails in Trino (DuckDB: an overflow)."""
    left, right = expression.this, expression.expression
    kinds = [known_kind(side) for side in (left, right)]
    if exp.DataType.Type.INTERVAL not in kinds or set(kinds) <= {exp.DataType.Type.INTERVAL}:
        return _default(generator, expression)
    factor = right if kinds[0] == exp.DataType.Type.INTERVAL else left
    interval = left if factor is right else right
    if known_kind(factor) in exp.DataType.INTEGER_TYPES:
        return _default(generator, expression)
    return f"{generator.sql(interval)} * __trino_interval_factor({generator.sql(factor)})"


def _decimal_divide(generator: DuckDB.Generator, left, right, kinds: list) -> str | None:
    """Trino's division of decimals (where sqlglot knows both types and one is a decimal):
    a ``decimal(min(38, p1 + s2 + max(0, s2 - s1)), max(s1, s2))``, rounded half away
    from zero, failing on a zero divisor. DuckDB's ``/`` gives a double. Computed exactly
    on the unscaled values (HUGEINT) by ``__trino_decimal_divide``."""
    digits = [decimal_digits(kind) for kind in kinds]
    if None in digits or not any(k.this == exp.DataType.Type.DECIMAL for k in kinds):
        return None
    (p1, s1), (_, s2) = digits
    scale = max(s1, s2)
    precision = min(38, p1 + s2 + max(0, s2 - s1))
    numerator = f"CAST(({generator.sql(left)}) * {10**s1} AS HUGEINT) * {10 ** (scale - s1 + s2)}"
    denominator = f"CAST(({generator.sql(right)}) * {10**s2} AS HUGEINT)"
    quotient = _unscaled_quotient(numerator, denominator, scale)
    return f"CAST({quotient} AS DECIMAL({precision}, {scale}))"


def _unscaled_quotient(numerator: str, denominator: str, scale: int) -> str:
    """The decimal of scale ``scale`` whose unscaled value is ``numerator / denominator``
    (integers), rounded half away from zero by ``__trino_decimal_divide``."""
    unscaled = f"CAST(__trino_decimal_divide({numerator}, {denominator}) AS DECIMAL(38, 0))"
    if not scale:
        return unscaled
    return f"{unscaled} * CAST('{10**-scale:.{scale}f}' AS DECIMAL({scale + 1}, {scale}))"


def _result_type(expression: exp.Expression) -> str | None:
    """Trino's result type of a rounding function, ``mod``, ``sign`` or ``avg`` where
    sqlglot knows its operands' types and Trino's differs from DuckDB's: ``ceil``, ``floor``
    and ``round`` of a ``decimal(p, s)`` are ``decimal(p - s + min(s, 1), 0)``, ``round`` and
    ``truncate`` to digits keep the scale, ``mod`` takes the narrower integer part, ``sign``
    of a decimal is ``decimal(1, 0)``, ``avg`` of a decimal keeps its type, and each of these
    keeps an integer operand's type (DuckDB's ``ceil(-123)`` is a double, ``sign`` a tinyint).
    """
    kind = known_type(expression.this)
    if kind is None:
        return None
    digits = decimal_digits(kind) if kind.this == exp.DataType.Type.DECIMAL else None
    if kind.this in exp.DataType.INTEGER_TYPES and not isinstance(expression, (exp.Avg, exp.Mod)):
        return kind.sql(dialect="duckdb")
    if digits is None:
        return None
    precision, scale = digits
    with_digits = expression.args.get("decimals") is not None
    if isinstance(expression, exp.Sign):
        return "DECIMAL(1, 0)"
    if isinstance(expression, exp.Avg):
        return f"DECIMAL({precision}, {scale})"
    if isinstance(expression, exp.Mod):
        other = decimal_digits(known_type(expression.expression))
        if other is None:
            return None
        widest = max(scale, other[1])
        return f"DECIMAL({min(other[0] - other[1], precision - scale) + widest}, {widest})"
    if with_digits:
        grown = precision + 1 if isinstance(expression, exp.Round) else precision
        return f"DECIMAL({min(38, grown)}, {scale})"
    if isinstance(expression, exp.Trunc):
        return f"DECIMAL({max(1, precision - scale)}, 0)"
    return f"DECIMAL({max(1, precision - scale + min(scale, 1))}, 0)"


def _typed_result(generator: DuckDB.Generator, expression: exp.Expression) -> str:
    """The function with Trino's result type (see ``_result_type``); ``avg`` of a decimal
    rounded half away from zero to its scale, as Trino's (DuckDB's is a double)."""
    sql = _default(generator, expression)
    kind = _result_type(expression)
    if kind is None:
        if isinstance(expression, exp.Sign) and known_kind(expression.this) in _FLOATS:
            value = generator.sql(expression.this)  # sign(NaN) is NaN, and a double
            return f"CASE WHEN isnan({value}) THEN {value} ELSE CAST({sql} AS DOUBLE) END"
        return sql
    if isinstance(expression, exp.Avg):
        if isinstance(expression.parent, exp.Window):  # typed around the window: _window
            return sql
        scale = _avg_scale(expression)
        value = generator.sql(expression.this)
        total = f"CAST(sum({value}) * {10**scale} AS HUGEINT)"
        sql = _unscaled_quotient(total, f"count({value})", scale)
    return f"CAST({sql} AS {kind})"


def _avg_scale(expression: exp.Avg) -> int:
    """The scale of a decimal ``avg`` (its operand's, which ``_result_type`` found known)."""
    return decimal_digits(known_type(expression.this))[1]


def _window(generator: DuckDB.Generator, expression: exp.Window) -> str:
    """A window's ``avg`` of a decimal keeps its type (rounded from DuckDB's double)."""
    sql = _default(generator, expression)
    inner = expression.this
    kind = _result_type(inner) if isinstance(inner, exp.Avg) else None
    if kind is None:
        return sql
    return f"CAST(round({sql}, {_avg_scale(inner)}) AS {kind})"


def _subscript(generator: DuckDB.Generator, expression: exp.Bracket) -> str:
    """An array subscript out of range and a map subscript of a missing key fail in Trino
    (DuckDB gives NULL); ``element_at`` is NULL past the end but fails on index 0. Where
    sqlglot knows the container is an array or a map; under ``try`` the NULL is Trino's."""
    sql = _default(generator, expression)
    if len(expression.expressions) != 1:
        return sql
    kind = known_kind(expression.this)
    if kind not in (exp.DataType.Type.ARRAY, exp.DataType.Type.MAP):
        return sql
    (index,) = generator.bracket_offset_expressions(expression)
    container, at = generator.sql(expression.this), generator.sql(index)
    safe = bool(expression.args.get("safe"))
    if expression.find_ancestor(exp.Try) is not None:  # DuckDB's TRY takes no error()
        if kind == exp.DataType.Type.MAP:
            return sql  # a missing key: NULL, as under Trino's try
        outside = f"{at} = 0 OR abs({at})" if safe else f"{at} < 1 OR {at}"
        return f"CASE WHEN {outside} > len({container}) THEN NULL ELSE {sql} END"
    if kind == exp.DataType.Type.MAP:
        return sql if safe else f"__trino_map_subscript({container}, {at})"
    macro = "__trino_element_at" if safe else "__trino_subscript"
    return f"{macro}({container}, {at})"


def _replace(generator: DuckDB.Generator, expression: exp.Replace) -> str:
    """replace(s, '', r) puts r around every character in Trino (DuckDB leaves s)."""
    sql = _default(generator, expression)
    search = expression.expression
    replacement = expression.args.get("replacement")
    if replacement is None or (isinstance(search, exp.Literal) and search.this != ""):
        return sql
    text, by = generator.sql(expression.this), generator.sql(replacement)
    return (
        f"CASE WHEN {generator.sql(search)} <> '' THEN {sql} WHEN {text} = '' THEN {by}"
        f" ELSE {by} || array_to_string(string_split({text}, ''), {by}) || {by} END"
    )


def _json_scalar(generator: DuckDB.Generator, expression: exp.JSONExtractScalar) -> str:
    """json_extract_scalar of an object or array is NULL in Trino (DuckDB gives its text)."""
    sql = _default(generator, expression)
    document, path = generator.sql(expression.this), generator.sql(expression.expression)
    return (
        f"CASE WHEN json_type({document}, {path}) IN ('OBJECT', 'ARRAY') THEN NULL ELSE {sql} END"
    )


_EXTRACT_NAMES = {
    "DAY_OF_WEEK": "ISODOW",
    "DOW": "ISODOW",
    "DAY_OF_MONTH": "DAY",
    "DAY_OF_YEAR": "DOY",
    "YEAR_OF_WEEK": "ISOYEAR",
    "YOW": "ISOYEAR",
}
_INTERVAL_FIELDS = {"DAY": 86_400, "HOUR": 3_600, "MINUTE": 60, "SECOND": 1}
_FIELD_SPAN = {"DAY": None, "HOUR": 24, "MINUTE": 60, "SECOND": 60}


def _interval_field(generator: DuckDB.Generator, expression: exp.Expression) -> str:
    """The day, hour, minute or second field of a day-to-second interval, from its total
    (``INTERVAL '27' HOUR`` is 1 day 3 hours in Trino; DuckDB keeps 27 hours)."""
    if isinstance(expression, exp.Extract) and expression.this.name.upper() in _EXTRACT_NAMES:
        renamed = expression.copy()  # Trino's field names that DuckDB spells otherwise
        renamed.set("this", exp.var(_EXTRACT_NAMES[expression.this.name.upper()]))
        return _default(generator, renamed)
    sql = _default(generator, expression)
    if isinstance(expression, exp.Extract):
        field, operand = expression.this.name.upper(), expression.expression
    else:
        field, operand = expression.key.upper(), expression.this
    if field not in _INTERVAL_FIELDS or known_kind(operand) != exp.DataType.Type.INTERVAL:
        return sql
    seconds = f"trunc(epoch({generator.sql(operand)}))"
    whole = f"CAST(trunc({seconds} / {_INTERVAL_FIELDS[field]}) AS BIGINT)"
    span = _FIELD_SPAN[field]
    return whole if span is None else f"({whole} % {span})"


def _date_diff(generator: DuckDB.Generator, expression: exp.DateDiff) -> str:
    """date_diff counts whole units in Trino, which is DuckDB's ``date_sub`` (its
    ``date_diff`` counts boundaries crossed, and is one off before 1970 with fractions)."""
    unit = _unit(expression) or "DAY"
    start, end = generator.sql(expression.expression), generator.sql(expression.this)
    return f"date_sub('{unit.lower()}', {start}, {end})"


def _equal(generator: DuckDB.Generator, expression: exp.EQ | exp.NEQ) -> str:
    """NaN equals nothing in Trino, itself included (DuckDB's NaN = NaN is true); where
    sqlglot knows both sides are doubles."""
    sql = _default(generator, expression)
    kinds = {known_kind(side) for side in (expression.this, expression.expression)}
    if not kinds <= _FLOATS:
        return sql
    left = generator.sql(expression.this)
    if isinstance(expression, exp.EQ):
        return f"({sql} AND NOT isnan({left}))"
    return f"({sql} OR isnan({left}))"


def _regexp_group(generator: DuckDB.Generator, expression: exp.RegexpExtract) -> str:
    """regexp_extract of a group the pattern does not have fails in Trino; then as
    ``_regexp_extract``."""
    pattern, group = expression.expression, expression.args.get("group")
    if isinstance(pattern, exp.Literal) and isinstance(group, exp.Literal) and group.is_int:
        try:
            groups = re.compile(pattern.this).groups
        except re.error:
            groups = None
        if groups is not None and int(group.this) > groups:
            raise QueryError(
                "INVALID_FUNCTION_ARGUMENT",
                f"Pattern has {groups} groups. Cannot access group {group.this}",
            )
    if group is not None and _may_not_take_part(pattern, group):
        return generator.func("__trino_regexp_extract_group", expression.this, pattern, group)
    return _regexp_extract(generator, expression)


def _may_not_take_part(pattern: exp.Expression, group: exp.Expression) -> bool:
    """Whether the group regexp_extract asks for may match nothing (an alternative, an
    optional group), where Trino gives NULL and DuckDB ''; unknown patterns may."""
    if not (isinstance(group, exp.Literal) and group.is_int):
        return True
    if int(group.this) == 0:
        return False
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return True
    return any(char in pattern.this for char in "|?*{")


def _collection(generator: DuckDB.Generator, expression: exp.Expression) -> str:
    """reverse of an array, cardinality of a map, and an array || an element, where sqlglot
    knows the operands are arrays or maps (DuckDB's spell these otherwise)."""
    sql = _default(generator, expression)
    if isinstance(expression, exp.Reverse):
        if known_kind(expression.this) == exp.DataType.Type.ARRAY:
            return generator.func("list_reverse", expression.this)
    elif isinstance(expression, exp.ArraySize):
        if known_kind(expression.this) == exp.DataType.Type.MAP:
            return generator.func("cardinality", expression.this)
    else:
        kinds = [known_kind(side) for side in (expression.this, expression.expression)]
        array = exp.DataType.Type.ARRAY
        if kinds[0] == array and kinds[1] not in (array, None):
            return generator.func("list_append", expression.this, expression.expression)
        if kinds[1] == array and kinds[0] not in (array, None):
            return generator.func("list_prepend", expression.this, expression.expression)
    return sql


_FLOATS = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}


def _default(generator: DuckDB.Generator, expression: exp.Expression) -> str:
    """What sqlglot's DuckDB dialect writes for ``expression``."""
    original = DuckDB.Generator.TRANSFORMS.get(type(expression))
    if original is not None:
        return original(generator, expression)
    method = getattr(DuckDB.Generator, f"{expression.key}_sql", None)
    if method is None:  # a plain function call
        return generator.function_fallback_sql(expression)
    return method(generator, expression)


def _split(generator: DuckDB.Generator, expression: exp.Split) -> str:
    limit = expression.args.get("limit")
    if limit is None:
        return _default(generator, expression)
    return generator.func("__trino_split", expression.this, expression.expression, limit)


def _reduce(generator: DuckDB.Generator, expression: exp.Reduce) -> str:
    """reduce(array, initial, merge, finish): DuckDB's list_reduce has no finishing lambda,
    so it is applied to the one-element list of the reduced state."""
    finish = expression.args.get("finish")
    bare = expression.copy()
    bare.set("finish", None)
    reduced = _default(generator, bare)
    if finish is None:
        return reduced
    return f"list_transform([{reduced}], {generator.sql(finish)})[1]"


def _sequence(generator: DuckDB.Generator, expression: exp.GenerateSeries) -> str:
    start, end = expression.args.get("start"), expression.args.get("end")
    if expression.args.get("step") is not None or expression.find(exp.AggFunc, exp.Window):
        return _default(generator, expression)  # (see _divide on macros over aggregates)
    return generator.func("__trino_sequence", start, end)


def _substring(generator: DuckDB.Generator, expression: exp.Substring) -> str:
    """substr(s, start[, length]): Trino gives '' from position 0 and from before the
    start of the string, where DuckDB gives the string from its first character."""
    text, start = generator.sql(expression, "this"), generator.sql(expression, "start")
    return (
        f"CASE WHEN {start} = 0 OR {start} < -length({text}) THEN ''"
        f" ELSE {_default(generator, expression)} END"
    )


def _split_part(generator: DuckDB.Generator, expression: exp.SplitPart) -> str:
    """split_part past the last field is NULL in Trino ('' in DuckDB)."""
    text, delimiter = generator.sql(expression, "this"), generator.sql(expression, "delimiter")
    index = generator.sql(expression, "part_index")
    return (
        f"CASE WHEN {index} < 1 THEN"
        " error('INVALID_FUNCTION_ARGUMENT: Index must be greater than zero')"
        f" WHEN {index} > len(string_split({text}, {delimiter})) THEN NULL"
        f" ELSE {_default(generator, expression)} END"
    )


def _regexp_extract(generator: DuckDB.Generator, expression: exp.RegexpExtract) -> str:
    """regexp_extract without a match is NULL in Trino ('' in DuckDB)."""
    text, pattern = generator.sql(expression, "this"), generator.sql(expression, "expression")
    return f"CASE WHEN regexp_matches({text}, {pattern}) THEN {_default(generator, expression)} END"


_DATE_UNITS = {"DAY", "DAYS", "WEEK", "WEEKS", "MONTH", "MONTHS", "QUARTER", "YEAR", "YEARS"}


_TIME_UNITS = {"HOUR", "HOURS", "MINUTE", "MINUTES", "SECOND", "SECONDS", "MILLISECOND"}


def _unit(expression: exp.Expression | None) -> str:
    unit = expression.args.get("unit") if expression is not None else None
    return unit.name.upper() if unit is not None else ""


def _keep_date(generator: DuckDB.Generator, operand: exp.Expression, sql: str) -> str:
    """``sql`` (date arithmetic over ``operand``) as a date where ``operand`` is a date;
    not over aggregates or windows (see ``_divide`` on macros over them)."""
    if operand.find(exp.AggFunc, exp.Window):
        return sql
    return f"__trino_keep_date({generator.sql(operand)}, {sql})"


def _date_plus(generator: DuckDB.Generator, expression: exp.Add | exp.Sub) -> str:
    """``date ± INTERVAL n DAY`` (or weeks, months, years) is a date in Trino."""
    left, right = expression.this, expression.expression
    sql = _default(generator, expression)
    if isinstance(right, exp.Interval) and _unit(right) in _DATE_UNITS:
        return _keep_date(generator, left, sql)
    if isinstance(right, exp.Interval) and _unit(right) in _TIME_UNITS:
        if left.find(exp.AggFunc, exp.Window):
            return sql
        return f"__trino_time_on_date({generator.sql(left)}, {sql})"
    if (
        isinstance(expression, exp.Add)
        and isinstance(left, exp.Interval)
        and (_unit(left) in _DATE_UNITS)
    ):
        return _keep_date(generator, right, sql)
    return sql


def _date_add(generator: DuckDB.Generator, expression: exp.DateAdd) -> str:
    """date_add(unit, n, date) in days or more is a date in Trino."""
    sql = _default(generator, expression)
    return _keep_date(generator, expression.this, sql) if _unit(expression) in _DATE_UNITS else sql


def _date_trunc(generator: DuckDB.Generator, expression: exp.DateTrunc) -> str:
    """date_trunc(unit, date) is a date in Trino."""
    return _keep_date(generator, expression.this, _default(generator, expression))


def _strpos(generator: DuckDB.Generator, expression: exp.StrPosition) -> str:
    occurrence = expression.args.get("occurrence")
    if occurrence is None:
        return _default(generator, expression)
    return generator.func("__trino_strpos", expression.this, expression.args["substr"], occurrence)


def _array_sort(generator: DuckDB.Generator, expression: exp.ArraySort) -> str:
    if expression.expression is not None:
        raise QueryError("NOT_SUPPORTED", "array_sort with a comparator function")
    return _default(generator, expression)


_CAST_INTEGERS = {
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
}


# the operands whose cast to an unbounded varchar differs (None: not known before it runs)
_TO_TEXT_DIFFERS = {
    None,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.JSON,
    exp.DataType.Type.INTERVAL,
}


def _cast(generator: DuckDB.Generator, expression: exp.Cast) -> str:
    """Trino's casts where DuckDB's differ: varchar to an integer only from digits (DuckDB
    rounds '12.5' and trims ' 12'), a double to varchar in scientific form ('3.77E1'), JSON
    to varchar as the scalar's text (NULL for null), to ``varchar(n)`` failing when a
    non-varchar value's text is longer, and varchar to JSON as a JSON string. The choice is
    made by the operand's type once DuckDB binds it (not over aggregates: see ``_divide``)."""
    operand, target = expression.this, expression.to
    # DuckDB's TRY refuses error() inside it, so there a failure is NULL from the start
    safe = isinstance(expression, exp.TryCast) or expression.find_ancestor(exp.Try) is not None
    if operand.find(exp.AggFunc, exp.Window):
        return _default(generator, expression)
    kind = known_kind(operand)  # where sqlglot knows it, the casts that cannot differ stay
    if target.this in _CAST_INTEGERS and kind is not None and kind not in TEXT_TYPES:
        return _default(generator, expression)
    if target.this in TEXT_TYPES and not target.expressions and kind not in _TO_TEXT_DIFFERS:
        return _default(generator, expression)
    if target.this == exp.DataType.Type.JSON and kind is not None and kind not in TEXT_TYPES:
        return _default(generator, expression)
    if target.this in _CAST_INTEGERS:
        checked = expression.copy()
        check = "__trino_integer_text_or_null" if safe else "__trino_integer_text"
        checked.set("this", exp.func(check, operand.copy()))
        return _default(generator, checked)
    value = generator.sql(operand)
    if target.this in TEXT_TYPES and kind == exp.DataType.Type.INTERVAL:
        months = trino_types.static_type(operand) == "interval year to month"
        return f"__trino_{'months' if months else 'interval'}_text({value})"
    if target.this in TEXT_TYPES and not safe:
        text = f"__trino_varchar({value})"
        if not target.expressions:
            return text
        return f"__trino_varchar_n({value}, {text}, {generator.sql(target.expressions[0])})"
    if target.this == exp.DataType.Type.JSON and not safe:
        return f"__trino_to_json({value})"
    if target.this == exp.DataType.Type.CHAR and target.expressions and not safe:
        size = generator.sql(target.expressions[0])  # blank-padded (or cut) to n characters
        return f"rpad(left(__trino_varchar({value}), {size}), {size}, ' ')"
    if target.this == exp.DataType.Type.TIMESTAMP and target.expressions:
        digits = int(target.expressions[0].name)
        fraction = operand.this.partition(".")[2] if isinstance(operand, exp.Literal) else None
        if digits < 6 and (fraction is None or len(fraction.strip()) > digits):
            step = 10 ** (6 - digits)  # Trino rounds to the precision (DuckDB keeps micros)
            return (
                f"make_timestamp(CAST(round(epoch_us(CAST({value} AS TIMESTAMP)) / {step})"
                f" * {step} AS BIGINT))"
            )
    return _default(generator, expression)


def _pad(generator: DuckDB.Generator, expression: exp.Pad) -> str:
    """lpad and rpad refuse an empty padding string in Trino, whatever the length."""
    fill = expression.args.get("fill_pattern")
    if fill is None:
        return _default(generator, expression)
    return (
        f"CASE WHEN {generator.sql(fill)} = '' THEN"
        " error('INVALID_FUNCTION_ARGUMENT: Padding string must not be empty')"
        f" ELSE {_default(generator, expression)} END"
    )


def _typeof(generator: DuckDB.Generator, expression: exp.Typeof) -> str:
    """Trino's type name: from the query text where it bounds a varchar
    (:mod:`helpers.local.trino_types`), else DuckDB's type in Trino's words."""
    static = trino_types.static_type(expression.this)
    if static is not None:
        return generator.sql(exp.Literal.string(static))
    return generator.func("__trino_typeof", generator.func("typeof", expression.this))


class TrinoOnDuckDB(DuckDB):
    """sqlglot's DuckDB dialect, writing Trino's meaning (see the module docstring)."""

    class Generator(DuckDB.Generator):
        TRANSFORMS: ClassVar[dict] = {
            **DuckDB.Generator.TRANSFORMS,
            exp.Div: _divide,
            exp.Mul: _multiply,
            exp.Typeof: _typeof,
            exp.Split: _split,
            exp.Reduce: _reduce,
            exp.ArraySort: _array_sort,
            exp.GenerateSeries: _sequence,
            exp.Substring: _substring,
            exp.SplitPart: _split_part,
            exp.RegexpExtract: _regexp_group,
            exp.DateDiff: _date_diff,
            exp.EQ: _equal,
            exp.NEQ: _equal,
            exp.Add: _date_plus,
            exp.Sub: _date_plus,
            exp.DateAdd: _date_add,
            exp.DateTrunc: _date_trunc,
            exp.StrPosition: _strpos,
            exp.Cast: _cast,
            exp.TryCast: _cast,
            exp.Ceil: _typed_result,
            exp.Floor: _typed_result,
            exp.Round: _typed_result,
            exp.Trunc: _typed_result,
            exp.Mod: _typed_result,
            exp.Sign: _typed_result,
            exp.Avg: _typed_result,
            exp.Window: _window,
            exp.Bracket: _subscript,
            exp.Reverse: _collection,
            exp.ArraySize: _collection,
            exp.DPipe: _collection,
            exp.Replace: _replace,
            exp.JSONExtractScalar: _json_scalar,
            exp.Extract: _interval_field,
            exp.Day: _interval_field,
            exp.Hour: _interval_field,
            exp.Minute: _interval_field,
            exp.Second: _interval_field,
            exp.Pad: _pad,
        }


_CALLED = re.compile(r"__trino_\w+", re.IGNORECASE)  # sqlglot may write names in capitals


@lru_cache(maxsize=1)
def _definitions() -> dict[str, tuple[Callable, set[str]]]:
    """Every ``__trino_`` function: how to create it, and the others it calls."""
    made = {
        name: (create, {call.lower() for call in _CALLED.findall(text)} - {name})
        for name, (create, text) in trino_functions.definitions().items()
    }
    for statement in MACROS:
        name = re.search(r"TEMP MACRO (\w+)", statement).group(1)
        made[name] = (
            lambda connection, sql=statement: connection.execute(sql),
            {call.lower() for call in _CALLED.findall(statement)} - {name},
        )
    made["__trino_typeof"] = (
        lambda connection: connection.create_function(
            "__trino_typeof", trino_type_name, ["VARCHAR"], "VARCHAR", side_effects=False
        ),
        set(),
    )
    return made


def install(connection: duckdb.DuckDBPyConnection, sql: str, installed: set[str]) -> None:
    """Create in ``connection`` the macros and functions ``sql`` (from ``to_duckdb``) calls,
    and those they call first, unless ``installed`` (this connection's record) has them:
    each costs about a millisecond to create, and most queries call few."""
    definitions = _definitions()

    def create(name: str) -> None:
        if name in installed or name not in definitions:
            return
        make, calls = definitions[name]
        installed.add(name)  # before its callees: a cycle ends here
        for call in sorted(calls):
            create(call)
        make(connection)

    for name in sorted({call.lower() for call in _CALLED.findall(sql)}):
        create(name)


def to_duckdb(tree: exp.Expression, copy: bool = True) -> str:
    """The query ``tree`` (as ``parse`` gives it) in DuckDB's SQL, with Trino's meaning;
    without ``copy``, ``tree`` is the caller's own copy and is changed."""
    tree = tree.copy() if copy else tree
    unnest_rows(tree)  # changes the tree's shape: before the nodes are found
    found = _Found(tree)
    for transform in TREE_TRANSFORMS:
        transform(found)
    try:
        return tree.sql(dialect=TrinoOnDuckDB, unsupported_level=ErrorLevel.RAISE, copy=False)
    except UnsupportedError as error:  # sqlglot knows DuckDB cannot say it
        raise QueryError("NOT_SUPPORTED", str(error).split("\n")[0]) from None


def parse(sql: str) -> exp.Expression:
    try:
        statements = sqlglot.parse(sql, read=READ)
    except sqlglot.errors.ParseError as error:
        detail = error.errors[0] if error.errors else {}
        raise QueryError(
            "SYNTAX_ERROR",
            detail.get("description", str(error)).split("\n")[0],
            detail.get("line"),
            detail.get("col"),
        ) from None
    statements = [statement for statement in statements if statement is not None]
    if len(statements) != 1:
        raise QueryError("SYNTAX_ERROR", "give exactly one statement per query")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryError(
            "NOT_SUPPORTED",
            f"only queries run locally, not {statement.key.upper()}; "
            "the crawler keeps tables and partitions",
        )
    for table in statement.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):  # read_csv(...), TABLE(...), glob(...)
            name = table.this.sql(dialect=READ).split("(")[0]
            raise QueryError(
                "NOT_SUPPORTED",
                f"table function {name}: queries read the catalog's tables only (as on"
                " Athena), and UNNEST",
            )
    return statement
