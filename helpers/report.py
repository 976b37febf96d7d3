"""Forecast reports for people: one self-contained HTML page and the forecasts as CSV.

The page is written for whoever plans sales and stock on Monday: what the next week and the
next four weeks should bring, with a range, against recent weeks and last year; a table of
every product (or category) by name; charts; how far the forecasts can be trusted, in words;
then the data's freshness and the run's settings. It reads a run back from the lake by SQL
(``forecasts``, ``forecast_metrics``, ``forecast_choices``, ``forecast_runs``) and the sales
from ``daily_sales``, so it can be made on any backend, any time after the run. Only complete
runs are reported: :func:`helpers.forecast.run_forecast` writes the run record last.

Charts are PNG images embedded in the page and the table's sort is a few lines of inline
script: nothing is fetched from elsewhere, so the page opens in a browser with no network.

Examples
--------
>>> paths = export_report(platform)          # the latest complete run   # doctest: +SKIP
>>> paths["html"].name                                               # doctest: +SKIP
'report.html'
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers import plots
from helpers.exceptions import SalescastError
from helpers.forecast import complete_daily_sales, series_from_daily_sales
from helpers.forecast.models import BASELINES
from helpers.forecast.series import LEVELS, TOTAL

HISTORY_DAYS = 120  # of history before the forecast, in the charts
RECENT_DAYS = 28  # "the last four weeks"
YEAR_DAYS = 364  # a year back on the same weekdays
FLAT = 0.03  # a change smaller than this reads as flat
ROUNDING = {"units": 1, "orders": 1, "revenue": 2}  # decimals in the CSV
TOTAL_NAME = "All products"
MODEL_NAMES = {
    "chosen": "This forecast",
    "seasonal_naive": "Same as last week",
    "naive": "Same as the last day",
    "median": "Median of the models",
    "weighted": "Accuracy-weighted mean of the models",
    "prophet": "Prophet",
    "auto_ets": "AutoETS",
    "auto_arima": "AutoARIMA",
    "auto_theta": "AutoTheta",
    "mstl": "MSTL",
}
RECONCILIATION = {
    "bottom_up": "bottom-up",
    "mint_ols": "MinT OLS",
    "mint_wls_struct": "MinT structural",
    "mint_shrink": "MinT shrink",
}
TRUST = ((0.1, "close"), (0.25, "fair"), (0.5, "rough"), (float("inf"), "a rough guide only"))

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1180px; padding: 0 1rem;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; }
.lead { color: #555; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0; }
.card { flex: 1 1 300px; border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem; }
.card .when { color: #555; font-size: .9rem; }
.card .value { font-size: 1.8rem; font-weight: 600; margin: .2rem 0; }
.card ul { margin: .4rem 0 0; padding-left: 1.1rem; font-size: .95rem; }
.up { color: #1a7f37; } .down { color: #b42318; } .flat { color: #555; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
td, th { padding: .3rem .6rem; vertical-align: top; }
th { background: #f0f0f0; text-align: left; } tr:nth-child(even) td { background: #fafafa; }
td.n, th.n { text-align: right; } td.n, td.id, td.trust { white-space: nowrap; } td .range { color: #666; font-size: .85rem; }
tfoot td { border-top: 1px solid #bbb; font-weight: 600; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir=desc]::after { content: " \\25BE"; }
table.sortable th[data-dir=asc]::after { content: " \\25B4"; }
.wide { overflow-x: auto; }
.note { color: #666; font-size: .9rem; } img { max-width: 100%; height: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: .5rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dt { color: #555; } dd { margin: 0; }
"""

