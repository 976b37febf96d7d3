"""The day's expectations: a run's rows and their invariants, the profiles learned by SQL from
the lake, the shrinkage of thin series toward their parent, and the derived measures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.forecast import run_forecast
from helpers.forecast.expectations import (
    EXPECTATIONS_TABLE,
    HOURS,
    PRIOR_UNITS,
    TTL_DAYS,
    cumulative_profile,
    day_expectations,
    hourly_shares,
    series_id,
)
from helpers.generate import SalesParams, backfill
from helpers.realtime import EXPECTATION_FIELDS, SqliteStore
from tests.forecast.support import FAST

PARAMS = SalesParams(orders_per_day=120, n_products=5, n_categories=2, n_customers=100, seed=11)
INTERVAL_COLUMNS = ["units_lo_90", "units_lo_80", "units", "units_hi_80", "units_hi_90"]


@pytest.fixture(scope="module")
def run_and_platform(tmp_path_factory):
    """A product-level run over 70 days of a small shop, with its platform still open."""
    root = tmp_path_factory.mktemp("expectations") / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.apply(
            backfill(70, end="2026-03-01", params=PARAMS), progress=False, batch_rows=9000
        )
        platform.flush()
        run = run_forecast(
            platform, level="product", horizon=7, folds=1, n_jobs=1, progress=False, models=FAST
        )
        yield run, platform


def test_a_run_publishes_one_row_per_series_and_day_with_the_contracts_fields(run_and_platform):
    run, platform = run_and_platform
    rows = run.expectations
    assert list(rows.columns) == list(EXPECTATION_FIELDS)
    products = [f"product#p-{n:04d}" for n in range(1, PARAMS.n_products + 1)]
    categories = sorted(
        f"category#{c}" for c in run.forecasts.query("level == 'category'").unique_id.unique()
    )
    assert sorted(rows.series_id.unique()) == sorted(["total", *categories, *products])
    assert len(categories) == 2 and len(rows) == (1 + 2 + PARAMS.n_products) * 7
    assert rows.day.min() == "2026-03-01" and rows.day.max() == "2026-03-07"
    assert set(rows.run_id) == {run.run_id}
    midnight = pd.to_datetime(rows.day).astype("int64") // 10**9
    assert (rows.expires_at == midnight + TTL_DAYS * 86400).all()
    assert rows.set_index("series_id").name.to_dict()["total"] == "total"
    named = rows[rows.level == "product"].drop_duplicates("series_id")
    catalog = platform.query("SELECT DISTINCT product_id, product_name FROM daily_sales")
    assert dict(zip(named.series_id.str.removeprefix("product#"), named.name, strict=True)) == dict(
        zip(catalog.product_id, catalog.product_name, strict=True)
    )
    # the same rows in the lake (SQL) and in the real-time store
    stored = platform.query(
        f"SELECT * FROM {EXPECTATIONS_TABLE} WHERE run_id = ?", params=[run.run_id]
    )
    assert len(stored) == len(rows)
    day = SqliteStore(platform.settings.root / "realtime.sqlite").expectations("2026-03-02")
    assert sorted(day) == sorted(rows.series_id.unique())
    assert day["total"]["units"] == pytest.approx(
        rows.query("series_id == 'total' and day == '2026-03-02'").units.item()
    )
    assert run.locations.keys() >= {EXPECTATIONS_TABLE, "forecast_runs"}


def test_intervals_are_nested_and_never_below_zero(run_and_platform):
    rows = run_and_platform[0].expectations
    values = rows[INTERVAL_COLUMNS].to_numpy()
    assert (values >= 0).all()
    assert (np.diff(values, axis=1) >= -1e-9).all()
    assert (rows.revenue_lo_90 <= rows.revenue).all() and (rows.revenue <= rows.revenue_hi_90).all()
    assert (rows.revenue_lo_90 >= 0).all()


def test_profiles_rise_to_one_over_24_hours(run_and_platform):
    for text in run_and_platform[0].expectations.profile:
        profile = json.loads(text)
        assert len(profile) == HOURS and profile[-1] == 1.0
        assert (np.diff(profile) >= 0).all() and profile[0] >= 0


def test_products_add_up_to_their_category_and_the_total(run_and_platform):
    rows = run_and_platform[0].expectations
    by_level = rows.pivot_table(index="day", columns="level", values="units", aggfunc="sum")
    np.testing.assert_allclose(by_level["product"], by_level["total"], rtol=1e-6)
    np.testing.assert_allclose(by_level["category"], by_level["total"], rtol=1e-6)


def test_revenue_is_units_at_each_series_recent_revenue_per_unit(run_and_platform):
    run, platform = run_and_platform
    recent = platform.query(
        "SELECT product_id, sum(revenue) / sum(units) AS price FROM daily_sales "
        "WHERE ds >= DATE '2026-02-01' AND ds < DATE '2026-03-01' GROUP BY product_id"
    )
    rows = run.expectations[run.expectations.level == "product"]
    price = recent.set_index("product_id").price
    expected = rows.units * rows.series_id.str.removeprefix("product#").map(price).to_numpy()
    np.testing.assert_allclose(rows.revenue, expected, rtol=1e-9)
    np.testing.assert_allclose(
        rows.revenue_hi_90 / rows.revenue, rows.units_hi_90 / rows.units, rtol=1e-9
    )


def _orders(hours: dict[tuple[str, str, bool], list[int]], weeks: int = 4) -> pd.DataFrame:
    """Orders of one unit at the given UTC hours, each (product, category, weekend) every day of
    ``weeks`` weeks from Monday 2026-01-05; weekdays and weekend days as flagged."""
    rows = []
    days = pd.date_range("2026-01-05", periods=7 * weeks, freq="D", tz="UTC")
    for (product, category, weekend), hour_list in hours.items():
        for day in days[(days.dayofweek >= 5) == weekend]:
            for hour in hour_list:
                rows.append((product, category, day + pd.Timedelta(hours=hour, minutes=30)))
    frame = pd.DataFrame(rows, columns=["product_id", "category", "order_ts"])
    return frame.assign(
        order_id=[f"o-{n:06d}" for n in range(len(frame))],
        customer_id="c-1",
        product_name=frame.product_id + " name",
        channel="web",
        quantity=1,
        unit_price=10.0,
    )


def test_the_profile_learned_from_the_lake_recovers_a_known_hourly_pattern(platform):
    weekday = [9] * 30 + [10] * 10  # 40 units a weekday: 75 % at 09:00, 25 % at 10:00
    weekend = [20] * 40  # 40 units a weekend day, all at 20:00
    platform.orders.put(
        _orders({("p-busy", "home", False): weekday, ("p-busy", "home", True): weekend})
    )
    platform.flush()
    platform.crawl()
    hourly = platform.named_query("hourly_profile", params=["2026-01-05", "2026-02-02"])
    assert hourly.units.sum() == 20 * 40 + 8 * 40
    # the first day is in the window, the last is not: each edge, from both sides
    for window, units in (
        (["2026-01-06", "2026-02-02"], 19 * 40 + 8 * 40),  # Monday 5 January left out
        (["2026-01-05", "2026-02-01"], 20 * 40 + 7 * 40),  # Sunday 1 February left out
    ):
        assert platform.named_query("hourly_profile", params=window).units.sum() == units
    products = pd.DataFrame({"product_id": ["p-busy"], "category": ["home"]})
    shares = hourly_shares(hourly, products)
    for uid in ("total", "category#home", "product#p-busy"):
        on_weekdays, on_weekends = shares.loc[(uid, False)], shares.loc[(uid, True)]
        assert on_weekdays.idxmax() == 9 and on_weekends.idxmax() == 20
    busy = shares.loc[("product#p-busy", False)]
    assert busy[9] / busy[10] == pytest.approx(3, rel=0.15)  # shrunk a little, not reshaped
    assert busy[9] + busy[10] > 0.85
    # a window that holds no orders gives flat profiles
    empty = platform.named_query("hourly_profile", params=["2025-01-01", "2025-02-01"])
    flat = hourly_shares(empty, products)
    np.testing.assert_allclose(flat.to_numpy(), 1 / HOURS)


def _hourly(rows: list[tuple[str, str, bool, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["product_id", "category", "weekend", "hour", "units"])


def test_a_thin_series_keeps_its_parents_shape_and_a_thick_one_its_own():
    hourly = _hourly(
        [
            ("p-big", "home", False, 12, 50_000),
            ("p-thin", "home", False, 3, 5),  # 5 units, all at 03:00
            ("p-alone", "toys", False, 18, 4),  # a category with only 4 units
        ]
    )
    products = pd.DataFrame(
        {
            "product_id": ["p-big", "p-thin", "p-alone", "p-none"],
            "category": ["home"] * 2 + ["toys"] * 2,
        }
    )
    shares = hourly_shares(hourly, products)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares.loc[("product#p-big", False), 12] > 0.98
    thin = shares.loc[("product#p-thin", False)]
    home = shares.loc[("category#home", False)]
    assert thin.idxmax() == 12 and thin[3] == pytest.approx(5 / (5 + PRIOR_UNITS), abs=0.01)
    toys = shares.loc[("category#toys", False)]
    assert toys.idxmax() == 12  # the total's shape: the category's 4 units barely count
    assert np.abs(shares.loc[("product#p-none", False)] - toys).max() < 1e-12  # nothing sold
    # weekends had no sales at all: every weekend profile is the total's all-days one
    assert shares.loc[("total", True)].idxmax() == 12
    assert np.abs(home - shares.loc[("total", False)]).max() < 0.01


def test_a_stronger_prior_pulls_harder_and_a_prior_of_zero_is_refused():
    hourly = _hourly([("p-1", "home", False, 6, 100), ("p-2", "home", False, 18, 100_000)])
    products = hourly[["product_id", "category"]]
    weak = hourly_shares(hourly, products, prior_units=10).loc[("product#p-1", False), 6]
    strong = hourly_shares(hourly, products, prior_units=10_000).loc[("product#p-1", False), 6]
    assert weak > 0.9 > 0.05 > strong
    with pytest.raises(ValueError, match="prior_units must be above 0"):
        hourly_shares(hourly, products, prior_units=0)


def test_cumulative_profile_ends_at_one_and_refuses_a_bad_shape():
    profile = cumulative_profile(np.r_[np.zeros(8), np.full(16, 3.0)])
    assert profile[7] == 0.0 and profile[8] == pytest.approx(1 / 16, abs=1e-6)
    assert profile[-1] == 1.0
    with pytest.raises(ValueError, match="24 non-negative shares"):
        cumulative_profile(np.ones(23))
    with pytest.raises(ValueError, match="not all 0"):
        cumulative_profile(np.zeros(24))


def test_series_id_prefixes_the_level_and_refuses_an_unknown_one():
    assert series_id("category", "toys") == "category#toys"
    with pytest.raises(ValueError, match="level must be one of"):
        series_id("region", "north")


DAILY = pd.DataFrame(
    {
        "ds": pd.to_datetime(["2026-02-27", "2026-02-28", "2026-02-28", "2025-12-01"]),
        "product_id": ["p-1", "p-1", "p-2", "p-3"],
        "product_name": ["Lamp", "Lamp", "Mug", "Old Vase"],
        "category": ["home", "home", "home", "home"],
        "units": [4, 6, 5, 3],
        "revenue": [40.0, 60.0, 10.0, 99.0],
        "orders": [2, 3, 5, 1],
    }
)


def _forecasts(interval_80: tuple[float, float], **main) -> pd.DataFrame:
    """One day's forecast of the total, a category and three products."""
    ids = [("total", "total"), ("category", "home"), ("product", "p-1"), ("product", "p-2"),
           ("product", "p-3")]  # fmt: skip
    frame = pd.DataFrame(ids, columns=["level", "unique_id"]).assign(
        ds=pd.Timestamp("2026-03-02"), yhat=10.0, yhat_lower_80=interval_80[0],
        yhat_upper_80=interval_80[1], yhat_lower=4.0, yhat_upper=16.0,
    )  # fmt: skip
    return frame.assign(**main)


