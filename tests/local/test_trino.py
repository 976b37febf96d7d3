"""Trino's meaning in the local Athena (``helpers.local.trino``), beyond the conformance cases:
the same operators over columns, aggregates and windows, where the choice is made at bind time."""

from __future__ import annotations

import pandas as pd
import pytest

import helpers
from helpers.exceptions import QueryError
from helpers.local.athena import _aggregate_pattern, _parse
from helpers.local.trino_types import trino_type_name


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
        platform.query("SELECT * FROM UNNEST(ARRAY[ROW('a', 1)], ARRAY[ROW(true)]) AS t(x, y, z)")
    assert error.value.code == "NOT_SUPPORTED" and "rows expanded" in str(error.value)


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


TEXTS = "(VALUES ('12', 1.5E0), ('-3', 37.7E0), ('+4', 0.0E0)) t(s, d)"


def test_varchar_columns_cast_to_integers_from_digits_only(platform):
    frame = platform.query(f"SELECT CAST(s AS integer) AS i, CAST(s AS bigint) AS b FROM {TEXTS}")
    assert sorted(frame.i.tolist()) == [-3, 4, 12] and sorted(frame.b.tolist()) == [-3, 4, 12]


@pytest.mark.parametrize("text", ["12.5", " 12", "12 ", "", "1e3", "--1"])
def test_a_varchar_that_is_not_digits_fails_to_cast_and_is_null_under_try(platform, text):
    rows = f"(VALUES ('{text}'), ('7')) t(s)"
    with pytest.raises(QueryError) as error:
        platform.query(f"SELECT CAST(s AS integer) FROM {rows}")
    assert error.value.code == "INVALID_CAST_ARGUMENT"
    for safe in ("TRY_CAST(s AS integer)", "try(CAST(s AS integer))"):
        frame = platform.query(f"SELECT {safe} AS i FROM {rows}")
        assert frame.i.isna().tolist() == [True, False] and frame.i.iloc[1] == 7


def test_double_columns_cast_to_varchar_in_trino_scientific_form(platform):
    frame = platform.query(f"SELECT CAST(d AS varchar) AS v FROM {TEXTS} ORDER BY d")
    assert frame.v.tolist() == ["0.0E0", "1.5E0", "3.77E1"]


@pytest.mark.parametrize(("size", "fits"), [(5, True), (4, False)])
def test_a_number_cast_to_a_varchar_too_short_for_its_text_fails(platform, size, fits):
    sql = f"SELECT CAST(n AS varchar({size})) AS v FROM (VALUES (12345)) t(n)"
    if fits:
        assert platform.query(sql).v.tolist() == ["12345"]
    else:
        with pytest.raises(QueryError, match="INVALID_CAST_ARGUMENT"):
            platform.query(sql)


def test_a_varchar_cast_to_a_shorter_varchar_is_truncated(platform):
    frame = platform.query("SELECT CAST(s AS varchar(3)) AS v FROM (VALUES ('abcd'), ('ab')) t(s)")
    assert frame.v.tolist() == ["abc", "ab"]


def test_json_casts_to_and_from_varchar(platform):
    frame = platform.query(
        "SELECT CAST(json_parse(j) AS varchar) AS v, CAST(j AS JSON) AS s"
        """ FROM (VALUES ('"abc"'), ('12'), ('null')) t(j)"""
    )
    assert frame.v.tolist()[:2] == ["abc", "12"] and frame.v.isna().tolist()[2]
    assert frame.s.tolist() == ['"\\"abc\\""', '"12"', '"null"']  # varchar -> a JSON string
    with pytest.raises(QueryError, match="INVALID_CAST_ARGUMENT"):
        platform.query("SELECT CAST(json_parse('[1]') AS varchar)")


def test_hours_added_to_a_date_column_fail_and_to_a_timestamp_do_not(platform):
    with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
        platform.query("SELECT d + INTERVAL '3' hour FROM (VALUES (DATE '2024-01-01')) t(d)")
    frame = platform.query(
        "SELECT t + INTERVAL '3' hour AS t3, d + INTERVAL '3' day AS d3"
        " FROM (VALUES (TIMESTAMP '2024-01-01 00:00:00', DATE '2024-01-01')) v(t, d)"
    )
    assert str(frame.t3.iloc[0]) == "2024-01-01 03:00:00" and str(frame.d3.iloc[0]) == "2024-01-04"


