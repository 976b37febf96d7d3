"""The local Athena against Trino's own answers, one test per conformance case.

The cases live in ``conformance/*.yaml`` (see ``benchmarks.athena_conformance`` for their
form and for how outcomes are classed). The engine does not match Trino everywhere yet, so
``conformance/known_disagreements.txt`` lists today's disagreements: a listed case that still
disagrees is an expected failure, a listed case that now agrees fails (take it off the list,
so that the list only shrinks), and a disagreement that is not listed fails.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import helpers
from benchmarks.athena_conformance import (
    AGREE,
    OUTCOMES,
    Case,
    Zoned,
    csv_null_mask,
    load_cases,
    load_known,
    normalize,
    parse_type,
    run_case,
    same,
    typed,
)

CASES = load_cases()
KNOWN = load_known()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """One local platform for every case (queries only read inline values)."""
    root = tmp_path_factory.mktemp("athena-conformance") / "root"
    with helpers.connect(root=root, consume=False) as platform:
        yield platform


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_answers_as_trino(platform, case: Case):
    """The engine gives Trino's answer, or the disagreement is a listed one."""
    outcome = run_case(platform, case)
    listed = KNOWN.get(case.id)
    if outcome.kind == AGREE:
        assert listed is None, (
            f"{case.id} now agrees with Trino: remove it from known_disagreements.txt"
        )
        return
    where = f"{case.sql!r} [{case.source}]"
    if listed is None:
        pytest.fail(f"{outcome.kind}: {outcome.detail}; {where}")
    change = "" if listed == outcome.kind else f" (listed as {listed})"
    pytest.xfail(f"known {outcome.kind}{change}: {outcome.detail}")


def test_the_suite_is_whole():
    """At least 500 cases, each with a source, unique ids; the known list names real cases."""
    assert len(CASES) >= 500
    assert not [case.id for case in CASES if not case.source.strip()]
    repeated = [case_id for case_id, count in Counter(c.id for c in CASES).items() if count > 1]
    assert not repeated
    ids = {case.id for case in CASES}
    assert not [case_id for case_id in KNOWN if case_id not in ids]
    assert set(KNOWN.values()) <= set(OUTCOMES) - {AGREE}


def test_the_comparison_is_strict_about_types():
    """A value agrees only in Trino's form: no int for a double, no timestamp for a date,
    no decimal of another scale; NaN is NaN; arrays, maps and rows compare as such."""
    assert same(normalize(np.int64(3)), 3) and not same(3.0, 3) and not same(True, 1)
    assert not same(datetime(2001, 8, 22), date(2001, 8, 22))
    assert same(Decimal("3.0"), Decimal("3.0")) and not same(Decimal("3.00"), Decimal("3.0"))
    assert same(float("nan"), typed("NaN", parse_type("double")))
    assert normalize(np.array([1, 2])) == [1, 2]
    assert normalize([("a", 1)], {"a": 1}) == {"a": 1}  # a map given as pairs
    assert normalize({"x": 1, "y": "a"}, (1, "a")) == (1, "a")  # a row given as a struct
    assert normalize(pd.Timestamp("2020-01-01 10:00", tz="Asia/Tokyo")) == Zoned(
        datetime(2020, 1, 1, 10), "Asia/Tokyo"
    )
    row_type = parse_type("row(v1 bigint, v2 varchar, v3 boolean)")
    assert typed([1, "a", True], row_type) == (1, "a", True)


def test_nulls_are_read_from_the_result_csv():
    """An empty unquoted field is NULL; a quoted one (even "nan" or "") is a value."""
    text = '"x","y"\n"1",\n,"a\nb"\n"nan",""\n'
    assert csv_null_mask(text) == [[False, True], [True, False], [False, False]]