def _shares(daily: pd.DataFrame = DAILY) -> pd.DataFrame:
    return hourly_shares(_hourly([]), daily[["product_id", "category"]])


def test_a_run_of_revenue_derives_units_and_a_silent_product_takes_its_categorys_ratio():
    rows = day_expectations(_forecasts((6.0, 14.0)), DAILY, _shares(), "r1", measure="revenue")
    rows = rows.set_index("series_id")
    assert rows.loc["product#p-1", "revenue"] == 10.0
    assert rows.loc["product#p-1", "units"] == pytest.approx(10 * 10 / 100)  # 10 units per 100
    assert rows.loc["product#p-2", "units"] == pytest.approx(10 * 5 / 10)
    # p-3 sold nothing in the last 28 days: the category's recent 15 units per 110
    assert rows.loc["product#p-3", "units"] == pytest.approx(10 * 15 / 110)
    assert rows.loc["product#p-3", "name"] == "Old Vase"
    assert rows.loc["category#home", "units_hi_90"] == pytest.approx(16 * 15 / 110)
    assert rows.loc["total", "profile"] == json.dumps(cumulative_profile(np.ones(24)))


def test_a_run_of_orders_derives_units_and_revenue_per_order():
    rows = day_expectations(_forecasts((6.0, 14.0)), DAILY, _shares(), "r1", measure="orders")
    p1 = rows.set_index("series_id").loc["product#p-1"]
    assert p1.units == pytest.approx(10 * 10 / 5) and p1.revenue == pytest.approx(10 * 100 / 5)