# Sorts a table.sortable by the clicked column: by each cell's data-v when it has one (numbers),
# else by its text; a second click reverses.
_SORT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var descending = th.dataset.dir !== 'desc';
      table.querySelectorAll('thead th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = descending ? 'desc' : 'asc';
      var key = function (row) {
        var cell = row.cells[column], v = cell.dataset.v;
        return v === undefined ? cell.textContent.toLowerCase() : parseFloat(v);
      };
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


@dataclass
class ReportRun:
    """A complete run read back from the lake, with the sales it was made from.

    ``forecasts`` carry each series' ``name`` and ``category``; ``history`` is long format
    (``unique_id, ds, y``) at every level the run forecast, up to the day before the forecast;
    ``daily`` is ``daily_sales`` up to then; ``sales_until`` the last complete day in the lake now.
    """

    run_id: str
    parameters: pd.Series
    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    choices: pd.DataFrame
    daily: pd.DataFrame
    history: pd.DataFrame
    sales_until: pd.Timestamp
    period_totals: pd.DataFrame  # forecast_periods; empty for a run made before it existed

    @property
    def range_words(self) -> str:
        """How the period ranges were made, for the page's notes."""
        if self.period_totals.empty:
            return f"each day's {self.interval:.0%} range added up: wide, as no day offsets another"
        return (
            f"the {self.interval:.0%} range of the period's total, from how far the backtests' "
            f"own period totals missed"
        )

    @property
    def level(self) -> str:
        return str(self.parameters["level"])

    @property
    def measure(self) -> str:
        return str(self.parameters["measure"])

    @property
    def interval(self) -> float:
        return float(self.parameters["interval_width"])

    @property
    def start(self) -> pd.Timestamp:
        return self.forecasts["ds"].min()

    @property
    def end(self) -> pd.Timestamp:
        return self.forecasts["ds"].max()

    @property
    def periods(self) -> list[tuple[str, int]]:
        """What the headline and the tables sum: the next week and four weeks, as far as the
        forecast reaches, and its whole horizon when that is neither."""
        days = (self.end - self.start).days + 1
        periods = [(label, n) for label, n in (("Next week", 7), ("Next 4 weeks", 28)) if n <= days]
        if days not in (7, 28) and (not periods or days > periods[-1][1]):
            periods.append((f"Next {days} days", days))
        return periods


def latest_complete_run(platform) -> str:
    """The newest run that has a run record (``forecast_runs``).

    :func:`helpers.forecast.run_forecast` writes the run record after the forecasts, metrics
    and choices, so a run that failed or is still writing has none and is never reported.
    """
    try:
        runs = platform.query(
            "SELECT run_id FROM forecast_runs ORDER BY created DESC, run_id DESC LIMIT 1"
        )
    except SalescastError:  # no run record table yet
        runs = pd.DataFrame()
    if runs.empty:
        raise ValueError("no complete forecasting run in the lake yet; run `salescast forecast`")
    return str(runs["run_id"].iloc[0])


def read_run(platform, run_id: str | None = None) -> ReportRun:
    """A complete run (the latest by default) and its sales, from the lake by SQL."""
    run_id = run_id or latest_complete_run(platform)
    try:
        parameters = platform.query("SELECT * FROM forecast_runs WHERE run_id = ?", params=[run_id])
    except SalescastError:
        parameters = pd.DataFrame()
    if parameters.empty:
        raise ValueError(
            f"run {run_id!r} has no run record: it failed or is still being written; "
            f"reports are made of complete runs only"
        )

    def table(name: str) -> pd.DataFrame:
        return platform.query(f"SELECT * FROM {name} WHERE run_id = ?", params=[run_id])

    forecasts = table("forecasts").assign(ds=lambda f: pd.to_datetime(f["ds"]))
    everything = complete_daily_sales(platform).assign(ds=lambda d: pd.to_datetime(d["ds"]))
    daily = everything[everything["ds"] < forecasts["ds"].min()]
    parameters = parameters.iloc[0]
    levels = list(LEVELS)[: list(LEVELS).index(str(parameters["level"])) + 1]
    history = pd.concat(
        [series_from_daily_sales(daily, level, str(parameters["measure"])) for level in levels],
        ignore_index=True,
    )
    labels = _labels(daily)
    forecasts = forecasts.join(labels, on="unique_id").sort_values(["unique_id", "ds"])
    try:
        period_totals = table("forecast_periods")
    except SalescastError:  # a run from before period totals were written
        period_totals = pd.DataFrame()
    return ReportRun(
        run_id,
        parameters,
        forecasts.reset_index(drop=True),
        table("forecast_metrics"),
        table("forecast_choices"),
        daily,
        history,
        everything["ds"].max(),
        period_totals,
    )


def export_report(
    platform, run_id: str | None = None, output_dir: str | Path | None = None, top: int = 6
) -> dict[str, Path]:
    """Write ``report.html`` and ``forecasts.csv`` for a complete run (the latest by default).

    ``top`` products are charted (every category is, at category level; the tables list every
    series). Returns the paths of both files, under ``<root>/reports/<run_id>/`` (beside the
    lake they come from) unless ``output_dir`` says.
    """
    run = read_run(platform, run_id)
    folder = (
        Path(output_dir) if output_dir else Path(platform.settings.root) / "reports" / run.run_id
    )
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "forecasts.csv"
    forecasts_csv(run).to_csv(csv_path, index=False, encoding="utf-8")
    figures = series_figures(run)
    freshness = platform.named_query("data_freshness")
    products = figures[figures["level"] == "product"]
    sections = [
        _headline(run, figures.loc[TOTAL]),
        _section("By category", _series_table(run, figures[figures["level"] == "category"]))
        if run.level != "total"
        else "",
        _section("By product", _series_table(run, products)) if run.level == "product" else "",
        _section("Charts", _charts(run, figures, top)),
        _section("How far to trust it", _accuracy(run)),
        _section("Data and settings", _freshness(run, freshness) + _settings(run, csv_path.name)),
    ]
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Sales forecast {_day(run.start)} – {_day(run.end)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}"
        f"<script>{_SORT}</script></body></html>"
    )
    html_path = folder / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return {"html": html_path, "csv": csv_path}