@pytest.mark.parametrize(("index", "value"), [(1, "a"), (2, "b"), (3, None)])
def test_split_part_counts_from_one_and_is_null_past_the_end(platform, index, value):
    got = platform.query(f"SELECT split_part(s, '-', {index}) AS v FROM (VALUES ('a-b')) t(s)")
    assert (None if got.v.isna().iloc[0] else got.v.iloc[0]) == value


def test_split_part_refuses_index_zero_and_pads_refuse_an_empty_fill(platform):
    with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
        platform.query("SELECT split_part(s, '-', 0) FROM (VALUES ('a-b')) t(s)")
    for pad in ("lpad", "rpad"):
        with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
            platform.query(f"SELECT {pad}(s, 5, '') FROM (VALUES ('ab')) t(s)")
        assert platform.query(f"SELECT {pad}('ab', 4, '*') AS v").v.iloc[0].count("*") == 2


@pytest.mark.parametrize(("count", "length"), [(0, 0), (10000, 10000)])
def test_repeat_makes_an_array_up_to_ten_thousand(platform, count, length):
    assert len(platform.query(f"SELECT repeat('a', {count}) AS v").v.iloc[0]) == length


@pytest.mark.parametrize("count", [-1, 10001])
def test_repeat_refuses_a_count_outside_zero_to_ten_thousand(platform, count):
    with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
        platform.query(f"SELECT repeat('a', {count})")


def test_array_position_is_a_bigint_zero_when_missing_and_null_for_null(platform):
    frame = platform.query(
        "SELECT array_position(a, 2) AS p, array_position(a, NULL) AS n"
        " FROM (VALUES (ARRAY[1, 2]), (ARRAY[3])) t(a) ORDER BY cardinality(a) DESC"
    )
    assert frame.p.tolist() == [2, 0] and frame.n.isna().all()


@pytest.mark.parametrize(
    "expression",
    [
        "from_unixtime(7200) AT TIME ZONE 'UTC'",
        "from_unixtime(7200, 'UTC')",
        "from_unixtime(7200, 0, 0)",
        "from_iso8601_timestamp('2020-05-11T11:15:05.055Z')",
        "from_iso8601_timestamp('2020-05-11')",
        "TIMESTAMP '2020-05-11 11:15:05 UTC'",
        "CAST('2020-05-11 11:15:05' AS timestamp with time zone)",
    ],
)
def test_timestamps_with_time_zone_in_utc_run(platform, expression):
    assert len(platform.query(f"SELECT {expression} AS t")) == 1


@pytest.mark.parametrize("zone", ["?", "z"])
def test_at_time_zone_takes_a_literal_only_and_at_timezone_anything(platform, zone):
    """Trino's grammar refuses a parameter or a column after AT TIME ZONE (a string or an
    interval literal only); at_timezone takes them."""
    rows = " FROM (VALUES ('Asia/Tokyo')) x(z)"
    params = ["Asia/Tokyo"] if zone == "?" else None
    with pytest.raises(QueryError, match=r"SYNTAX_ERROR.*at_timezone"):
        platform.query(f"SELECT from_unixtime(7200) AT TIME ZONE {zone} AS t" + rows, params=params)
    for expression in (
        f"at_timezone(from_unixtime(7200), {zone})",
        "from_unixtime(7200) AT TIME ZONE 'Asia/Tokyo'",
    ):
        bound = params if "?" in expression else None
        frame = platform.query(f"SELECT hour({expression}) AS h" + rows, params=bound)
        assert frame.h.tolist() == [11]


def test_timestamps_with_time_zone_keep_their_zone(platform):
    """A zoned value is its instant seen in its zone: the wall clock, fields and text are the
    zone's, equality is the instant's, and the zone may come from the data."""
    frame = platform.query(
        "SELECT from_unixtime(7200, z) AS t, hour(from_unixtime(7200, z)) AS h,"
        " CAST(from_unixtime(7200, z) AS varchar) AS v,"
        " from_unixtime(7200, z) = from_unixtime(7200) AS same"
        " FROM (VALUES ('Asia/Tokyo'), ('+07:09'), ('UTC')) x(z) ORDER BY z"
    )
    stamps = [pd.Timestamp(value) for value in frame.t]
    assert [str(stamp.tzinfo) for stamp in stamps] == ["UTC+07:09", "Asia/Tokyo", "UTC"]
    assert [stamp.hour for stamp in stamps] == [9, 11, 2]
    assert frame.h.tolist() == [9, 11, 2] and frame.same.tolist() == [True, True, True]
    assert frame.v.tolist() == [
        "1970-01-01 09:09:00.000 +07:09",
        "1970-01-01 11:00:00.000 Asia/Tokyo",
        "1970-01-01 02:00:00.000 UTC",
    ]
    text = platform.bucket.get_object(frame.attrs["output_location"].split("/", 3)[3])
    assert '"1970-01-01 11:00:00.000 Asia/Tokyo"' in text.decode()


