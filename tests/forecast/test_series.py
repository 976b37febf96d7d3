"""Series from daily_sales, the hierarchy of levels with its summing matrix, and frequencies."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers.forecast import (
    Frequency,
    hierarchy_from_daily_sales,
    season_length_of,
    series_from_daily_sales,
)
from helpers.forecast.series import promotion_shares
from helpers.generate import promotion_calendar
from tests.forecast.support import PARAMS, future_dates

DAYS_PER_YEAR = 365.25


@pytest.fixture
def hand_made_daily() -> pd.DataFrame:
    """Two products in two categories over 2026-03-01..05, with gaps."""
    return pd.DataFrame(
        {
            "ds": pd.to_datetime(["2026-03-01", "2026-03-03", "2026-03-05", "2026-03-03"]),
            "product_id": ["p-1", "p-1", "p-1", "p-2"],
            "product_name": ["Lamp", "Lamp", "Lamp", "Mug"],
            "category": ["home", "home", "home", "kitchen"],
            "units": [2, 3, 4, 7],
            "revenue": [20.0, 30.0, 40.0, 14.0],
            "orders": [1, 2, 1, 3],
        }
    )


@pytest.mark.parametrize(
    ("alias", "season_length", "per_year", "daily"),
    [
        ("D", 7, DAYS_PER_YEAR, True),
        ("B", 5, 261, True),
        ("W", 52, DAYS_PER_YEAR / 7, False),
        ("W-SUN", 52, DAYS_PER_YEAR / 7, False),
        ("W-MON", 52, DAYS_PER_YEAR / 7, False),
        ("MS", 12, 12, False),
        ("ME", 12, 12, False),
        ("M", 12, 12, False),  # deprecated by pandas 2.2 for "ME", still accepted
        ("QS", 4, 4, False),
        ("QE-DEC", 4, 4, False),
        ("Q", 4, 4, False),  # deprecated for "QE", still accepted
    ],
)
def test_frequency_of_every_alias_of_daily_weekly_monthly_quarterly_data(
    alias, season_length, per_year, daily
):
    """Each accepted alias gets the season length and points per year of its data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        frequency = Frequency.of(alias)
        assert season_length_of(alias) == season_length

    assert frequency.alias == alias
    assert frequency.season_length == season_length
    assert frequency.per_year == pytest.approx(per_year)
    assert frequency.daily is daily


@pytest.mark.parametrize("alias", ["h", "2D", "2W", "YS", "A", "min", "not-a-frequency"])
def test_frequency_refuses_other_aliases_naming_them(alias):
    """Hourly, multiples of a period, yearly and unknown aliases are refused with the alias."""
    with (
        warnings.catch_warnings(),
        pytest.raises(ValueError, match=rf"freq '{alias}' is not one frequency of daily") as error,
    ):
        warnings.simplefilter("ignore", FutureWarning)
        Frequency.of(alias)
    assert "'W-SUN', 'MS', 'ME', 'QS'" in str(error.value)


@pytest.mark.parametrize(
    ("alias", "last"),
    [
        ("D", "2026-02-27"),
        ("B", "2026-02-26"),  # a Thursday: Friday, then the next week
        ("W-SUN", "2026-03-01"),
        ("MS", "2025-11-01"),
        ("ME", "2025-11-30"),
        ("QS", "2025-10-01"),
        ("QE-DEC", "2025-12-31"),
    ],
)
def test_future_dates_are_the_next_periods(alias, last):
    """``future`` gives the ``horizon`` dates after the last one, on the frequency's anchor."""
    dates = Frequency.of(alias).future(pd.Timestamp(last), 6)

    assert list(dates) == future_dates(pd.Timestamp(last), 6, alias)
    if alias == "B":
        assert (dates.dayofweek < 5).all() and dates[1] == pd.Timestamp("2026-03-02")