def headline(html_path: str | Path) -> str:
    """The headline section of an exported report, as HTML with its style (for a preview)."""
    page = Path(html_path).read_text(encoding="utf-8")
    found = re.search(r"<section id='headline'>.*?</section>", page, flags=re.DOTALL)
    if found is None:
        raise ValueError(f"{html_path} has no headline; export the report again")
    style = re.search(r"<style>.*?</style>", page, flags=re.DOTALL)
    return (style.group(0) if style else "") + found.group(0)


def forecasts_csv(run: ReportRun) -> pd.DataFrame:
    """The forecasts for a spreadsheet: one row per series and day, with names and category,
    ISO dates, and values rounded to what the measure needs."""
    width = round(run.interval * 100)
    frame = run.forecasts.assign(
        date=run.forecasts["ds"].dt.strftime("%Y-%m-%d"),
        level_order=run.forecasts["level"].map({level: i for i, level in enumerate(LEVELS)}),
    ).sort_values(["level_order", "name", "unique_id", "date"])
    values = {
        "forecast": "yhat",
        f"lower_{width}": "yhat_lower",
        f"upper_{width}": "yhat_upper",
        "lower_80": "yhat_lower_80",
        "upper_80": "yhat_upper_80",
    }
    out = pd.DataFrame(
        {
            "date": frame["date"],
            "level": frame["level"],
            "id": frame["unique_id"],
            "name": frame["name"],
            "category": frame["category"],
            "measure": frame["measure"],
            **{
                column: frame[source].round(ROUNDING[run.measure])
                for column, source in values.items()
            },
            "model": frame["model"],
        }
    )
    return out.loc[:, ~out.columns.duplicated()]