def test_text_and_offsets_from_the_data_are_read_in_their_zones(platform):
    frame = platform.query(
        "SELECT CAST(s AS timestamp with time zone) AS c, hour(from_iso8601_timestamp(i)) AS h,"
        " timezone(from_iso8601_timestamp(i)) AS z"
        " FROM (VALUES ('2020-05-11 11:15:05 Asia/Tokyo', '2020-05-11T11:15:05+01:00'),"
        " ('2020-05-11 11:15:05', '2020-05-11T11:15:05Z')) x(s, i)"
    )
    assert [str(pd.Timestamp(value).tzinfo) for value in frame.c] == ["Asia/Tokyo", "UTC"]
    assert frame.h.tolist() == [11, 11] and frame.z.tolist() == ["+01:00", "UTC"]


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        (
            "with_timezone(TIMESTAMP '2001-08-22 03:04:05', 'Mars/Olympus')",
            "INVALID_FUNCTION_ARGUMENT",
        ),
        ("from_unixtime(7200, z) FROM (VALUES ('Mars/Olympus')) t(z)", "INVALID_FUNCTION_ARGUMENT"),
        ("from_unixtime(0, 1, 10000)", "INVALID_FUNCTION_ARGUMENT"),
        ("from_unixtime(0, h, 0) FROM (VALUES (20)) t(h)", "INVALID_FUNCTION_ARGUMENT"),
        ("TIMESTAMP '2020-05-11 11:15:05 Mars/Olympus'", "INVALID_LITERAL"),
        ("parse_datetime('+05:00 2020', 'ZZ yyyy')", "NOT_SUPPORTED"),
    ],
)
def test_unknown_zones_and_offsets_out_of_range_fail_as_in_trino(platform, expression, code):
    with pytest.raises(QueryError) as error:
        platform.query(f"SELECT {expression}")
    assert error.value.code == code


DECIMALS = "(VALUES (DECIMAL '1.25', 7), (DECIMAL '-2.50', -3), (DECIMAL '0.01', 0)) t(x, i)"


def test_rounding_functions_of_decimal_columns_have_trino_types(platform):
    """ceil/floor/round of a decimal(3,2) are decimal(2,0); to digits they keep the scale
    (round grows one digit); truncate drops the fraction; sign is decimal(1,0)."""
    frame = platform.query(
        "SELECT typeof(ceil(x)) AS c, typeof(floor(x)) AS f, typeof(round(x)) AS r,"
        " typeof(round(x, 1)) AS r1, typeof(truncate(x)) AS t, typeof(truncate(x, 1)) AS t1,"
        f" typeof(sign(x)) AS s, typeof(ceil(i)) AS ci, typeof(sign(i)) AS si FROM {DECIMALS}"
    )
    assert frame.iloc[0].tolist() == [
        "decimal(2,0)",
        "decimal(2,0)",
        "decimal(2,0)",
        "decimal(4,2)",
        "decimal(1,0)",
        "decimal(3,2)",
        "decimal(1,0)",
        "integer",
        "integer",
    ]


def test_rounding_values_of_decimal_columns(platform):
    frame = platform.query(
        "SELECT CAST(round(x, 1) AS varchar) AS r1, CAST(ceil(x) AS varchar) AS c,"
        f" CAST(mod(x, DECIMAL '1.0') AS varchar) AS m FROM {DECIMALS} ORDER BY i"
    )
    assert frame.r1.tolist() == ["-2.50", "0.00", "1.30"]  # half away from zero, scale kept
    assert frame.c.tolist() == ["-2", "1", "2"]
    assert frame.m.tolist() == ["-0.50", "0.01", "0.25"]


