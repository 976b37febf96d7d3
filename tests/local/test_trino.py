"""Trino's meaning in the local Athena (``helpers.local.trino``), beyond the conformance cases:
the same operators over columns, aggregates and windows, where the choice is made at bind time."""

from __future__ import annotations

import pytest

import helpers
from helpers.exceptions import QueryError
from helpers.local.athena import _aggregate_pattern, _parse
from helpers.local.trino import trino_type_name


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("trino") / "root"
    with helpers.connect(root=root, consume=False) as platform:
        yield platform


ROWS = "(VALUES (7, 2, 7.5E0, 'a'), (-7, 2, 0.0E0, 'a'), (9, 4, 1.0E0, 'b')) t(i, j, d, k)"


def test_integer_columns_divide_as_integers_and_doubles_do_not(platform):
    frame = platform.query(f"SELECT i / j AS q, i % j AS r, d / j AS x FROM {ROWS} ORDER BY i")
    assert frame.q.tolist() == [-3, 3, 2]  # truncated toward zero
    assert frame.r.tolist() == [-1, 1, 1]
    assert frame.x.tolist() == [0.0, 3.75, 0.25]


def test_division_of_aggregates_follows_their_types(platform):
    frame = platform.query(
        f"SELECT k, sum(i) / count(*) AS q, avg(i) / 2 AS a, sum(d) / 2 AS s,"
        f" sum(i) / sum(sum(i)) OVER () AS share FROM {ROWS} GROUP BY k ORDER BY k"
    )
    assert frame.q.tolist() == [0, 9]  # bigint / bigint
    assert frame.a.tolist() == [0.0, 4.5]  # avg is a double
    assert frame.s.tolist() == [3.75, 0.5]
    assert frame.share.tolist() == [0, 1]


def test_division_by_zero_fails_as_athena_and_try_makes_it_null(platform):
    with pytest.raises(QueryError) as error:
        platform.query(f"SELECT i / (j - 2) FROM {ROWS}")
    assert error.value.code == "DIVISION_BY_ZERO"
    with pytest.raises(QueryError, match="DIVISION_BY_ZERO"):
        platform.query(f"SELECT sum(i) % (count(*) - count(*)) FROM {ROWS}")
    frame = platform.query(f"SELECT try(i / (j - 2)) AS q, d / 0 AS inf FROM {ROWS} ORDER BY i")
    assert frame.q.isna().tolist() == [True, True, False] and frame.q.iloc[2] == 4
    assert frame.inf.iloc[1] == float("inf")  # a double divided by zero is Infinity


def test_unnamed_columns_are_named_as_athena_names_them(platform):
    frame = platform.query(f"SELECT k, count(*), i + 1 AS n FROM {ROWS} GROUP BY k, i")
    assert list(frame.columns) == ["k", "_col1", "n"]
    inner = platform.query("SELECT _col0 * 2 AS twice FROM (SELECT 21)")
    assert inner.twice.tolist() == [42]
    values = platform.query("SELECT _col1 FROM (VALUES (1, 'x'))")
    assert values._col1.tolist() == ["x"]


def test_typeof_names_trinos_types(platform):
    frame = platform.query(
        "SELECT typeof(7 / 2) AS a, typeof(sum(1)) AS b, typeof(ARRAY[ARRAY[1]]) AS c,"
        " typeof(CAST(ROW(1, 'x') AS ROW(n bigint, s varchar))) AS d, typeof(1E0) AS e"
    )
    assert frame.iloc[0].tolist() == [
        "integer",
        "bigint",
        "array(array(integer))",
        "row(n bigint, s varchar)",
        "double",
    ]


@pytest.mark.parametrize(
    ("duckdb_type", "trino"),
    [
        ("INTEGER", "integer"),
        ("HUGEINT", "bigint"),
        ("FLOAT", "real"),
        ("BLOB", "varbinary"),
        ("DECIMAL(5,2)", "decimal(5,2)"),
        ("TIMESTAMP", "timestamp(3)"),
        ("TIMESTAMP WITH TIME ZONE", "timestamp(3) with time zone"),
        ("MAP(VARCHAR, INTEGER[])", "map(varchar, array(integer))"),
        ("STRUCT(a INTEGER, b VARCHAR)", "row(a integer, b varchar)"),
        ("NULL", "unknown"),
    ],
)
def test_trino_type_names(duckdb_type, trino):
    assert trino_type_name(duckdb_type) == trino


