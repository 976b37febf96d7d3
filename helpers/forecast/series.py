"""Series in long format (``unique_id, ds, y``): from ``daily_sales``, across levels, by frequency.

:func:`series_from_daily_sales` gives one level (total, category or product);
:func:`hierarchy_from_daily_sales` gives every level down to one, with the summing matrix that
reconciliation needs. :func:`season_length_of` knows every pandas alias of daily, business-day,
weekly, monthly and quarterly data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

TOTAL = "total"  # the id of the whole shop's series
PROMOTIONS_TABLE = "promotions"  # the lake table of planned promotions: ds, product_id, category
LEVELS = {"total": None, "category": "category", "product": "product_id"}
MEASURES = ("units", "revenue", "orders")

# Offsets by the cycle their data repeats on: a week of days, a year of weeks, months, quarters.
_SEASONS = (
    (offsets.BusinessDay, 5, 261),
    (offsets.Day, 7, 365.25),
    (offsets.Week, 52, 365.25 / 7),
    (
        (
            offsets.MonthBegin,
            offsets.MonthEnd,
            offsets.BusinessMonthBegin,
            offsets.BusinessMonthEnd,
        ),
        12,
        12,
    ),
    ((offsets.QuarterBegin, offsets.QuarterEnd, offsets.BQuarterBegin, offsets.BQuarterEnd), 4, 4),
)


@dataclass(frozen=True)
class Frequency:
    """A pandas frequency with its season length and its points per year.

    Examples
    --------
    >>> Frequency.of("W-SUN").season_length, Frequency.of("QS").season_length
    (52, 4)
    """

    alias: str
    season_length: int
    per_year: float
    daily: bool

    @classmethod
    def of(cls, freq: str) -> Frequency:
        try:
            offset = to_offset(freq)
        except ValueError:
            offset = None
        for types, season_length, per_year in _SEASONS:
            if offset is not None and isinstance(offset, types) and offset.n == 1:
                daily = isinstance(offset, offsets.Day | offsets.BusinessDay)
                return cls(freq, season_length, per_year, daily)
        raise ValueError(
            f"freq {freq!r} is not one frequency of daily, business-day, weekly, monthly or "
            f"quarterly data; use a pandas alias such as 'D', 'B', 'W-SUN', 'MS', 'ME', 'QS' "
            f"or 'QE-DEC'"
        )

    def future(self, last: pd.Timestamp, horizon: int) -> pd.DatetimeIndex:
        """The ``horizon`` dates after ``last``."""
        return pd.date_range(last, periods=horizon + 1, freq=self.alias)[1:]


def season_length_of(freq: str) -> int:
    """Points in one seasonal cycle: 7 for daily data, 5 business days, 52 weeks, 12, 4.

    Examples
    --------
    >>> season_length_of("D"), season_length_of("W-MON"), season_length_of("MS")
    (7, 52, 12)
    >>> season_length_of("QE-DEC"), season_length_of("B")
    (4, 5)
    """
    return Frequency.of(freq).season_length


def complete_daily_sales(platform) -> pd.DataFrame:
    """The ``daily_sales`` view without the current UTC day: it is still filling up, and a
    partial day would read as a slump to the models and the charts."""
    return platform.query("SELECT * FROM daily_sales WHERE ds < current_date")


def series_from_daily_sales(
    daily: pd.DataFrame, level: str = "product", measure: str = "units"
) -> pd.DataFrame:
    """Long-format series ``unique_id, ds, y`` from a ``daily_sales`` frame, gaps filled with 0.

    Parameters
    ----------
    daily : pandas.DataFrame
        Rows of the ``daily_sales`` view: ``ds, product_id, product_name, category, units,
        revenue, orders``.
    level : {"total", "category", "product"}
        One series for the whole shop (``unique_id`` ``"total"``), per category (the category
        name) or per product (the ``product_id``).
    measure : {"units", "revenue", "orders"}
        The column summed into ``y``.

    Returns
    -------
    pandas.DataFrame
        Every series spans every day from the first to the last day in ``daily``; days without
        sales are rows with ``y`` 0. Sorted by ``unique_id`` then ``ds``.

    Examples
    --------
    >>> daily = pd.DataFrame({"ds": ["2026-03-01", "2026-03-03"], "product_id": "p-1",
    ...                       "product_name": "Lamp", "category": "home", "units": [2, 3],
    ...                       "revenue": [20.0, 30.0], "orders": [1, 1]})
    >>> series_from_daily_sales(daily, level="total").y.tolist()
    [2.0, 0.0, 3.0]
    """
    _check_level(level, measure)
    frame = _days(daily)
    group_column = LEVELS[level]
    frame["unique_id"] = TOTAL if group_column is None else frame[group_column].astype(str)
    sums = frame.groupby(["unique_id", "ds"])[measure].sum().astype(float)
    days = pd.date_range(frame["ds"].min(), frame["ds"].max(), freq="D", name="ds")
    full_index = pd.MultiIndex.from_product([sums.index.unique("unique_id"), days])
    return sums.reindex(full_index, fill_value=0.0).rename("y").reset_index()


@dataclass
class Hierarchy:
    """Series at every level down to one, and how the bottom level sums into the others.

    ``series`` is long format with a ``level`` column; ``summing`` has one row per series and
    one column per bottom series (1 where the bottom series is part of it), ordered as
    ``levels``' ids; ``levels`` maps each level to its ids, top first.
    """

    series: pd.DataFrame
    summing: pd.DataFrame
    levels: dict[str, list[str]]

    @property
    def level_of(self) -> dict[str, str]:
        return {uid: level for level, ids in self.levels.items() for uid in ids}


def hierarchy_from_daily_sales(
    daily: pd.DataFrame, level: str = "product", measure: str = "units"
) -> Hierarchy:
    """The total, and each level down to ``level``, as one :class:`Hierarchy`.

    Ids are the plain names of each level (``"total"``, the category, the ``product_id``); a
    name that stands at two levels is an error, since the ids would not say which is meant.

    Examples
    --------
    >>> daily = pd.DataFrame({"ds": "2026-03-01", "product_id": ["p-1", "p-2"],
    ...                       "product_name": ["Lamp", "Mug"], "category": "home",
    ...                       "units": [2, 3], "revenue": [20.0, 6.0], "orders": [1, 1]})
    >>> tree = hierarchy_from_daily_sales(daily)
    >>> tree.levels
    {'total': ['total'], 'category': ['home'], 'product': ['p-1', 'p-2']}
    >>> tree.summing.to_numpy().tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    """
    _check_level(level, measure)
    names = list(LEVELS)[: list(LEVELS).index(level) + 1]
    frames = [series_from_daily_sales(daily, name, measure).assign(level=name) for name in names]
    labels = pd.DataFrame(
        {
            name: "total" if column is None else daily[column].astype(str)
            for name, column in LEVELS.items()
            if name in names
        },
        index=daily.index,
    ).drop_duplicates(level)
    levels = {
        name: sorted(frame["unique_id"].unique()) for name, frame in zip(names, frames, strict=True)
    }
    seen: dict[str, str] = {}
    for name, ids in levels.items():
        for uid in ids:
            if uid in seen:
                raise ValueError(
                    f"{uid!r} names a {seen[uid]} and a {name}; give categories and products "
                    f"distinct names to forecast them together"
                )
            seen[uid] = name
    bottom = levels[level]
    summing = (
        pd.concat(
            [
                pd.crosstab(labels[name], labels[level]).reindex(index=levels[name], columns=bottom)
                for name in names
            ]
        )
        .fillna(0)
        .clip(upper=1)
        .astype(float)
    )
    summing.index.name = summing.columns.name = None
    return Hierarchy(pd.concat(frames, ignore_index=True), summing, levels)


def promotion_shares(daily: pd.DataFrame, calendar: pd.DataFrame, days) -> pd.DataFrame:
    """The share of each series' products on promotion per day: a known future regressor.

    One row per day of ``days``, one column per product (0 or 1), category (the share of its
    products promoted) and the total (the share of all products), for the products in
    ``daily``; ``calendar`` holds the promoted ``ds, product_id`` pairs.

    Examples
    --------
    >>> daily = pd.DataFrame({"product_id": ["p-1", "p-2"], "category": ["home", "home"]})
    >>> calendar = pd.DataFrame({"ds": pd.to_datetime(["2026-03-02"]), "product_id": ["p-1"]})
    >>> promotion_shares(daily, calendar, pd.date_range("2026-03-01", periods=2))["home"].tolist()
    [0.0, 0.5]
    """
    products = daily[["product_id", "category"]].drop_duplicates("product_id")
    products = products.assign(product_id=products["product_id"].astype(str))
    days = pd.DatetimeIndex(days, name="ds")
    promoted = calendar.assign(
        ds=pd.to_datetime(calendar["ds"]).dt.tz_localize(None).dt.normalize(), value=1.0
    ).drop_duplicates(["ds", "product_id"])
    by_product = (
        promoted.pivot_table(index="ds", columns="product_id", values="value", aggfunc="max")
        .reindex(index=days, columns=products["product_id"])
        .fillna(0.0)
    )
    categories = (
        by_product.T.groupby(products.set_index("product_id")["category"].astype(str)).mean().T
    )
    total = by_product.mean(axis=1).rename(TOTAL)
    return pd.concat([by_product, categories, total], axis=1)


def _check_level(level: str, measure: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")


def _days(daily: pd.DataFrame) -> pd.DataFrame:
    """``daily`` with ``ds`` as naive UTC midnights."""
    return daily.assign(ds=pd.to_datetime(daily["ds"]).dt.tz_localize(None).dt.normalize())


def split_series(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``(unique_id, series sorted by ds)`` pairs, ``ds`` as datetime."""
    frame = df.assign(ds=pd.to_datetime(df["ds"])).sort_values(["unique_id", "ds"])
    return list(frame.groupby("unique_id", sort=True))


def nonnegative(y: np.ndarray) -> bool:
    """Whether a series is a count or an amount that cannot fall below zero."""
    return bool(len(y)) and float(np.min(y)) >= 0
