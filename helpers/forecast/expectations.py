"""The day's expectation per series: what the real-time consumer compares today's sales with.

Each forecast run turns its reconciled daily forecasts (every level it forecast) into one row
per series and forecast day, with the fields of :data:`helpers.realtime.EXPECTATION_FIELDS`:
``series_id`` (``"total"``, ``"category#<name>"``, ``"product#<product_id>"``), ``day``
(``YYYY-MM-DD``, UTC), ``level``, ``name``, the day's ``units`` with 80 % and 90 % intervals,
its ``revenue`` with a 90 % interval, the intraday ``profile`` (JSON list of 24 cumulative
shares of the day's units by the end of each UTC hour), ``run_id`` and ``expires_at`` (epoch
seconds, the day plus :data:`TTL_DAYS`: DynamoDB's TTL attribute on aws).

How the figures are made, and what they leave out:

- The run forecasts one measure (units, revenue or orders). The other two come from each
  series' own ratio over its last :data:`PRICE_DAYS` days of ``daily_sales`` (revenue per
  unit, units per order...), taken from its parent (category, then total) when the series sold
  nothing in that window. The ratio is treated as known: the derived intervals are the
  forecast's intervals times the ratio, so they leave out price and mix uncertainty, and a
  promotion on the day forecast (a lower price) is not in the revenue.
- Every figure is clipped at 0, and the intervals are made nested (the 90 % one holds the 80 %
  one, which holds the expectation), which the consumer's bands rely on.
- A run whose main interval is not 90 % (``interval`` other than 0.9) gets its 90 % bounds from
  its 80 % ones, widened by the ratio of the normal quantiles (1.645 / 1.282).
- The intraday profile is learned by SQL (``helpers/queries/hourly_profile.sql``: units per
  product and hour of the shop's local clock, the ``timezone`` setting, from
  ``orders_current``, its weekdays and weekends apart) over the last :data:`PROFILE_WEEKS`
  weeks. A series' hourly shares are shrunk toward its parent's:
  ``(units + k * parent_share) / (units_of_the_day_type + k)`` with ``k`` =
  :data:`PRIOR_UNITS`, products toward their category, categories toward the total, the
  total's weekday or weekend profile toward its all-days one, and that toward a flat day. A
  series with a few units keeps its parent's shape; one with thousands keeps its own; weekends
  part from weekdays only as far as their data shows a difference.
- Each UTC day's profile is made from the local one with that day's own UTC offsets
  (:func:`local_hour_weights`): the day after a daylight-saving switch gets the shifted
  shape, the day of the switch the 23 or 25 local hours it holds, a half-hour zone halves of
  two local hours in each UTC hour (the local shares spread evenly within their hour, as the
  consumer reads the profile); each local hour takes the shares of its own local day's type
  (in New York, the Sunday evening that begins Monday's UTC day is a weekend's). In UTC every
  row is the learned profile of its day type, as before the setting.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import pandas as pd

from helpers.config import shop_zone
from helpers.forecast.series import LEVELS, TOTAL
from helpers.realtime import EXPECTATION_FIELDS

EXPECTATIONS_TABLE = "forecast_expectations"
"""The lake table (partition ``run_id``) that holds each run's expectations, for SQL."""
PROFILE_QUERY = "hourly_profile"
PROFILE_WEEKS = 8
"""Weeks of orders before the first forecast day that the intraday profiles are learned from."""
PRICE_DAYS = 28
"""Days of ``daily_sales`` that each series' revenue per unit (and units per order) come from."""
PRIOR_UNITS = 500.0
"""How many units a parent's hourly shares weigh when a series' shares are shrunk toward them."""
TTL_DAYS = 7
"""An expectation expires this many days after its day (DynamoDB TTL on aws)."""
HOURS = 24
_MINUTES_PER_DAY = 1440
_MEASURE_COLUMNS = ("units", "revenue", "orders")
_Z_90_OVER_80 = NormalDist().inv_cdf(0.95) / NormalDist().inv_cdf(0.90)


