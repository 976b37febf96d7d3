"""The steps the notebooks take, one call each, so that notebooks hold no logic.

Every function works on any backend through the :class:`~helpers.platform.Platform` interface
and returns what a person wants to see: frames, figures, small dataclasses. Long steps show
tqdm progress. :func:`record` is the last call of every notebook: it leaves the notebook's key
figures in its output, where ``salescast run`` and the notebook tests read them.

``SALESCAST_SCALE`` (a number, default 1) multiplies the data volume of the generating steps:
orders per day, products, and the live rate (not its duration). Tests and quick tries run the
same notebooks at, say, ``SALESCAST_SCALE=0.05``; the steps say so when it applies.

Examples
--------
>>> platform = connect()                                     # doctest: +SKIP
>>> backfill(platform, days=120, params=sales_params(2000, 50, seed=42))  # doctest: +SKIP
>>> record(orders=platform.orders.count())                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.io.formats.style import Styler

import helpers
from helpers import generate, queries, tables
from helpers.config import Settings
from helpers.exceptions import SalescastError
from helpers.forecast.series import PROMOTIONS_TABLE
from helpers.platform import WRITE_CHUNK, Platform
from helpers.progress import tqdm
from helpers.schema import KEY, ORDER_FIELDS, PARTITION_KEYS

FIGURES_MIME = "application/vnd.salescast.figures+json"
"""The output type that :func:`record` writes and ``salescast run`` reads."""
SCALE_VARIABLE = "SALESCAST_SCALE"
MIN_PRODUCTS = 3
PROMOTIONS_AHEAD_DAYS = 120  # how far ahead the published promotion plan reaches
LOCAL_SAMPLE_S, AWS_SAMPLE_S = 0.5, 30.0
"""Seconds between stage counts while streaming live, per backend."""
STAGES = ("table", "stream", "lake", "failed")


def connect(backend: str = "", root: str = "", reset: bool = False) -> Platform:
    """The platform for the notebooks' ``BACKEND`` and ``ROOT`` parameters.

    Empty strings mean "not given": ``SALESCAST_BACKEND`` and ``SALESCAST_ROOT``, then the
    defaults (``local`` under ``data/local``), as everywhere else. ``reset`` first removes the
    local state and lake, to start from nothing; on aws it is refused (see 99_teardown). A
    folder that holds files but no salescast state is never opened, so never removed.
    """
    backend, root = backend or None, root or None
    if reset:
        if Settings.from_env(backend=backend).backend != "local":
            raise SalescastError(
                "RESET only applies to the local backend; remove an aws stack with 99_teardown"
            )
        helpers.connect(backend=backend, root=root, consume=False).teardown()
    return helpers.connect(backend=backend, root=root)


def scale() -> float:
    """The data volume multiplier from ``SALESCAST_SCALE`` (1 when unset)."""
    raw = os.environ.get(SCALE_VARIABLE, "1")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise SalescastError(
            f"{SCALE_VARIABLE}={raw!r} is not a positive number; set it to e.g. 0.05 or unset it"
        )
    return value


def sales_params(orders_per_day: float, products: int, seed: int) -> generate.SalesParams:
    """The shop to generate, scaled by ``SALESCAST_SCALE``."""
    factor = scale()
    if factor != 1:
        print(f"{SCALE_VARIABLE}={factor:g}: orders per day and products scaled by it")
    return generate.SalesParams(
        seed=seed,
        orders_per_day=orders_per_day * factor,
        n_products=max(MIN_PRODUCTS, round(products * factor)),
    )


# 01_generate_and_stream -----------------------------------------------------------------------


def backfill(
    platform: Platform, days: int, params: generate.SalesParams, end: str | None = None
) -> dict[str, int]:
    """Write ``days`` of generated history to the table, as fast as it goes; returns the
    orders put, updated and deleted. The lake catches up in the background (see ``flush``)."""
    if days <= 0:
        return {"put": 0, "update": 0, "delete": 0}
    counts = platform.apply(generate.backfill(days, end=end, params=params), batch_rows=WRITE_CHUNK)
    publish_promotions(platform, params, days, end)
    return counts


def publish_promotions(
    platform: Platform, params: generate.SalesParams, days: int, end: str | None = None
) -> str | None:
    """The shop's promotion plan for the backfilled days and the next
    :data:`PROMOTIONS_AHEAD_DAYS`, written to the lake as the ``promotions`` table (one
    partition per window), so that forecasts know the promotions of the days they forecast.
    Returns where it went; None when the plan holds no promotion."""
    last = pd.Timestamp(end).date() if end else pd.Timestamp.now(tz="UTC").date()
    first, until = last - timedelta(days=days), last + timedelta(days=PROMOTIONS_AHEAD_DAYS)
    calendar = generate.promotion_calendar(params, first, until)
    if calendar.empty:
        return None
    window = {"plan": f"{params.seed}-{first:%Y%m%d}-{until:%Y%m%d}"}
    return platform.write_dataset(PROMOTIONS_TABLE, calendar, window)


@dataclass
class LiveSession:
    """What a live session wrote and how fast it reached the lake."""

    counts: dict[str, int]
    timeline: pd.DataFrame
    """Changes reached per stage, sampled through the session (``elapsed_s`` onwards)."""
    freshness_s: np.ndarray = field(repr=False)
    """Seconds from each sample's accepted changes to the lake having them all."""
    unreached: int = 0
    """Samples whose changes the lake never held; their delay counts up to the last sample."""

    @property
    def freshness(self) -> dict[str, float]:
        """p50, p95 and max of the write-to-lake delay in seconds, and the samples not reached
        (when there are some, the delays are lower bounds)."""
        if not self.freshness_s.size:
            return {"p50_s": math.nan, "p95_s": math.nan, "max_s": math.nan, "unreached": 0}
        return {
            "p50_s": round(float(np.percentile(self.freshness_s, 50)), 2),
            "p95_s": round(float(np.percentile(self.freshness_s, 95)), 2),
            "max_s": round(float(self.freshness_s.max()), 2),
            "unreached": self.unreached,
        }


