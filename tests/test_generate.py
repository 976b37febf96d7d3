"""Tests of the seeded sales generator: reproducibility, schema, changes, demand shape, pacing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import holidays
import numpy as np
import pandas as pd
import pytest

from helpers.generate import (
    CATEGORIES,
    Change,
    SalesParams,
    Shock,
    backfill,
    day_so_far,
    expected_daily_units,
    expected_paced_orders,
    live,
    live_paced,
    product_catalog,
)
from helpers.schema import ORDER_FIELDS, validate_orders

SMALL = SalesParams(orders_per_day=300, n_customers=500)
END = date(2026, 7, 1)
HISTORY_DAYS = 730


@dataclass
class Replay:
    """What a table holds after applying changes in order, checked on the way."""

    puts: pd.DataFrame
    updates: pd.DataFrame
    deletes: pd.DataFrame
    current: pd.DataFrame
    update_lag_days: pd.Series


def replay(changes: list[Change]) -> Replay:
    """Apply changes like the table would; fail on any change a table would refuse."""
    put_frames, update_frames, delete_frames, lags = [], [], [], []
    order_day: dict[str, int] = {}
    deleted: set[str] = set()
    today = 0
    for change in changes:
        ids = change.frame.order_id.tolist()
        if change.action == "put":
            assert list(change.frame.columns) == list(ORDER_FIELDS)
            assert not order_day.keys() & ids, "an order was put twice"
            days = change.frame.order_ts.dt.tz_localize(None).to_numpy().astype("datetime64[D]")
            order_day.update(zip(ids, days.astype(np.int64).tolist(), strict=True))
            today = int(days.max().astype(np.int64))
            put_frames.append(change.frame)
            continue
        assert set(ids) <= order_day.keys(), f"{change.action} of an order never put"
        assert not deleted & set(ids), f"{change.action} of a cancelled order"
        if change.action == "update":
            assert list(change.frame.columns) == ["order_id", "quantity"]
            lags.extend(today - order_day[order_id] for order_id in ids)
            update_frames.append(change.frame)
        else:
            assert list(change.frame.columns) == ["order_id"]
            assert len(set(ids)) == len(ids)
            deleted.update(ids)
            delete_frames.append(change.frame)
    puts = pd.concat(put_frames, ignore_index=True)
    updates = pd.concat(update_frames, ignore_index=True)
    deletes = pd.concat(delete_frames, ignore_index=True)
    current = puts.set_index("order_id")
    last_quantity = updates.groupby("order_id").quantity.last()
    current.loc[last_quantity.index, "quantity"] = last_quantity
    current = current.drop(index=deletes.order_id)
    return Replay(puts, updates, deletes, current, pd.Series(lags, dtype="int64"))


@pytest.fixture(scope="module")
def history() -> Replay:
    """Two years of a small shop, ending on a fixed day."""
    return replay(list(backfill(HISTORY_DAYS, end=END, params=SMALL)))


def daily_orders(current: pd.DataFrame) -> pd.Series:
    """Realised orders per day, indexed by midnight like the truth's ``ds``."""
    return current.groupby(current.order_ts.dt.tz_localize(None).dt.normalize()).size()


def daily_truth(params: SalesParams, column: str = "expected_orders") -> pd.Series:
    truth = expected_daily_units(params, END - timedelta(days=HISTORY_DAYS), END)
    return truth.groupby("ds")[column].sum()


def effect(history: Replay, **without: float | tuple[float, ...]) -> pd.Series:
    """Realised daily orders over the truth with one component switched off: that component."""
    return daily_orders(history.current) / daily_truth(replace(SMALL, **without))


def test_same_seed_gives_the_same_history_and_another_seed_another():
    first = list(backfill(4, end=END, params=SMALL))
    second = list(backfill(4, end=END, params=SMALL))
    other = list(backfill(4, end=END, params=replace(SMALL, seed=SMALL.seed + 1)))
    assert [c.action for c in first] == [c.action for c in second]
    for mine, yours in zip(first, second, strict=True):
        pd.testing.assert_frame_equal(mine.frame, yours.frame)
    first_puts = pd.concat(c.frame for c in first if c.action == "put")
    other_puts = pd.concat(c.frame for c in other if c.action == "put")
    assert not set(first_puts.order_id) & set(other_puts.order_id)
    assert len(first_puts) != len(other_puts) or not first_puts.quantity.equals(other_puts.quantity)