@pytest.mark.parametrize(
    ("values", "average"),
    [
        ("(DECIMAL '1.0'), (DECIMAL '2.0')", "1.5"),
        ("(CAST(2 AS DECIMAL(38,0))), (CAST(1 AS DECIMAL(38,0)))", "2"),  # 1.5: half up
        ("(CAST(-2 AS DECIMAL(38,0))), (CAST(-1 AS DECIMAL(38,0)))", "-2"),  # away from zero
        ("(CAST(1 AS DECIMAL(38,0))), (CAST(0 AS DECIMAL(38,0))), (NULL)", "1"),  # 0.5
        ("(DECIMAL '0.02'), (DECIMAL '0.01')", "0.02"),
    ],
)
def test_avg_of_a_decimal_column_keeps_its_type_rounding_half_away(platform, values, average):
    frame = platform.query(f"SELECT CAST(avg(x) AS varchar) AS a FROM (VALUES {values}) t(x)")
    assert frame.a.iloc[0] == average


def test_avg_of_decimals_over_a_window_and_of_integers_over_groups(platform):
    frame = platform.query(
        "SELECT g, CAST(avg(x) OVER (PARTITION BY g) AS varchar) AS w"
        " FROM (VALUES (1, DECIMAL '1.0'), (1, DECIMAL '2.0'), (2, DECIMAL '4.0')) t(g, x)"
        " ORDER BY g"
    )
    assert frame.w.tolist() == ["1.5", "1.5", "4.0"]
    ints = platform.query(f"SELECT avg(i) AS a, typeof(avg(i)) AS t FROM {DECIMALS}")
    assert ints.a.iloc[0] == pytest.approx(4 / 3) and ints.t.iloc[0] == "double"


def test_sign_of_a_double_column_is_a_double_and_nan_stays_nan(platform):
    frame = platform.query(
        "SELECT CAST(sign(d) AS varchar) AS s FROM (VALUES (DOUBLE 'NaN'), (DOUBLE '-Infinity'),"
        " (0E0), (NULL)) t(d)"
    )
    assert frame.s.tolist()[:3] == ["NaN", "-1.0E0", "0.0E0"] and frame.s.isna().tolist()[3]


@pytest.mark.parametrize(("index", "value"), [(1, 10), (3, 30)])
def test_array_subscripts_at_both_ends_of_the_array(platform, index, value):
    assert platform.query(f"SELECT split('10,20,30', ',')[{index}] AS v").v.iloc[0] == str(value)
    assert platform.query(f"SELECT ARRAY[10, 20, 30][{index}] AS v").v.iloc[0] == value


@pytest.mark.parametrize("index", [0, 4, -1])
def test_array_subscripts_outside_the_array_fail_and_are_null_under_try(platform, index):
    with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
        platform.query(f"SELECT ARRAY[10, 20, 30][{index}]")
    assert platform.query(f"SELECT try(ARRAY[10, 20, 30][{index}]) AS v").v.isna().all()


@pytest.mark.parametrize(("index", "value"), [(-1, 30), (-3, 10), (3, 30), (4, None), (-4, None)])
def test_element_at_counts_from_the_end_and_is_null_past_it(platform, index, value):
    got = platform.query(f"SELECT element_at(ARRAY[10, 20, 30], {index}) AS v").v
    assert (None if got.isna().iloc[0] else got.iloc[0]) == value


def test_element_at_zero_and_a_missing_map_key_fail_but_element_at_a_map_is_null(platform):
    for sql in ("element_at(ARRAY[1], 0)", "MAP(ARRAY[1], ARRAY[2])[3]"):
        with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
            platform.query(f"SELECT {sql}")
    frame = platform.query(
        "SELECT element_at(MAP(ARRAY[1], ARRAY[2]), 3) AS m, MAP(ARRAY[1], ARRAY[2])[1] AS k"
    )
    assert frame.m.isna().all() and frame.k.iloc[0] == 2


@pytest.mark.parametrize(("text", "result"), [("abc", "xxaxxbxxcxx"), ("", "xx"), ("a", "xxaxx")])
def test_replace_of_an_empty_search_surrounds_every_character(platform, text, result):
    frame = platform.query(f"SELECT replace(s, '', 'xx') AS v FROM (VALUES ('{text}')) t(s)")
    assert frame.v.iloc[0] == result


