"""Today's sales against the forecast while orders stream: the live view of ``06_live`` and
``salescast watch``.

Both read the real-time consumer's state (its running totals and the forecast run's
expectations, :mod:`helpers.realtime`) through one frame builder, :func:`series_frame`: per
series (the total and the top products by the day's expected units), the units sold so far,
the units expected so far with the 90 % band, and the end-of-day nowcast with its 90 %
interval. The band so far is the day's 90 % interval times the cumulative intraday profile
``F(t)`` (``units_lo_90 * F(t)`` to ``units_hi_90 * F(t)``): what the forecast says of the day
scaled to the hours lived, not the consumer's alert band, which judges recent orders (see
:mod:`helpers.realtime`). "Now" is the consumer's: the later of the wall clock and the newest
order applied, so a simulated day that runs ahead of the clock is shown at its own time.

Examples
--------
>>> frame = live_frame(platform, top=3)                                       # doctest: +SKIP
>>> view = stream(platform, speed=144, seconds=60, params=params, top=3)      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import generate, realtime, workbench
from helpers.platform import Platform

SERIES_COLUMNS = [
    "series_id",
    "name",
    "hour",
    "actual",
    "expected_so_far",
    "band_lo_90",
    "band_hi_90",
    "state",
    "nowcast",
    "nowcast_lo_90",
    "nowcast_hi_90",
    "expected_day",
    "expected_day_lo_90",
    "expected_day_hi_90",
    "profile",
]
"""The columns of :func:`series_frame`: ``hour`` is "now" in hours of the UTC day, ``state``
``above``, ``below`` or ``in band`` (empty without an expectation), ``profile`` the
expectation's 24 cumulative hourly shares (None without one)."""
TOTAL_SERIES = "total"
REFRESH_S = 2.0
"""Seconds between refreshes of the live view while orders stream."""
MIN_LIVE_SECONDS = 10.0
"""The live duration is scaled by ``SALESCAST_SCALE`` but never below this."""


@contextlib.contextmanager
def consumer_state(platform: Platform) -> Iterator[realtime.SqliteStore | realtime.DynamoStore]:
    """The real-time consumer's store of ``platform``, opened to read: locally the SQLite
    file under the root, on aws the stack's expectations and nowcast tables."""
    if platform.settings.backend == "local":
        from helpers.local.platform import REALTIME_STATE

        store = realtime.SqliteStore(Path(platform.settings.root) / REALTIME_STATE)
        try:
            yield store
        finally:
            store.close()
        return
    names = platform.names
    yield realtime.DynamoStore(
        names.expectations_table_name,
        names.nowcast_table_name,
        dynamodb=platform.session.client("dynamodb"),
    )


def series_frame(
    store: realtime.SqliteStore | realtime.DynamoStore,
    top: int = 5,
    day: str | None = None,
    wall: int | None = None,
) -> pd.DataFrame:
    """The day's total and its ``top`` products (by expected units; by units sold when the day
    has no expectations) at the consumer's "now": sales so far against the band so far, and
    the end-of-day nowcast (columns :data:`SERIES_COLUMNS`; ``attrs`` ``day`` and ``now``).

    Parameters
    ----------
    store : SqliteStore or DynamoStore
        The consumer's state (:func:`consumer_state`).
    top : int
        Products to show after the total.
    day : str, optional
        ``YYYY-MM-DD``; default the consumer's today.
    wall : int, optional
        The wall clock in epoch milliseconds (default: now); "now" is the later of it and the
        newest order applied.

    Examples
    --------
    >>> store = realtime.SqliteStore(tmp / "realtime.sqlite")             # doctest: +SKIP
    >>> series_frame(store, top=2)[["series_id", "actual", "band_lo_90", "band_hi_90"]]  # doctest: +SKIP
    """
    now_ms = store.now_ms(wall)
    day = day or realtime.day_of(now_ms)
    hours = (now_ms - realtime.day_start_ms(day)) / realtime.MS_PER_HOUR
    totals, expectations = store.totals(day), store.expectations(day)
    rows = [
        _series_row(series_id, day, totals.get(series_id), expectations.get(series_id), now_ms)
        | {"hour": min(24.0, max(0.0, hours))}
        for series_id in [TOTAL_SERIES, *_leaders(totals, expectations, top)]
    ]
    frame = pd.DataFrame(rows, columns=SERIES_COLUMNS)
    frame.attrs.update(day=day, now=pd.Timestamp(now_ms, unit="ms", tz="UTC"))
    return frame


def _leaders(totals: dict, expectations: dict, top: int) -> list[str]:
    """The ``top`` products by expected units of the day, else by units sold."""
    source = expectations or totals
    products = [series_id for series_id in source if series_id.startswith("product#")]
    return sorted(products, key=lambda series_id: (-source[series_id]["units"], series_id))[:top]