def test_a_days_orders_do_not_depend_on_the_window():
    long = pd.concat(c.frame for c in backfill(5, end=END, params=SMALL) if c.action == "put")
    short = pd.concat(c.frame for c in backfill(2, end=END, params=SMALL) if c.action == "put")
    tail = long[long.order_ts >= pd.Timestamp(END - timedelta(days=2), tz="UTC")]
    pd.testing.assert_frame_equal(tail.reset_index(drop=True), short.reset_index(drop=True))


def test_every_put_row_passes_the_schema():
    changes = list(backfill(3, end=END, params=SMALL))
    puts = pd.concat(c.frame for c in changes if c.action == "put")
    assert puts.order_ts.dtype == "datetime64[ns, UTC]"
    puts = puts.reset_index(drop=True)
    validated = validate_orders(puts)
    assert len(validated) == len(puts) > 0
    assert (validated.order_ts == puts.order_ts).all()
    pd.testing.assert_frame_equal(
        validated.drop(columns="order_ts"), puts.drop(columns="order_ts"), check_dtype=False
    )
    assert (puts.unit_price == puts.unit_price.round(2)).all()
    assert set(puts.channel) == {name for name, _ in SMALL.channel_shares}
    assert puts.order_id.str.fullmatch(r"o-[0-9a-f]{16}").all()


def test_chunks_cap_frame_sizes_without_changing_the_orders():
    whole = list(backfill(3, end=END, params=SMALL))
    chunked = list(backfill(3, end=END, params=SMALL, chunk_orders=100))
    assert max(len(c.frame) for c in chunked) <= 100
    for action in ("put", "update", "delete"):
        mine = pd.concat(c.frame for c in whole if c.action == action)
        yours = pd.concat(c.frame for c in chunked if c.action == action)
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), yours.reset_index(drop=True))


def test_order_ids_are_unique_and_changes_apply_cleanly(history):
    assert history.puts.order_id.is_unique
    assert history.deletes.order_id.is_unique
    assert history.update_lag_days.between(0, SMALL.change_lag_days).all()
    assert history.update_lag_days.nunique() == SMALL.change_lag_days + 1
    assert len(history.current) == len(history.puts) - len(history.deletes)


def test_amendments_change_quantity_and_keep_it_positive(history):
    before = history.puts.set_index("order_id").quantity
    amended = history.updates.drop_duplicates("order_id", keep="first")
    assert (amended.quantity.to_numpy() != before[amended.order_id].to_numpy()).all()
    assert (history.updates.quantity >= 1).all()


@pytest.mark.parametrize(
    ("changes", "share"), [("updates", SMALL.amend_share), ("deletes", SMALL.cancel_share)]
)
def test_amend_and_cancel_shares_match_the_params(history, changes, share):
    orders = len(history.puts)
    spread = 5 * np.sqrt(share * (1 - share) / orders)
    assert abs(len(getattr(history, changes)) / orders - share) < spread


def test_weekly_profile_shows_in_the_orders(history):
    ratio = effect(history, weekly_profile=(1.0,) * 7)
    by_weekday = ratio.groupby(ratio.index.dayofweek).mean()
    profile = np.array(SMALL.weekly_profile) / np.mean(SMALL.weekly_profile)
    np.testing.assert_allclose(by_weekday.to_numpy(), profile, atol=0.05)
    weekend = ratio.index.dayofweek >= 5
    realised = daily_orders(history.current)
    assert realised[weekend].mean() / realised[~weekend].mean() > 1.1


def test_yearly_wave_peaks_where_the_params_say(history):
    ratio = effect(history, yearly_amplitude=0.0)
    wave = np.cos(2 * np.pi * (ratio.index.dayofyear - SMALL.yearly_peak_day) / 365.25)
    amplitude = np.sum((ratio.to_numpy() - 1) * wave) / np.sum(wave**2)
    assert amplitude == pytest.approx(SMALL.yearly_amplitude, abs=0.03)