def stream_live(
    platform: Platform,
    rate: float,
    seconds: float,
    params: generate.SalesParams,
    timeout: float = 120.0,
    sample_s: float | None = None,
    scaled: bool = True,
    shocks: Sequence[generate.Shock] = (),
) -> LiveSession:
    """Stream live orders (``order_ts`` = now) at ``rate`` a second (scaled by
    ``SALESCAST_SCALE`` unless ``scaled`` is False) for ``seconds``, showing a bar of the
    orders put, with the changes per stage and the freshness so far. ``shocks``
    (:class:`helpers.generate.Shock`) multiply or cut a product's orders from one minute of
    the session to another.

    Freshness is measured as a user sees it: every ``sample_s`` the count of changes the table
    has accepted is noted, and the sample is fresh once the lake (delivered plus failed) holds
    as many. Locally the counts are exact and sampled every 0.5 s, so a delay is known to
    about that. On aws they are CloudWatch's sums over the last hour, a minute or two late, so
    it samples every 30 s and the figures are coarse. After the session it waits, up to
    ``timeout``, for the lake to catch up, and warns if it does not. At a fixed rate the
    orders are not the shop's own day: streaming faster than the day's demand reads as a
    spike against its forecast; :func:`stream_paced` streams the day as forecast.
    """
    factor = scale() if scaled else 1
    if factor != 1:
        print(f"{SCALE_VARIABLE}={factor:g}: the live rate scaled by it")
    rate *= factor
    total = math.floor(rate * seconds)
    if total <= 0:
        return _no_session()
    changes = generate.live(rate, seconds, params=params, shocks=shocks)
    return _stream(platform, changes, total, f"live {rate:g}/s", timeout, sample_s)


