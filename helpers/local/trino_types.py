"""Trino's types where the query text says them: bounded varchars, type names, known types.

What sqlglot knows of an expression's type before the query runs (:func:`known_type`: for
literals, casts, many functions and columns of inline VALUES, without the catalog), and
Trino's name of a DuckDB type (:func:`trino_type_name`) are here, beside the bounds below.

Trino types a string literal ``'cat'`` as ``varchar(3)``, and carries the bound through the
functions that keep or derive it (``lower``, ``substr``, ``split``, ``replace``, ``CASE``...),
where DuckDB has one unbounded ``VARCHAR``. The bound only shows in ``typeof`` (Athena's
result metadata says ``varchar`` either way), so :func:`static_type` works it out from the
syntax tree for ``typeof`` to answer. Columns of the catalog's tables are unbounded
``varchar`` in Trino too: an expression over them has no static type here, and ``typeof``
asks DuckDB, which then agrees. Columns of inline ``VALUES`` (bounded by their longest
literal) are followed, directly and through subqueries.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

READ = "athena"  # sqlglot's dialect for reading Athena SQL
TEXT_TYPES = {exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT}

# the functions (:mod:`helpers.local.trino_zones`) whose value is a timestamp with time zone
ZONED_PRODUCERS = {
    "__trino_zoned", "__trino_with_zone", "__trino_at_zone", "__trino_tz_plus",
    "__trino_tz_plus_wall", "__trino_tz_trunc", "__trino_parse_zoned", "__trino_iso_zoned",
}  # fmt: skip
# DuckDB's name of the type that carries one (trino_zones.ZONED)
_ZONED_DUCKDB = "STRUCT(__instant TIMESTAMP WITH TIME ZONE, __zone VARCHAR)"

_INT32 = 2**31 - 1
_MAX = 2_147_483_647  # Trino's bound for an unbounded result

# functions whose result has the bound of their first argument (Trino's signatures:
# varchar(x) -> varchar(x))
_SAME_AS_FIRST = (
    exp.Lower,
    exp.Upper,
    exp.Trim,
    exp.Substring,
    exp.SplitPart,
    exp.RegexpExtract,
    exp.Reverse,
)
_SAME_AS_FIRST_NAMES = {"ltrim", "rtrim", "substr", "substring"}


def _varchar(size: int) -> str:
    return f"varchar({min(size, _MAX)})"


def _varchar_size(kind: str | None) -> int | None:
    if kind and kind.startswith("varchar(") and kind.endswith(")"):
        return int(kind[len("varchar(") : -1])
    return None


def static_type(node: exp.Expression) -> str | None:
    """Trino's type of ``node`` where it is a bounded varchar (or an array or map of them)
    that the query text fixes; None where it is not, or depends on data."""
    if isinstance(node, exp.Paren):
        return static_type(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return _varchar(len(node.this))
        if node.is_int:
            return "integer" if abs(int(node.this)) <= _INT32 else "bigint"
        return None
    if isinstance(node, exp.Chr):
        return "varchar(1)"
    if isinstance(node, exp.Anonymous) and node.name.lower() in ZONED_PRODUCERS:
        digits = node.meta.get("trino_precision") if node.meta else None
        return f"timestamp({digits}) with time zone" if digits is not None else None
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.TIMESTAMP:
        return _timestamp(node)
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.CHAR:
        return f"char({node.to.expressions[0].name})" if node.to.expressions else None
    if isinstance(node, exp.Interval):
        unit = node.args.get("unit")
        name = unit.name.upper() if unit is not None else ""
        return "interval year to month" if name.startswith(("YEAR", "MONTH")) else None
    if isinstance(node, (exp.Add, exp.Sub)):  # of two year-to-month intervals
        kinds = {static_type(node.this), static_type(node.expression)}
        return "interval year to month" if kinds == {"interval year to month"} else None
    if isinstance(node, _SAME_AS_FIRST) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in _SAME_AS_FIRST_NAMES
    ):
        first = node.this if not isinstance(node, exp.Anonymous) else node.expressions[0]
        kind = static_type(first) if first is not None else None
        return kind if _varchar_size(kind) is not None else None
    if isinstance(node, exp.Replace):
        return _replace(node)
    if isinstance(node, exp.Split):
        size = _varchar_size(static_type(node.this))
        return f"array({_varchar(size)})" if size is not None else None
    if isinstance(node, exp.Array):
        return _array(node.expressions)
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        container = static_type(node.this)
        if container and container.startswith("array(") and _varchar_size(container[6:-1]):
            return container[6:-1]
        return None
    if isinstance(node, exp.Map):
        return _map(node)
    if isinstance(node, exp.If):
        return _widest([node.args.get("true"), node.args.get("false")])
    if isinstance(node, exp.Case):
        branches = [branch.args.get("true") for branch in node.args.get("ifs", [])]
        return _widest([*branches, node.args.get("default")])
    if isinstance(node, exp.Column):
        found = sources(node)
        if len(found) == 1:  # a projection of a subquery
            return static_type(found[0]) if found[0] is not None else None
        return _widest(found)  # a column of VALUES: its longest row
    if isinstance(node, exp.Anonymous) and node.name.lower() == "histogram" and node.expressions:
        key = static_type(node.expressions[0])
        return f"map({key}, bigint)" if _varchar_size(key) is not None else None
    return None


def sources(column: exp.Column) -> list[exp.Expression | None]:
    """The expressions a column of an inline VALUES (directly, or through subqueries that
    select it or ``*``) takes its values from; ``[None]`` where it comes from anything else."""
    select = column.find_ancestor(exp.Select)
    if select is None or _from(select) is None or select.args.get("joins"):
        return [None]
    source = _from(select).this
    if column.table and column.table != source.alias_or_name:
        return [None]
    return _output(source, column.name)


def _from(select: exp.Select) -> exp.From | None:
    return select.args.get("from_")  # sqlglot's key for a SELECT's FROM clause


def _output(source: exp.Expression, name: str) -> list[exp.Expression | None]:
    """What the output column ``name`` of ``source`` (VALUES or a subquery) is made of."""
    alias = source.args.get("alias")
    names = [identifier.name for identifier in alias.columns] if alias else []
    body = source.this if isinstance(source, exp.Subquery) else source
    if isinstance(body, exp.Values):
        if name not in names:
            return [None]
        index = names.index(name)
        rows = [
            row.expressions if isinstance(row, exp.Tuple) else [row] for row in body.expressions
        ]
        return [row[index] if index < len(row) else None for row in rows]
    if not isinstance(body, exp.Select):
        return [None]
    projections = body.expressions
    if names:  # renamed by position
        if name not in names:
            return [None]
        index = names.index(name)
        if len(projections) == 1 and isinstance(projections[0], exp.Star):
            inner = _from(body)
            if inner is None or body.args.get("joins"):
                return [None]
            inner_alias = inner.this.args.get("alias")
            inner_names = [i.name for i in inner_alias.columns] if inner_alias else []
            return _output(inner.this, inner_names[index]) if index < len(inner_names) else [None]
        if index >= len(projections):
            return [None]
        return [projections[index].unalias()]
    for projection in projections:
        if projection.alias_or_name == name:
            return [projection.unalias()]
    return [None]


def _timestamp(node: exp.Cast) -> str | None:
    """``TIMESTAMP '2020-06-10 15:55:23.383345'`` is a ``timestamp(6)``: as many fractional
    digits as the literal writes (a cast to ``timestamp(p)`` says its own)."""
    if node.to.expressions:
        return f"timestamp({node.to.expressions[0].name})"
    if not isinstance(node.this, exp.Literal) or not node.this.is_string:
        return None
    time = node.this.this.strip().partition(" ")[2]
    fraction = time.partition(".")[2] if time else ""
    digits = len(fraction) if fraction.isdigit() else 0
    return f"timestamp({digits})" if time and digits <= 12 else None


def _replace(node: exp.Replace) -> str | None:
    """replace(varchar(x), varchar(y)) is varchar(x); with a replacement varchar(z) it is
    varchar(x + z * (x + 1)), the longest it can grow (Trino's constraint)."""
    size = _varchar_size(static_type(node.this))
    if size is None:
        return None
    replacement = node.args.get("replacement")
    if replacement is None:
        return _varchar(size)
    grown = _varchar_size(static_type(replacement))
    return _varchar(size + grown * (size + 1)) if grown is not None else None


def _array(elements: list[exp.Expression]) -> str | None:
    kinds = [static_type(element) for element in elements]
    sizes = [_varchar_size(kind) for kind in kinds]
    if not sizes or any(size is None for size in sizes):
        return None
    return f"array({_varchar(max(sizes))})"


def _map(node: exp.Map) -> str | None:
    """MAP(ARRAY[keys], ARRAY[values]) with literal keys and values."""
    keys, values = node.args.get("keys"), node.args.get("values")
    if not isinstance(keys, exp.Array) or not isinstance(values, exp.Array):
        return None
    key_type = _array(keys.expressions)
    value_type = _array(values.expressions)  # varchar values: the longest
    value_kinds = {static_type(value) for value in values.expressions}
    if value_type is not None:
        value_kind = value_type[6:-1]
    elif len(value_kinds) == 1 and None not in value_kinds:
        value_kind = value_kinds.pop()
    else:
        return None
    if key_type is None:
        return None
    return f"map({key_type[6:-1]}, {value_kind})"


def _widest(branches: list[exp.Expression | None]) -> str | None:
    """The varchar bound of a CASE or IF: its longest branch (NULL and missing branches
    count for nothing); None unless every branch has a static bound."""
    sizes = []
    for branch in branches:
        if branch is None or isinstance(branch, exp.Null):
            continue
        size = _varchar_size(static_type(branch))
        if size is None:
            return None
        sizes.append(size)
    return _varchar(max(sizes)) if sizes else None


# Trino's names of DuckDB's types, for typeof (the rest are sqlglot's Trino spelling)
_TYPE_NAMES = {
    exp.DataType.Type.TINYINT: "tinyint",
    exp.DataType.Type.SMALLINT: "smallint",
    exp.DataType.Type.INT: "integer",
    exp.DataType.Type.BIGINT: "bigint",
    exp.DataType.Type.UBIGINT: "bigint",  # DuckDB's counts (json_array_length, histogram)
    exp.DataType.Type.INT128: "bigint",  # DuckDB's sums of integers; Athena's are bigint
    exp.DataType.Type.FLOAT: "real",
    exp.DataType.Type.DOUBLE: "double",
    exp.DataType.Type.BOOLEAN: "boolean",
    exp.DataType.Type.VARCHAR: "varchar",
    exp.DataType.Type.TEXT: "varchar",
    exp.DataType.Type.DATE: "date",
    exp.DataType.Type.TIMESTAMP: "timestamp(3)",  # Athena's timestamp columns
    exp.DataType.Type.TIMESTAMPNTZ: "timestamp(3)",  # DuckDB's TIMESTAMP, as sqlglot reads it
    exp.DataType.Type.TIMESTAMP_S: "timestamp(0)",
    exp.DataType.Type.TIMESTAMP_MS: "timestamp(3)",
    exp.DataType.Type.TIMESTAMP_NS: "timestamp(9)",
    exp.DataType.Type.TIMESTAMPTZ: "timestamp(3) with time zone",
    exp.DataType.Type.TIME: "time(3)",
    exp.DataType.Type.BLOB: "varbinary",
    exp.DataType.Type.VARBINARY: "varbinary",
    exp.DataType.Type.INTERVAL: "interval day to second",
    exp.DataType.Type.JSON: "json",
    exp.DataType.Type.UUID: "uuid",
}


@lru_cache(maxsize=1024)
def trino_type_name(duckdb_type: str) -> str:
    """The name Trino's ``typeof`` gives the DuckDB type named ``duckdb_type``:
    ``INTEGER[]`` -> ``array(integer)``, ``STRUCT(a INTEGER)`` -> ``row(a integer)``."""
    if duckdb_type == "NULL":
        return "unknown"
    if duckdb_type == _ZONED_DUCKDB:
        return "timestamp(3) with time zone"
    try:
        kind = exp.DataType.build(duckdb_type, dialect="duckdb")
    except (sqlglot.errors.ParseError, ValueError):
        return duckdb_type.lower()
    return _type_name(kind)


def _type_name(kind: exp.DataType) -> str:
    inner = [
        _type_name(e) if isinstance(e, exp.DataType) else e
        for e in kind.expressions
        if isinstance(e, exp.DataType | exp.ColumnDef)
    ]
    if kind.this == exp.DataType.Type.ARRAY and inner:
        return f"array({inner[0]})"
    if kind.this == exp.DataType.Type.MAP and len(inner) == 2:
        return f"map({inner[0]}, {inner[1]})"
    if kind.this == exp.DataType.Type.STRUCT:
        fields = [
            f"{field.name} {_type_name(field.args['kind'])}"
            if isinstance(field, exp.ColumnDef)
            else field
            for field in inner
        ]
        return f"row({', '.join(fields)})"
    if kind.this == exp.DataType.Type.DECIMAL:
        params = [param.name for param in kind.expressions]
        return f"decimal({','.join(params or ['18', '3'])})"
    return _TYPE_NAMES.get(kind.this) or kind.sql(dialect="trino").lower()


def known_type(expression: exp.Expression) -> exp.DataType | None:
    """The type sqlglot gives ``expression`` without a schema (literals, casts, some
    functions), or None where it does not know it."""
    if isinstance(expression, exp.Column):  # of inline VALUES: the type its rows agree on
        found = sources(expression)
        if None in found:
            return None
        kinds = {known_type(source) for source in found if not isinstance(source, exp.Null)}
        return kinds.pop() if len(kinds) == 1 else None
    if isinstance(expression, exp.Anonymous) and expression.name.lower() in ZONED_PRODUCERS:
        return exp.DataType.build("TIMESTAMPTZ")
    kind = annotate_types(expression, dialect=READ).type  # sets types on our own copy
    if kind is None or kind.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
        return None
    return kind


def decimal_digits(kind: exp.DataType | None) -> tuple[int, int] | None:
    """(precision, scale) of a decimal type with both known, or of an integer type as
    Trino coerces it to a decimal."""
    if kind is None:
        return None
    if kind.this == exp.DataType.Type.DECIMAL and len(kind.expressions) == 2:
        precision, scale = (int(param.name) for param in kind.expressions)
        return precision, scale
    return _INTEGER_DIGITS.get(kind.this)


_INTEGER_DIGITS = {
    exp.DataType.Type.TINYINT: (3, 0),
    exp.DataType.Type.SMALLINT: (5, 0),
    exp.DataType.Type.INT: (10, 0),
    exp.DataType.Type.BIGINT: (19, 0),
}


def known_kind(expression: exp.Expression) -> exp.DataType.Type | None:
    """The kind of type (``ARRAY``, ``DOUBLE``...) sqlglot knows ``expression`` has."""
    kind = known_type(expression)
    return None if kind is None else kind.this