def test_holidays_and_the_days_before_lift_orders(history):
    ratio = effect(history, holiday_lift=1.0, holiday_lead_lift=1.0)
    years = range(ratio.index.year.min(), ratio.index.year.max() + 2)
    public = pd.DatetimeIndex(sorted(holidays.country_holidays(SMALL.holiday_country, years=years)))
    on_holiday = ratio.index.isin(public)
    ahead = np.zeros(len(ratio), dtype=bool)
    for days in range(1, SMALL.holiday_lead_days + 1):
        ahead |= (ratio.index + pd.Timedelta(days=days)).isin(public)
    ahead &= ~on_holiday
    assert on_holiday.sum() >= 20
    assert ratio[on_holiday].mean() == pytest.approx(SMALL.holiday_lift, abs=0.1)
    assert ratio[ahead].mean() == pytest.approx(SMALL.holiday_lead_lift, abs=0.06)
    assert ratio[~on_holiday & ~ahead].mean() == pytest.approx(1.0, abs=0.02)


def test_trend_compounds_per_year(history):
    ratio = effect(history, trend_per_year=0.0)
    years = (ratio.index - pd.Timestamp(SMALL.origin)).days / 365.25
    slope = np.polyfit(years, np.log(ratio.to_numpy()), 1)[0]
    assert slope == pytest.approx(np.log1p(SMALL.trend_per_year), abs=0.03)


def test_realised_units_agree_with_the_truth(history):
    current = history.current
    days = current.order_ts.dt.tz_localize(None).dt.normalize()
    realised = current.groupby(days).quantity.sum()
    truth = daily_truth(SMALL, "expected_units")
    assert realised.index.equals(truth.index)
    assert realised.sum() / truth.sum() == pytest.approx(1.0, abs=0.015)
    relative = realised / truth - 1
    assert abs(relative.mean()) < 0.01
    assert relative.std() < 0.2
    by_product = current.groupby("product_id").quantity.sum()
    truth_by_product = expected_daily_units(SMALL, END - timedelta(days=HISTORY_DAYS), END)
    expected = truth_by_product.groupby("product_id").expected_units.sum()
    np.testing.assert_allclose(by_product[expected.index], expected, rtol=0.1)


def test_promotions_cover_the_share_and_cut_prices(history):
    start = END - timedelta(days=HISTORY_DAYS)
    truth = expected_daily_units(SMALL, start, END)
    without = expected_daily_units(replace(SMALL, promo_lift=1.0), start, END)
    promoted = np.isclose(truth.expected_orders / without.expected_orders, SMALL.promo_lift)
    assert promoted.mean() == pytest.approx(SMALL.promo_rate, abs=0.01)
    flags = truth.assign(promoted=promoted).set_index(["ds", "product_id"]).promoted
    puts = history.puts
    keys = pd.MultiIndex.from_arrays(
        [puts.order_ts.dt.tz_localize(None).dt.normalize(), puts.product_id]
    )
    on_promo = flags.reindex(keys).to_numpy()
    base = product_catalog(SMALL).set_index("product_id").base_price[puts.product_id].to_numpy()
    cut = np.round(base * (1 - SMALL.promo_discount), 2)
    np.testing.assert_allclose(puts.unit_price, np.where(on_promo, cut, base))
    assert on_promo.any()


def test_truth_does_not_depend_on_the_window():
    long = expected_daily_units(SMALL, "2026-01-01", "2026-03-01")
    short = expected_daily_units(SMALL, "2026-02-10", "2026-03-01")
    tail = long[long.ds >= "2026-02-10"].reset_index(drop=True)
    pd.testing.assert_frame_equal(tail, short)


def test_catalog_is_seeded_and_well_formed():
    catalog = product_catalog(SMALL)
    pd.testing.assert_frame_equal(catalog, product_catalog(SMALL))
    assert catalog.popularity.sum() == pytest.approx(1.0)
    assert catalog.product_name.is_unique
    assert catalog.product_id.tolist() == [f"p-{n:04d}" for n in range(1, SMALL.n_products + 1)]
    assert set(catalog.category) == {category.name for category in CATEGORIES}
    assert (catalog.base_price > 0).all()
    other = product_catalog(replace(SMALL, seed=SMALL.seed + 1))
    assert not catalog.product_name.equals(other.product_name)