def stream_paced(
    platform: Platform,
    speed: float,
    seconds: float,
    params: generate.SalesParams,
    shocks: Sequence[generate.Shock] = (),
    catch_up: bool = True,
    timeout: float = 120.0,
    sample_s: float | None = None,
    start: pd.Timestamp | None = None,
    observe: Callable[[], None] | None = None,
) -> LiveSession:
    """Stream the shop's own day: orders as its demand expects them by day and hour, stamped
    on a simulated clock that starts now and runs ``speed`` times faster than the wall clock
    (144: a day in 10 minutes), for ``seconds`` of wall time, so that live sales match the
    forecast's expectation of the day (:func:`helpers.generate.live_paced`).

    With ``catch_up``, today's orders before now come first (those the backfill would draw for
    today, :func:`helpers.generate.day_so_far`), so the day's running total starts where the
    forecast expects it at this hour; a later backfill of today writes those same orders again
    (same ids, no double count), while the paced orders stay on top of it (at ``speed`` 144
    for 30 s, about 5 % of a day). ``shocks`` count minutes of the simulated clock from now.
    The bar counts orders toward the number expected; the rest is as :func:`stream_live`.
    ``start`` sets the simulated clock's start (default: now; a later one continues a day
    that an earlier session played ahead of the wall clock), and ``observe`` is called after
    each write (a live view refreshing itself).
    """
    if seconds <= 0:
        return _no_session()
    now = pd.Timestamp.now(tz="UTC") if start is None else start
    earlier = list(generate.day_so_far(now, params)) if catch_up else []
    simulated_end = now + pd.Timedelta(seconds=speed * seconds)
    expected = generate.expected_paced_orders(params, now, simulated_end, shocks)
    total = sum(len(change.frame) for change in earlier) + round(expected)
    paced = generate.live_paced(speed, seconds, params, start=now, shocks=shocks)
    changes = chain(earlier, paced)
    return _stream(platform, changes, total, f"paced x{speed:g}", timeout, sample_s, observe)


def _no_session() -> LiveSession:
    counts = {"put": 0, "update": 0, "delete": 0}
    return LiveSession(counts, pd.DataFrame(columns=["elapsed_s", *STAGES]), np.empty(0))


def _stream(
    platform: Platform,
    changes: Iterable[generate.Change],
    total: int,
    description: str,
    timeout: float,
    sample_s: float | None,
    observe: Callable[[], None] | None = None,
) -> LiveSession:
    """Apply live changes as they come, with a bar and stage samples (and ``observe`` called
    after each change); then wait for the lake."""
    if sample_s is None:
        sample_s = LOCAL_SAMPLE_S if platform.settings.backend == "local" else AWS_SAMPLE_S
    counts = {"put": 0, "update": 0, "delete": 0}
    samples: list[dict[str, float]] = []
    start = time.time()
    with tqdm(total=total, unit="order", desc=description) as bar:
        for change in changes:
            done = platform.apply([change], progress=False)
            for action, number in done.items():
                counts[action] += number
            bar.update(done["put"])
            if observe is not None:
                observe()
            if not samples or time.time() - start - samples[-1]["elapsed_s"] >= sample_s:
                samples.append(_stage_sample(platform, start))
                bar.set_postfix(_postfix(samples), refresh=False)
        if not samples:  # a paced session can pass without an order
            samples.append(_stage_sample(platform, start))
        bar.total = bar.n  # a paced session's total was an estimate; this is what came
        bar.set_description("lake catching up")
        deadline = time.time() + timeout
        while _lake_total(samples[-1]) < samples[-1]["table"] and time.time() < deadline:
            time.sleep(sample_s / 2)
            samples.append(_stage_sample(platform, start))
            bar.set_postfix(_postfix(samples))
    timeline = pd.DataFrame(samples)
    delays, unreached = _freshness(timeline)
    if unreached:
        behind = samples[-1]["table"] - _lake_total(samples[-1])
        print(
            f"warning: after {timeout:g}s of waiting the lake is {behind} changes behind the "
            f"table; freshness figures are lower bounds. `platform.status()` shows the stuck stage."
        )
    return LiveSession(counts, timeline, delays, unreached)