def test_arrays_maps_and_rows_come_back_as_python_values_and_athena_text(platform):
    frame = platform.query(
        "SELECT ARRAY[1, 2, 3] AS a, MAP(ARRAY['a', 'b'], ARRAY[1, 2]) AS m,"
        " CAST(ROW(1, 'x') AS ROW(n bigint, s varchar)) AS r, ARRAY[ARRAY['x', NULL]] AS n,"
        " CAST(NULL AS ARRAY(integer)) AS z"
    )
    assert frame.iloc[0].tolist() == [[1, 2, 3], {"a": 1, "b": 2}, (1, "x"), [["x", None]], None]
    key = frame.attrs["output_location"].split("/", 3)[3]
    assert platform.bucket.get_object(key).decode().splitlines()[1] == (
        '"[1, 2, 3]","{a=1, b=2}","{n=1, s=x}","[[x, null]]",'
    )


def test_string_functions_give_trinos_empty_strings_and_nulls(platform):
    frame = platform.query(
        "SELECT substr('abc', 0) AS a, substr('abc', -5) AS b, split_part('a,b', ',', 3) AS c,"
        " regexp_extract('abc', 'x') AS d, split('a.b.c', '.', 2) AS e"
    )
    assert frame.iloc[0].tolist()[:2] == ["", ""]
    assert frame.c.isna().all() and frame.d.isna().all()
    assert frame.e.iloc[0] == ["a", "b.c"]


def test_what_duckdb_cannot_say_is_refused_before_it_runs(platform):
    with pytest.raises(QueryError) as error:
        platform.query("SELECT array_sort(ARRAY[3, 1, 2], (x, y) -> IF(x < y, 1, -1))")
    assert error.value.code == "NOT_SUPPORTED" and "comparator" in str(error.value)


def test_decimals_divide_as_decimals_with_trinos_scale(platform):
    frame = platform.query(
        "SELECT CAST(x AS DECIMAL(10, 2)) / 3 AS q, typeof(CAST(x AS DECIMAL(10, 2)) / 3) AS t"
        " FROM (VALUES 2) t(x)"
    )
    assert str(frame.q.iloc[0]) == "0.67" and frame.t.iloc[0] == "decimal(10,2)"
    with pytest.raises(QueryError, match="DIVISION_BY_ZERO"):
        platform.query("SELECT DECIMAL '1.5' / DECIMAL '0'")


def test_date_arithmetic_over_date_columns_stays_a_date(platform):
    frame = platform.query(
        "SELECT d + INTERVAL '1' DAY AS next, date_trunc('month', d) AS month,"
        " date_add('week', 1, d) AS later, typeof(d - INTERVAL '1' MONTH) AS t,"
        " ts + INTERVAL '1' DAY AS stamp"
        " FROM (VALUES (DATE '2024-02-29', TIMESTAMP '2024-02-29 10:30:00')) t(d, ts)"
    )
    row = frame.iloc[0]
    assert [str(row.next), str(row.month), str(row.later)] == [
        "2024-03-01",
        "2024-02-01",
        "2024-03-07",
    ]
    assert row.t == "date"
    assert str(row.stamp) == "2024-03-01 10:30:00"  # a timestamp stays one


def test_regexp_replace_reads_javas_replacement(platform):
    frame = platform.query(
        r"SELECT regexp_replace(s, '(\w+)@(?<host>\w+)', '${host}: $1 \$') AS r"
        " FROM (VALUES 'ann@example') t(s)"
    )
    assert frame.r.iloc[0] == "example: ann $"
    with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
        platform.query("SELECT regexp_replace('x', 'x', '$2')")


def test_strpos_finds_the_nth_match_from_either_end(platform):
    frame = platform.query(
        "SELECT strpos(s, '/', 2) AS second, strpos(s, '/', -1) AS last,"
        " strpos(s, '/', 9) AS missing FROM (VALUES 'a/b/c') t(s)"
    )
    assert frame.iloc[0].tolist() == [4, 4, 0]


def test_a_maintained_aggregate_knows_athenas_names_of_its_unnamed_columns():
    pattern = _aggregate_pattern(_parse("SELECT ds, sum(units), count(*) AS n FROM v GROUP BY ds"))
    assert pattern.outputs == [("ds", "group"), ("_col1", "sum"), ("n", "count")]