def test_the_90_interval_is_the_main_one_at_90_and_widened_from_80_otherwise():
    at_90 = day_expectations(_forecasts((6.0, 14.0)), DAILY, _shares(), "r1", interval=0.9)
    assert (at_90.units_lo_90 == 4.0).all() and (at_90.units_hi_90 == 16.0).all()
    at_95 = day_expectations(_forecasts((6.0, 14.0)), DAILY, _shares(), "r1", interval=0.95)
    assert at_95.units_lo_90.iloc[0] == pytest.approx(10 - 4 * 1.6449 / 1.2816, rel=1e-4)
    assert at_95.units_hi_90.iloc[0] == pytest.approx(10 + 4 * 1.6449 / 1.2816, rel=1e-4)


def test_negative_forecasts_and_crossed_intervals_come_out_nested_at_zero_or_more():
    forecasts = _forecasts((-3.0, 2.0), yhat=-1.0, yhat_lower=-5.0, yhat_upper=1.0)
    rows = day_expectations(forecasts, DAILY, _shares(), "r1")
    assert (rows.units == 0).all() and (rows.units_lo_90 == 0).all() and (rows.revenue == 0).all()
    assert (rows.units_hi_80 == 2.0).all() and (rows.units_hi_90 == 2.0).all()  # never inside 80


