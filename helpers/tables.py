"""Query results as people read them: money, counts and shares, and periods still running.

A frame from SQL prints revenue as ``3.011866e+06`` and a week that started on Monday beside
full ones, its growth a plunge. :func:`styled` gives the frame a pandas ``Styler`` that shows
each column in its kind's format, chosen by the column's name as the named queries spell it, and
marks the rows of a day or week that the lake's newest change falls in (:func:`partial`). The
frame's values are not changed: the Styler only formats them.

Examples
--------
>>> frame = pd.DataFrame({"ds": pd.to_datetime(["2026-12-06", "2026-12-07"]),
...                       "revenue": [3011866.5, 141068.9], "orders": [2217, 1364]})
>>> partial(frame, "ds", "day", pd.Timestamp("2026-12-07 10:20")).tolist()
[False, True]
>>> styled(frame, pd.Timestamp("2026-12-07 10:20")).data.note.tolist()
['', 'partial: to 2026-12-07 10:20 UTC']
"""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

MONEY = {"revenue", "previous_revenue", "unit_price", "price", "expected_revenue"}
COUNTS = {"orders", "units", "events", "rows", "quantity", "changes", "objects"}
SHARES = {"revenue_share", "share"}
CHANGES = {"growth"}
PERIODS = {"ds": "day", "week": "week"}  # columns holding the first day of a period
NOTE = "note"
PARTIAL_COLOR = "background-color: #fff4d6"

_LENGTH = {"day": pd.Timedelta(days=1), "week": pd.Timedelta(days=7)}


def as_of(freshness: pd.DataFrame) -> pd.Timestamp | None:
    """The newest change in the lake, from the ``data_freshness`` query; None when empty."""
    if freshness.empty:
        return None
    newest = pd.to_datetime(freshness["latest_event"]).max()
    return None if pd.isna(newest) else newest.tz_localize(None) if newest.tzinfo else newest


def partial(frame: pd.DataFrame, column: str, period: str, newest: pd.Timestamp) -> pd.Series:
    """Whether each row's ``period`` (``day`` or ``week``, starting at ``column``) was still
    running at ``newest``: the lake holds only part of it."""
    if period not in _LENGTH:
        raise ValueError(f"period must be one of {sorted(_LENGTH)}, got {period!r}")
    starts = pd.to_datetime(frame[column])
    return (starts <= newest) & (newest < starts + _LENGTH[period])


def styled(frame: pd.DataFrame, newest: pd.Timestamp | None = None) -> Styler:
    """``frame`` formatted by column kind; with ``newest``, the rows of a period that was still
    running then are shaded and noted (``partial: to <newest> UTC``)."""
    frame = frame.copy()
    period_column = next((name for name in frame if name in PERIODS), None)
    marked = pd.Series(False, index=frame.index)
    if newest is not None and period_column is not None:
        marked = partial(frame, period_column, PERIODS[period_column], newest)
        frame[NOTE] = marked.map({True: f"partial: to {newest:%Y-%m-%d %H:%M} UTC", False: ""})
    formats = {}
    for name in frame:
        if name in MONEY:
            formats[name] = "{:,.2f}"
        elif name in COUNTS:
            formats[name] = "{:,.0f}"
        elif name in SHARES:
            formats[name] = "{:.1%}"
        elif name in CHANGES:
            formats[name] = "{:+.1%}"
        elif name in PERIODS:
            formats[name] = lambda value: f"{pd.Timestamp(value):%Y-%m-%d}"
    styler = frame.style.format(formats, na_rep="–").hide(axis="index")
    return styler.apply(lambda row: [PARTIAL_COLOR if marked[row.name] else ""] * len(row), axis=1)
