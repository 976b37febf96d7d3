"""Trino's bounded varchar types from the query text (``helpers.local.trino_types``): what
the text fixes is typed, anything that depends on a table's data is left to DuckDB."""

from __future__ import annotations

import pytest

from helpers.local.trino import parse
from helpers.local.trino_types import static_type


def typed(expression: str, source: str = "") -> str | None:
    """The static type of the first projection of ``SELECT <expression> <source>``."""
    return static_type(parse(f"SELECT {expression} {source}").expressions[0].unalias())


@pytest.mark.parametrize(
    ("expression", "kind"),
    [
        ("'cat'", "varchar(3)"),
        ("''", "varchar(0)"),
        ("'héllo'", "varchar(5)"),  # characters, not bytes
        ("lower(substr('abcd', 2))", "varchar(4)"),
        ("upper(trim('  ab  '))", "varchar(6)"),
        ("reverse('abc')", "varchar(3)"),
        ("chr(65)", "varchar(1)"),
        ("replace('abc', 'b')", "varchar(3)"),
        ("replace('aaa', 'a', 'aa')", "varchar(11)"),  # 3 + 2 * (3 + 1)
        ("split('a.b', '.')", "array(varchar(3))"),
        ("ARRAY['a', 'bcd'][1]", "varchar(3)"),
        ("MAP(ARRAY['k1', 'key2'], ARRAY[1, 2])", "map(varchar(4), integer)"),
        ("MAP(ARRAY['k', 'j'], ARRAY['v1', 'v'])", "map(varchar(1), varchar(2))"),
        ("if(1 > 2, 'yes')", "varchar(3)"),
        ("CASE 1 WHEN 1 THEN 'one' WHEN 2 THEN 'three' ELSE NULL END", "varchar(5)"),
        ("2147483647", "integer"),
        ("2147483648", "bigint"),
    ],
)
def test_what_the_text_fixes(expression, kind):
    assert typed(expression) == kind


@pytest.mark.parametrize(
    "expression",
    [
        "lower(s)",  # a table's column: unbounded varchar, DuckDB's answer agrees
        "concat('a', 'b')",  # not followed
        "CASE WHEN true THEN 'a' ELSE s END",
        "replace(s, 'a', 'b')",
        "replace('abc', 'b', s)",
        "1.5",
        "MAP(ARRAY['a'], ARRAY[1, 2.5])",
        "ARRAY['a', s]",
    ],
)
def test_what_depends_on_data_is_not_typed_here(expression):
    assert typed(expression, "FROM t") is None


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT x FROM (VALUES 'a', 'bcd') t(x)", "varchar(3)"),
        ("SELECT name FROM (VALUES (1, 'alice'), (2, 'bo')) AS t(id, name)", "varchar(5)"),
        (
            "SELECT c1 FROM (SELECT * FROM (VALUES (1, 'alice')) AS t(id, name)) AS c(c0, c1)",
            "varchar(5)",
        ),
        ("SELECT v FROM (SELECT lower('abc') AS v FROM t) AS s", "varchar(3)"),
        ("SELECT histogram(x) FROM (VALUES 'a', 'b') t(x)", "map(varchar(1), bigint)"),
    ],
)
def test_columns_of_values_and_subqueries_are_followed(sql, kind):
    assert static_type(parse(sql).expressions[0].unalias()) == kind


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT x FROM t",
        "SELECT x FROM (VALUES 'a', NULL) t(x) JOIN u ON true",
        "SELECT q.x FROM (VALUES 'a') t(x)",  # another table's name
        "SELECT y FROM (VALUES 'a') t(x)",
        "SELECT c2 FROM (SELECT * FROM (VALUES (1, 'a')) AS t(id, name)) AS c(c0, c1)",
    ],
)
def test_columns_that_lead_elsewhere_are_not_typed(sql):
    assert static_type(parse(sql).expressions[0].unalias()) is None