def series_figures(run: ReportRun) -> pd.DataFrame:
    """One row per forecast series (indexed by id): name, category, level; the forecast sum and
    range of each period; the last four weeks' measure, units and revenue; the change of the
    forecast against the last four weeks; the same days last year; the backtest error.

    A period's range is the run's interval of that period's total (``forecast_periods``); a
    run made before those were written gets its days' ranges added up.
    """
    rows = []
    history = run.history.sort_values(["unique_id", "ds"])
    recent = run.daily[run.daily["ds"] >= run.start - pd.Timedelta(days=RECENT_DAYS)]
    errors = daily_errors(run).get("chosen", pd.Series(dtype=float))
    totals = {(row["unique_id"], int(row["days"])): row for _, row in run.period_totals.iterrows()}
    for uid, future in run.forecasts.groupby("unique_id", sort=False):
        past = history[history["unique_id"] == uid]
        row = {
            "id": uid,
            "name": future["name"].iloc[0],
            "category": future["category"].iloc[0],
            "level": future["level"].iloc[0],
            "model": future["model"].iloc[0],
        }
        for label, days in run.periods:
            ahead = future.iloc[:days]
            row[label] = ahead["yhat"].sum()
            total = totals.get((uid, days), ahead[["yhat_lower", "yhat_upper"]].sum())
            row[f"{label} low"], row[f"{label} high"] = total["yhat_lower"], total["yhat_upper"]
            year_ago = past[past["ds"].between(*_year_ago(run.start, days))]
            row[f"{label} last year"] = year_ago["y"].sum() if len(year_ago) == days else None
        last = past[past["ds"] >= run.start - pd.Timedelta(days=RECENT_DAYS)]
        row["last 4 weeks"] = last["y"].sum() if len(last) == RECENT_DAYS else None
        mine = _members(recent, row["level"], uid)
        row["units last 4 weeks"] = mine["units"].sum()
        row["revenue last 4 weeks"] = mine["revenue"].sum()
        label, days = _comparable(run.periods)
        row["change"] = _change(row[label], row["last 4 weeks"], days / RECENT_DAYS)
        row["error"] = errors.get(uid)
        week = totals.get((uid, 7))
        row["week error"] = week.get("backtest_error") if week is not None else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("id", drop=False)


def daily_errors(run: ReportRun) -> pd.DataFrame:
    """Backtest error per series (rows) and model (columns) as a share of a day's sales: the
    mean absolute error over the backtest windows divided by the mean sales in them."""
    horizon = int(run.parameters["horizon"])
    windows = []
    for uid, folds in run.metrics.groupby("unique_id")["fold"]:
        y = run.history.loc[run.history["unique_id"] == uid].sort_values("ds")["y"].to_numpy()
        count = int(folds.max()) + 1
        for fold in range(count):
            end = len(y) - horizon * (count - 1 - fold)
            windows.append({"unique_id": uid, "fold": fold, "sales": y[end - horizon : end].mean()})
    if not windows:  # no series was long enough to backtest
        return pd.DataFrame()
    scored = run.metrics.merge(pd.DataFrame(windows), on=["unique_id", "fold"])
    sums = scored.groupby(["unique_id", "model"])[["mae", "sales"]].sum()
    return (sums["mae"] / sums["sales"].where(sums["sales"] > 0)).unstack("model")


def _labels(daily: pd.DataFrame) -> pd.DataFrame:
    """Name and category of every series id: products by their latest name, categories by
    their own, the total as all products."""
    latest = daily.sort_values("ds").drop_duplicates("product_id", keep="last")
    products = pd.DataFrame(
        {"name": latest["product_name"].to_numpy(), "category": latest["category"].to_numpy()},
        index=latest["product_id"].astype(str),
    )
    names = sorted(daily["category"].astype(str).unique())
    categories = pd.DataFrame({"name": names, "category": names}, index=names)
    total = pd.DataFrame({"name": [TOTAL_NAME], "category": [""]}, index=[TOTAL])
    return pd.concat([total, categories, products])


def _members(daily: pd.DataFrame, level: str, uid: str) -> pd.DataFrame:
    column = LEVELS[level]
    return daily if column is None else daily[daily[column].astype(str) == uid]