def test_params_refuse_a_bad_profile():
    with pytest.raises(ValueError, match="weekly_profile"):
        SalesParams(weekly_profile=(1.0,) * 6)


class FakeClock:
    """A clock that only moves when someone sleeps or the test moves it."""

    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def test_live_paces_by_the_clock_and_stamps_its_time():
    clock = FakeClock()
    start = clock.now
    puts = []
    for change in live(50, 10, params=SMALL, clock=clock, sleep=clock.sleep, tick=0.1):
        if change.action == "put":
            stamp = pd.Timestamp(round(clock.now * 1000), unit="ms", tz="UTC")
            assert (change.frame.order_ts == stamp).all()
            made = sum(len(frame) for frame in puts) + len(change.frame)
            assert made <= np.floor(50 * (clock.now - start) + 1e-6)
            puts.append(change.frame)
    assert sum(len(frame) for frame in puts) == 500
    assert clock.now == pytest.approx(start + 10)
    assert len(puts) >= 90
    assert len(validate_orders(pd.concat(puts, ignore_index=True))) == 500


def test_live_catches_up_with_a_slow_consumer_without_overshooting():
    clock = FakeClock()
    start = clock.now
    made = 0
    for change in live(40, 10, params=SMALL, clock=clock, sleep=clock.sleep, tick=0.1):
        if change.action == "put":
            made += len(change.frame)
            assert made <= np.floor(40 * (clock.now - start) + 1e-6)
            clock.now += 0.35
    assert made == 400


def test_live_amends_and_cancels_its_own_orders_at_the_shares():
    clock = FakeClock()
    changes = list(live(2000, 20, params=SMALL, clock=clock, sleep=clock.sleep, tick=0.5))
    result = replay(changes)
    orders = len(result.puts)
    assert orders == 40_000
    for frame, share in ((result.updates, SMALL.amend_share), (result.deletes, SMALL.cancel_share)):
        assert abs(len(frame) / orders - share) < 5 * np.sqrt(share * (1 - share) / orders)
    backfilled = pd.concat(c.frame for c in backfill(1, end=END, params=SMALL) if c.action == "put")
    assert not set(result.puts.order_id) & set(backfilled.order_id)


def test_live_follows_todays_product_mix():
    clock = FakeClock()
    today = pd.Timestamp(clock.now, unit="s").date()
    changes = live(2000, 20, params=SMALL, clock=clock, sleep=clock.sleep, tick=1.0)
    puts = pd.concat(c.frame for c in changes if c.action == "put")
    truth = expected_daily_units(SMALL, today, today + timedelta(days=1))
    expected = truth.set_index("product_id").expected_orders
    expected = expected / expected.sum()
    realised = puts.product_id.value_counts(normalize=True).reindex(expected.index, fill_value=0)
    np.testing.assert_allclose(realised, expected, atol=0.01)


PACED = SalesParams(orders_per_day=6000, n_products=10, n_customers=200, noise=0.0)
DAY = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday, no holiday, no promotion lift to speak of


def paced_puts(params: SalesParams = PACED, **kwargs) -> pd.DataFrame:
    """A simulated day in a minute of a fake wall clock (ticks of half a second)."""
    clock = FakeClock()
    options = {"start": DAY, "clock": clock, "sleep": clock.sleep, "tick": 0.5} | kwargs
    changes = live_paced(86_400 / 60, 60, params, **options)
    return pd.concat(c.frame for c in changes if c.action == "put")


def gross_orders(params: SalesParams, day: pd.Timestamp) -> pd.Series:
    """Expected orders per product on ``day`` before cancellations, by product_id."""
    truth = expected_daily_units(params, day.date(), day.date() + timedelta(days=1))
    return truth.set_index("product_id").expected_orders / (1 - params.cancel_share)


def within_noise(counts: np.ndarray, expected: np.ndarray) -> bool:
    """Every Poisson count within 5 standard deviations of its expectation."""
    return bool((np.abs(counts - expected) <= 5 * np.sqrt(expected) + 1).all())