def _series_row(
    series_id: str, day: str, total: dict | None, expectation: dict | None, now_ms: int
) -> dict[str, Any]:
    """One series of :func:`series_frame`, its nowcast from :func:`helpers.realtime.nowcast`."""
    cast = realtime.nowcast(series_id, day, total, expectation, now_ms)
    row = {
        "series_id": series_id,
        "name": cast["name"],
        "actual": cast["units"],
        "nowcast": cast["nowcast_units"],
        "nowcast_lo_90": cast["nowcast_units_lo_90"],
        "nowcast_hi_90": cast["nowcast_units_hi_90"],
        "state": "",
    }
    if expectation is None:
        return row
    share = cast["elapsed_share"]
    low, high = expectation["units_lo_90"] * share, expectation["units_hi_90"] * share
    state = "above" if cast["units"] > high else "below" if cast["units"] < low else "in band"
    return row | {
        "expected_so_far": cast["expected_so_far"],
        "band_lo_90": low,
        "band_hi_90": high,
        "state": state,
        "expected_day": expectation["units"],
        "expected_day_lo_90": expectation["units_lo_90"],
        "expected_day_hi_90": expectation["units_hi_90"],
        "profile": expectation["profile"],
    }


def live_frame(platform: Platform, top: int = 5, day: str | None = None) -> pd.DataFrame:
    """:func:`series_frame` of ``platform``'s consumer state, now."""
    with consumer_state(platform) as store:
        return series_frame(store, top, day)


def open_alerts(platform: Platform) -> pd.DataFrame:
    """The consumer's open alerts, oldest first (``platform.alerts(open_only=True)``)."""
    return platform.alerts(open_only=True)


def alert_line(alert: dict[str, Any]) -> str:
    """An alert as one line of text: what the series did against what was expected, and
    since when (a stall: since its last order).

    Examples
    --------
    >>> alert = {"kind": "high", "series_id": "product#p-0007", "name": "Teal Lamp",
    ...          "actual": 41, "expected": 12.2, "low": 5, "high": 19.4,
    ...          "since": "2026-03-02T14:05:00.000Z"}
    >>> alert_line(alert)
    'ALERT high product#p-0007 (Teal Lamp): 41 units, expected 12 (band 5-19) since 14:05'
    >>> alert_line(alert | {"kind": "stalled", "series_id": "total", "name": "total"})
    'ALERT stalled total: no order since 14:05, while 12 units were expected'
    """
    shown = alert["name"] not in (alert["series_id"], alert["series_id"].split("#")[-1])
    series = f"{alert['series_id']} ({alert['name']})" if shown else alert["series_id"]
    since = pd.Timestamp(alert["since"]).strftime("%H:%M")
    if alert["kind"] == "stalled":
        what = f"no order since {since}, while {alert['expected']:,.0f} units were expected"
    else:
        what = (
            f"{alert['actual']:,.0f} units, expected {alert['expected']:,.0f} "
            f"(band {alert['low']:,.0f}-{alert['high']:,.0f}) since {since}"
        )
    return f"ALERT {alert['kind']} {series}: {what}"


def watch_text(platform: Platform, top: int = 5) -> str:
    """What ``salescast watch`` prints once: the consumer's now, a table of the total and the
    top products (sold so far, expected so far with its 90 % band, the nowcast with its 90 %
    interval) and one line per open alert."""
    frame = live_frame(platform, top)
    table = pd.DataFrame(
        {
            "series": frame["series_id"],
            "sold": frame["actual"].map("{:,.0f}".format),
            "expected": frame["expected_so_far"].map(_amount),
            "band 90%": _ranges(frame["band_lo_90"], frame["band_hi_90"]),
            "": frame["state"],
            "nowcast": frame["nowcast"].map(_amount),
            "nowcast 90%": _ranges(frame["nowcast_lo_90"], frame["nowcast_hi_90"]),
        }
    )
    alerts = open_alerts(platform)
    lines = [
        f"{frame.attrs['day']} {frame.attrs['now']:%H:%M:%S} UTC (the consumer's clock)",
        table.to_string(index=False),
        *(alert_line(alert) for alert in alerts.to_dict("records")),
    ]
    if alerts.empty:
        lines.append("no open alerts")
    return "\n".join(lines)


def _amount(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:,.0f}"


def _ranges(low: pd.Series, high: pd.Series) -> list[str]:
    return [
        "-" if pd.isna(lo) else f"{lo:,.0f}-{hi:,.0f}" for lo, hi in zip(low, high, strict=True)
    ]


# the notebook's live session ------------------------------------------------------------------