def _year_ago(start: pd.Timestamp, days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    first = start - pd.Timedelta(days=YEAR_DAYS)
    return first, first + pd.Timedelta(days=days - 1)


def _comparable(periods: list[tuple[str, int]]) -> tuple[str, int]:
    """The longest period up to four weeks: the one set against the last four weeks."""
    return [period for period in periods if period[1] <= RECENT_DAYS][-1]


def _change(value: float, before: float | None, scale: float = 1.0) -> float | None:
    if pd.isna(before) or before <= 0:
        return None
    return value / (before * scale) - 1


# the page ------------------------------------------------------------------------------------


def _headline(run: ReportRun, total: pd.Series) -> str:
    measure = run.measure
    cards = []
    for label, days in run.periods:
        first, last = run.start, run.start + pd.Timedelta(days=days - 1)
        pace = {7: "in an average week of the last four", RECENT_DAYS: "in the last four weeks"}
        against = pace.get(days, f"over {days} days at the last four weeks' pace")
        if pd.isna(total["last 4 weeks"]):  # the history is shorter than four weeks
            comparisons = [f"no four weeks of sales {html.escape(against[3:])} to compare with"]
        else:
            recent = total["last 4 weeks"] * days / RECENT_DAYS
            comparisons = [_compared(total[label], recent, against, measure)]
        year = total[f"{label} last year"]
        if pd.notna(year):
            span = _span(*_year_ago(run.start, days))
            against = f"on the same days last year ({span})"
            comparisons.append(_compared(total[label], year, against, measure))
        cards.append(
            f"<div class='card'><div class='when'>{label} · {_span(first, last)}</div>"
            f"<div class='value'>{_number(total[label], measure)} {_measure_word(measure)}</div>"
            f"<div class='range'>likely between {_number(total[f'{label} low'], measure)} and "
            f"{_number(total[f'{label} high'], measure)}</div>"
            f"<ul>{''.join(f'<li>{c}</li>' for c in comparisons)}</ul></div>"
        )
    first_day = run.history["ds"].min()
    notes = []
    if first_day > _year_ago(run.start, 1)[0]:
        notes.append(
            f"No comparison with last year: the sales history starts on {_day(first_day)}."
        )
    notes.append(f"Ranges: {run.range_words}.")
    return (
        "<section id='headline'>"
        f"<h1>Sales forecast, {_span(run.start, run.end)}</h1>"
        f"<p class='lead'>Daily {html.escape(_measure_word(measure))} of "
        f"{html.escape(_scope(run))}, forecast from sales up to {_day(run.start - pd.Timedelta(days=1))}."
        f"</p><div class='cards'>{''.join(cards)}</div>"
        + "".join(_note(note) for note in notes)
        + "</section>"
    )


def _compared(value: float, before: float | None, against: str, measure: str) -> str:
    change = _change(value, before)
    if change is None:
        return f"no sales {html.escape(against)} to compare with"
    return f"{_arrow(change)} against {_number(before, measure)} {html.escape(against)}"


def _series_table(run: ReportRun, figures: pd.DataFrame) -> str:
    """Every series of one level with its periods, change and trust; sortable, by revenue first."""
    figures = figures.sort_values("revenue last 4 weeks", ascending=False)
    products = figures["level"].iloc[0] == "product"
    measure = run.measure
    comparable = _comparable(run.periods)[0]
    header = [("Product" if products else "Category", False)]
    header += [("Category", False), ("ID", False)] if products else []
    header += [(label, True) for label, _ in run.periods]
    header += [("Trend", True), ("Revenue, last 4 weeks", True), ("Units, last 4 weeks", True)]
    header += [("How far to trust it", False)]
    heads = "".join(
        f"<th{' class=n' if numeric else ''} title='Click to sort'>{html.escape(text)}</th>"
        for text, numeric in header
    )
    rows = []
    for _, row in figures.iterrows():
        cells = [f"<td>{html.escape(str(row['name']))}</td>"]
        if products:
            cells += [
                f"<td>{html.escape(str(row['category']))}</td>",
                f"<td class='id'>{html.escape(str(row['id']))}</td>",
            ]
        for label, _ in run.periods:
            cells.append(
                f"<td class='n' data-v='{row[label]:.4f}'>{_number(row[label], measure)}<br>"
                f"<span class='range'>{_number(row[f'{label} low'], measure)}–"
                f"{_number(row[f'{label} high'], measure)}</span></td>"
            )
        change = row["change"]
        cells.append(
            f"<td class='n' data-v='{change if pd.notna(change) else 0:.4f}'>"
            f"{_arrow(change) if pd.notna(change) else 'n/a'}</td>"
        )
        cells.append(
            f"<td class='n' data-v='{row['revenue last 4 weeks']:.2f}'>"
            f"{_number(row['revenue last 4 weeks'], 'revenue')}</td>"
        )
        cells.append(
            f"<td class='n' data-v='{row['units last 4 weeks']:.2f}'>"
            f"{_number(row['units last 4 weeks'], 'units')}</td>"
        )
        error, per = row["week error"], "a week"
        if pd.isna(error):  # no week's total was backtested (a shorter horizon, an old run)
            error, per = row["error"], "a day"
        cells.append(
            f"<td class='trust' data-v='{error:.4f}'>{_trust(error, per)}</td>"
            if pd.notna(error)
            else "<td data-v='99'>not backtested: too little history</td>"
        )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<div class='wide'><table class='sortable'><thead><tr>{heads}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        + _note(
            f"{_measure_word(measure).capitalize()}, with the range below each figure "
            f"({run.range_words}). Trend: {comparable.lower()} against "
            f"the last four weeks. How far to trust it: how far the forecast's total for a "
            f"week (a day where weeks were not tried) typically missed when it was made again "
            f"for the last weeks of the history (its backtest). Click a "
            f"column to sort."
        )
    )