def test_replace_with_a_search_from_the_data_chooses_per_row(platform):
    frame = platform.query(
        "SELECT replace('abc', s, '-') AS v FROM (VALUES ('b'), ('')) t(s) ORDER BY s DESC"
    )
    assert frame.v.tolist() == ["a-c", "-a-b-c-"]


def test_json_extract_scalar_of_an_object_or_array_is_null(platform):
    frame = platform.query(
        "SELECT json_extract_scalar(j, '$.a') AS v FROM (VALUES"
        """ ('{"a": {"b": 1}}'), ('{"a": [1]}'), ('{"a": 2}'), ('{"a": "x"}')) t(j)"""
    )
    assert frame.v.isna().tolist() == [True, True, False, False]
    assert frame.v.tolist()[2:] == ["2", "x"]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("extract(hour FROM INTERVAL '27' HOUR)", 3),
        ("extract(day FROM INTERVAL '55' HOUR)", 2),
        ("day(INTERVAL '47' HOUR)", 1),
        ("minute(INTERVAL '3601' SECOND)", 0),
        ("second(INTERVAL '3601' SECOND)", 1),
        ("hour(INTERVAL '-25' HOUR)", -1),
    ],
)
def test_fields_of_day_to_second_intervals_are_normalised(platform, expression, value):
    assert platform.query(f"SELECT {expression} AS v").v.iloc[0] == value


@pytest.mark.parametrize(
    ("unit", "start", "end", "count"),
    [
        ("day", "2020-01-01 23:00:00", "2020-01-02 01:00:00", 0),
        ("day", "2020-01-01 01:00:00", "2020-01-02 01:00:00", 1),
        ("hour", "2020-01-01 01:00:00.001", "2020-01-01 02:00:00", 0),
        ("second", "1960-05-03 07:02:09.678", "1960-05-03 07:02:10.677", 0),
        ("second", "1960-05-03 07:02:09.678", "1960-05-03 07:02:10.678", 1),
        ("month", "2020-01-31 00:00:00", "2020-02-29 00:00:00", 1),
        ("day", "2020-01-02 01:00:00", "2020-01-01 01:00:00", -1),
    ],
)
def test_date_diff_counts_whole_units(platform, unit, start, end, count):
    sql = f"SELECT date_diff('{unit}', TIMESTAMP '{start}', TIMESTAMP '{end}') AS v"
    assert platform.query(sql).v.iloc[0] == count


def test_nan_equals_nothing_when_both_sides_are_doubles(platform):
    frame = platform.query(
        "SELECT d = d AS same, d <> d AS differ FROM (VALUES (DOUBLE 'NaN'), (1E0)) t(d)"
    )
    assert frame.same.tolist() == [False, True] and frame.differ.tolist() == [True, False]


@pytest.mark.parametrize(("group", "fails"), [(1, False), (2, True)])
def test_regexp_extract_of_a_group_the_pattern_lacks_fails(platform, group, fails):
    sql = f"SELECT regexp_extract('Hello world', '([a-z]+) ', {group}) AS v"
    if fails:
        with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
            platform.query(sql)
    else:
        assert platform.query(sql).v.iloc[0] == "ello"


@pytest.mark.parametrize("sql", ["'10' = 10", "8 + 'x'", "1.5E0 < 'a'", "DECIMAL '1.0' * '2'"])
def test_numbers_and_varchars_do_not_mix(platform, sql):
    with pytest.raises(QueryError) as error:
        platform.query(f"SELECT {sql}")
    assert error.value.code == "TYPE_MISMATCH" and "CAST" in str(error.value)


def test_numbers_and_varchars_mix_once_cast(platform):
    assert platform.query("SELECT CAST('10' AS integer) = 10 AS v").v.iloc[0]


def test_unnest_of_several_arrays_pads_the_shorter_and_follows_each_row(platform):
    frame = platform.query(
        "SELECT k, n, a, i FROM (VALUES (1, ARRAY[2, 5], ARRAY['dog', 'cat', 'bird']),"
        " (2, ARRAY[7], ARRAY['cow'])) AS x(k, numbers, animals)"
        " CROSS JOIN UNNEST(numbers, animals) WITH ORDINALITY AS t(n, a, i) ORDER BY k, i"
    )
    rows = [[None if value != value else value for value in row] for row in frame.values.tolist()]
    assert rows == [[1, 2, "dog", 1], [1, 5, "cat", 2], [1, None, "bird", 3], [2, 7, "cow", 1]]