def shocks(
    params: generate.SalesParams,
    product_id: str = "",
    factor: float = 1.0,
    minute: float = 0.0,
    minutes: float = 24 * 60,
) -> list[generate.Shock]:
    """The demand shock of a live session: ``product_id`` (empty: the shop's top product
    today) times ``factor`` from ``minute`` for ``minutes`` of the simulated clock; none when
    ``factor`` is 1.

    Examples
    --------
    >>> shocks(generate.SalesParams(n_products=5), "p-0002", 3.0, minute=30)
    [Shock(product_id='p-0002', factor=3.0, start_minute=30, end_minute=1470)]
    >>> shocks(generate.SalesParams(), factor=1.0)
    []
    """
    if factor == 1:
        return []
    if not product_id:
        today = pd.Timestamp.now(tz="UTC").normalize()
        demand = generate.expected_daily_units(
            params, today.date(), (today + pd.Timedelta("1D")).date()
        )
        product_id = str(demand.loc[demand["expected_units"].idxmax(), "product_id"])
    return [generate.Shock(product_id, factor, minute, minute + minutes)]


def scaled_seconds(seconds: float) -> float:
    """A live duration scaled by ``SALESCAST_SCALE`` (so that small-scale runs stay short),
    never below :data:`MIN_LIVE_SECONDS` unless asked for less.

    Examples
    --------
    >>> scaled_seconds(60.0)  # at SALESCAST_SCALE=1
    60.0
    """
    factor = workbench.scale()
    if factor == 1:
        return seconds
    scaled = min(seconds, max(MIN_LIVE_SECONDS, seconds * factor))
    print(f"{workbench.SCALE_VARIABLE}={factor:g}: the live duration scaled to {scaled:g}s")
    return scaled


@dataclass
class LiveView:
    """What a live session streamed, and the view's snapshots taken while it did."""

    session: workbench.LiveSession
    snapshots: list[pd.DataFrame] = field(repr=False)
    alerts: pd.DataFrame
    """The open alerts when the session ended."""

    @property
    def latest(self) -> pd.DataFrame:
        """The last snapshot, without the profile (the table a person reads)."""
        return self.snapshots[-1].drop(columns="profile").set_index("series_id").round(1)

    def figures(self) -> dict[str, Any]:
        """What ``workbench.record`` keeps: orders streamed, snapshots, each series' last
        state and the open alerts."""
        return {
            "live": self.session.counts,
            "snapshots": len(self.snapshots),
            "series": self.latest[["actual", "expected_so_far", "state", "nowcast"]],
            "open_alerts": self.alerts[["series_id", "kind", "since"]],
        }


def stream(
    platform: Platform,
    speed: float,
    seconds: float,
    params: generate.SalesParams,
    shocks: Sequence[generate.Shock] = (),
    top: int = 5,
    refresh_s: float = REFRESH_S,
    timeout: float = 120.0,
) -> LiveView:
    """Stream the shop's own day (:func:`helpers.workbench.stream_paced`) for ``seconds``
    (scaled by ``SALESCAST_SCALE``, at least :data:`MIN_LIVE_SECONDS`), showing the total and
    the ``top`` products against their bands in a chart refreshed in place every
    ``refresh_s`` (:func:`helpers.plots.live_view`), then the open alerts.

    The simulated clock starts at the consumer's "now", where an earlier session (01's)
    left the day, so the two never draw the same stretch of the day twice; today's orders
    before now are written first only when the consumer has none of today yet.
    """
    from IPython.display import display

    from helpers import plots

    seconds = scaled_seconds(seconds)
    snapshots: list[pd.DataFrame] = []
    with consumer_state(platform) as store:
        start_ms = store.now_ms()
        caught_up = bool(store.totals(realtime.day_of(start_ms)))
        shown: dict[str, Any] = {"at": -math.inf, "handle": None}

        def refresh(final: bool = False) -> None:
            if not final and time.monotonic() - shown["at"] < refresh_s:
                return
            shown["at"] = time.monotonic()
            snapshots.append(series_frame(store, top))
            figure = plots.live_view(pd.concat(snapshots, ignore_index=True))
            if shown["handle"] is None:  # outside IPython, display prints and gives no handle
                shown["handle"] = display(figure, display_id=True)
            else:
                shown["handle"].update(figure)

        refresh(final=True)
        session = workbench.stream_paced(
            platform,
            speed,
            seconds,
            params,
            shocks=shocks,
            catch_up=not caught_up,
            timeout=timeout,
            start=pd.Timestamp(start_ms, unit="ms", tz="UTC"),
            observe=refresh,
        )
        platform.flush(timeout=timeout)  # the consumer has applied every order streamed
        refresh(final=True)
    return LiveView(session, snapshots, open_alerts(platform))
