"""Query results as people read them: formats by column kind, and periods still running."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers import plots, tables, workbench

NEWEST = pd.Timestamp("2026-12-07 10:20:02")


def weeks() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "week": pd.to_datetime(["2026-11-23", "2026-11-30", "2026-12-07"]),
            "revenue": [574726.37, 508851.371, 141068.92],
            "previous_revenue": [469829.02, 574726.37, 508851.37],
            "growth": [0.2232669, -0.11462, -0.72277],
        }
    )


@pytest.mark.parametrize(
    ("newest", "running"),
    [
        ("2026-12-07 00:00:00", True),  # the first instant of the day belongs to it
        ("2026-12-07 23:59:59.999", True),
        ("2026-12-08 00:00:00", False),  # the day is over
        ("2026-12-06 23:59:59", False),  # not begun: nothing of it is in the lake
    ],
)
def test_a_day_is_partial_from_its_first_instant_until_it_is_over(newest, running):
    frame = pd.DataFrame({"ds": pd.to_datetime(["2026-12-06", "2026-12-07"])})

    marked = tables.partial(frame, "ds", "day", pd.Timestamp(newest))

    assert marked.tolist() == [newest.startswith("2026-12-06"), running]


@pytest.mark.parametrize(("newest", "running"), [("2026-12-13 23:59", True), ("2026-12-14", False)])
def test_a_week_is_partial_for_seven_days(newest, running):
    assert tables.partial(weeks(), "week", "week", pd.Timestamp(newest)).iloc[-1] == running


def test_an_unknown_period_is_refused_by_name():
    with pytest.raises(ValueError, match="period must be one of \\['day', 'week'\\], got 'month'"):
        tables.partial(weeks(), "week", "month", NEWEST)


def test_money_counts_shares_and_changes_read_as_such_and_the_running_week_is_noted():
    frame = weeks().assign(orders=[12000, 13500, 2938.0], revenue_share=[0.0128, 0.5, 0.01])

    styler = tables.styled(frame, NEWEST)
    text = styler.to_string(delimiter="|").splitlines()

    assert text[0].split("|") == [
        "week",
        "revenue",
        "previous_revenue",
        "growth",
        "orders",
        "revenue_share",
        "note",
    ]
    assert text[1].split("|") == [
        "2026-11-23",
        "574,726.37",
        "469,829.02",
        "+22.3%",
        "12,000",
        "1.3%",
        "",
    ]
    assert text[3].split("|")[3] == "-72.3%"
    assert text[3].split("|")[-1] == "partial: to 2026-12-07 10:20 UTC"
    assert [line.split("|")[-1] for line in text[1:3]] == ["", ""]
    css = styler.to_html().split("</style>")[0]  # shading: one rule naming the cells it covers
    assert "#fff4d6" in css and "_row2_col0" in css
    assert "_row0_" not in css and "_row1_" not in css
    pd.testing.assert_frame_equal(styler.data.drop(columns="note"), frame)  # values untouched


def test_without_the_lake_newest_change_nothing_is_marked():
    styler = tables.styled(weeks(), None)

    assert "note" not in styler.data
    assert "#fff4d6" not in styler.to_html()


def test_as_of_is_the_newest_change_or_none_for_an_empty_lake():
    freshness = pd.DataFrame(
        {"latest_event": [pd.Timestamp("2026-12-06 23:00"), NEWEST], "events": [3, 4]}
    )

    assert tables.as_of(freshness) == NEWEST
    assert tables.as_of(freshness.iloc[:0]) is None


def test_query_results_table_marks_by_the_lake_newest_change_and_keeps_the_last_rows():
    freshness = pd.DataFrame({"latest_event": [NEWEST], "events": [3216]})
    results = workbench.QueryResults(week_over_week=weeks(), data_freshness=freshness)

    styler = results.table("week_over_week", last=2)

    assert results.as_of() == NEWEST
    assert styler.data["week"].tolist() == list(weeks()["week"].iloc[1:])
    assert styler.data["note"].tolist() == ["", "partial: to 2026-12-07 10:20 UTC"]
    assert workbench.QueryResults(week_over_week=weeks()).as_of() is None


def test_the_running_day_is_drawn_apart_and_left_out_of_the_mean():
    days = pd.date_range("2026-12-01", "2026-12-07")
    frame = pd.DataFrame({"ds": days, "revenue": [100.0] * 6 + [10.0]})

    axes = plots.daily_revenue(frame, NEWEST).axes[0]

    lines = {line.get_label(): line for line in axes.get_lines()}
    assert len(lines["revenue"].get_xdata()) == 6
    assert list(lines["7-day mean"].get_ydata()) == [100.0] * 6
    assert list(lines["partial day (to 10:20 UTC)"].get_ydata()) == [10.0]
    assert len(plots.daily_revenue(frame).axes[0].get_lines()[0].get_xdata()) == 7


def test_recorded_figures_print_rounded_and_keep_every_digit(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda bundle, raw: shown.append(bundle))

    workbench.record(revenue=36050391.28999998, share=0.000123456, orders=7)

    kept = shown[0][workbench.FIGURES_MIME]
    assert kept == {"revenue": 36050391.28999998, "share": 0.000123456, "orders": 7}
    assert json.loads(shown[0]["text/plain"]) == {
        "revenue": 36050391.29,
        "share": 0.0001235,
        "orders": 7,
    }