def test_unnest_of_a_map_gives_keys_and_values(platform):
    frame = platform.query(
        "SELECT * FROM UNNEST(map_from_entries(ARRAY[('SQL', 1974), ('Java', 1995)]))"
        " AS t(language, year) ORDER BY year"
    )
    assert frame.columns.tolist() == ["language", "year"]
    assert frame.values.tolist() == [["SQL", 1974], ["Java", 1995]]


def test_unnest_of_one_array_with_ordinality_and_of_rows_into_fields(platform):
    frame = platform.query("SELECT * FROM UNNEST(ARRAY['a', 'b']) WITH ORDINALITY AS t(v, i)")
    assert frame.values.tolist() == [["a", 1], ["b", 2]]
    with pytest.raises(QueryError, match="NOT_SUPPORTED"):
        platform.query("SELECT * FROM UNNEST(ARRAY[ROW(1, 2)], ARRAY[3]) AS t(a, b, c)")


@pytest.mark.parametrize(
    ("field", "value"),
    [("day_of_week", 3), ("dow", 3), ("day_of_month", 22), ("day_of_year", 234)],
)
def test_extract_takes_trinos_field_names(platform, field, value):
    sql = f"SELECT extract({field} FROM DATE '2001-08-22') AS v"  # a Wednesday
    assert platform.query(sql).v.iloc[0] == value


def test_extract_year_of_week_is_the_iso_year(platform):
    sql = "SELECT extract(year_of_week FROM DATE '2005-01-01') AS v"  # in the 53rd week of 2004
    assert platform.query(sql).v.iloc[0] == 2004


def test_arrays_reverse_append_prepend_and_maps_count(platform):
    frame = platform.query(
        "SELECT reverse(ARRAY[1, 2]) AS r, ARRAY[1] || 2 AS ap, 0 || ARRAY[1] AS pre,"
        " ARRAY[1] || ARRAY[2] AS joined, cardinality(MAP(ARRAY['a', 'b'], ARRAY[1, 2])) AS c,"
        " reverse('ab') AS s"
    )
    row = frame.iloc[0]
    assert list(row.r) == [2, 1] and list(row.ap) == [1, 2] and list(row.pre) == [0, 1]
    assert list(row.joined) == [1, 2] and row.c == 2 and row.s == "ba"


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("yyyy-MM-dd HH:mm:ss.SSS", "2001-08-02 03:04:05.321"),
        ("d/M/yy h:m a", "2/8/01 3:4 AM"),
        ("EEEE, MMMM d 'at' HH", "Thursday, August 2 at 03"),
        ("yyyy'%'MM", "2001%08"),
    ],
)
def test_format_datetime_reads_joda_patterns(platform, pattern, text):
    quoted = pattern.replace("'", "''")
    sql = f"SELECT format_datetime(TIMESTAMP '2001-08-02 03:04:05.321', '{quoted}') AS v"
    assert platform.query(sql).v.iloc[0] == text


def test_parse_datetime_reads_joda_patterns_and_zones_at_the_end(platform):
    frame = platform.query(
        "SELECT CAST(parse_datetime('1960/01/22 03:04', 'yyyy/MM/dd HH:mm') AS varchar) AS v,"
        " CAST(parse_datetime('1960/01/22 03:04 -0230', 'yyyy/MM/dd HH:mm Z') AS varchar) AS z"
    )
    assert frame.v.iloc[0] == "1960-01-22 03:04:00.000 UTC"
    assert frame.z.iloc[0] == "1960-01-22 03:04:00.000 -02:30"
    for pattern in ("yyyy z", "G yyyy", "yyy", "Z yyyy"):  # a short zone name; a zone first
        with pytest.raises(QueryError, match="NOT_SUPPORTED"):
            platform.query(f"SELECT parse_datetime('2001', '{pattern}')")
    with pytest.raises(QueryError, match="NOT_SUPPORTED"):
        platform.query(
            "SELECT format_datetime(t, p) FROM (VALUES (TIMESTAMP '2001-01-01', 'yyyy')) x(t, p)"
        )