def stage_counts(status: pd.DataFrame) -> dict[str, int]:
    """Records per stage, and failures, from ``platform.status()``."""
    counts = {row.stage: int(row.records) for row in status.itertuples()}
    counts["failed"] = int(status["failed"].sum())
    return counts


def _stage_sample(platform: Platform, start: float) -> dict[str, float]:
    status = platform.status().set_index("stage")
    return {
        "elapsed_s": round(time.time() - start, 3),
        "table": int(status.loc["change stream", "records"]),
        "stream": int(status.loc["kinesis stream", "records"]),
        "lake": int(status.loc["lake", "records"]),
        "failed": int(status.loc["lake", "failed"]),
    }


def _lake_total(sample: dict[str, float]) -> int:
    return sample["lake"] + sample["failed"]


def _freshness(timeline: pd.DataFrame) -> tuple[np.ndarray, int]:
    """For each sample after the first, the time until the lake held as many changes as the
    table had then; a sample never reached counts until the last sample. Also returns how many
    were never reached."""
    if timeline.empty:
        return np.empty(0), 0
    reached = np.maximum.accumulate((timeline["lake"] + timeline["failed"]).to_numpy())
    elapsed = timeline["elapsed_s"].to_numpy()
    accepted = timeline["table"].to_numpy()
    new = accepted > accepted[0]
    first = np.searchsorted(reached, accepted[new], side="left")
    arrival = elapsed[np.minimum(first, len(reached) - 1)]
    return np.maximum(0.0, arrival - elapsed[new]), int((first >= len(reached)).sum())


def _postfix(samples: list[dict[str, float]]) -> dict[str, Any]:
    """The latest counts per stage and the freshness p95 so far, for the live bar."""
    delays, _ = _freshness(pd.DataFrame(samples))
    fresh = f"{np.percentile(delays, 95):.1f}s" if delays.size else "-"
    return {stage: samples[-1][stage] for stage in STAGES} | {"fresh_p95": fresh}


# 02_inspect_lake ------------------------------------------------------------------------------


def lake_partitions(objects: pd.DataFrame) -> pd.DataFrame:
    """The day partitions of a lake listing (``platform.lake_objects()``), with their objects
    and bytes."""
    if objects.empty:
        return pd.DataFrame(columns=[*PARTITION_KEYS, "objects", "bytes"])
    return (
        objects.groupby(list(PARTITION_KEYS))
        .agg(objects=("key", "size"), bytes=("size", "sum"))
        .reset_index()
    )


def lake_figures(objects: pd.DataFrame, partitions: pd.DataFrame, errors: pd.DataFrame) -> dict:
    """What :func:`record` keeps of the lake: partitions, objects, bytes, failed records."""
    return {
        "partitions": len(partitions),
        "objects": len(objects),
        "lake_bytes": int(objects["size"].sum()) if len(objects) else 0,
        "error_records": len(errors),
    }


@dataclass
class LakeCheck:
    """The change log in the lake compared with the table, order by order."""

    table_orders: int
    lake_orders: int
    missing_from_lake: list[str]
    only_in_lake: list[str]
    different: pd.DataFrame
    """Orders whose latest lake event disagrees with the table: order_id, field, both values."""

    @property
    def matches(self) -> bool:
        return not (self.missing_from_lake or self.only_in_lake or len(self.different))

    @property
    def different_orders(self) -> int:
        """How many orders have at least one field that differs."""
        return self.different[KEY].nunique() if len(self.different) else 0

    def figures(self) -> dict[str, Any]:
        """The counts, for :func:`record`."""
        return {
            "table_orders": self.table_orders,
            "lake_orders": self.lake_orders,
            "missing_from_lake": len(self.missing_from_lake),
            "only_in_lake": len(self.only_in_lake),
            "different": self.different_orders,
            "lake_matches_table": self.matches,
        }

    def summary(self) -> pd.DataFrame:
        """One row per check, with the count and a few examples."""
        rows = [
            ("orders in the table", self.table_orders, ""),
            ("orders in the lake (latest event, deletes removed)", self.lake_orders, ""),
            ("missing from the lake", len(self.missing_from_lake), self.missing_from_lake[:3]),
            ("in the lake, not in the table", len(self.only_in_lake), self.only_in_lake[:3]),
            (
                "orders that differ",
                self.different_orders,
                self.different.head(3).to_dict("records"),
            ),
        ]
        return pd.DataFrame(rows, columns=["check", "count", "examples"])