def test_a_series_without_daily_sales_or_an_unknown_measure_is_refused():
    forecasts = _forecasts((6.0, 14.0))
    with pytest.raises(
        ValueError, match=r"no daily sales behind the forecast series \['product#p-3'\]"
    ):
        day_expectations(forecasts, DAILY[DAILY.product_id != "p-3"], _shares(), "r1")
    with pytest.raises(ValueError, match="measure must be one of"):
        day_expectations(forecasts, DAILY, _shares(), "r1", measure="profit")


def test_revenue_per_unit_comes_from_the_last_28_days_and_not_the_29th():
    daily = pd.DataFrame(
        {
            "ds": pd.to_datetime(["2026-02-28", "2026-02-01", "2026-01-31"]),
            "product_id": ["p-1", "p-2", "p-3"],
            "product_name": ["Lamp", "Mug", "Vase"],
            "category": ["home", "home", "home"],
            "units": [1, 1, 1],
            "revenue": [10.0, 20.0, 90.0],
            "orders": [1, 1, 1],
        }
    )
    rows = day_expectations(_forecasts((6.0, 14.0)), daily, _shares(daily), "r1")
    rows = rows.set_index("series_id")
    assert rows.loc["product#p-2", "revenue"] == pytest.approx(10 * 20)  # 2026-02-01: day 28
    # 2026-01-31 is the 29th day back: p-3 takes its category's 30.0 per 2 units
    assert rows.loc["product#p-3", "revenue"] == pytest.approx(10 * 15)