def _charts(run: ReportRun, figures: pd.DataFrame, top: int) -> str:
    """The total, full width, then every category (at category level) or the top products."""
    shaded = f"Shaded: the {run.interval:.0%} range."
    series = figures[figures["level"] == run.level].sort_values(
        "revenue last 4 weeks", ascending=False
    )
    if run.level == "total":
        series, note = series.iloc[:0], f"This run forecast the total only. {shaded}"
    elif run.level == "category":
        note = f"Every category, by revenue over the last four weeks. {shaded}"
    else:
        shown = series.head(top)
        note = f"The {len(shown)} products with the most revenue over the last four weeks"
        note += f" (of {len(series)}; the table lists all). " if len(shown) < len(series) else ". "
        series, note = shown, note + shaded
    title = f"{TOTAL_NAME}: daily {_measure_word(run.measure)}"
    small = "".join(
        _chart(run, uid, _series_title(row), (5.6, 2.7)) for uid, row in series.iterrows()
    )
    return _note(note) + _chart(run, TOTAL, title, (11, 3.2)) + f"<div class='charts'>{small}</div>"


def _chart(run: ReportRun, uid: str, title: str, size: tuple[float, float]) -> str:
    figure = plots.forecast(
        run.history, run.forecasts, uid, run.measure, HISTORY_DAYS, title, run.interval, size
    )
    encoded = base64.b64encode(plots.to_png(figure)).decode()
    return f"<img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"


def _series_title(row: pd.Series) -> str:
    if row["level"] == "product":
        return f"{row['name']} ({row['category']}, {row['id']})"
    return str(row["name"])


def _accuracy(run: ReportRun) -> str:
    """The backtest in a sentence and a small table against the baselines, with notes on what
    the history is too short for."""
    errors = daily_errors(run)
    levels = [level for level in LEVELS if level in set(run.forecasts["level"])]
    level_of = run.forecasts.drop_duplicates("unique_id").set_index("unique_id")["level"]
    windows = int(run.metrics["fold"].max()) + 1 if len(run.metrics) else 0
    horizon = int(run.parameters["horizon"])
    parts = []
    if windows:
        models = [m for m in ("chosen", "seasonal_naive", "naive") if m in errors]
        table = pd.DataFrame(
            {
                _level_title(level): [
                    _percent(_pooled(run, errors, level_of, level, model)) for model in models
                ]
                for level in levels
            },
            index=[MODEL_NAMES[m] for m in models],
        )
        table.index.name = "Typical error on a day"
        total_error = _pooled(run, errors, level_of, TOTAL, "chosen")
        sentence = (
            f"To see how far to trust the forecast, it was made again as if the last "
            f"{_windows(windows, horizon)} had not happened yet, and compared with what was "
            f"sold (a backtest). For {TOTAL_NAME.lower()} it was off by "
            f"{_percent(total_error)} of a day's {_measure_word(run.measure)} on average"
        )
        if "seasonal_naive" in errors:
            naive = _pooled(run, errors, level_of, TOTAL, "seasonal_naive")
            sentence += f", against {_percent(naive)} for simply repeating last week"
        parts.append(f"<p>{html.escape(sentence)}.</p>")
        parts.append(table.reset_index().to_html(index=False, border=0, escape=True))
        if "seasonal_naive" in errors:
            beaten = (errors["chosen"] < errors["seasonal_naive"]).reindex(level_of.index)
            parts.append(
                _note(
                    f"The forecast beat 'same as last week' for {int(beaten.sum())} of "
                    f"{int(beaten.notna().sum())} series. Errors of a single product or category are "
                    f"larger than of the total: ups and downs partly cancel out when added up."
                )
            )
    else:
        parts.append(_note("The history was too short to backtest any series."))
    return "".join(parts) + "".join(_note(note) for note in _history_notes(run, windows))