def check_lake(platform: Platform) -> LakeCheck:
    """Replay the lake's change log (latest event per order by ``event_seq``, deletes removed)
    and compare it with the table field by field; call after ``flush``."""
    table = platform.orders.scan()
    changes = platform.read_lake()
    if len(changes):  # sorted by Arrow: pandas sorts a million strings ten times slower
        by_seq = pc.sort_indices(pa.array(changes["event_seq"], pa.string())).to_numpy()
        latest = changes.iloc[by_seq].drop_duplicates(KEY, keep="last")
    else:
        latest = changes
    lake = latest[latest["event_name"] != "REMOVE"] if len(latest) else latest
    table_ids, lake_ids = set(table[KEY]) if len(table) else set(), set(lake.get(KEY, []))
    fields = [name for name in ORDER_FIELDS if name != KEY]
    different = []
    if table_ids & lake_ids:  # a join, then whole columns compared: a million orders in seconds
        both = table[[KEY, *fields]].merge(lake[[KEY, *fields]], on=KEY, suffixes=("", "_lake"))
        for name in fields:
            a, b = both[name], both[f"{name}_lake"]
            if name == "order_ts":
                a, b = pd.to_datetime(a, utc=True), pd.to_datetime(b, utc=True)
            if name == "unit_price":
                unequal = ~np.isclose(a.astype(float), b.astype(float), equal_nan=True)
            else:
                unequal = ~((a == b) | (a.isna() & b.isna())).to_numpy()
            rows = zip(both[KEY][unequal], a[unequal], b[unequal], strict=True)
            different += [(order_id, name, left, right) for order_id, left, right in rows]
    return LakeCheck(
        table_orders=len(table_ids),
        lake_orders=len(lake_ids),
        missing_from_lake=sorted(table_ids - lake_ids),
        only_in_lake=sorted(lake_ids - table_ids),
        different=pd.DataFrame(
            sorted(different, key=lambda row: (fields.index(row[1]), row[0])),
            columns=[KEY, "field", "table", "lake"],
        ),
    )


# 03_query -------------------------------------------------------------------------------------


class QueryResults(dict):
    """Named query results by name, also as attributes (``results.daily_revenue``)."""

    def __getattr__(self, name: str) -> pd.DataFrame:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}; ran: {', '.join(self)}") from None

    def times(self) -> pd.DataFrame:
        """Rows, seconds and execution id of each query, by name."""
        return pd.DataFrame(
            {
                name: {
                    "rows": len(frame),
                    "seconds": frame.attrs.get("seconds"),
                    "execution_id": frame.attrs.get("query_execution_id"),
                }
                for name, frame in self.items()
            }
        ).T.rename_axis("query")

    def as_of(self) -> pd.Timestamp | None:
        """The newest change in the lake (UTC), from ``data_freshness``; None if not run."""
        return tables.as_of(self["data_freshness"]) if "data_freshness" in self else None

    def table(self, name: str, last: int | None = None) -> Styler:
        """Query ``name`` (its ``last`` rows) as people read it: money, counts and shares
        formatted, and the day or week still running at :meth:`as_of` marked partial."""
        frame = getattr(self, name)
        return tables.styled(frame.tail(last) if last else frame, self.as_of())

    def figures(self) -> dict[str, Any]:
        """What :func:`record` keeps: each query's rows and seconds, and the total revenue."""
        return {
            "queries": self.times().drop(columns="execution_id"),
            "revenue": float(self.daily_revenue["revenue"].sum()),
        }