@pytest.mark.parametrize(
    ("precision", "text"),
    [(0, "2020-06-10 15:55:23"), (1, "2020-06-10 15:55:23.4"), (3, "2020-06-10 15:55:23.384")],
)
def test_a_cast_to_a_timestamp_precision_rounds_to_it(platform, precision, text):
    frame = platform.query(
        f"SELECT CAST(CAST(t AS timestamp({precision})) AS varchar) AS v"
        " FROM (VALUES (TIMESTAMP '2020-06-10 15:55:23.383545')) x(t)"
    )
    assert frame.v.iloc[0].startswith(text) and (precision == 0 or "." in frame.v.iloc[0])


def test_char_casts_pad_or_cut_to_their_length(platform):
    frame = platform.query(
        "SELECT length(CAST(s AS char(5))) AS n, CAST(s AS char(2)) AS cut,"
        " typeof(CAST('ab' AS char(4))) AS t FROM (VALUES ('abc')) x(s)"
    )
    assert frame.iloc[0].tolist() == [5, "ab", "char(4)"]


def test_year_to_month_intervals_are_typed_apart(platform):
    frame = platform.query(
        "SELECT typeof(INTERVAL '3' YEAR + INTERVAL '5' MONTH) AS ym,"
        " typeof(INTERVAL '3' DAY) AS ds"
    )
    assert frame.iloc[0].tolist() == ["interval year to month", "interval day to second"]


def test_a_connection_gets_only_the_trino_functions_its_queries_call(tmp_path):
    """Creating every macro costs ~70 ms per connection: each is made when a query first
    calls it, with what it calls (a varchar cast of a double calls the Python formatter)."""
    with helpers.connect(root=tmp_path / "root", consume=False) as fresh:
        fresh.query("SELECT 1 + 1 AS v")
        connection, _ = fresh.athena._connection()
        made = {
            name
            for (name,) in connection.sql(
                "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE '__trino%'"
            ).fetchall()
        }
        assert made == set()
        frame = fresh.query("SELECT CAST(d AS varchar) AS v FROM (VALUES (37.7E0)) t(d)")
        assert frame.v.iloc[0] == "3.77E1"
        made = {
            name
            for (name,) in connection.sql(
                "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE '__trino%'"
            ).fetchall()
        }
        # __trino_varchar and what it calls (a double's text; a zoned value's text)
        zoned_text = {"__trino_tz_text", "__trino_wall", "__trino_icu_zone"}
        assert made == {"__trino_varchar", "__trino_double_text", *zoned_text}


def test_a_timestamp_column_casts_to_a_timestamp_with_time_zone_in_utc(platform):
    frame = platform.query(
        "SELECT hour(CAST(t AS timestamp with time zone)) AS h"
        " FROM (VALUES (TIMESTAMP '2024-01-01 05:00:00')) x(t)"
    )
    assert frame.h.iloc[0] == 5


def test_date_parse_reads_patterns_as_trino_over_column_values(platform):
    """Two-digit years pivot at 1970, a twelve-hour clock without a meridian is the
    morning, fractions are cut to milliseconds, missing fields are 1970-01-01's."""
    frame = platform.query(
        "SELECT date_parse(s, '%d-%b-%y %h.%i.%s.%f') AS t FROM (VALUES"
        " ('31-MAY-69 12.59.59.9999'), ('01-jan-70 01.00.00.1')) x(s) ORDER BY t"
    )
    assert [str(value) for value in frame.t] == [
        "1970-01-01 01:00:00.100000",
        "2069-05-31 00:59:59.999000",
    ]
    assert str(platform.query("SELECT date_parse('7', '%s') AS t").t.iloc[0]) == (
        "1970-01-01 00:00:07"
    )
    with pytest.raises(QueryError) as error:
        platform.query("SELECT date_parse('31-XYZ-69', '%d-%b-%y')")
    assert error.value.code == "INVALID_FUNCTION_ARGUMENT"


