"""Rewrites of a parsed Athena query before it is written for DuckDB (``trino.to_duckdb``).

Where Trino's meaning is a matter of the query's shape rather than of one expression:
timestamps with time zone (:mod:`helpers.local.trino_zones`), what Trino refuses (a number
against a varchar), ``UNNEST`` of several arrays, of maps and ``WITH ORDINALITY``, Trino's
names of unnamed columns, decimal literals' types, ``slice`` by length, Java's regular
expression replacements and named groups, and the calls of Trino's functions that DuckDB
lacks (:mod:`helpers.local.trino_functions`). Each rewrite changes the parsed tree in place.
"""

from __future__ import annotations

import re

from sqlglot import exp

from helpers.exceptions import QueryError
from helpers.local import trino_functions, trino_zones
from helpers.local.trino_types import TEXT_TYPES, known_kind, known_type, trino_type_name


class _Found:
    """The nodes of a tree by type, from one walk (each transform asks for its own)."""

    def __init__(self, tree: exp.Expression):
        self.by_type: dict[type, list] = {}
        for node in tree.walk():
            self.by_type.setdefault(type(node), []).append(node)

    def __call__(self, *types: type) -> list:
        return [node for kind in types for node in self.by_type.get(kind, ())]


def name_columns(found: _Found) -> None:
    """Trino's names of unnamed result columns: ``_col<i>`` for the i-th output that is
    neither a column nor aliased (``SELECT 1 + 2`` gives ``_col0``), and for the columns of
    VALUES without names. After a ``*`` the position is not known, so the rest keep DuckDB's
    names."""
    for select in found(exp.Select):
        for index, projection in enumerate(list(select.expressions)):
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                break
            if isinstance(projection, exp.Alias | exp.Column | exp.Dot):
                continue
            alias = exp.Alias(alias=exp.to_identifier(f"_col{index}"))
            projection.replace(alias)
            alias.set("this", projection)  # the node itself, which other transforms hold
    for number, values in enumerate(found(exp.Values)):
        alias = values.args.get("alias")
        if alias is not None and alias.columns:
            continue
        first = values.expressions[0] if values.expressions else None
        width = len(first.expressions) if isinstance(first, exp.Tuple) else 1
        columns = [exp.to_identifier(f"_col{index}") for index in range(width)]
        name = (
            alias.this
            if alias is not None and alias.this
            else exp.to_identifier(f"_values{number}")
        )
        values.set("alias", exp.TableAlias(this=name, columns=columns))


def _row_fields(row: exp.Expression) -> list[str | None] | None:
    """The field names of a row the query text shows (None for an unnamed field), or None
    where it does not show the row's fields."""
    inner = row.this if isinstance(row, exp.Paren) else row
    if isinstance(inner, exp.Struct):
        return [
            field.name if isinstance(field, exp.PropertyEQ | exp.Alias) else None
            for field in inner.expressions
        ]
    kind = known_type(inner)
    if kind is None or kind.this != exp.DataType.Type.STRUCT:
        return None
    return [field.name if isinstance(field, exp.ColumnDef) else None for field in kind.expressions]


def expand_rows(found: _Found) -> None:
    """``SELECT (row).*`` (optionally ``AS (a, b)``): one column per field of the row, named
    by the aliases, else the field's name (DuckDB reads no such expansion)."""
    for select in found(exp.Select):
        projections, changed = [], False
        for projection in select.expressions:
            aliases = None
            if isinstance(projection, exp.Aliases):
                projection, aliases = projection.this, [e.name for e in projection.expressions]
            if not (
                isinstance(projection, exp.Dot) and isinstance(projection.expression, exp.Star)
            ):
                projections.append(projection if aliases is None else projection.parent)
                continue
            row = projection.this
            fields = _row_fields(row)
            if fields is None:
                raise QueryError(
                    "NOT_SUPPORTED",
                    "expanding a row whose fields the query text does not show ((row).*)",
                )
            if aliases is not None and len(aliases) != len(fields):
                raise QueryError(
                    "MISMATCHED_COLUMN_ALIASES",
                    f"Column alias list has {len(aliases)} entries but the row has"
                    f" {len(fields)} fields",
                )
            changed = True
            for index, name in enumerate(fields):
                value = exp.Anonymous(
                    this="struct_extract_at",
                    expressions=[row.copy(), exp.Literal.number(index + 1)],
                )
                name = aliases[index] if aliases is not None else name
                projections.append(value if name is None else exp.alias_(value, name))
        if changed:
            select.set("expressions", projections)


