"""Seeded sales: a product catalog, the daily demand behind it, and the orders drawn from it.

The generator stands for the shop in front of the orders table. :func:`backfill` yields a
history day by day; :func:`live` yields orders at a fixed rate by a clock (the pipeline's
load), and :func:`live_paced` the shop's own demand by day and hour on a simulated clock that
runs faster than the wall clock (the day a forecast expects); :func:`day_so_far` is the
backfill's draw of today up to a moment. All yield :class:`Change` objects (puts of new orders,
then quantity amendments, then cancellations) in the order a table should apply them. A
:class:`Shock` multiplies a product's live demand, or cuts it to zero, for a window of minutes. :func:`expected_daily_units` returns the demand the orders are drawn from,
without noise, so that a forecast can be scored against the truth as well as against the data.

Expected orders per product and day are a product of factors: a compound trend, a weekly
profile, a yearly wave peaking in late autumn, public holidays (``holidays`` package) and the
days before them, seeded promotions, and a Zipf-like popularity. Orders per product-day are
gamma-Poisson (negative binomial) around that expectation. Every draw comes from a ``numpy``
generator seeded with the params' seed, a stream number and the day, so one seed gives one
history and a day's orders do not depend on the window asked for. Faker, seeded with
``seed_instance``, makes the product names and the customer pool. Timestamps are UTC.

Not emulated: returns, price changes other than promotions, stock-outs, and customers whose
behaviour changes over time.

Examples
--------
>>> params = SalesParams(orders_per_day=200)
>>> changes = list(backfill(7, end=date(2026, 3, 2), params=params))
>>> changes[0].action, list(changes[0].frame.columns) == list(ORDER_FIELDS)
('put', True)
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Literal

import holidays
import numpy as np
import pandas as pd
from faker import Faker

from helpers.schema import ORDER_FIELDS


@dataclass(frozen=True)
class Category:
    """A product category: its median base price, units per order, and product nouns."""

    name: str
    median_price: float
    extra_units: float
    """Mean units per order above one (quantity is ``1 + Poisson(extra_units)``)."""
    nouns: tuple[str, ...]


# fmt: off
CATEGORIES = (
    Category("electronics", 89.0, 0.1, (
        "Headphones", "Bluetooth Speaker", "Phone Case", "USB-C Charger", "Smart Watch",
        "Webcam", "Keyboard", "Power Bank", "Earbuds", "Monitor Stand")),
    Category("home", 34.0, 0.3, (
        "Desk Lamp", "Throw Pillow", "Wall Clock", "Picture Frame", "Candle", "Blanket",
        "Vase", "Doormat", "Curtains", "Storage Basket")),
    Category("kitchen", 24.0, 0.5, (
        "Coffee Mug", "Chef Knife", "Cutting Board", "Water Bottle", "Mixing Bowl",
        "Tea Kettle", "Frying Pan", "Spatula", "Lunch Box", "Apron")),
    Category("sports", 42.0, 0.3, (
        "Yoga Mat", "Running Cap", "Dumbbell", "Jump Rope", "Gym Bag", "Cycling Gloves",
        "Tennis Balls", "Resistance Band", "Sports Bottle", "Foam Roller")),
    Category("toys", 19.0, 0.6, (
        "Building Blocks", "Plush Bear", "Puzzle", "Toy Car", "Kite", "Yo-Yo", "Board Game",
        "Bouncy Ball", "Rubber Duck", "Stacking Rings")),
    Category("beauty", 16.0, 0.8, (
        "Lip Balm", "Nail Polish", "Hand Cream", "Hair Brush", "Face Mask", "Soap Bar",
        "Shampoo", "Body Lotion", "Makeup Bag", "Eyeliner")),
)
# fmt: on
"""The categories a catalog draws from; ``SalesParams.n_categories`` takes the first ones."""

# Stream numbers: each kind of draw has its own generator, so adding one never shifts another.
_CATALOG, _CUSTOMERS, _PROMOTIONS, _DAY, _LIVE, _ORDER_IDS = range(6)
_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 24 * _MS_PER_HOUR
_LIVE_BIT = np.uint64(1 << 63)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class SalesParams:
    """What the generated shop sells and how its demand behaves.

    Demand on a day is ``orders_per_day`` times the trend, weekly, yearly, holiday and
    promotion factors, shared out over products by popularity. Defaults describe a mid-sized
    online shop in the US.

    Attributes
    ----------
    seed : int
        Seeds every draw; the same params give the same catalog, demand and orders.
    n_products, n_categories, n_customers : int
        Catalog size, how many of :data:`CATEGORIES` it uses, and the customer pool size.
    orders_per_day : float
        Mean orders per day at ``origin`` before holidays and promotions.
    origin : date
        The day the trend is anchored at; it compounds from here (and shrinks before it).
    trend_per_year : float
        Yearly growth, 0.2 for +20 % a year.
    weekly_profile : tuple of 7 floats
        Day-of-week multipliers, Monday first, scaled to mean 1.
    yearly_amplitude, yearly_peak_day : float, int
        Height and day of year of the yearly cosine wave (335 is 1 December).
    holiday_country, holiday_lift : str, float
        Public holidays (``holidays`` country code) and their demand multiplier.
    holiday_lead_days, holiday_lead_lift : int, float
        How many days before a holiday shoppers stock up, and by how much.
    promo_rate : float
        Share of product-days under promotion (about; overlapping promotions merge).
    promo_days : tuple of 2 ints
        Shortest and longest promotion, in days.
    promo_lift, promo_discount : float
        Demand multiplier and price cut while a product is promoted.
    noise : float
        Overdispersion: orders per product-day have variance ``mean + noise * mean**2``.
    popularity_skew : float
        Zipf exponent of popularity over products (0 for equal popularity).
    price_sigma : float
        Log-scale spread of base prices around the category's median price.
    amend_share, cancel_share : float
        Shares of orders whose quantity is later changed, and that are later cancelled.
    change_lag_days : int
        Amendments and cancellations come on the order's day or up to this many days later.
    channel_shares : tuple of (channel, share)
        Sales channels and their shares of orders.
    hourly_profile : tuple of 24 floats
        Relative order intensity per UTC hour of the day.

    Examples
    --------
    >>> SalesParams(seed=7, orders_per_day=500).n_products
    50
    """

    seed: int = 42
    n_products: int = 50
    n_categories: int = len(CATEGORIES)
    n_customers: int = 5000
    orders_per_day: float = 2000.0
    origin: date = date(2026, 1, 1)
    trend_per_year: float = 0.2
    weekly_profile: tuple[float, ...] = (0.92, 0.90, 0.92, 0.96, 1.05, 1.20, 1.15)
    yearly_amplitude: float = 0.25
    yearly_peak_day: int = 335
    holiday_country: str = "US"
    holiday_lift: float = 1.6
    holiday_lead_days: int = 2
    holiday_lead_lift: float = 1.2
    promo_rate: float = 0.05
    promo_days: tuple[int, int] = (3, 7)
    promo_lift: float = 1.8
    promo_discount: float = 0.15
    noise: float = 0.1
    popularity_skew: float = 1.0
    price_sigma: float = 0.35
    amend_share: float = 0.05
    cancel_share: float = 0.02
    change_lag_days: int = 3
    channel_shares: tuple[tuple[str, float], ...] = (
        ("web", 0.50),
        ("mobile", 0.30),
        ("store", 0.12),
        ("marketplace", 0.08),
    )
    hourly_profile: tuple[float, ...] = (
        0.30, 0.20, 0.14, 0.10, 0.10, 0.14, 0.25, 0.45, 0.70, 0.90, 1.05, 1.15,
        1.25, 1.30, 1.30, 1.30, 1.35, 1.45, 1.55, 1.60, 1.50, 1.20, 0.85, 0.50,
    )  # fmt: skip

    def __post_init__(self) -> None:
        def profile(values: tuple[float, ...], length: int) -> bool:
            return len(values) == length and min(values) >= 0 and sum(values) > 0

        shares = tuple(share for _, share in self.channel_shares)
        checks = (
            ("seed", self.seed >= 0, "a non-negative integer"),
            ("n_products", self.n_products >= 1, "1 or more"),
            ("n_categories", 1 <= self.n_categories <= len(CATEGORIES),
             f"between 1 and {len(CATEGORIES)}"),
            ("n_customers", self.n_customers >= 1, "1 or more"),
            ("orders_per_day", self.orders_per_day >= 0, "0 or more"),
            ("trend_per_year", self.trend_per_year > -1, "above -1"),
            ("weekly_profile", profile(self.weekly_profile, 7),
             "7 non-negative multipliers, Monday first, not all zero"),
            ("yearly_amplitude", 0 <= self.yearly_amplitude < 1, "in [0, 1)"),
            ("yearly_peak_day", 1 <= self.yearly_peak_day <= 366, "a day of the year, 1-366"),
            ("holiday_lift", self.holiday_lift >= 0, "0 or more"),
            ("holiday_lead_days", self.holiday_lead_days >= 0, "0 or more"),
            ("holiday_lead_lift", self.holiday_lead_lift >= 0, "0 or more"),
            ("promo_rate", 0 <= self.promo_rate < 1, "in [0, 1)"),
            ("promo_days", len(self.promo_days) == 2 and 1 <= self.promo_days[0]
             <= self.promo_days[1], "(shortest, longest) with 1 <= shortest <= longest"),
            ("promo_lift", self.promo_lift >= 0, "0 or more"),
            ("promo_discount", 0 <= self.promo_discount < 1, "in [0, 1)"),
            ("noise", self.noise >= 0, "0 or more"),
            ("popularity_skew", self.popularity_skew >= 0, "0 or more"),
            ("price_sigma", self.price_sigma >= 0, "0 or more"),
            ("amend_share", 0 <= self.amend_share <= 1, "in [0, 1]"),
            ("cancel_share", 0 <= self.cancel_share <= 1, "in [0, 1]"),
            ("change_lag_days", self.change_lag_days >= 0, "0 or more"),
            ("channel_shares", len(shares) > 0 and min(shares) >= 0 and sum(shares) > 0,
             "(channel, share) pairs with non-negative shares, not all zero"),
            ("hourly_profile", profile(self.hourly_profile, 24),
             "24 non-negative weights, one per UTC hour, not all zero"),
        )  # fmt: skip
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(
                    f"SalesParams.{name} must be {expected}; got {getattr(self, name)!r}"
                )


@dataclass
class Change:
    """One batch of writes to the orders table, all of one kind.

    ``put`` frames hold full orders in :data:`~helpers.schema.ORDER_FIELDS` order; ``update``
    frames hold ``order_id`` and the changed fields (``quantity``); ``delete`` frames hold
    ``order_id`` only.
    """

    action: Literal["put", "update", "delete"]
    frame: pd.DataFrame


@dataclass(frozen=True)
class _Shop:
    """The catalog, customers and channels of one params, as arrays ready for fancy indexing."""

    catalog: pd.DataFrame
    product_ids: np.ndarray
    product_names: np.ndarray
    categories: np.ndarray
    base_price: np.ndarray
    promo_price: np.ndarray
    extra_units: np.ndarray
    popularity: np.ndarray
    customer_ids: np.ndarray
    customer_cdf: np.ndarray
    channels: np.ndarray
    channel_cdf: np.ndarray
    hour_cdf: np.ndarray
    id_key: np.uint64


@dataclass
class _Batch:
    """Orders drawn together (one day, or one live tick), with their later changes."""

    counters: np.ndarray
    ts_ms: np.ndarray
    product: np.ndarray
    customer: np.ndarray
    channel: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    amended: np.ndarray
    new_quantity: np.ndarray
    amend_at: np.ndarray
    cancelled: np.ndarray
    cancel_at: np.ndarray
    """``amend_at``/``cancel_at``: when the change comes, as a fraction in [0, 1) of the delay
    allowed; a cancel never comes before an amendment of the same order."""

    def changes(self) -> tuple[tuple[str, np.ndarray, np.ndarray, np.ndarray], ...]:
        """``(action, order positions, when, quantity)`` for the updates, then the deletes."""
        return (
            ("update", self.amended, self.amend_at, self.new_quantity),
            ("delete", self.cancelled, self.cancel_at, self.quantity[self.cancelled]),
        )


def product_catalog(params: SalesParams) -> pd.DataFrame:
    """The products on sale: id, Faker-made name, category, base price and popularity.

    Parameters
    ----------
    params : SalesParams
        Catalog size, categories, price spread, popularity skew and seed.

    Returns
    -------
    pandas.DataFrame
        One row per product, columns ``product_id, product_name, category, base_price,
        popularity``; popularity sums to 1. The same params give the same catalog.

    Examples
    --------
    >>> catalog = product_catalog(SalesParams(n_products=3))
    >>> catalog.product_id.tolist(), round(float(catalog.popularity.sum()), 9)
    (['p-0001', 'p-0002', 'p-0003'], 1.0)
    """
    return _shop(params).catalog.copy()


def expected_daily_units(params: SalesParams, start: date | str, end: date | str) -> pd.DataFrame:
    """The demand orders are drawn from, per product and day, without noise.

    Holidays and promotions are included. The figures are net of cancellations and after
    amendments: what the ``orders_current`` view converges to once every change has arrived.

    Parameters
    ----------
    params : SalesParams
        The shop whose demand to compute.
    start, end : date or ISO date text
        First day included and first day excluded (as :func:`backfill`'s ``end``).

    Returns
    -------
    pandas.DataFrame
        Long format, sorted by ``ds`` then ``product_id``: ``ds`` (datetime64, the UTC day),
        ``product_id``, ``category``, ``expected_orders``, ``expected_units``.

    Examples
    --------
    >>> truth = expected_daily_units(SalesParams(n_products=2), "2026-03-01", "2026-03-04")
    >>> truth.shape, list(truth.columns[:3])
    ((6, 5), ['ds', 'product_id', 'category'])
    """
    days = _day_range(_as_date(start), _as_date(end))
    shop = _shop(params)
    gross, _ = _demand(params, days)
    orders = gross * (1 - params.cancel_share)
    extra = shop.extra_units
    units_per_order = 1 + extra + params.amend_share * np.exp(-extra)
    n_days, n_products = gross.shape
    return pd.DataFrame(
        {
            "ds": np.repeat(days.values, n_products),
            "product_id": np.tile(shop.product_ids, n_days),
            "category": np.tile(shop.categories, n_days),
            "expected_orders": orders.ravel(),
            "expected_units": (orders * units_per_order).ravel(),
        }
    )


def promotion_calendar(params: SalesParams, start: date | str, end: date | str) -> pd.DataFrame:
    """The promotions planned from ``start`` to ``end`` (excluded): one row per promoted
    product and day, the calendar a shop's marketing keeps ahead of time.

    The same schedule drives the orders (the demand lift and the discounted price), so a
    forecaster that reads it knows the promotions of the days it forecasts.

    Examples
    --------
    >>> calendar = promotion_calendar(SalesParams(n_products=20), "2026-03-01", "2026-04-01")
    >>> list(calendar.columns), bool(calendar.ds.between("2026-03-01", "2026-03-31").all())
    (['ds', 'product_id', 'category', 'discount'], True)
    """
    days = _day_range(_as_date(start), _as_date(end))
    shop = _shop(params)
    if len(days) == 0:
        promoted = np.zeros((0, params.n_products), dtype=bool)
    else:
        promoted = _promotions(params, days[0].date(), len(days))
    day, product = np.nonzero(promoted)
    return pd.DataFrame(
        {
            "ds": days.values[day],
            "product_id": shop.product_ids[product],
            "category": shop.categories[product],
            "discount": params.promo_discount,
        }
    )


def backfill(
    days: int,
    end: date | str | None = None,
    params: SalesParams = SalesParams(),
    chunk_orders: int = 50_000,
) -> Iterator[Change]:
    """Yield the order history of ``days`` days ending the day before ``end``, in time order.

    Each day yields its new orders (``put``, sorted by ``order_ts``), then the amendments due
    that day (``update`` of ``quantity``; the order keeps its ``order_ts``), then the
    cancellations due that day (``delete``). Changes concern orders of the same day or up to
    ``params.change_lag_days`` earlier; changes that would fall after the window come on its last
    day, so the history ends settled. No order is cancelled twice or amended after its cancel.

    Parameters
    ----------
    days : int
        Number of days of history.
    end : date or ISO date text, optional
        First day not generated; today (UTC) by default.
    params : SalesParams
        The shop and its demand.
    chunk_orders : int
        Most rows in one frame, which bounds memory however busy a day is.

    Yields
    ------
    Change
        The same params and window always yield the same changes.

    Examples
    --------
    >>> changes = list(backfill(3, end=date(2026, 3, 1), params=SalesParams(orders_per_day=50)))
    >>> changes[0].frame.order_ts.min().date()
    datetime.date(2026, 2, 26)
    """
    if days < 0:
        raise ValueError(f"days must be 0 or more; got {days}")
    if chunk_orders < 1:
        raise ValueError(f"chunk_orders must be 1 or more; got {chunk_orders}")
    last = _as_date(end) if end is not None else datetime.now(UTC).date()
    window = _day_range(last - timedelta(days=days), last)
    shop = _shop(params)
    gross, promoted = _demand(params, window)
    lags = params.change_lag_days + 1
    scheduled: dict[tuple[int, str], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for index, day in enumerate(window.date):
        batch = _draw_day(params, shop, day, gross[index], promoted[index])
        for rows in _slices(batch.counters.size, chunk_orders):
            yield Change("put", _put_frame(shop, batch, rows))
        for action, orders, at, quantity in batch.changes():
            due = np.minimum(index + (at * lags).astype(np.int64), days - 1)
            for due_index in np.unique(due):
                picked = due == due_index
                scheduled[due_index, action].append(
                    (batch.counters[orders[picked]], quantity[picked])
                )
        for action in ("update", "delete"):
            parts = scheduled.pop((index, action), None)
            if parts:
                counters, quantity = (np.concatenate(column) for column in zip(*parts, strict=True))
                yield from _change_frames(shop, action, counters, quantity, chunk_orders)


def day_so_far(
    until: datetime | str | None = None,
    params: SalesParams = SalesParams(),
    chunk_orders: int = 50_000,
) -> Iterator[Change]:
    """Yield the orders of the day of ``until`` (default: now, UTC) stamped before it: the
    day's history so far, so that a live session starting at ``until`` finds the day's earlier
    sales in place, as a forecast of the day expects.

    They are the orders :func:`backfill` draws for that day, with the same ids, so a later
    backfill of the day replaces them rather than adding to them. Their amendments and
    cancellations are left to that backfill.

    Examples
    --------
    >>> changes = list(day_so_far("2026-03-02T12:00", SalesParams(orders_per_day=100)))
    >>> bool(changes[-1].frame.order_ts.max() < pd.Timestamp("2026-03-02T12:00", tz="UTC"))
    True
    """
    moment = _utc_seconds(until) if until is not None else time.time()
    day = datetime.fromtimestamp(moment, UTC).date()
    shop = _shop(params)
    gross, promoted = _demand(params, _day_range(day, day + timedelta(days=1)))
    batch = _draw_day(params, shop, day, gross[0], promoted[0])
    before = int(np.searchsorted(batch.ts_ms, round(moment * 1000), side="left"))
    for rows in _slices(before, chunk_orders):
        yield Change("put", _put_frame(shop, batch, rows))


def expected_paced_orders(
    params: SalesParams, start: datetime | str, end: datetime | str, shocks: Sequence[Shock] = ()
) -> float:
    """The orders :func:`live_paced` expects from simulated ``start`` to ``end`` (UTC): the
    mean of its draws, the days' noise and the shocks (minutes from ``start``) included.

    Examples
    --------
    >>> params = SalesParams(orders_per_day=1000, noise=0)
    >>> round(expected_paced_orders(params, "2026-03-02", "2026-03-03"))
    959
    """
    pace = _Pace(params, shocks)
    pace.origin = _utc_seconds(start)
    return float(pace.mean(pace.origin, _utc_seconds(end)))


@dataclass(frozen=True)
class Shock:
    """A product's demand multiplied by ``factor`` (0 cuts it off) from ``start_minute`` to
    ``end_minute`` (excluded) of a live session, in minutes of the session's own clock since
    it started: the wall clock for :func:`live`, the simulated one for :func:`live_paced`.

    Examples
    --------
    >>> Shock("p-0003", factor=3.0, start_minute=2, end_minute=5).factor
    3.0
    """

    product_id: str
    factor: float
    start_minute: float
    end_minute: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor >= 0):
            raise ValueError(f"Shock.factor must be 0 or more; got {self.factor!r}")
        if not 0 <= self.start_minute < self.end_minute < math.inf:
            raise ValueError(
                f"a shock must start at minute 0 or later and end after it starts; got "
                f"start_minute={self.start_minute!r}, end_minute={self.end_minute!r}"
            )


def live(
    rate: float,
    duration: float,
    params: SalesParams = SalesParams(),
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    tick: float = 0.1,
    shocks: Sequence[Shock] = (),
) -> Iterator[Change]:
    """Yield orders as they happen: ``rate`` orders a second for ``duration`` seconds.

    Every ``tick`` seconds (by ``clock``, sleeping in between) it yields the orders due since
    the start, stamped with the clock's time, then the amendments and cancellations that have
    come due. A slow consumer gets the backlog in one frame at the next tick; without shocks
    the total is ``floor(rate * duration)`` orders and is never exceeded. Products follow
    today's demand (popularity, promotions and their prices); amendments and cancellations
    concern orders of this session, at the params' shares, and all come before the session
    ends. A shock multiplies its product's orders in its window and leaves the others' alone,
    so the session's rate is ``rate`` times ``1 + share * (factor - 1)`` meanwhile (``share``:
    the product's share of the day's orders). For orders paced like the shop's own day, see
    :func:`live_paced`.

    Parameters
    ----------
    rate : float
        Orders per second.
    duration : float
        Length of the session in seconds.
    params : SalesParams
        The shop and its demand.
    clock, sleep : callable
        Seconds since the epoch, and a pause; inject fakes to run a session instantly.
    tick : float
        Seconds between yields.
    shocks : sequence of Shock
        Demand shocks, in minutes of the wall clock since the start.

    Yields
    ------
    Change
        Reproducible for a given params and start time.

    Examples
    --------
    >>> now = [1_780_000_000.0]
    >>> def sleep(seconds): now[0] += seconds
    >>> changes = live(20, 5, clock=lambda: now[0], sleep=sleep)
    >>> sum(len(c.frame) for c in changes if c.action == "put")
    100
    """
    if rate <= 0:
        raise ValueError(f"rate must be above 0; got rate={rate}")
    yield from _session(_Pace(params, shocks, rate=rate), duration, 1.0, None, clock, sleep, tick)


def live_paced(
    speed: float,
    duration: float,
    params: SalesParams = SalesParams(),
    start: datetime | str | None = None,
    shocks: Sequence[Shock] = (),
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    tick: float = 0.1,
) -> Iterator[Change]:
    """Yield the shop's own orders on a simulated clock that runs ``speed`` times faster than
    the wall clock, for ``duration`` wall seconds.

    Orders follow the demand :func:`backfill` draws from, hour by hour: each product's expected
    orders for the simulated day (with that day's noise, the same draw as the backfill's), spread
    over the UTC hours by ``params.hourly_profile``, arriving as a Poisson process. Each order
    is stamped with its simulated time, so that a day's live sales match what a forecast of the
    day expects. ``speed=144`` plays a day in 10 minutes; ``speed=1`` is real time. The
    simulated clock starts at ``start`` (default: the wall clock's now); the real-time
    consumer takes the later of the wall clock and the latest order as "now", so a clock that
    starts behind the wall clock looks late to it. Amendments and cancellations come as in
    :func:`live`, on the wall clock.

    Parameters
    ----------
    speed : float
        Simulated seconds per wall second.
    duration : float
        Length of the session in wall seconds.
    params : SalesParams
        The shop and its demand.
    start : datetime or ISO text, optional
        The simulated time the session starts at (UTC).
    shocks : sequence of Shock
        Demand shocks, in simulated minutes since ``start``.
    clock, sleep, tick
        As :func:`live`.

    Yields
    ------
    Change
        Reproducible for a given params, start, speed and wall start time.

    Examples
    --------
    >>> now = [1_780_000_000.0]
    >>> def sleep(seconds): now[0] += seconds
    >>> day = live_paced(86_400 / 60, 60, SalesParams(orders_per_day=500, noise=0),
    ...                  start="2026-03-02", clock=lambda: now[0], sleep=sleep)
    >>> 400 < sum(len(c.frame) for c in day if c.action == "put") < 600
    True
    """
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be above 0; got speed={speed}")
    origin = None if start is None else _utc_seconds(start)
    yield from _session(_Pace(params, shocks), duration, speed, origin, clock, sleep, tick)


class _Pace:
    """Live orders per second of session clock, per product, and how they are drawn.

    The intensity is constant between breaks (midnights, hours when demand-paced, shock
    bounds). With a ``rate``, counts are the floor of the expected total so far (exact, as the
    pipeline benchmark wants) and every order is stamped at the tick; without one, demand
    follows the shop's day and hour, counts are Poisson and stamps spread over each stretch.
    ``origin`` is the session clock's start (epoch seconds), which the session sets and the
    shocks' minutes count from.
    """

    def __init__(self, params: SalesParams, shocks: Sequence[Shock], rate: float | None = None):
        self.params, self.shop, self.rate = params, _shop(params), rate
        known = set(self.shop.product_ids)
        unknown = sorted({shock.product_id for shock in shocks} - known)
        if unknown:
            raise ValueError(
                f"shocks name products the shop does not sell: {unknown}; its products are "
                f"p-0001 to p-{params.n_products:04d}"
            )
        self.shocks = [
            (np.flatnonzero(self.shop.product_ids == shock.product_id)[0], shock)
            for shock in shocks
        ]
        self.hour_share = np.array(params.hourly_profile) / sum(params.hourly_profile)
        self.days: dict[date, tuple[np.ndarray, np.ndarray]] = {}
        self.origin = 0.0
        self.expected = 0.0  # with a rate: the orders expected so far, and those drawn
        self.counted = 0

    def day(self, day: date) -> tuple[np.ndarray, np.ndarray]:
        """Orders per product for the day (a rate's share of them, per second) and prices."""
        if day not in self.days:
            gross, promoted = _demand(self.params, _day_range(day, day + timedelta(days=1)))
            if self.rate is not None:
                weights = gross[0] if gross[0].sum() > 0 else self.shop.popularity
                per_day = self.rate * weights / weights.sum()
            else:
                per_day = _noisy(_rng(self.params, _DAY, day.toordinal()), self.params, gross[0])
            prices = np.where(promoted[0], self.shop.promo_price, self.shop.base_price)
            self.days[day] = per_day, prices
        return self.days[day]

    def intensity(self, at: float) -> tuple[np.ndarray, np.ndarray]:
        """Orders per second per product at session time ``at`` (epoch seconds), and prices."""
        moment = datetime.fromtimestamp(at, UTC)
        per_day, prices = self.day(moment.date())
        hourly = 1.0 if self.rate is not None else self.hour_share[moment.hour] / 3600
        rates = per_day * hourly
        minute = (at - self.origin) / 60
        for product, shock in self.shocks:
            if shock.start_minute <= minute < shock.end_minute:
                rates = rates.copy()
                rates[product] *= shock.factor
        return rates, prices

    def stretches(self, begin: float, end: float) -> Iterator[tuple[float, float]]:
        """``[begin, end)`` cut where the intensity may change."""
        step = 86_400 if self.rate is not None else 3_600
        cuts = {float(at) for at in np.arange(math.floor(begin / step) + 1, end / step) * step}
        for _, shock in self.shocks:
            cuts |= {self.origin + 60 * shock.start_minute, self.origin + 60 * shock.end_minute}
        points = [begin, *sorted(at for at in cuts if begin < at < end), end]
        yield from pairwise(points)

    def mean(self, begin: float, end: float) -> float:
        """The orders expected in ``[begin, end)`` of session time."""
        return sum(
            self.intensity(low)[0].sum() * (high - low) for low, high in self.stretches(begin, end)
        )

    def draw(
        self, rng: np.random.Generator, begin: float, end: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Products, stamps (ms) and prices of the orders due in ``[begin, end)``."""
        if self.rate is not None:  # the floor of the total expected so far, stamped at ``end``
            self.expected += self.mean(begin, end)
            count = math.floor(round(self.expected, 6)) - self.counted
            self.counted += count
            rates, prices = self.intensity(end)
            if count <= 0 or rates.sum() <= 0:
                return _no_orders()
            product = _pick(rng, _cdf(rates), count)
            return product, np.full(count, round(end * 1000), dtype=np.int64), prices[product]
        parts = [_no_orders()]  # Poisson arrivals, spread over each stretch
        for low, high in self.stretches(begin, end):
            rates, prices = self.intensity(low)
            count = rng.poisson(rates.sum() * (high - low))
            if count:
                product = _pick(rng, _cdf(rates), count)
                stamps = np.round(rng.uniform(low, high, count) * 1000).astype(np.int64)
                parts.append((product, stamps, prices[product]))
        product, stamps, prices = (np.concatenate(column) for column in zip(*parts, strict=True))
        in_time_order = np.argsort(stamps, kind="stable")
        return product[in_time_order], stamps[in_time_order], prices[in_time_order]


def _no_orders() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0)


def _session(
    pace: _Pace,
    duration: float,
    speed: float,
    origin: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    tick: float,
) -> Iterator[Change]:
    """The live loop: orders due by each tick, then the changes due, until ``duration``."""
    if duration < 0 or tick <= 0:
        raise ValueError(
            f"tick must be above 0 and duration 0 or more; got duration={duration}, tick={tick}"
        )
    shop, params = pace.shop, pace.params
    start = clock()
    finish = start + duration
    pace.origin = start if origin is None else origin

    def session_time(wall: float) -> float:
        return pace.origin + (wall - start) * speed

    rng = _rng(params, _LIVE, round(start * 1e6) % 2**63)
    session = np.uint64(rng.integers(2**31)) << np.uint64(32)
    no_changes = (np.empty(0), np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64))
    waiting = {"update": no_changes, "delete": no_changes}  # due time, counter, quantity
    made = ticks = 0
    drawn = start
    while True:
        next_tick = min(finish, start + ticks * tick)
        now = clock()
        if now < next_tick:
            sleep(next_tick - now)
            now = clock()
        until = min(now, finish)
        product, ts_ms, unit_price = pace.draw(rng, session_time(drawn), session_time(until))
        drawn = until
        if product.size:
            counters = _LIVE_BIT | session | np.arange(made, made + product.size, dtype=np.uint64)
            batch = _draw_batch(rng, params, shop, counters, ts_ms, product, unit_price)
            made += product.size
            yield Change("put", _put_frame(shop, batch, slice(None)))
            for action, orders, at, quantity in batch.changes():
                due = now + at * max(finish - now, 0.0)
                new = (due, batch.counters[orders], quantity)
                waiting[action] = tuple(
                    np.concatenate(pair) for pair in zip(waiting[action], new, strict=True)
                )
        for action, (due, counters, quantity) in waiting.items():
            ready = due <= now
            if ready.any():
                by_due = np.argsort(due[ready], kind="stable")
                ready_counters, ready_quantity = counters[ready][by_due], quantity[ready][by_due]
                yield from _change_frames(shop, action, ready_counters, ready_quantity, by_due.size)
                waiting[action] = (due[~ready], counters[~ready], quantity[~ready])
        if now >= finish:
            return
        ticks = max(ticks + 1, math.floor((now - start) / tick) + 1)


def _change_frames(
    shop: _Shop, action: str, counters: np.ndarray, quantity: np.ndarray, chunk_orders: int
) -> Iterator[Change]:
    """Updates (order id and new quantity) or deletes (order id) of orders, in chunks."""
    for rows in _slices(counters.size, chunk_orders):
        columns = {"order_id": _order_ids(shop, counters[rows])}
        if action == "update":
            columns["quantity"] = quantity[rows]
        yield Change(action, pd.DataFrame(columns, copy=False))


def _rng(params: SalesParams, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([params.seed, stream, *keys])


def _utc_seconds(value: datetime | str) -> float:
    """Epoch seconds of a time; naive times are UTC."""
    moment = pd.Timestamp(value)
    return (moment.tz_localize(UTC) if moment.tzinfo is None else moment).timestamp()


def _as_date(value: date | str) -> date:
    return value if type(value) is date else pd.Timestamp(value).date()


def _day_range(start: date, end: date) -> pd.DatetimeIndex:
    if end < start:
        raise ValueError(f"end ({end}) must not be before start ({start})")
    return pd.date_range(start, end, freq="D", inclusive="left")


def _slices(length: int, size: int) -> Iterator[slice]:
    for low in range(0, length, size):
        yield slice(low, min(low + size, length))


def _pick(rng: np.random.Generator, cdf: np.ndarray, count: int) -> np.ndarray:
    """Indices drawn with the probabilities whose cumulative sum (ending at 1) is ``cdf``."""
    return np.searchsorted(cdf, rng.random(count), side="right")


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=float)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


@lru_cache(maxsize=8)
def _shop(params: SalesParams) -> _Shop:
    fake = Faker("en_US")
    fake.seed_instance(params.seed)
    rng = _rng(params, _CATALOG)
    count = params.n_products
    categories = CATEGORIES[: params.n_categories]
    category = rng.permutation(np.arange(count) % len(categories))
    popularity = (rng.permutation(count) + 1.0) ** -params.popularity_skew
    popularity /= popularity.sum()
    medians = np.array([c.median_price for c in categories])[category]
    base_price = np.floor(medians * np.exp(params.price_sigma * rng.standard_normal(count))) + 0.99
    names: list[str] = []
    for index in category:
        noun = fake.random_element(categories[index].nouns)
        name = f"{fake.safe_color_name().title()} {noun}"
        while name in names:
            model = fake.bothify("??-##").upper()
            name = f"{fake.safe_color_name().title()} {noun} {model}"
        names.append(name)
    catalog = pd.DataFrame(
        {
            "product_id": [f"p-{number:04d}" for number in range(1, count + 1)],
            "product_name": names,
            "category": [categories[index].name for index in category],
            "base_price": base_price,
            "popularity": popularity,
        }
    )
    customers = _rng(params, _CUSTOMERS)
    customer_ids = [f"c-{fake.unique.hexify('^' * 10)}" for _ in range(params.n_customers)]
    channels, shares = zip(*params.channel_shares, strict=True)
    return _Shop(
        catalog=catalog,
        product_ids=catalog.product_id.to_numpy(dtype=object),
        product_names=catalog.product_name.to_numpy(dtype=object),
        categories=catalog.category.to_numpy(dtype=object),
        base_price=base_price,
        promo_price=np.round(base_price * (1 - params.promo_discount), 2),
        extra_units=np.array([c.extra_units for c in categories])[category],
        popularity=popularity,
        customer_ids=np.array(customer_ids, dtype=object),
        customer_cdf=_cdf(customers.lognormal(0.0, 1.0, params.n_customers)),
        channels=np.array(channels, dtype=object),
        channel_cdf=_cdf(np.array(shares)),
        hour_cdf=_cdf(np.array(params.hourly_profile)),
        id_key=np.random.SeedSequence([params.seed, _ORDER_IDS]).generate_state(1, np.uint64)[0],
    )


@lru_cache(maxsize=8)
def _holiday_days(country: str, first_year: int, last_year: int) -> np.ndarray:
    try:
        calendar = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    except NotImplementedError:
        raise ValueError(
            f"SalesParams.holiday_country must be a country code the holidays package knows, "
            f"e.g. 'US'; got {country!r}"
        ) from None
    return np.array(sorted(calendar), dtype="datetime64[D]")


def _demand(params: SalesParams, days: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Expected orders before cancellations, and promotion flags, per day and product."""
    shop = _shop(params)
    if len(days) == 0:
        return np.zeros((0, params.n_products)), np.zeros((0, params.n_products), dtype=bool)
    years = (days - pd.Timestamp(params.origin)).days.to_numpy() / 365.25
    weekly = np.array(params.weekly_profile) / np.mean(params.weekly_profile)
    wave = np.cos(2 * np.pi * (days.dayofyear.to_numpy() - params.yearly_peak_day) / 365.25)
    level = (
        params.orders_per_day
        * (1 + params.trend_per_year) ** years
        * weekly[days.dayofweek.to_numpy()]
        * (1 + params.yearly_amplitude * wave)
        * _holiday_factor(params, days.values.astype("datetime64[D]"))
    )
    promoted = _promotions(params, days[0].date(), len(days))
    lift = np.where(promoted, params.promo_lift, 1.0)
    return level[:, None] * shop.popularity[None, :] * lift, promoted


def _holiday_factor(params: SalesParams, days: np.ndarray) -> np.ndarray:
    years = days.astype("datetime64[Y]").astype(int) + 1970
    holiday = _holiday_days(params.holiday_country, int(years.min()), int(years.max()) + 1)
    before = np.zeros(days.size, dtype=bool)
    for ahead in range(1, params.holiday_lead_days + 1):
        before |= np.isin(days + ahead, holiday)
    factor = np.where(before, params.holiday_lead_lift, 1.0)
    return np.where(np.isin(days, holiday), params.holiday_lift, factor)


def _promotions(params: SalesParams, first: date, count: int) -> np.ndarray:
    """Which products are promoted on ``count`` days from ``first``.

    A promotion starts on a product-day with a fixed probability, drawn from that day's own
    generator, so a day's promotions do not depend on the window asked for.
    """
    shortest, longest = params.promo_days
    start_rate = -math.log1p(-params.promo_rate) / ((shortest + longest) / 2)
    span = count + longest - 1
    starts = np.empty((span, params.n_products), dtype=bool)
    lengths = np.empty((span, params.n_products), dtype=np.int64)
    for offset in range(span):
        rng = _rng(params, _PROMOTIONS, first.toordinal() - longest + 1 + offset)
        starts[offset] = rng.random(params.n_products) < start_rate
        lengths[offset] = rng.integers(shortest, longest + 1, params.n_products)
    active = np.zeros_like(starts)
    for age in range(longest):
        active[age:] |= starts[: span - age] & (lengths[: span - age] > age)
    return active[longest - 1 :]


def _noisy(rng: np.random.Generator, params: SalesParams, gross: np.ndarray) -> np.ndarray:
    """A day's expected orders per product times the day's gamma draw (the negative binomial's
    mixing): the first draw of the day's generator, so live and backfill share it."""
    if params.noise > 0:
        return gross * rng.gamma(1 / params.noise, params.noise, gross.size)
    return gross


def _draw_day(
    params: SalesParams, shop: _Shop, day: date, gross: np.ndarray, promoted: np.ndarray
) -> _Batch:
    """One day's orders: gamma-Poisson counts per product, spread over the day by hour."""
    rng = _rng(params, _DAY, day.toordinal())
    product = np.repeat(np.arange(gross.size), rng.poisson(_noisy(rng, params, gross)))
    count = product.size
    hour = _pick(rng, shop.hour_cdf, count)
    ts_ms = hour * _MS_PER_HOUR + rng.integers(0, _MS_PER_HOUR, count)
    in_time_order = np.argsort(ts_ms, kind="stable")
    midnight_ms = (day - date(1970, 1, 1)).days * _MS_PER_DAY
    counters = np.uint64(day.toordinal()) << np.uint64(32) | np.arange(count, dtype=np.uint64)
    prices = np.where(promoted, shop.promo_price, shop.base_price)
    product = product[in_time_order]
    return _draw_batch(
        rng, params, shop, counters, midnight_ms + ts_ms[in_time_order], product, prices[product]
    )


def _draw_batch(
    rng: np.random.Generator,
    params: SalesParams,
    shop: _Shop,
    counters: np.ndarray,
    ts_ms: np.ndarray,
    product: np.ndarray,
    unit_price: np.ndarray,
) -> _Batch:
    """Customers, channels, quantities and later changes for orders of known products."""
    count = product.size
    quantity = 1 + rng.poisson(shop.extra_units[product])
    amended = np.flatnonzero(rng.random(count) < params.amend_share)
    cancelled = np.flatnonzero(rng.random(count) < params.cancel_share)
    old = quantity[amended]
    step = np.where(old == 1, 1, 2 * rng.integers(0, 2, amended.size) - 1)
    amend_at = rng.random(amended.size)
    cancel_at = rng.random(cancelled.size)
    _, amend_pos, cancel_pos = np.intersect1d(amended, cancelled, return_indices=True)
    cancel_at[cancel_pos] = np.maximum(cancel_at[cancel_pos], amend_at[amend_pos])
    return _Batch(
        counters=counters,
        ts_ms=ts_ms,
        product=product,
        customer=_pick(rng, shop.customer_cdf, count),
        channel=_pick(rng, shop.channel_cdf, count),
        quantity=quantity,
        unit_price=unit_price,
        amended=amended,
        new_quantity=old + step,
        amend_at=amend_at,
        cancelled=cancelled,
        cancel_at=cancel_at,
    )


def _order_ids(shop: _Shop, counters: np.ndarray) -> np.ndarray:
    """``'o-'`` and 16 hex digits: a keyed bijection of the counters, so ids never repeat.

    Backfill counters are the day's ordinal and the order's rank in the day; live counters set
    the top bit and carry a random session number, so the two never meet.
    """
    z = counters.astype(np.uint64) + shop.id_key  # splitmix64's finaliser, a bijection
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    digits = z.astype(">u8").view(np.uint8).reshape(-1, 8)
    text = np.empty((z.size, 19), dtype=np.uint8)
    text[:, :2] = np.frombuffer(b"o-", dtype=np.uint8)
    text[:, 2:18:2] = _HEX_DIGITS[digits >> 4]
    text[:, 3:18:2] = _HEX_DIGITS[digits & 15]
    text[:, 18] = ord(" ")
    return np.array(text.tobytes().decode("ascii").split(), dtype=object)


def _put_frame(shop: _Shop, batch: _Batch, rows: slice) -> pd.DataFrame:
    """Full orders, columns in ``ORDER_FIELDS`` order."""
    product = batch.product[rows]
    columns = {
        "order_id": _order_ids(shop, batch.counters[rows]),
        "order_ts": pd.DatetimeIndex(
            batch.ts_ms[rows].astype("datetime64[ms]").astype("datetime64[ns]"), tz=UTC
        ),
        "customer_id": shop.customer_ids[batch.customer[rows]],
        "product_id": shop.product_ids[product],
        "product_name": shop.product_names[product],
        "category": shop.categories[product],
        "channel": shop.channels[batch.channel[rows]],
        "quantity": batch.quantity[rows],
        "unit_price": batch.unit_price[rows],
    }
    return pd.DataFrame({name: columns[name] for name in ORDER_FIELDS}, copy=False)