def test_gaps_become_zero_rows(hand_made_daily):
    """Days without sales are rows of 0, and every series spans the whole window."""
    series = series_from_daily_sales(hand_made_daily, level="product", measure="units")

    assert list(series.columns) == ["unique_id", "ds", "y"]
    assert len(series) == 2 * 5
    p1 = series[series.unique_id == "p-1"].set_index("ds")["y"]
    p2 = series[series.unique_id == "p-2"].set_index("ds")["y"]
    assert p1.tolist() == [2.0, 0.0, 3.0, 0.0, 4.0]
    assert p2.tolist() == [0.0, 0.0, 7.0, 0.0, 0.0]
    assert p1.index.equals(pd.date_range("2026-03-01", "2026-03-05", name="ds"))
    totals = series_from_daily_sales(hand_made_daily, level="total", measure="revenue")
    assert totals.y.tolist() == [20.0, 0.0, 44.0, 0.0, 40.0]


def test_timestamps_with_time_zones_and_times_become_days(hand_made_daily):
    """ds as UTC timestamps within the day is the same series as plain dates."""
    stamped = hand_made_daily.assign(
        ds=hand_made_daily["ds"].dt.tz_localize("UTC") + pd.Timedelta(hours=13)
    )

    assert series_from_daily_sales(stamped).equals(series_from_daily_sales(hand_made_daily))


@pytest.mark.parametrize("level", ["total", "category", "product"])
@pytest.mark.parametrize("measure", ["units", "revenue", "orders"])
def test_aggregation_matches_pandas(daily_sales, level, measure):
    """Each level's series are the pandas sums of the measure per id and day, 0 elsewhere."""
    series = series_from_daily_sales(daily_sales, level=level, measure=measure)

    key = {"total": None, "category": "category", "product": "product_id"}[level]
    grouped = daily_sales.assign(unique_id="total" if key is None else daily_sales[key])
    expected = grouped.groupby(["unique_id", "ds"])[measure].sum()
    observed = series.set_index(["unique_id", "ds"])["y"]
    assert observed.loc[expected.index].to_numpy() == pytest.approx(expected.to_numpy())
    assert observed.drop(expected.index).eq(0).all()
    days = (daily_sales["ds"].max() - daily_sales["ds"].min()).days + 1
    assert len(series) == days * grouped["unique_id"].nunique()
    assert series["y"].sum() == pytest.approx(daily_sales[measure].sum())


@pytest.mark.parametrize("build", [series_from_daily_sales, hierarchy_from_daily_sales])
def test_unknown_level_or_measure_is_refused(hand_made_daily, build):
    """A level or measure outside the known ones is refused, naming the bad value."""
    with pytest.raises(ValueError, match=r"level must be one of .*got 'channel'"):
        build(hand_made_daily, level="channel")
    with pytest.raises(ValueError, match=r"measure must be one of .*got 'profit'"):
        build(hand_made_daily, measure="profit")


def test_hierarchy_sums_products_into_categories_and_the_total(daily_sales):
    """Levels top first; the summing matrix says which products make each series, and the
    series of every level are the summing matrix times the product series, day by day."""
    tree = hierarchy_from_daily_sales(daily_sales, level="product", measure="units")

    categories = sorted(daily_sales["category"].unique())
    products = sorted(daily_sales["product_id"].unique())
    assert tree.levels == {"total": ["total"], "category": categories, "product": products}
    assert list(tree.summing.index) == ["total", *categories, *products]
    assert list(tree.summing.columns) == products
    category_of = daily_sales.drop_duplicates("product_id").set_index("product_id")["category"]
    for product in products:
        column = tree.summing[product]
        assert column["total"] == 1 and column[product] == 1
        assert {c for c in categories if column[c] == 1} == {category_of[product]}
        assert column.sum() == 3  # total, its category, itself
    assert tree.level_of == {
        "total": "total",
        **dict.fromkeys(categories, "category"),
        **dict.fromkeys(products, "product"),
    }

    wide = tree.series.pivot(index="unique_id", columns="ds", values="y")
    bottom = wide.loc[products].to_numpy()
    np.testing.assert_allclose(tree.summing.to_numpy() @ bottom, wide.loc[tree.summing.index])
    levels = tree.series.groupby("unique_id")["level"].unique().map(list).to_dict()
    assert levels == {uid: [level] for uid, level in tree.level_of.items()}
    assert set(tree.series.columns) == {"unique_id", "ds", "y", "level"}