def test_live_paced_follows_the_hourly_profile_and_the_days_demand():
    puts = paced_puts()
    assert len(validate_orders(puts)) == len(puts)
    assert puts.order_ts.min() >= DAY and puts.order_ts.max() < DAY + pd.Timedelta(days=1)
    expected = gross_orders(PACED, DAY)
    hours = puts.order_ts.dt.hour.value_counts().reindex(range(24), fill_value=0)
    share = np.array(PACED.hourly_profile) / sum(PACED.hourly_profile)
    assert within_noise(hours.to_numpy(), share * expected.sum())
    products = puts.product_id.value_counts().reindex(expected.index, fill_value=0)
    assert within_noise(products.to_numpy(), expected.to_numpy())
    assert abs(len(puts) - expected.sum()) <= 5 * np.sqrt(expected.sum())


def test_live_paced_draws_the_days_noise_the_backfill_draws():
    params = replace(PACED, noise=0.3)
    paced = paced_puts(params).product_id.value_counts()
    day = pd.concat(c.frame for c in backfill(1, end=DAY.date() + timedelta(days=1), params=params)
                    if c.action == "put").product_id.value_counts()  # fmt: skip
    both = pd.concat([paced, day], axis=1).fillna(0).to_numpy()
    # both Poisson around the same noisy mean: the difference is Poisson noise alone
    statistic = ((both[:, 0] - both[:, 1]) ** 2 / np.maximum(both.sum(axis=1), 1)).sum()
    assert statistic < params.n_products + 5 * np.sqrt(2 * params.n_products)


def test_live_paced_runs_its_clock_speed_times_the_wall_clock_from_now_by_default():
    clock = FakeClock()
    start = clock.now
    stamps = []
    for change in live_paced(144, 30, PACED, clock=clock, sleep=clock.sleep, tick=0.5):
        if change.action == "put":
            latest = change.frame.order_ts.max().timestamp()
            assert latest <= start + 144 * (clock.now - start) + 1e-3  # never ahead of its clock
            stamps.append(change.frame.order_ts)
    stamps = pd.concat(stamps)
    assert stamps.is_monotonic_increasing
    assert stamps.min().timestamp() >= start
    assert stamps.max().timestamp() > start + 144 * 30 - 60  # 72 simulated minutes
    assert clock.now == pytest.approx(start + 30)


def test_live_paced_is_reproducible_for_a_seed_and_start():
    first, second = paced_puts(), paced_puts()
    pd.testing.assert_frame_equal(first, second)
    assert not paced_puts(replace(PACED, seed=43)).order_id.isin(first.order_id).any()


