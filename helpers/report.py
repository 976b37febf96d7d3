"""Forecast reports for people: one self-contained HTML file and the forecasts as CSV.

The report reads a forecasting run back from the lake by SQL (the ``forecasts`` and
``forecast_metrics`` tables), with the history from ``daily_sales`` and the lake's freshness,
so it can be made on any backend, any time after the run. Charts are PNG images embedded in
the page, and nothing is fetched from elsewhere: it opens in a browser with no network.

Examples
--------
>>> paths = export_report(platform)          # the latest run         # doctest: +SKIP
>>> paths["html"].name
'report.html'
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from helpers import plots
from helpers.exceptions import SalescastError
from helpers.forecast import complete_daily_sales, series_from_daily_sales, summarize

HISTORY_DAYS = 120

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { padding: .25rem .6rem; }
th { background: #f0f0f0; text-align: left; } tr:nth-child(even) td { background: #fafafa; }
.note { color: #666; font-size: .9rem; } img { max-width: 100%; }
"""


def export_report(
    platform, run_id: str | None = None, output_dir: str | Path | None = None, top: int = 5
) -> dict[str, Path]:
    """Write ``report.html`` and ``forecasts.csv`` for a run (the latest by default).

    Returns the paths of both files, under ``<root>/reports/<run_id>/`` (beside the lake they
    come from) unless ``output_dir`` says.
    """
    if not run_id:
        try:
            latest = platform.query("SELECT max(run_id) AS run_id FROM forecasts").run_id.iloc[0]
        except SalescastError:  # no forecasts table yet
            latest = None
        if latest is None or pd.isna(latest):
            raise ValueError("no forecasting run in the lake yet; run `salescast forecast` first")
        run_id = str(latest)
    forecasts = platform.query("SELECT * FROM forecasts WHERE run_id = ?", params=[run_id])
    if forecasts.empty:
        raise ValueError(f"no forecasts for run {run_id!r}; `salescast query` lists the runs")
    metrics = platform.query("SELECT * FROM forecast_metrics WHERE run_id = ?", params=[run_id])
    try:
        parameters = platform.query("SELECT * FROM forecast_runs WHERE run_id = ?", params=[run_id])
    except SalescastError:  # a run from before parameters were recorded
        parameters = pd.DataFrame()
    try:
        choices = platform.query("SELECT * FROM forecast_choices WHERE run_id = ?", params=[run_id])
    except SalescastError:  # a run from before choices were recorded
        choices = pd.DataFrame()
    level = parameters.level.iloc[0] if "level" in parameters else forecasts.level.iloc[0]
    measure = forecasts.measure.iloc[0]
    history = series_from_daily_sales(complete_daily_sales(platform), level, measure)
    freshness = platform.named_query("data_freshness")

    folder = Path(output_dir) if output_dir else Path(platform.settings.root) / "reports" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "forecasts.csv"
    forecasts.drop(columns=["run_id"]).to_csv(csv_path, index=False)
    volumes = history.groupby("unique_id").y.sum().sort_values(ascending=False)
    leaders = volumes.index[:top].tolist()
    sections = [
        _section("Data freshness", _freshness(freshness)),
        _section(f"Total {measure}", _chart(history, forecasts, None, measure)),
        _section(
            f"Top {len(leaders)} by {measure}",
            "".join(_chart(history, forecasts, uid, measure) for uid in leaders)
            if level != "total"
            else _note("This run forecast the total only."),
        ),
        _section("How each series was forecast", _choices(choices, leaders)),
        _section(
            "Backtest against the baselines (mean over series and folds)",
            _table(summarize(metrics).reset_index().round(3))
            + _note(
                "MASE below 1 beats the in-sample seasonal naive forecast; lower is better. "
                "'chosen' is the forecast each series took (its model, or a combination of "
                "them), after the levels were made to add up."
            ),
        ),
        _section("Run", _table(_run_parameters(parameters, forecasts, csv_path.name))),
    ]
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Sales forecast {html.escape(run_id)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Sales forecast: {html.escape(str(level))} {html.escape(str(measure))}</h1>"
        f"<p class='note'>Run {html.escape(run_id)}, made {made}.</p>{''.join(sections)}"
        f"</body></html>"
    )
    html_path = folder / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return {"html": html_path, "csv": csv_path}


def _run_parameters(parameters: pd.DataFrame, forecasts: pd.DataFrame, csv_name: str):
    """The run's parameters as (parameter, value) rows."""
    values = parameters.iloc[0].to_dict() if len(parameters) else {}
    values["models"] = ", ".join(sorted(forecasts.model.unique()))
    values["forecasts CSV"] = csv_name
    return pd.DataFrame({"parameter": list(values), "value": [str(v) for v in values.values()]})


def _chart(history: pd.DataFrame, forecasts: pd.DataFrame, unique_id, measure: str) -> str:
    """History and forecast of one series (or of all summed, for ``None``) as an <img>."""
    figure = plots.forecast(history, forecasts, unique_id, measure, HISTORY_DAYS)
    title = figure.axes[0].get_title(loc="left")
    encoded = base64.b64encode(plots.to_png(figure)).decode()
    return f"<img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"


def _choices(choices: pd.DataFrame, leaders: list[str]) -> str:
    """How many series took each model or combination, and why the top series took theirs."""
    if choices.empty:
        return _note("This run did not record its choices.")
    counts = choices.groupby(["level", "model"]).size().rename("series").reset_index()
    top = choices[choices.unique_id.isin(leaders)][["unique_id", "model", "reason"]]
    return (
        _note(
            "Each series takes the better of two combinations of the models (their median, or "
            "their mean weighted by backtest accuracy), unless one model beat it in every "
            "backtest window."
        )
        + _table(counts)
        + _table(top)
    )


def _freshness(freshness: pd.DataFrame) -> str:
    if freshness.empty:
        return _note("The lake is empty.")
    latest = pd.to_datetime(freshness.latest_event).max()
    return (
        f"<p>{len(freshness)} day partitions, {int(freshness.events.sum()):,} changes; "
        f"newest change {latest:%Y-%m-%d %H:%M:%S} UTC.</p>" + _table(freshness.tail(5))
    )


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, escape=True)