def test_intervals_over_spans_and_their_text(platform):
    frame = platform.query(
        "SELECT CAST(INTERVAL '1-2' YEAR TO MONTH AS varchar) AS ym,"
        " CAST(INTERVAL '3' MONTH AS varchar) AS m,"
        " CAST(INTERVAL '-1 02:03' DAY TO MINUTE AS varchar) AS dm,"
        " CAST(INTERVAL '90' MINUTE AS varchar) AS mi"
    )
    assert frame.values.tolist() == [["1-2", "0-3", "-1 02:03:00.000", "0 01:30:00.000"]]
    for bad in ("INTERVAL '1:2:3' DAY TO HOUR", "INTERVAL 'x' HOUR TO SECOND"):
        with pytest.raises(QueryError) as error:
            platform.query(f"SELECT {bad}")
        assert error.value.code == "INVALID_LITERAL"
    with pytest.raises(QueryError) as error:
        platform.query("SELECT INTERVAL '6' DAY * d FROM (VALUES (infinity())) t(d)")
    assert error.value.code == "INVALID_FUNCTION_ARGUMENT"


def test_regexp_replace_with_a_function_and_groups_that_take_no_part(platform):
    frame = platform.query(
        "SELECT regexp_replace(s, '(\\w)(\\w*)', x -> upper(x[1]) || x[2]) AS f,"
        " regexp_replace(s, '(a)|(e)', x -> x[2]) AS n,"
        " regexp_extract(s, '(a)|(e)', 2) AS g"
        " FROM (VALUES ('new york'), ('dave'), (NULL)) t(s) ORDER BY s"
    )
    assert frame.f.tolist()[:2] == ["Dave", "New York"] and frame.f.isna().tolist()[2]
    # a group that took no part ('a' in dave) gives NULL to the function, and NULL out
    assert frame.n.isna().tolist() == [True, False, True] and frame.n.iloc[1] == "new york"
    assert frame.g.isna().tolist() == [True, False, True] and frame.g.iloc[1] == "e"


def test_json_paths_read_as_trino(platform):
    frame = platform.query(
        "SELECT json_extract_scalar(j, '$.1') AS v FROM (VALUES ('[5, 6]'), ('{\"1\": 7}')) t(j)"
    )
    assert frame.v.tolist() == ["6", "7"]
    with pytest.raises(QueryError) as error:
        platform.query("SELECT json_extract_scalar('[1]', '$[-1]')")
    assert error.value.code == "INVALID_FUNCTION_ARGUMENT"


def test_array_sort_with_a_comparator_over_column_values(platform):
    frame = platform.query(
        "SELECT array_sort(a, (x, y) -> IF(x < y, 1, IF(x = y, 0, -1))) AS s"
        " FROM (VALUES (ARRAY[1, 3, 2, 3]), (ARRAY[]), (NULL)) t(a) ORDER BY cardinality(a) DESC"
    )
    assert frame.s.tolist()[:2] == [[3, 3, 2, 1], []] and frame.s.iloc[2] is None


def test_rows_expand_into_columns_or_are_refused_by_name(platform):
    frame = platform.query(
        "SELECT 0 AS z, (r).*, (CAST(ROW(1, 2) AS ROW(a bigint, b bigint))).* AS (p, q)"
        " FROM (VALUES (ROW(1, 2))) t(r)"
    )
    assert frame.columns.tolist() == ["z", "_col1", "_col2", "p", "q"]
    assert frame.values.tolist() == [[0, 1, 2, 1, 2]]
    with pytest.raises(QueryError) as error:
        platform.query("SELECT (CAST(ROW(1, 2) AS ROW(a int, b int))).* AS (p)")
    assert error.value.code == "MISMATCHED_COLUMN_ALIASES"
    with pytest.raises(QueryError) as error:  # a row whose fields only the data knows
        platform.query("SELECT (json_parse(s)).* FROM (VALUES ('{}')) t(s)")
    assert error.value.code == "NOT_SUPPORTED"


def test_to_base_normalize_and_iso_week_and_ordinal_dates(platform):
    frame = platform.query(
        "SELECT to_base(-255, 16) AS b, length(normalize('schön', NFD)) AS n,"
        " from_iso8601_date(s) AS d FROM (VALUES ('2020-W10-3'), ('2020-123')) t(s) ORDER BY d"
    )
    assert frame.b.tolist()[0] == "-ff" and frame.n.tolist()[0] == 6
    assert [str(value) for value in frame.d] == ["2020-03-04", "2020-05-02"]
    for bad in ("from_iso8601_date('2020-400')", "to_base(5, 40)", "normalize('a', NFX)"):
        with pytest.raises(QueryError) as error:
            platform.query(f"SELECT {bad}")
        assert error.value.code == "INVALID_FUNCTION_ARGUMENT"
