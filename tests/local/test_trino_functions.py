"""Trino's functions that DuckDB lacks (``helpers.local.trino_functions``), beyond the
conformance cases: each limit on both sides of its edge, each failure by its Trino name, and
the functions over columns of several rows (where a macro is bound once for all of them)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import helpers
from helpers.exceptions import QueryError
from helpers.local.trino_functions import (
    _format_number,
    _human_readable_seconds,
    _parse_duration,
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("trino-functions") / "root"
    with helpers.connect(root=root, consume=False) as platform:
        yield platform


def one(platform, expression: str):
    return platform.query(f"SELECT {expression} AS v")["v"].iloc[0]


def fails(platform, expression: str, code: str) -> str:
    with pytest.raises(QueryError) as error:
        platform.query(f"SELECT {expression} AS v")
    assert error.value.code == code, str(error.value)
    return str(error.value)


@pytest.mark.parametrize(
    ("text", "radix", "value"),
    [("7fffffffffffffff", 16, 2**63 - 1), ("-8000000000000000", 16, -(2**63)), ("z", 36, 35)],
)
def test_from_base_reads_up_to_the_bigint_limits_and_radix_36(platform, text, radix, value):
    assert one(platform, f"from_base('{text}', {radix})") == value


@pytest.mark.parametrize(
    ("text", "radix"),
    [("8000000000000000", 16), ("-8000000000000001", 16), ("1", 1), ("1", 37), ("12g", 16)],
)
def test_from_base_refuses_past_the_limits_a_bad_radix_and_a_bad_digit(platform, text, radix):
    fails(platform, f"from_base('{text}', {radix})", "INVALID_FUNCTION_ARGUMENT")


@pytest.mark.parametrize(
    ("x", "bucket"), [(0.0, 1), (-0.001, 0), (3.999, 3), (4.0, 4), (1.3333, 1), (1.3334, 2)]
)
def test_width_bucket_edges_of_three_equal_buckets_over_zero_to_four(platform, x, bucket):
    """The lower bound is in the first bucket, the upper bound in the overflow bucket."""
    assert one(platform, f"width_bucket({x}E0, 0, 4, 3)") == bucket


@pytest.mark.parametrize(
    ("arguments", "message"),
    [("1E0, 0, 4, 0", "bucketCount"), ("1E0, 2, 2, 3", "bounds"), ("nan(), 0, 4, 3", "NaN")],
)
def test_width_bucket_refuses_no_buckets_equal_bounds_and_nan(platform, arguments, message):
    assert message in fails(platform, f"width_bucket({arguments})", "INVALID_FUNCTION_ARGUMENT")


def test_width_bucket_of_one_bucket_is_the_smallest_count_allowed(platform):
    assert one(platform, "width_bucket(1E0, 0, 4, 1)") == 1


@pytest.mark.parametrize(("n", "kept"), [(0, [1, 2, 3]), (3, [])])
def test_trim_array_from_nothing_to_everything(platform, n, kept):
    assert list(one(platform, f"trim_array(ARRAY[1, 2, 3], {n})")) == kept


@pytest.mark.parametrize("n", [-1, 4])
def test_trim_array_refuses_a_size_outside_the_array(platform, n):
    fails(platform, f"trim_array(ARRAY[1, 2, 3], {n})", "INVALID_FUNCTION_ARGUMENT")


@pytest.mark.parametrize(
    ("index", "value"), [(1, "2"), (2, None), (-2, "1"), (-3, None), (0, "1"), (-1, "2")]
)
def test_json_array_get_counts_from_zero_and_from_the_end(platform, index, value):
    got = one(platform, f"json_array_get('[1, 2]', {index})")
    assert (None if got is None or got != got else got) == value


def test_json_array_get_refuses_a_string_element_that_trino_gives_unquoted(platform):
    message = fails(platform, """json_array_get('["a"]', 0)""", "NOT_SUPPORTED")
    assert "json_extract_scalar" in message


@pytest.mark.parametrize(
    ("start", "occurrence", "position"), [(1, 1, 3), (3, 1, 3), (4, 1, 6), (1, 2, 6), (1, 3, -1)]
)
def test_regexp_position_from_a_start_and_an_occurrence(platform, start, occurrence, position):
    assert one(platform, f"regexp_position('xx1yy1', '1', {start}, {occurrence})") == position


@pytest.mark.parametrize("arguments", ["0, 1", "1, 0"])
def test_regexp_position_refuses_a_start_or_occurrence_below_one(platform, arguments):
    fails(platform, f"regexp_position('abc', 'b', {arguments})", "INVALID_FUNCTION_ARGUMENT")


@pytest.mark.parametrize(
    ("digits", "valid"), [("79927398713", True), ("79927398710", False), ("0", True)]
)
def test_luhn_check(platform, digits, valid):
    assert bool(one(platform, f"luhn_check('{digits}')")) is valid


@pytest.mark.parametrize("digits", ["7992739871a", ""])
def test_luhn_check_refuses_what_is_not_digits(platform, digits):
    fails(platform, f"luhn_check('{digits}')", "INVALID_FUNCTION_ARGUMENT")


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("1ns", timedelta(0)),
        ("500us", timedelta(milliseconds=1)),  # half a millisecond rounds up
        ("499us", timedelta(0)),
        ("1.5s", timedelta(seconds=1.5)),
        ("2m", timedelta(minutes=2)),
        (" 3 h ", timedelta(hours=3)),
        ("1d", timedelta(days=1)),
    ],
)
def test_parse_duration_units_to_the_millisecond(text, duration):
    assert _parse_duration(text) == duration


@pytest.mark.parametrize("text", ["1", "1 w", "h", "-1s", "1.s"])
def test_parse_duration_refuses_what_is_not_a_duration(platform, text):
    fails(platform, f"parse_duration('{text}')", "INVALID_FUNCTION_ARGUMENT")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (59.4, "59 seconds"),
        (59.5, "1 minute"),
        (3600, "1 hour"),
        (86_400 * 8 + 1, "1 week, 1 day, 1 second"),
    ],
)
def test_human_readable_seconds_rounds_and_names_every_unit(seconds, text):
    assert _human_readable_seconds(seconds) == text


def test_human_readable_seconds_refuses_nan(platform):
    fails(platform, "human_readable_seconds(nan())", "INVALID_FUNCTION_ARGUMENT")


@pytest.mark.parametrize(
    ("value", "text"),
    [(999, "999"), (1000, "1K"), (999_999, "1000K"), (1_000_000, "1M"), (12_345, "12.3K")],
)
def test_format_number_switches_unit_at_each_thousand(value, text):
    assert _format_number(value) == text
    assert _format_number(-value) == "-" + text


def test_lambda_functions_over_columns_bind_each_row(platform):
    """zip_with, transform_values, map_filter, map_zip_with and the matchers, on rows whose
    arrays and maps differ (so that a lambda bound to the wrong row would show)."""
    frame = platform.query(
        "SELECT zip_with(a, b, (x, y) -> x * 10 + coalesce(y, 0)) AS z,"
        " transform_values(MAP(a, b), (k, v) -> k + v) AS t,"
        " map_filter(MAP(a, b), (k, v) -> v > k) AS f,"
        " map_zip_with(MAP(a, b), MAP(b, a), (k, v1, v2) -> coalesce(v1, 0) - coalesce(v2, 0))"
        " AS m, any_match(a, x -> x > 2) AS anym, all_match(b, x -> x > 2) AS allm"
        " FROM (VALUES (ARRAY[1, 2], ARRAY[3, 1]), (ARRAY[3], ARRAY[5])) t(a, b) ORDER BY a[1]"
    )
    assert [list(z) for z in frame.z] == [[13, 21], [35]]
    assert frame.t.tolist() == [{1: 4, 2: 3}, {3: 8}]
    assert frame.f.tolist() == [{1: 3}, {3: 5}]
    assert frame.m.tolist() == [{1: 3 - 2, 2: 1 - 0, 3: 0 - 1}, {3: 5 - 0, 5: 0 - 3}]
    assert frame.anym.tolist() == [False, True]
    assert frame.allm.tolist() == [False, True]


def test_zip_with_pads_the_shorter_array_with_nulls(platform):
    first, *rest = one(platform, "zip_with(ARRAY[1, 2, 3], ARRAY[10], (x, y) -> y)")
    assert first == 10 and len(rest) == 2 and all(v is None or v != v for v in rest)


def test_a_lambda_function_called_without_a_lambda_is_left_to_fail_by_name(platform):
    with pytest.raises(QueryError):
        platform.query("SELECT zip_with(ARRAY[1], ARRAY[2], 3)")


def test_aggregates_map_agg_multimap_agg_reduce_agg_and_every_per_group(platform):
    frame = platform.query(
        "SELECT g, map_agg(k, v) AS m, multimap_agg(k, v) AS mm,"
        " reduce_agg(v, 1, (s, x) -> s * x, (s, t) -> s * t) AS p, every(v > 1) AS e"
        " FROM (VALUES (1, 'a', 2), (1, 'b', 3), (2, 'a', 1), (2, 'a', 5)) t(g, k, v)"
        " GROUP BY g ORDER BY g"
    )
    assert frame.m.iloc[0] == {"a": 2, "b": 3}
    assert frame.m.iloc[1] in ({"a": 1}, {"a": 5})  # a key given twice keeps one value
    assert {key: sorted(value) for key, value in frame.mm.iloc[1].items()} == {"a": [1, 5]}
    assert frame.p.tolist() == [6, 5]
    assert frame.e.tolist() == [True, False]


def test_json_array_contains_is_null_for_a_document_that_is_not_json(platform):
    frame = platform.query(
        "SELECT json_array_contains(j, 2) AS c FROM (VALUES ('[1, 2]'), ('[1,,2]'), ('[3]')) t(j)"
    )
    assert frame.c.isna().tolist() == [False, True, False]
    assert bool(frame.c.iloc[0]) and not bool(frame.c.iloc[2])


@pytest.mark.parametrize(
    ("pattern", "arguments", "text"),
    [
        ("%5s|", "'abcde'", "abcde|"),  # as wide as asked: no padding
        ("%6s|", "'abcde'", " abcde|"),
        ("%-6s|", "'abcde'", "abcde |"),
        ("%05d", "-42", "-0042"),
        ("%+d", "7", "+7"),
        ("%.2s", "'abc'", "ab"),
        ("%s", "1.0E0", "1.0"),
        ("%s", "1.0E7", "1.0E7"),
        ("%s %s", "'a', NULL", "a null"),
        ("%b %b", "NULL, 'x'", "false true"),
        ("%.1f", "DECIMAL '0.25'", "0.3"),  # half up, as Java
        ("%1$s-%1$s-%s", "'a', 'b'", "a-a-a"),  # an indexed one does not move the position
        ("100%%%n", "1", "100%\n"),
    ],
)
def test_format_follows_java_formatter(platform, pattern, arguments, text):
    assert one(platform, f"format('{pattern}', {arguments})") == text


@pytest.mark.parametrize(
    ("pattern", "arguments", "code"),
    [
        ("%s %s", "'a'", "INVALID_FUNCTION_ARGUMENT"),  # one argument short
        ("%d", "'a'", "INVALID_FUNCTION_ARGUMENT"),
        ("%f", "true", "INVALID_FUNCTION_ARGUMENT"),
        ("%q", "1", "INVALID_FUNCTION_ARGUMENT"),
        ("%s", "MAP(ARRAY[1], ARRAY[2])", "NOT_SUPPORTED"),
    ],
)
def test_format_refuses_what_java_would_not_format(platform, pattern, arguments, code):
    fails(platform, f"format('{pattern}', {arguments})", code)


def test_format_of_a_null_pattern_is_null_row_by_row(platform):
    frame = platform.query("SELECT format(p, 3) AS v FROM (VALUES ('%03d'), (NULL)) t(p)")
    assert frame.v.iloc[0] == "003" and frame.v.isna().tolist() == [False, True]
