"""The forecasting step end to end: SQL in, forecasts and metrics back in the lake as tables."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import helpers
from helpers.cli import app
from helpers.forecast import reconcile, run_forecast
from helpers.generate import SalesParams, backfill


def streamed(root, days: int, params: SalesParams, **settings):
    """A platform on ``root`` whose lake holds ``days`` of generated history, delivered."""
    platform = helpers.connect(root=root, buffer_interval_s=0.1, **settings)
    platform.apply(backfill(days, end="2026-03-01", params=params), progress=False, batch_rows=9000)
    platform.flush()
    return platform


def test_forecasts_and_metrics_are_written_back_and_queryable(tmp_path):
    with streamed(
        tmp_path / "root",
        60,
        SalesParams(orders_per_day=80, n_products=4, n_categories=2, seed=5),
        country="GB",
        timezone="Asia/Kolkata",
    ) as platform:
        run = run_forecast(platform, level="category", horizon=7, folds=1, n_jobs=1, progress=False)
        second = run_forecast(
            platform,
            level="total",
            horizon=7,
            folds=1,
            n_jobs=1,
            progress=False,
            run_id="r2",
            timezone="America/New_York",
        )
        stored = platform.query(
            "SELECT unique_id, ds, yhat, model FROM forecasts WHERE run_id = ? ORDER BY unique_id, ds",
            params=[run.run_id],
        )
        expected = run.forecasts.sort_values(["unique_id", "ds"]).reset_index(drop=True)
        assert len(stored) == len(expected) == (1 + 2) * 7  # the total and two categories
        assert run.series == 2 and run.reconciliation in reconcile.METHODS
        # the categories add up to the total, by SQL too
        sums = platform.query(
            "SELECT ds, sum(CASE WHEN level = 'category' THEN yhat ELSE 0 END) AS categories, "
            "sum(CASE WHEN level = 'total' THEN yhat ELSE 0 END) AS total FROM forecasts "
            "WHERE run_id = ? GROUP BY ds",
            params=[run.run_id],
        )
        assert np.allclose(sums.categories, sums.total)
        chosen = platform.query(
            "SELECT unique_id, model FROM forecast_choices WHERE run_id = ?", params=[run.run_id]
        )
        assert dict(zip(chosen.unique_id, chosen.model, strict=True)) == dict(
            zip(run.choices.unique_id, run.choices.model, strict=True)
        )
        assert stored.unique_id.tolist() == expected.unique_id.tolist()
        assert np.allclose(stored.yhat, expected.yhat)
        assert (pd.to_datetime(stored.ds) == pd.to_datetime(expected.ds)).all()
        settings = platform.query("SELECT * FROM forecast_runs ORDER BY run_id")
        assert settings.level.tolist() == ["category", "total"] and settings.horizon.eq(7).all()
        assert settings.country.tolist() == ["GB", "GB"]  # the platform's country setting
        # the platform's time zone setting, then the run's own
        assert settings.timezone.tolist() == ["Asia/Kolkata", "America/New_York"]
        runs = platform.query("SELECT run_id, count(*) AS n FROM forecasts GROUP BY run_id")
        assert dict(zip(runs.run_id, runs.n, strict=True)) == {run.run_id: 21, "r2": 7}
        metrics = platform.query(
            "SELECT model, avg(mase) AS mase FROM forecast_metrics WHERE run_id = 'r2' GROUP BY model"
        ).set_index("model")
        assert np.allclose(
            metrics.mase.sort_index(), second.metrics.groupby("model").mase.mean().sort_index()
        )
        # forecasts join with actuals by SQL
        joined = platform.query(
            "SELECT count(*) AS n FROM forecasts f JOIN daily_sales d "
            "ON CAST(f.ds AS DATE) >= d.ds WHERE f.run_id = 'r2'"
        )
        assert joined.n.iloc[0] > 0


def test_salescast_forecast_command(tmp_path):
    root = tmp_path / "root"
    streamed(root, 40, SalesParams(orders_per_day=60, n_products=3, n_categories=1, seed=6)).close()
    result = CliRunner().invoke(
        app, ["forecast", "--level", "total", "--horizon", "7", "--folds", "1", "--root", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert "1 series at total level, 7 days" in result.output
    assert "forecast_metrics: s3://" in result.output and "forecast_choices: s3://" in result.output
    assert "seasonal_naive" in result.output and "chosen" in result.output


@pytest.mark.slow
def test_report_on_a_short_history_says_what_it_cannot_tell(tmp_path):
    """60 days of sales: no comparison with last year and a note on yearly patterns, said
    rather than left out; a 7-day horizon gives the next week only; no run, no report."""
    from helpers.report import export_report

    with streamed(
        tmp_path / "root", 60, SalesParams(orders_per_day=80, n_products=4, n_categories=2, seed=8)
    ) as platform:
        platform.crawl()
        with pytest.raises(ValueError, match="no complete forecasting run in the lake yet"):
            export_report(platform, output_dir=tmp_path / "none")
        run = run_forecast(platform, level="product", horizon=7, folds=1, n_jobs=1, progress=False)
        paths = export_report(platform, output_dir=tmp_path / "report", top=3)
        first = pd.to_datetime(platform.query("SELECT min(ds) AS ds FROM daily_sales").ds.iloc[0])
    page = paths["html"].read_text()
    assert f"No comparison with last year: the sales history starts on {first:%a %-d %b %Y}" in page
    assert "less than a year, so the forecast cannot know yearly patterns" in page
    assert page.count("<div class='card'>") == 1 and "Next week · " in page
    assert page.count("<img") == 1 + 3  # the total and the top three products
    assert run.run_id in page
    exported = pd.read_csv(paths["csv"])
    assert len(exported) == len(run.forecasts)
    assert set(exported.id) == set(run.forecasts.unique_id)


def test_forecasting_leaves_out_the_day_still_filling_up(tmp_path, make_orders):
    from helpers.forecast import complete_daily_sales

    today = pd.Timestamp.now(tz="UTC").floor("D")
    orders = make_orders(30, seed=3)
    orders["order_ts"] = [today - pd.Timedelta(days=i % 3, hours=-1) for i in range(30)]
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        platform.orders.put(orders)
        platform.flush()
        platform.crawl()
        everything = platform.query("SELECT DISTINCT ds FROM daily_sales")
        complete = complete_daily_sales(platform)
    assert today.date() in set(pd.to_datetime(everything.ds).dt.date)
    assert set(pd.to_datetime(complete.ds).dt.date) == {
        (today - pd.Timedelta(days=1)).date(),
        (today - pd.Timedelta(days=2)).date(),
    }


@pytest.mark.slow
def test_the_promotion_plan_reaches_the_lake_and_the_forecast(tmp_path):
    """workbench.backfill publishes the plan (history and the days ahead); a run then uses it as
    a regressor, and a run on a lake without a plan says it had none."""
    from helpers import workbench
    from helpers.generate import promotion_calendar

    params = SalesParams(orders_per_day=60, n_products=4, n_categories=2, seed=9, promo_rate=0.2)
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.1) as platform:
        without = run_forecast(
            streamed_into(platform, params), "total", horizon=7, folds=1, n_jobs=1, progress=False
        )
        workbench.backfill(platform, 50, params, end="2026-03-01")
        platform.flush()
        published = platform.query("SELECT ds, product_id FROM promotions ORDER BY ds, product_id")
        plan = promotion_calendar(params, "2026-01-10", "2026-06-29")
        assert len(published) == len(plan) > 0
        assert published.product_id.tolist() == plan.product_id.tolist()
        assert pd.to_datetime(published.ds).max() > pd.Timestamp("2026-03-01")  # days ahead too
        with_plan = run_forecast(
            platform, "product", horizon=7, folds=1, n_jobs=1, progress=False, run_id="promo"
        )
        runs = platform.query("SELECT run_id, regressors FROM forecast_runs").set_index("run_id")
    assert runs.regressors.to_dict() == {without.run_id: "", "promo": "promotions"}
    assert with_plan.series == 4


def streamed_into(platform, params: SalesParams):
    """``platform`` after 40 days of orders written without a promotion plan."""
    platform.apply(backfill(40, end="2026-01-10", params=params), progress=False)
    platform.flush()
    return platform


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"horizon": -5}, "horizon must be a whole number, 1 or more, got -5"),
        ({"horizon": 0}, "horizon must be a whole number, 1 or more, got 0"),
        ({"folds": 0}, "folds must be a whole number, 1 or more, got 0"),
        ({"level": "store"}, "level must be one of ['total', 'category', 'product']"),
        ({"seasonality_mode": "linear"}, "seasonality_mode must be one of ['auto', "),
        ({"timezone": "Europe/Atlantis"}, "setting 'timezone' must be an IANA time zone name"),
    ],
)
def test_run_forecast_checks_its_arguments_before_writing(tmp_path, arguments, message):
    """The API refuses what the command refuses, before the crawl or any table is written."""
    with helpers.connect(root=tmp_path / "root", consume=False) as platform:
        platform.crawl = lambda: pytest.fail("crawled before checking the arguments")
        with pytest.raises(ValueError, match=re.escape(message)):
            run_forecast(platform, **arguments)


def test_a_history_too_short_to_backtest_is_written_whole_and_reported(tmp_path):
    """Three days cannot hold a backtest window: every series takes its baseline, the tables
    are still typed and written (no metrics, no runners-up), and the report says what it
    cannot compare."""
    from helpers.report import export_report

    params = SalesParams(orders_per_day=80, n_products=3, n_categories=2, seed=5)
    with streamed(tmp_path / "root", 3, params) as platform:
        run = run_forecast(platform, level="product", horizon=14, folds=3, progress=False)
        metrics = platform.query(
            "SELECT count(*) AS n FROM forecast_metrics WHERE run_id = ?", params=[run.run_id]
        )
        choices = platform.query(
            "SELECT runner_up, folds FROM forecast_choices WHERE run_id = ?", params=[run.run_id]
        )
        page = export_report(platform, run.run_id)["html"].read_text()

    assert run.metrics.empty and metrics.n.iloc[0] == 0
    assert choices.runner_up.isna().all() and (choices.folds == 0).all()
    assert "no four weeks of sales" in page
