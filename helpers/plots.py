"""Charts for the notebooks and the report, as matplotlib figures.

Figures are made with :class:`matplotlib.figure.Figure` directly, not pyplot: no backend is
switched (notebooks keep their inline charts, the report renders PNG headless) and no figure
is left open behind the caller's back. A notebook shows a returned figure as its cell's
result; :func:`to_png` encodes one for HTML.

Examples
--------
>>> figure = daily_revenue(platform.named_query("daily_revenue"))   # doctest: +SKIP
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateFormatter, AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from helpers import tables
from helpers.forecast.series import TOTAL

HISTORY_COLOR, FORECAST_COLOR = "#555555", "#1f77b4"


def daily_revenue(frame: pd.DataFrame, as_of: pd.Timestamp | None = None) -> Figure:
    """Revenue per day with its 7-day mean, from the ``daily_revenue`` query. With ``as_of``
    (the lake's newest change), a day still running then is drawn apart, as a hollow point,
    and left out of the mean: its drop is the hours not yet lived, not a fall in sales."""
    figure, axes = _figure(height=3.2)
    days = pd.to_datetime(frame["ds"])
    running = tables.partial(frame, "ds", "day", as_of) if as_of is not None else days.isna()
    whole = frame[~running.to_numpy()]
    axes.plot(days[~running], whole["revenue"], color=HISTORY_COLOR, linewidth=0.8, label="revenue")
    axes.plot(
        days[~running],
        whole["revenue"].rolling(7, min_periods=1).mean(),
        color=FORECAST_COLOR,
        linewidth=2,
        label="7-day mean",
    )
    if running.any():
        axes.plot(
            days[running],
            frame.loc[running.to_numpy(), "revenue"],
            linestyle="none",
            marker="o",
            markerfacecolor="none",
            color=HISTORY_COLOR,
            label=f"partial day (to {as_of:%H:%M} UTC)",
        )
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    return _finish(figure, axes, "Daily revenue", "revenue")


def top_products(frame: pd.DataFrame, top: int = 10) -> Figure:
    """Horizontal bars of revenue for the leading products, from the ``top_products`` query."""
    leaders = frame.head(top).iloc[::-1]
    figure, axes = _figure(height=0.35 * len(leaders) + 1)
    labels = leaders["product_name"].astype(str) + " (" + leaders["product_id"].astype(str) + ")"
    axes.barh(labels, leaders["revenue"], color=FORECAST_COLOR)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_title(f"Top {len(leaders)} products by revenue", fontsize=10, loc="left")
    axes.set_xlabel("revenue")
    axes.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    return figure


def forecast(
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    unique_id: str | None,
    measure: str,
    history_days: int = 120,
    title: str | None = None,
    interval: float | None = None,
    size: tuple[float, float] = (9, 2.8),
) -> Figure:
    """History and forecast of one series, with its interval; ``None`` for the total.

    ``history`` is long format (``unique_id, ds, y``); ``forecasts`` holds ``yhat``,
    ``yhat_lower``/``yhat_upper`` and ``model``. For ``None`` the history is summed over its
    series, and the forecast is the ``total`` series' (with its interval) when the run forecast
    the total, else the sum of the series without an interval (intervals do not add up).
    ``title`` replaces the series id and model; ``interval`` (0.9 for 90 %) names the shaded
    band in the legend; ``size`` is in inches.
    """
    figure = Figure(figsize=size)
    axes = figure.add_subplot()
    _draw_forecast(axes, history, forecasts, unique_id, measure, history_days, title, interval)
    figure.tight_layout()
    return figure


def forecasts_of(
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    unique_ids: list[str],
    measure: str,
    history_days: int = 120,
) -> Figure:
    """:func:`forecast` for several series, one row each, in one figure."""
    figure = Figure(figsize=(9, 2.4 * max(1, len(unique_ids))))
    for row, unique_id in enumerate(unique_ids, start=1):
        axes = figure.add_subplot(len(unique_ids), 1, row)
        _draw_forecast(axes, history, forecasts, unique_id, measure, history_days)
    figure.tight_layout()
    return figure


def _draw_forecast(
    axes,
    history,
    forecasts,
    unique_id,
    measure: str,
    history_days: int,
    title: str | None = None,
    interval: float | None = None,
) -> None:
    if unique_id is None and TOTAL not in set(forecasts["unique_id"]):
        past = history.groupby("ds", as_index=False)["y"].sum()
        future = forecasts.groupby("ds", as_index=False)["yhat"].sum()
        default_title = "all series"
    elif unique_id is None:
        past = history.groupby("ds", as_index=False)["y"].sum()
        future = forecasts[forecasts["unique_id"] == TOTAL]
        default_title = f"{TOTAL} ({future['model'].iloc[0]})"
    else:
        past = history[history["unique_id"] == unique_id]
        future = forecasts[forecasts["unique_id"] == unique_id]
        default_title = (
            f"{unique_id} ({future['model'].iloc[0]})" if len(future) else str(unique_id)
        )
    past_days = pd.to_datetime(past["ds"])
    past = past[past_days >= past_days.max() - pd.Timedelta(days=history_days)]
    axes.plot(
        pd.to_datetime(past["ds"]), past["y"], color=HISTORY_COLOR, linewidth=1, label="history"
    )
    future_days = pd.to_datetime(future["ds"])
    axes.plot(future_days, future["yhat"], color=FORECAST_COLOR, linewidth=2, label="forecast")
    if "yhat_lower" in future:
        axes.fill_between(
            future_days,
            future["yhat_lower"],
            future["yhat_upper"],
            color=FORECAST_COLOR,
            alpha=0.2,
            label=f"{interval:.0%} range" if interval else "interval",
        )
    _label(axes, title if title is not None else default_title, measure)


def pipeline_timeline(timeline: pd.DataFrame) -> Figure:
    """Changes each stage has taken in since a live session began (``workbench.stream_live``'s
    timeline): the gap between the table and the lake is the pipeline's lag."""
    figure, axes = _figure(height=3)
    seconds = timeline["elapsed_s"]
    for stage in ("table", "stream", "lake", "failed"):
        if stage in timeline:
            reached = timeline[stage] - timeline[stage].iloc[0]
            axes.plot(seconds, reached, linewidth=1.5, label=stage, drawstyle="steps-post")
    axes.set_xlabel("seconds into the session")
    return _finish(figure, axes, "Changes reached per stage since the session began", "changes")


def live_view(snapshots: pd.DataFrame, columns: int = 3) -> Figure:
    """Each series' units sold so far (the snapshots of ``helpers.live.series_frame`` taken
    while orders stream) against the forecast's band so far: the day's 90 % interval times
    the cumulative intraday profile, over the hours of the day around the snapshots. The
    total comes first, then the products; a series without an expectation shows its sales."""
    from helpers.realtime import profile_share

    names = snapshots.drop_duplicates("series_id")[["series_id", "name"]]
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(9, 2.3 * rows))
    first, last = snapshots["hour"].min(), snapshots["hour"].max()
    margin = max(0.25, (last - first) * 0.15)
    hours = np.linspace(max(0.0, first - margin), min(24.0, last + margin), 97)
    for place, (series_id, name) in enumerate(names.itertuples(index=False), start=1):
        axes = figure.add_subplot(rows, columns, place)
        trace = snapshots[snapshots["series_id"] == series_id]
        expectation = trace.iloc[-1]
        if isinstance(expectation["profile"], list):  # None (NaN once concatenated) without one
            shares = np.array([profile_share(expectation["profile"], h) for h in hours])
            axes.fill_between(
                hours,
                shares * expectation["expected_day_lo_90"],
                shares * expectation["expected_day_hi_90"],
                color=FORECAST_COLOR,
                alpha=0.2,
                label="90 % band",
            )
            axes.plot(
                hours,
                shares * expectation["expected_day"],
                color=FORECAST_COLOR,
                linewidth=1,
                label="expected",
            )
        axes.plot(
            trace["hour"],
            trace["actual"],
            color=HISTORY_COLOR,
            marker=".",
            linewidth=1.5,
            label="sold",
        )
        axes.set_title(
            name if name == series_id else f"{name} ({series_id})", fontsize=9, loc="left"
        )
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        axes.set_xlabel("hour of the day (UTC)", fontsize=7)
        if place == 1:
            axes.legend(loc="upper left", fontsize=7)
    figure.suptitle(
        f"Units sold today against the forecast, {snapshots['hour'].iloc[-1]:05.2f} h", fontsize=10
    )
    figure.tight_layout()
    return figure


def to_png(figure: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _show_in_notebooks() -> None:
    """Render figures as PNG in IPython: a Figure made without pyplot has no display of its
    own, so a notebook cell returning one would print only its size."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebooks' dependencies
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, to_png)


_show_in_notebooks()


def _figure(height: float) -> tuple[Figure, object]:
    figure = Figure(figsize=(9, height))
    return figure, figure.add_subplot()


def _finish(figure: Figure, axes, title: str, ylabel: str) -> Figure:
    _label(axes, title, ylabel)
    figure.tight_layout()
    return figure


def _label(axes, title: str, ylabel: str) -> None:
    if isinstance(axes.xaxis.get_major_formatter(), AutoDateFormatter):  # a time axis
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_title(title, fontsize=10, loc="left")
    axes.set_ylabel(ylabel)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