def window_counts(puts: pd.DataFrame, begin: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    inside = puts[(puts.order_ts >= begin) & (puts.order_ts < end)]
    return inside.product_id.value_counts().reindex(PACED_IDS, fill_value=0)


PACED_IDS = [f"p-{n:04d}" for n in range(1, PACED.n_products + 1)]


@pytest.mark.parametrize("factor", [3.0, 0.0])
def test_a_paced_shock_multiplies_exactly_its_product_in_its_window(factor):
    shock = Shock("p-0002", factor, start_minute=10 * 60, end_minute=16 * 60)  # 10:00 to 16:00
    puts = paced_puts(shocks=[shock])
    begin, end = DAY + pd.Timedelta(hours=10), DAY + pd.Timedelta(hours=16)
    share = np.array(PACED.hourly_profile) / sum(PACED.hourly_profile)
    expected = gross_orders(PACED, DAY)
    inside = window_counts(puts, begin, end)
    outside = puts.product_id.value_counts().reindex(PACED_IDS, fill_value=0) - inside
    in_window = expected * share[10:16].sum()
    shocked = in_window.where(in_window.index != "p-0002", in_window * factor)
    assert within_noise(inside.to_numpy(), shocked.to_numpy())
    assert within_noise(outside.to_numpy(), (expected - in_window).to_numpy())
    if factor == 0:
        assert inside["p-0002"] == 0 and outside["p-0002"] > 100
    else:
        assert inside["p-0002"] > 2.5 * in_window["p-0002"]


def test_a_shock_in_a_rate_session_adds_exactly_its_products_extra_orders():
    clock = FakeClock()
    start = clock.now
    shares = gross_orders(SMALL, pd.Timestamp(start, unit="s").normalize()).pipe(
        lambda s: s / s.sum()
    )
    shock = Shock("p-0001", 4.0, start_minute=0.1, end_minute=0.2)  # seconds 6 to 12 of 20
    changes = live(500, 20, SMALL, clock=clock, sleep=clock.sleep, tick=0.1, shocks=[shock])
    puts = pd.concat(c.frame for c in changes if c.action == "put")
    assert len(puts) == np.floor(500 * (20 + 3 * shares["p-0001"] * 6) + 1e-6)
    seconds = puts.order_ts.map(pd.Timestamp.timestamp) - start
    in_window = (seconds >= 6) & (seconds < 12)
    ours = puts.product_id == "p-0001"
    expected_ours = 500 * 6 * 4 * shares["p-0001"]
    assert abs((ours & in_window).sum() - expected_ours) <= 5 * np.sqrt(expected_ours)
    others = (~ours & in_window).sum()
    assert abs(others - 500 * 6 * (1 - shares["p-0001"])) <= 5 * np.sqrt(500 * 6)


def test_a_shock_to_zero_in_a_rate_session_leaves_no_order_of_the_product_in_its_window():
    clock = FakeClock()
    start = clock.now
    shock = Shock("p-0001", 0.0, start_minute=0.05, end_minute=0.1)  # seconds 3 to 6
    changes = live(1000, 10, SMALL, clock=clock, sleep=clock.sleep, tick=0.1, shocks=[shock])
    puts = pd.concat(c.frame for c in changes if c.action == "put")
    seconds = puts.order_ts.map(pd.Timestamp.timestamp) - start
    ours = puts[puts.product_id == "p-0001"]
    ours_seconds = seconds[puts.product_id == "p-0001"]
    assert not ((ours_seconds >= 3) & (ours_seconds < 6)).any()
    assert ((ours_seconds < 3).sum() > 0) and ((ours_seconds >= 6).sum() > 0) and len(ours)


def test_shocks_and_paced_sessions_refuse_bad_arguments():
    with pytest.raises(ValueError, match=r"Shock\.factor must be 0 or more"):
        Shock("p-0001", -1.0, 0, 1)
    with pytest.raises(ValueError, match="end after it starts"):
        Shock("p-0001", 2.0, 5, 5)
    with pytest.raises(ValueError, match="start at minute 0 or later"):
        Shock("p-0001", 2.0, -1, 5)
    with pytest.raises(ValueError, match=r"does not sell: \['p-9999'\]"):
        next(live(10, 1, SMALL, shocks=[Shock("p-9999", 2.0, 0, 1)]))
    with pytest.raises(ValueError, match="speed must be above 0"):
        next(live_paced(0, 10, SMALL))
    assert Shock("p-0001", 0.0, 0, 0.5).factor == 0.0  # both edges allowed: factor 0, minute 0


def test_day_so_far_is_the_backfills_day_cut_at_the_moment():
    until = pd.Timestamp("2026-03-02T13:30", tz="UTC")
    earlier = pd.concat(c.frame for c in day_so_far(until, SMALL, chunk_orders=40))
    day = pd.concat(
        c.frame for c in backfill(1, end="2026-03-03", params=SMALL) if c.action == "put"
    )
    expected = day[day.order_ts < until]
    pd.testing.assert_frame_equal(earlier.reset_index(drop=True), expected.reset_index(drop=True))
    assert 0 < len(earlier) < len(day)
    midnight = list(day_so_far("2026-03-02T00:00", SMALL))
    assert midnight == []  # nothing yet at the day's first instant


def test_expected_paced_orders_is_the_days_demand_by_hour_with_its_shocks():
    day = gross_orders(PACED, DAY)
    assert expected_paced_orders(PACED, DAY, DAY + pd.Timedelta(days=1)) == pytest.approx(day.sum())
    share = np.array(PACED.hourly_profile) / sum(PACED.hourly_profile)
    ten_to_four = (DAY + pd.Timedelta(hours=10), DAY + pd.Timedelta(hours=16))
    assert expected_paced_orders(PACED, *ten_to_four) == pytest.approx(
        day.sum() * share[10:16].sum()
    )
    tripled = [Shock("p-0002", 3.0, 0, 6 * 60)]
    extra = 2 * day["p-0002"] * share[10:16].sum()
    assert expected_paced_orders(PACED, *ten_to_four, shocks=tripled) == pytest.approx(
        day.sum() * share[10:16].sum() + extra
    )