def run_named_queries(platform: Platform) -> QueryResults:
    """Every named query of ``helpers/queries``, with a bar; each frame's ``attrs`` hold its
    execution id and ``seconds``."""
    results = QueryResults()
    for name in tqdm(queries.NAMED, desc="queries", unit="query"):
        started = time.perf_counter()
        frame = platform.named_query(name)
        frame.attrs["seconds"] = round(time.perf_counter() - started, 3)
        results[name] = frame
    return results


# 04_forecast ----------------------------------------------------------------------------------


def forecast_history(platform: Platform, level: str, measure: str) -> pd.DataFrame:
    """The series a forecast at ``level`` and ``measure`` was fitted on, from ``daily_sales``."""
    from helpers.forecast import complete_daily_sales, series_from_daily_sales

    return series_from_daily_sales(complete_daily_sales(platform), level, measure)


def choices(run) -> pd.DataFrame:
    """What each series at the run's level took (a model or a combination) and why, by model."""
    frame = run.choices[run.choices["level"] == run.level]
    columns = ["unique_id", "model", "backtest_mase", "runner_up", "runner_up_mase", "reason"]
    return frame[columns].sort_values(["model", "unique_id"]).set_index("unique_id").round(3)


def leaders(history: pd.DataFrame, top: int) -> list[str]:
    """The ``top`` series by volume."""
    return history.groupby("unique_id")["y"].sum().nlargest(top).index.tolist()


# 05_report ------------------------------------------------------------------------------------


def report_preview(paths: dict[str, Any]):
    """A link to the exported report and its CSV, and the report's headline, as notebook
    output; links are relative to the notebook's folder, where Jupyter resolves them."""
    from html import escape

    from IPython.display import HTML

    from helpers.report import headline

    links = " · ".join(
        f"<a href='{escape(os.path.relpath(paths[key]))}' target='_blank'>{label}</a> "
        f"<code>{escape(str(paths[key]))}</code>"
        for key, label in (("html", "Open the report"), ("csv", "forecasts CSV"))
    )
    return HTML(f"<p>{links}</p>{headline(paths['html'])}")


def report_figures(paths: dict[str, Any]) -> dict[str, Any]:
    """What :func:`record` keeps of an exported report: where it is and how big."""
    return {
        "report": paths["html"],
        "forecasts_csv": paths["csv"],
        "report_bytes": paths["html"].stat().st_size,
    }


# 99_teardown ----------------------------------------------------------------------------------


def teardown(platform: Platform, confirm: bool) -> pd.DataFrame:
    """Remove what ``00_provision`` created, only with ``confirm``; returns the resources it
    removed (or, unconfirmed, would remove)."""
    existing = platform.resources()
    if not confirm:
        print("Nothing removed: set CONFIRM = True to remove these resources.")
        return existing
    platform.teardown()
    return existing.assign(removed=True)


# recording ------------------------------------------------------------------------------------


def record(**figures: Any) -> None:
    """Leave the notebook's key figures in its output, for ``salescast run`` and the tests."""
    from IPython.display import display

    clean = {name: _plain(value) for name, value in figures.items()}
    text = json.dumps(_rounded(clean), indent=1, default=str)
    display({FIGURES_MIME: clean, "text/plain": text}, raw=True)


def _rounded(value: Any) -> Any:
    """Floats rounded for reading (two decimals; four significant digits under 1), in a copy:
    the figures the MIME bundle keeps stay exact."""
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 2) if abs(value) >= 1 else float(f"{value:.4g}")
    return value


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of numpy and pandas scalars, paths and containers."""
    if isinstance(value, pd.DataFrame):
        keyed = not isinstance(value.index, pd.RangeIndex)
        return _plain(value.to_dict("index") if keyed else value.to_dict("records"))
    if isinstance(value, pd.Series):
        return _plain(value.to_dict())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