def _pooled(run, errors: pd.DataFrame, level_of: pd.Series, level_or_id: str, model: str):
    """A model's error over the series of a level, weighted by their sales (or of one series)."""
    if level_or_id == TOTAL:
        return errors.get(model, pd.Series(dtype=float)).get(TOTAL)
    ids = level_of.index[level_of == level_or_id]
    scored = errors.reindex(ids)[model].dropna()
    sales = (
        run.history[run.history["unique_id"].isin(scored.index)].groupby("unique_id")["y"].mean()
    )
    return float((scored * sales).sum() / sales.sum()) if sales.sum() > 0 else None


def _history_notes(run: ReportRun, windows: int) -> list[str]:
    """What the history is too short for."""
    first = run.history["ds"].min()
    days = (run.start - first).days
    notes = []
    if days < 365:
        notes.append(
            f"The sales history covers {days} days (from {_day(first)}): less than a year, so "
            f"the forecast cannot know yearly patterns such as the holiday season; it follows "
            f"the recent level, trend and the weekly pattern."
        )
    elif days < 730:
        notes.append(
            f"The sales history covers {days} days (from {_day(first)}): yearly patterns are "
            f"learnt from a single year, so treat seasonal peaks with some caution."
        )
    asked = int(run.parameters["folds"])
    if 0 < windows < asked:
        notes.append(f"Only {windows} of the {asked} backtest windows asked fit in the history.")
    short = run.choices[run.choices["folds"] == 0]
    if len(short):
        notes.append(
            f"{len(short)} series had too little history to backtest; they repeat their "
            f"last days or week, with a range of their own."
        )
    return notes


def _freshness(run: ReportRun, freshness: pd.DataFrame) -> str:
    made = pd.Timestamp(run.parameters["created"])
    text = (
        f"The forecast was made on {_day(made)} at {made:%H:%M} UTC from complete days of "
        f"sales up to {_day(run.start - pd.Timedelta(days=1))} (the day it was made is left "
        f"out while it fills up)."
    )
    if not freshness.empty:
        newest = pd.to_datetime(freshness["latest_event"]).max()
        text += (
            f" The lake now holds {int(freshness['events'].sum()):,} order changes over "
            f"{len(freshness)} days; the newest arrived on {_day(newest)} at {newest:%H:%M} UTC."
        )
    if not pd.isna(run.sales_until) and run.sales_until >= run.start:
        text += (
            f" Sales up to {_day(run.sales_until)} are in the lake now, newer than this "
            f"forecast: run it again for an up-to-date one."
        )
    return f"<p>{html.escape(text)}</p>"