def test_hierarchy_stops_at_the_level_asked(daily_sales):
    """Down to categories there are no product rows; the total alone is a 1x1 matrix."""
    by_category = hierarchy_from_daily_sales(daily_sales, level="category", measure="revenue")
    total = hierarchy_from_daily_sales(daily_sales, level="total")

    assert by_category.levels == {
        "total": ["total"],
        "category": sorted(daily_sales["category"].unique()),
    }
    assert by_category.summing.to_numpy().tolist() == [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    assert set(by_category.series["level"]) == {"total", "category"}
    assert total.summing.to_numpy().tolist() == [[1.0]]
    assert total.series["y"].sum() == pytest.approx(daily_sales["units"].sum())


def test_hierarchy_refuses_a_name_at_two_levels(hand_made_daily):
    """A category named like a product would make ids ambiguous: refused, naming it."""
    clash = hand_made_daily.assign(category=["p-2", "p-2", "p-2", "kitchen"])

    with pytest.raises(ValueError, match="'p-2' names a category and a product"):
        hierarchy_from_daily_sales(clash)
    hierarchy_from_daily_sales(hand_made_daily)  # distinct names are fine


def test_promotion_shares_per_product_category_and_total():
    """0/1 per product, the share of a category's products promoted, the share of all; plan
    rows are days (any time of day, any zone), repeated rows count once, and products that
    did not sell are left out."""
    daily = pd.DataFrame(
        {"product_id": ["p-1", "p-2", "p-3"], "category": ["home", "home", "kitchen"]}
    )
    calendar = pd.DataFrame(
        {
            "ds": pd.to_datetime(
                [
                    "2026-03-02 09:00",
                    "2026-03-03 23:00",
                    "2026-03-03 01:00",
                    "2026-03-02 10:00",
                    "2026-03-04 00:00",
                    "2026-03-02 00:00",
                ]
            ).tz_localize("UTC"),
            "product_id": ["p-1", "p-1", "p-1", "p-2", "p-3", "p-9"],
        }
    )
    days = pd.date_range("2026-03-01", periods=4)

    shares = promotion_shares(daily, calendar, days)

    assert list(shares.index) == list(days)
    assert list(shares.columns) == ["p-1", "p-2", "p-3", "home", "kitchen", "total"]
    assert shares["p-1"].tolist() == [0, 1, 1, 0]
    assert shares["p-2"].tolist() == [0, 1, 0, 0]
    assert shares["p-3"].tolist() == [0, 0, 0, 1]
    assert shares["home"].tolist() == [0, 1, 0.5, 0]
    assert shares["kitchen"].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(shares["total"], [0, 2 / 3, 1 / 3, 1 / 3])


def test_promotion_shares_of_the_generated_plan(daily_sales):
    """On the generator's promotion plan, history and the week ahead: the shares are the
    plan's promoted pairs counted with pandas."""
    days = pd.date_range(daily_sales.ds.min(), daily_sales.ds.max() + pd.Timedelta(days=7))
    calendar = promotion_calendar(PARAMS, days[0].date(), days[-1].date() + pd.Timedelta(days=1))
    assert len(calendar) > 0

    shares = promotion_shares(daily_sales, calendar, days)

    products = sorted(daily_sales.product_id.unique())
    flags = pd.crosstab(calendar.ds, calendar.product_id).clip(upper=1)
    flags = flags.reindex(index=days, columns=products, fill_value=0)
    np.testing.assert_array_equal(shares[products].to_numpy(), flags.to_numpy())
    category_of = daily_sales.drop_duplicates("product_id").set_index("product_id").category
    for category in category_of.unique():
        members = list(category_of[category_of == category].index)
        np.testing.assert_allclose(shares[category], flags[members].mean(axis=1))
    np.testing.assert_allclose(shares["total"], flags.mean(axis=1))