def slice_by_length(found: _Found) -> None:
    """Trino's ``slice(array, start, length)`` takes a length, not an end (sqlglot's Athena
    reader leaves ``is_length`` unset; its DuckDB writer then does the rest)."""
    for node in found(exp.ArraySlice):
        node.set("is_length", True)


def type_decimal_literals(found: _Found) -> None:
    """``DECIMAL '12.50'`` is a ``decimal(4,2)`` in Trino: its precision and scale are the
    digits the literal writes (sqlglot reads it as a cast to DECIMAL without either, which
    DuckDB takes as ``DECIMAL(18,3)``)."""
    for cast in found(exp.Cast):
        kind, literal = cast.to, cast.this
        if kind.this != exp.DataType.Type.DECIMAL or kind.expressions:
            continue
        if not isinstance(literal, exp.Literal) or not literal.is_string:
            continue
        text = literal.this.strip().lstrip("+-")
        whole, _, fraction = text.partition(".")
        if not (whole + fraction).isdigit() or len(whole + fraction) > 38:
            continue  # not a decimal literal: DuckDB's cast reports it
        precision, scale = max(1, len(whole + fraction)), len(fraction)
        cast.set("to", exp.DataType.build(f"DECIMAL({precision}, {scale})"))


def java_replacements(found: _Found) -> None:
    """regexp_replace's replacement is Java's (``$1``, ``${name}``, ``\\$``), DuckDB's is
    RE2's (``\\1``): a literal replacement is rewritten, group names becoming numbers. One
    that Java refuses fails as Trino does; a group above 9 (RE2 has no such reference) or a
    replacement that is not a literal, where it refers to groups, is not supported."""
    for node in found(exp.RegexpReplace):
        pattern, replacement = node.expression, node.args.get("replacement")
        if replacement is None:
            continue
        if isinstance(replacement, exp.Lambda):  # f of each match's groups (as an array)
            replaced = exp.Anonymous(
                this="list_transform",
                expressions=[_call("regexp_groups", node.this, pattern), replacement.copy()],
            )
            pieces = _call("regexp_pieces", node.this, pattern)
            node.replace(_call("regexp_join", pieces, replaced))
            continue
        if not (isinstance(replacement, exp.Literal) and replacement.is_string):
            continue  # DuckDB reads a computed replacement as RE2's; Trino as Java's
        if not any(char in replacement.this for char in "$\\"):
            continue
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise QueryError(
                "NOT_SUPPORTED", "regexp_replace with group references and a computed pattern"
            )
        try:
            compiled = re.compile(_NAMED_GROUP.sub("(?P<", pattern.this))
        except re.error:
            raise QueryError(
                "NOT_SUPPORTED", f"regexp_replace over the pattern {pattern.this!r}"
            ) from None
        try:
            replacement.set("this", _re2_replacement(replacement.this, compiled))
        except _AboveNine:  # RE2 has no such reference: Python's re replaces
            template = _re2_replacement(replacement.this, compiled, python=True)
            node.replace(
                _call("regexp_replace_java", node.this, pattern, exp.Literal.string(template))
            )


class _AboveNine(Exception):
    """A replacement refers to a group above 9, which RE2 cannot."""


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=f"__trino_{name}", expressions=[arg.copy() for arg in args])