def _settings(run: ReportRun, csv_name: str) -> str:
    """The run's parameters in words, as a definition list."""
    p = run.parameters
    counts = run.forecasts.drop_duplicates("unique_id")["level"].value_counts()
    series = ", ".join(
        f"{counts[level]} {_level_title(level).lower()}" if level != TOTAL else "the total"
        for level in LEVELS
        if level in counts
    )
    chosen = run.choices[run.choices["level"] == run.level]["model"].value_counts()
    took = ", ".join(f"{MODEL_NAMES.get(model, model)} {n}" for model, n in chosen.items())
    models = [m.strip() for m in str(p["models"]).split(",")]
    members = ", ".join(MODEL_NAMES.get(m, m) for m in models if m not in BASELINES)
    widening = [p[c] for c in p.index if str(c).startswith("interval_widening_") and pd.notna(p[c])]
    zone = p["timezone"] if pd.notna(p.get("timezone")) else "UTC"  # runs before the setting
    items = {
        "Forecast": f"daily {_measure_word(run.measure)}, {int(p['horizon'])} days ahead, for "
        f"{series}",
        "Models": f"each series takes the median or the accuracy-weighted mean of {members}, "
        f"whichever did better in the backtest, or a single model (or simply repeating last "
        f"week or the last day) where it won every backtest window; the {run.level} series "
        f"took: {took}",
        "Backtest": f"the last {_windows(int(p['folds']), int(p['horizon']))}",
        "Adding up": f"products add up to their categories and categories to the total "
        f"({RECONCILIATION.get(p['reconciliation'], p['reconciliation'])} reconciliation)"
        if p["reconciliation"]
        else "the levels were not reconciled",
        "Ranges": f"{run.interval:.0%} (and 80% in the CSV), set from the backtest errors"
        + (f" and widened ×{max(widening):.2f} for drift" if widening else ""),
        "Holidays": f"public holidays of {p['country']}" if p["country"] else "none",
        "Time of day": f"live sales are judged against the hours of the {zone} clock",
        "Promotions": "the published promotion plan was used"
        if p["regressors"]
        else "no promotion plan was published, so none was used",
        "Run": f"{run.run_id}; the forecasts as a spreadsheet: {csv_name}",
    }
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items.items())
    return f"<dl>{rows}</dl>"


# words and numbers ---------------------------------------------------------------------------


def _scope(run: ReportRun) -> str:
    counts = run.forecasts.drop_duplicates("unique_id")["level"].value_counts()
    if run.level == "product":
        return f"{counts['product']} products in {counts['category']} categories, and their total"
    if run.level == "category":
        return f"{counts['category']} categories and their total"
    return "the whole shop"


def _level_title(level: str) -> str:
    return {"total": "Total", "category": "Categories", "product": "Products"}[level]


def _windows(count: int, horizon: int) -> str:
    return (
        f"{count * horizon} days ({count} windows of {horizon})" if count > 1 else f"{horizon} days"
    )


def _trust(error: float, per: str) -> str:
    word = next(word for limit, word in TRUST if error < limit)
    return f"{word} · ±{error:.0%} {per}"


def _arrow(change: float) -> str:
    """A change as an arrow and a signed percentage (a true minus sign), coloured; a change
    that rounds to nothing is 0%, unsigned."""
    signed = f"{change:+.0%}".replace("-", "−") if round(change * 100) else "0%"
    if abs(change) < FLAT:
        return f"<span class='flat'>→ flat ({signed})</span>"
    css, arrow = ("up", "▲") if change > 0 else ("down", "▼")
    return f"<span class='{css}'>{arrow} {signed}</span>"


def _percent(share: float | None) -> str:
    return "n/a" if share is None or pd.isna(share) else f"±{share:.0%}"


def _number(value: float, measure: str) -> str:
    """A figure for reading: whole with thousands separators; one decimal for a count under 10."""
    small = abs(value) < 10 and round(value, 1) != round(value) and measure != "revenue"
    return f"{value:,.1f}" if small else f"{value:,.0f}"


def _measure_word(measure: str) -> str:
    return {"units": "units sold", "revenue": "revenue", "orders": "orders"}.get(measure, measure)


def _day(day) -> str:
    return f"{pd.Timestamp(day):%a %-d %b %Y}"


def _span(first, last) -> str:
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first:%-d}–{last:%-d %b %Y}"
    if first.year == last.year:
        return f"{first:%-d %b} – {last:%-d %b %Y}"
    return f"{first:%-d %b %Y} – {last:%-d %b %Y}"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"