def series_id(level: str, unique_id: str) -> str:
    """The real-time id of a forecast series: its ``unique_id`` prefixed by its level.

    Examples
    --------
    >>> series_id("total", "total"), series_id("category", "home"), series_id("product", "p-0001")
    ('total', 'category#home', 'product#p-0001')
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")
    return TOTAL if level == "total" else f"{level}#{unique_id}"


def hourly_shares(
    hourly: pd.DataFrame, products: pd.DataFrame, prior_units: float = PRIOR_UNITS
) -> pd.DataFrame:
    """Each series' share of a day's units per local hour, on weekdays and on weekends.

    Parameters
    ----------
    hourly : pandas.DataFrame
        Rows of the ``hourly_profile`` query: ``product_id, category, weekend, hour, units``.
    products : pandas.DataFrame
        ``product_id, category`` of every product to give a profile, sold in the window or not.
    prior_units : float
        How many units the parent's shares weigh (see the module's docstring).

    Returns
    -------
    pandas.DataFrame
        Index ``(series_id, weekend)``, columns the hours 0 to 23; each row sums to 1. The
        total, every category of ``products`` and every product.

    Examples
    --------
    >>> hourly = pd.DataFrame({"product_id": ["p-1", "p-1", "p-2"], "category": "home",
    ...                        "weekend": False, "hour": [9, 10, 3], "units": [3000, 1000, 4]})
    >>> shares = hourly_shares(hourly, hourly[["product_id", "category"]])
    >>> int(shares.loc[("product#p-2", False)].idxmax())  # 4 units: the category's shape
    9
    """
    if prior_units <= 0:
        raise ValueError(f"prior_units must be above 0, got {prior_units!r}")
    products = products.drop_duplicates("product_id").astype({"product_id": str, "category": str})
    counts = (
        hourly.astype({"product_id": str, "weekend": bool})
        .pivot_table(index=["product_id", "weekend"], columns="hour", values="units", aggfunc="sum")
        .reindex(
            index=pd.MultiIndex.from_product([products["product_id"], [False, True]]),
            columns=range(HOURS),
        )
        .fillna(0.0)
        .to_numpy(dtype=float)
        .reshape(len(products), 2, HOURS)
    )
    categories, category_of = np.unique(products["category"].to_numpy(), return_inverse=True)
    by_category = np.zeros((len(categories), 2, HOURS))
    np.add.at(by_category, category_of, counts)
    by_day_type = by_category.sum(axis=0)

    def shrink(units: np.ndarray, parent: np.ndarray) -> np.ndarray:
        return (units + prior_units * parent) / (units.sum(axis=-1, keepdims=True) + prior_units)

    all_days = shrink(by_day_type.sum(axis=0), np.full(HOURS, 1 / HOURS))
    total = shrink(by_day_type, all_days)
    category = shrink(by_category, total)
    product = shrink(counts, category[category_of])
    ids = [
        series_id("total", TOTAL),
        *(series_id("category", name) for name in categories),
        *(series_id("product", uid) for uid in products["product_id"]),
    ]
    stacked = np.concatenate([total[None], category, product]).reshape(-1, HOURS)
    index = pd.MultiIndex.from_product([ids, [False, True]], names=["series_id", "weekend"])
    return pd.DataFrame(stacked, index=index, columns=range(HOURS))


def cumulative_profile(shares: np.ndarray) -> list[float]:
    """Hourly shares as the contract's profile: the cumulative share by the end of each hour,
    rounded to 6 decimals, non-decreasing, the last exactly 1.

    Examples
    --------
    >>> cumulative_profile(np.full(24, 1 / 24))[:2], cumulative_profile(np.full(24, 1 / 24))[-1]
    ([0.041667, 0.083333], 1.0)
    """
    cumulative = np.cumsum(np.clip(np.asarray(shares, dtype=float), 0, None))
    if cumulative.size != HOURS or not cumulative[-1] > 0:
        raise ValueError(f"a profile needs {HOURS} non-negative shares, not all 0; got {shares!r}")
    rounded = np.round(cumulative / cumulative[-1], 6)
    rounded[-1] = 1.0
    return rounded.tolist()


def day_expectations(
    forecasts: pd.DataFrame,
    daily: pd.DataFrame,
    shares: pd.DataFrame,
    run_id: str,
    measure: str = "units",
    interval: float = 0.9,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """One expectation row per series and forecast day, the fields of the contract in order.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        A run's reconciled forecasts: ``unique_id, ds, level, yhat, yhat_lower, yhat_upper,
        yhat_lower_80, yhat_upper_80`` (the main interval at ``interval``).
    daily : pandas.DataFrame
        The ``daily_sales`` rows the run forecast from: names, categories, and the recent
        ratios between units, revenue and orders.
    shares : pandas.DataFrame
        :func:`hourly_shares` of the series, by hour of the shop's clock.
    run_id, measure, interval : str, str, float
        The run, the measure it forecast, and the width of its main interval.
    timezone : str
        The shop's time zone (an IANA name): each UTC day's profile is made from ``shares``
        with that day's offsets (:func:`utc_profiles`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`helpers.realtime.EXPECTATION_FIELDS`; ``profile`` as JSON text.

    Examples
    --------
    >>> rows = day_expectations(run.forecasts, daily, shares, run.run_id)  # doctest: +SKIP
    """
    if measure not in _MEASURE_COLUMNS:
        raise ValueError(f"measure must be one of {list(_MEASURE_COLUMNS)}, got {measure!r}")
    days = pd.to_datetime(forecasts["ds"]).dt.tz_localize(None).dt.normalize()
    ids = [
        series_id(level, uid)
        for level, uid in zip(forecasts["level"], forecasts["unique_id"].astype(str), strict=True)
    ]
    ratios = _ratios(daily, measure).reindex(ids)
    if ratios.isna().any(axis=None):
        missing = sorted(set(ratios.index[ratios.isna().any(axis=1)]))
        raise ValueError(f"no daily sales behind the forecast series {missing[:5]}")
    mean = forecasts["yhat"].to_numpy(dtype=float)
    lo_90, hi_90 = _bounds_90(forecasts, interval)
    # nested and never below 0: lo_90 <= lo_80 <= mean <= hi_80 <= hi_90
    mean = np.clip(mean, 0, None)
    lo_80 = np.clip(np.minimum(forecasts["yhat_lower_80"].to_numpy(dtype=float), mean), 0, None)
    hi_80 = np.maximum(forecasts["yhat_upper_80"].to_numpy(dtype=float), mean)
    lo_90 = np.clip(np.minimum(lo_90, lo_80), 0, None)
    hi_90 = np.maximum(hi_90, hi_80)
    to_units, to_revenue = ratios["units"].to_numpy(), ratios["revenue"].to_numpy()
    day_keys = days.dt.strftime("%Y-%m-%d").to_numpy()
    profiles = utc_profiles(shares, sorted(set(day_keys)), timezone)
    midnight = (days - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    frame = pd.DataFrame(
        {
            "series_id": ids,
            "day": day_keys,
            "level": forecasts["level"].to_numpy(),
            "name": _names(daily).reindex(ids).to_numpy(),
            "units": mean * to_units,
            "units_lo_80": lo_80 * to_units,
            "units_hi_80": hi_80 * to_units,
            "units_lo_90": lo_90 * to_units,
            "units_hi_90": hi_90 * to_units,
            "revenue": mean * to_revenue,
            "revenue_lo_90": lo_90 * to_revenue,
            "revenue_hi_90": hi_90 * to_revenue,
            "profile": [profiles[key] for key in zip(ids, day_keys, strict=True)],
            "run_id": run_id,
            "expires_at": (midnight + int(timedelta(days=TTL_DAYS).total_seconds())).to_numpy(),
        }
    )
    return frame[list(EXPECTATION_FIELDS)].sort_values(["series_id", "day"], ignore_index=True)


def expectations_of_run(
    platform,
    forecasts: pd.DataFrame,
    daily: pd.DataFrame,
    run_id: str,
    measure: str,
    interval: float,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """A run's expectations: the hourly profiles on the shop's clock (``timezone``) learned by
    SQL from the :data:`PROFILE_WEEKS` weeks of UTC days before the first forecast day, then
    :func:`day_expectations`."""
    first = pd.to_datetime(forecasts["ds"]).min().normalize()
    window = [f"{first - pd.Timedelta(weeks=PROFILE_WEEKS):%Y-%m-%d}", f"{first:%Y-%m-%d}"]
    hourly = platform.named_query(PROFILE_QUERY, params=[timezone, *window])
    shares = hourly_shares(hourly, daily[["product_id", "category"]])
    return day_expectations(forecasts, daily, shares, run_id, measure, interval, timezone)


@lru_cache(maxsize=1024)
def local_hour_weights(day: str, timezone: str) -> np.ndarray:
    """How the shop's clock fills UTC day ``day``: ``weights[weekend, local_hour, utc_hour]`` is
    the part of an hour (minutes / 60) that UTC hour spends in that local hour on a local
    weekday (``weekend`` 0) or weekend day (1), from the day's own offsets. Read only (cached).

    Examples
    --------
    >>> weights = local_hour_weights("2013-03-11", "America/New_York")  # a Monday, UTC-4
    >>> float(weights[0, 8, 12]), float(weights[1, 23, 3])  # 08:00 Monday; Sunday 23:00
    (1.0, 1.0)
    >>> float(local_hour_weights("2013-03-11", "Asia/Kolkata")[0, 5, 0])  # 05:30 to 06:00
    0.5
    """
    minutes = pd.date_range(day, periods=_MINUTES_PER_DAY, freq="min", tz="UTC")
    local = minutes.tz_convert(shop_zone(timezone))
    counts = np.zeros((2, HOURS, HOURS), dtype=np.int64)
    weekend = (local.dayofweek >= 5).astype(int)
    np.add.at(counts, (weekend, local.hour, minutes.hour), 1)
    weights = counts / 60
    weights.flags.writeable = False
    return weights


def utc_profiles(
    shares: pd.DataFrame, days: list[str], timezone: str
) -> dict[tuple[str, str], str]:
    """Each series' profile (JSON, :func:`cumulative_profile`) for each UTC day of ``days``,
    from its local-hour ``shares`` (:func:`hourly_shares`) through :func:`local_hour_weights`:
    ``{(series_id, day): profile}``. Days whose local hours match share their profiles."""
    ids = shares.index.get_level_values("series_id").unique()
    by_day_type = (
        shares.reindex(pd.MultiIndex.from_product([ids, [False, True]]))
        .to_numpy(dtype=float)
        .reshape(len(ids), 2, HOURS)
    )
    made: dict[bytes, list[str]] = {}
    profiles = {}
    for day in days:
        weights = local_hour_weights(day, timezone)
        key = weights.tobytes()
        if key not in made:
            utc = np.einsum("swh,whu->su", by_day_type, weights)
            made[key] = [json.dumps(cumulative_profile(row)) for row in utc]
        profiles.update(zip([(uid, day) for uid in ids], made[key], strict=True))
    return profiles


def _bounds_90(forecasts: pd.DataFrame, interval: float) -> tuple[np.ndarray, np.ndarray]:
    """The 90 % bounds: the main interval when it is 90 %, else the 80 % one widened by the
    ratio of the normal quantiles, on each side apart."""
    if np.isclose(interval, 0.9):
        return (
            forecasts["yhat_lower"].to_numpy(dtype=float),
            forecasts["yhat_upper"].to_numpy(dtype=float),
        )
    mean = forecasts["yhat"].to_numpy(dtype=float)
    below = mean - forecasts["yhat_lower_80"].to_numpy(dtype=float)
    above = forecasts["yhat_upper_80"].to_numpy(dtype=float) - mean
    return mean - _Z_90_OVER_80 * below, mean + _Z_90_OVER_80 * above


def _recent(daily: pd.DataFrame) -> pd.DataFrame:
    days = pd.to_datetime(daily["ds"]).dt.tz_localize(None).dt.normalize()
    return daily[days > days.max() - pd.Timedelta(days=PRICE_DAYS)]


def _ratios(daily: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Units and revenue per unit of ``measure``, per series id, over the recent days; a series
    that sold nothing then takes its category's, a category the total's."""
    products = daily.drop_duplicates("product_id").astype({"product_id": str, "category": str})
    category_ids = [series_id("category", name) for name in products["category"]]
    parent = pd.Series(
        [TOTAL] * products["category"].nunique() + category_ids,
        index=[
            *(series_id("category", name) for name in products["category"].unique()),
            *(series_id("product", uid) for uid in products["product_id"]),
        ],
    )
    recent = _recent(daily).astype({"product_id": str, "category": str})
    columns = list(_MEASURE_COLUMNS)
    sums = pd.concat(
        [
            recent[columns].sum().to_frame(TOTAL).T,
            recent.groupby("category")[columns].sum().rename(index=lambda c: f"category#{c}"),
            recent.groupby("product_id")[columns].sum().rename(index=lambda p: f"product#{p}"),
        ]
    ).reindex([TOTAL, *parent.index])
    ratios = sums[["units", "revenue"]].div(sums[measure].where(sums[measure] > 0), axis=0)
    ratios.loc[TOTAL] = ratios.loc[TOTAL].fillna(
        {"units": 1.0 if measure == "units" else 0.0, "revenue": 0.0}
    )
    for prefix in ("category#", "product#"):  # top down: each level fills from the one above
        ids = parent.index[parent.index.str.startswith(prefix)]
        ratios.loc[ids] = ratios.loc[ids].fillna(ratios.loc[parent[ids]].set_axis(ids))
    return ratios


def _names(daily: pd.DataFrame) -> pd.Series:
    """Display names by series id: the latest product name, the category, ``"total"``."""
    latest = daily.sort_values("ds").drop_duplicates("product_id", keep="last")
    products = pd.Series(
        latest["product_name"].astype(str).to_numpy(),
        index=[series_id("product", uid) for uid in latest["product_id"].astype(str)],
    )
    names = sorted(daily["category"].astype(str).unique())
    categories = pd.Series(names, index=[series_id("category", name) for name in names])
    return pd.concat([pd.Series({TOTAL: TOTAL}), categories, products])