def _re2_replacement(text: str, compiled: re.Pattern, python: bool = False) -> str:
    """A Java replacement string as RE2's (see ``java_replacements``), or as Python's
    template (``\\g<10>``)."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                raise QueryError("INVALID_FUNCTION_ARGUMENT", "character to be escaped is missing")
            out.append("\\\\" if text[index + 1] == "\\" else text[index + 1])
            index += 2
            continue
        if char != "$":
            out.append(char)
            index += 1
            continue
        index += 1
        if index < len(text) and text[index] == "{":
            end = text.find("}", index)
            name = text[index + 1 : end] if end > 0 else ""
            if name not in compiled.groupindex:
                raise QueryError("INVALID_FUNCTION_ARGUMENT", f"No group with name {{{name}}}")
            group, index = compiled.groupindex[name], end + 1
        elif index < len(text) and text[index].isdigit():
            group = int(text[index])
            if group > compiled.groups:
                raise QueryError("INVALID_FUNCTION_ARGUMENT", f"No group {group}")
            index += 1
            while index < len(text) and text[index].isdigit():
                longer = group * 10 + int(text[index])
                if longer > compiled.groups:
                    break
                group, index = longer, index + 1
        else:
            raise QueryError("INVALID_FUNCTION_ARGUMENT", "Illegal group reference")
        if python:
            out.append(f"\\g<{group}>")
            continue
        if group > 9:
            raise _AboveNine
        out.append(f"\\{group}")
    return "".join(out)


_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z])")  # Java's (?<name>, not (?<= or (?<!


_SPAN_UNITS = ("DAY", "HOUR", "MINUTE", "SECOND")
_SPAN_MILLIS = {"DAY": 86_400_000, "HOUR": 3_600_000, "MINUTE": 60_000, "SECOND": 1000}


def interval_spans(found: _Found) -> None:
    """Trino's interval literals over a span of fields (``INTERVAL '12 10:45:32.123' DAY TO
    SECOND``, ``'-10:45' HOUR TO MINUTE``, ``'1-2' YEAR TO MONTH``), which DuckDB does not
    read: the same interval in milliseconds (or months)."""
    for node in found(exp.Interval):
        span, text = node.args.get("unit"), node.this
        if not isinstance(span, exp.IntervalSpan):
            continue
        if not (isinstance(text, exp.Literal) and text.is_string):
            raise QueryError(
                "NOT_SUPPORTED", "an interval over a span of fields from a non-literal"
            )
        first, last = span.this.name.upper(), span.expression.name.upper()
        value = text.this.strip()
        sign = -1 if value.startswith("-") else 1
        value = value.lstrip("+-")
        invalid = QueryError(
            "INVALID_LITERAL", f"'{text.this}' is not a valid INTERVAL {first} TO {last} literal"
        )
        if first == "YEAR" and last == "MONTH":
            years, _, months = value.partition("-")
            if not (years.isdigit() and months.isdigit()):
                raise invalid
            node.replace(
                exp.Interval(
                    this=exp.Literal.string(str(sign * (12 * int(years) + int(months)))),
                    unit=exp.var("MONTH"),
                )
            )
            continue
        if first not in _SPAN_UNITS or last not in _SPAN_UNITS:
            raise invalid
        units = _SPAN_UNITS[_SPAN_UNITS.index(first) : _SPAN_UNITS.index(last) + 1]
        fields = value.replace(" ", ":", 1).split(":") if first == "DAY" else value.split(":")
        if len(fields) != len(units):
            raise invalid
        millis = 0
        for unit, field in zip(units, fields, strict=True):
            try:
                amount = float(field) if unit == "SECOND" else int(field)
            except ValueError:
                raise invalid from None
            millis += round(amount * _SPAN_MILLIS[unit])
        node.replace(
            exp.Interval(this=exp.Literal.string(str(sign * millis)), unit=exp.var("MILLISECOND"))
        )


_PATH_STEP = re.compile(r'\.([A-Za-z_]\w*)|\.(\d+)|\[(-?\d+)\]|\["([^"]*)"\]|\.\*|\[\*\]')


def _path_steps(text: str) -> list[re.Match] | None:
    """The steps of a JSON path ``$...`` (None where it is not one this reads)."""
    if not text.startswith("$"):
        return None
    steps, index = [], 1
    while index < len(text):
        step = _PATH_STEP.match(text, index)
        if step is None:
            return None
        steps.append(step)
        index = step.end()
    return steps


def json_paths(found: _Found) -> None:
    """Trino's JSON paths where DuckDB reads them otherwise: a negative subscript is an
    invalid path (DuckDB counts from the end), and ``.1`` is the key "1" of an object or
    the element 1 of an array (DuckDB: a key only)."""
    for node in found(exp.JSONExtract, exp.JSONExtractScalar):
        path = node.expression
        if isinstance(path, exp.JSONPath):
            for step in path.expressions:
                index = step.this if isinstance(step, exp.JSONPathSubscript) else None
                if isinstance(index, int) and index < 0:
                    raise QueryError("INVALID_FUNCTION_ARGUMENT", f"Invalid JSON path: {index}")
            continue
        if not (isinstance(path, exp.Literal) and path.is_string):
            continue
        steps = _path_steps(path.this.strip())
        if steps is None:
            continue
        if any(step.group(3) is not None and step.group(3).startswith("-") for step in steps):
            raise QueryError("INVALID_FUNCTION_ARGUMENT", f"Invalid JSON path: '{path.this}'")
        numbered = [i for i, step in enumerate(steps) if step.group(2) is not None]
        if not numbered:
            continue
        if len(numbered) > 3:
            raise QueryError("NOT_SUPPORTED", f"a JSON path of {len(numbered)} numbered keys")
        alternatives = []
        for choice in range(2 ** len(numbered)):
            text = "$"
            for i, step in enumerate(steps):
                if i in numbered:
                    as_index = choice >> numbered.index(i) & 1
                    text += f"[{step.group(2)}]" if as_index else f'."{step.group(2)}"'
                else:
                    text += step.group(0)
            variant = node.copy()
            variant.set("expression", exp.Literal.string(text))
            alternatives.append(variant)
        node.replace(exp.Coalesce(this=alternatives[0], expressions=alternatives[1:]))


_NUMBERS = {
    *exp.DataType.INTEGER_TYPES,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.DECIMAL,
}
_COMPARED = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Add, exp.Sub, exp.Mul, exp.Mod)


def refuse_mixed_types(found: _Found) -> None:
    """A number compared with or added to a varchar fails in Trino (``'10' = 10``:
    TYPE_MISMATCH), where DuckDB casts one of them; refused where sqlglot knows both."""
    for node in found(*_COMPARED, exp.Div):
        kinds = [known_kind(side) for side in (node.this, node.expression)]
        if TEXT_TYPES & set(kinds) and _NUMBERS & set(kinds):
            names = " and ".join(trino_type_name(kind.value) for kind in kinds)
            raise QueryError(
                "TYPE_MISMATCH",
                f"Cannot apply operator {node.key.upper()} to {names}: Trino does not convert"
                " between varchar and numbers; CAST one side",
            )


_MAP_MAKERS = (exp.Map, exp.VarMap, exp.MapFromEntries, exp.StrToMap)


def unnest_rows(tree: exp.Expression) -> None:
    """``UNNEST`` as Trino reads it, where DuckDB's differs: several arrays side by side
    (the shorter padded with NULLs), ``WITH ORDINALITY`` (a 1-based position), and a map
    (a key and a value column). Each becomes a subquery over the positions, correlated
    with the tables before it as Trino's UNNEST is. A single array keeps DuckDB's own."""
    for node in list(tree.find_all(exp.Unnest)):
        if not isinstance(node.parent, (exp.From, exp.Join)):
            continue
        arrays = list(node.expressions)
        alias = node.args.get("alias")
        names = [column.name for column in alias.columns] if alias else []
        ordinality = node.args.get("offset")
        is_map = len(arrays) == 1 and (
            isinstance(arrays[0], _MAP_MAKERS) or known_kind(arrays[0]) == exp.DataType.Type.MAP
        )
        if len(arrays) == 1 and not ordinality and not is_map:
            continue
        if is_map:
            (source,) = arrays
            arrays = [exp.func("map_keys", source.copy()), exp.func("map_values", source.copy())]
        if len(names) != len(arrays):
            if names:
                raise QueryError(
                    "NOT_SUPPORTED",
                    f"UNNEST of {len(arrays)} columns named {len(names)} ways (rows expanded"
                    " into fields are not supported locally)",
                )
            names = [f"_col{index}" for index in range(len(arrays))]
        position = "__trino_position"
        columns = [
            exp.alias_(
                exp.Bracket(this=array.copy(), expressions=[exp.column(position)], safe=True),
                name,
            )
            for array, name in zip(arrays, names, strict=True)
        ]
        if ordinality:
            columns.append(exp.alias_(exp.column(position), ordinality.name))
        size = exp.func("greatest", *[exp.func("len", array.copy()) for array in arrays])
        positions = exp.Table(
            this=exp.Anonymous(
                this="range",
                expressions=[
                    exp.Literal.number(1),
                    exp.Add(this=size, expression=exp.Literal.number(1)),
                ],
            ),
            alias=exp.TableAlias(
                this=exp.to_identifier("__trino_positions"), columns=[exp.to_identifier(position)]
            ),
        )
        query = exp.select(*columns).from_(positions).order_by(exp.column(position))
        table_alias = alias.this.name if alias and alias.this else "__trino_unnest"
        node.replace(
            exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(table_alias)))
        )


def python_named_groups(found: _Found) -> None:
    """Java's named groups ``(?<name>...)`` in a literal pattern of a regexp function are
    RE2's ``(?P<name>...)`` (the pattern text is a string value, rewritten as such)."""
    for node in found(exp.RegexpReplace, exp.RegexpExtract, exp.RegexpExtractAll, exp.RegexpLike):
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string:
            pattern.set("this", _NAMED_GROUP.sub("(?P<", pattern.this))


TREE_TRANSFORMS = [
    interval_spans,
    json_paths,
    trino_zones.zoned_values,
    refuse_mixed_types,
    slice_by_length,
    type_decimal_literals,
    java_replacements,
    python_named_groups,
    trino_functions.mysql_dates,
    trino_functions.rename_functions,  # after the others: it copies what they changed
    expand_rows,
    name_columns,
]
"""Tree transforms ``to_duckdb`` applies before writing (each changes the nodes it asks
``_Found`` for)."""
