"""The forecast report: its figures against the run's forecasts and the sales, the CSV, and that
only complete runs are reported."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from helpers.forecast import run_forecast
from helpers.generate import SalesParams
from helpers.report import RECONCILIATION, export_report
from tests.test_forecast_run import streamed

FAST = {"folds": 1, "n_jobs": 1, "progress": False, "models": ("auto_ets", "seasonal_naive")}
PARAMS = SalesParams(orders_per_day=40, n_products=5, n_categories=3, seed=21)


class Page(HTMLParser):
    """The parts of a report page the tests read: the headline cards' text, each table's rows
    (cells as text and ``data-v``), images' alt texts and scripts' sources."""

    def __init__(self, text: str):
        super().__init__()
        self.cards, self.tables, self.alts, self.scripts = [], [], [], []
        self._card = self._row = self._cell = None
        self._depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "card":
            self._card, self._depth = [], 0
        elif tag == "div" and self._card is not None:
            self._depth += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = {"text": "", "v": attrs.get("data-v")}
        elif tag == "img":
            self.alts.append(attrs.get("alt"))
        elif tag == "script":
            self.scripts.append(attrs.get("src"))

    def handle_endtag(self, tag):
        if tag == "div" and self._card is not None:
            if self._depth == 0:
                self.cards.append(" ".join(self._card))
                self._card = None
            else:
                self._depth -= 1
        elif tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.tables[-1].append(self._row)

    def handle_data(self, data):
        if self._card is not None:
            self._card.append(data)
        if self._cell is not None:
            self._cell["text"] += data

    def table(self, first_header: str) -> pd.DataFrame:
        """The table whose first column is ``first_header``, as text, with ``v_<column>``
        columns holding the cells' sort values."""
        rows = next(t for t in self.tables if t[0][0]["text"] == first_header)
        header = [cell["text"] for cell in rows[0]]
        frame = pd.DataFrame([[c["text"] for c in row] for row in rows[1:]], columns=header)
        for i, column in enumerate(header):
            frame[f"v_{column}"] = [row[i]["v"] for row in rows[1:]]
        return frame


def number(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-"))


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """400 days of sales (enough for last year's same weeks), 5 products in 3 categories."""
    with streamed(tmp_path_factory.mktemp("report") / "root", 400, PARAMS) as platform:
        yield platform


@pytest.fixture(scope="module")
def product_run(lake, tmp_path_factory):
    run = run_forecast(lake, "product", horizon=28, run_id="products", **FAST)
    paths = export_report(lake, run.run_id, tmp_path_factory.mktemp("out"), top=4)
    return run, paths


def test_headline_states_the_period_and_the_total_series_sums(lake, product_run):
    """The cards sum the total series over the next week and four weeks, with the interval of
    that period's total (narrower than its days' intervals added up), and set them against the
    last four weeks and last year's same days."""
    run, paths = product_run
    page = Page(paths["html"].read_text())
    total = run.forecasts[run.forecasts.unique_id == "total"].sort_values("ds")
    daily = lake.query("SELECT ds, sum(units) AS units FROM daily_sales GROUP BY ds")
    units = daily.assign(ds=pd.to_datetime(daily.ds)).set_index("ds").units.sort_index()
    start = total.ds.min()
    week, month = page.cards
    for card, days, label in ((week, 7, "Next week"), (month, 28, "Next 4 weeks")):
        ahead = total.iloc[:days]
        first, last = ahead.ds.min(), ahead.ds.max()
        assert re.match(rf"{label} · {first:%-d}\b", card) and f"{last:%-d %b %Y}" in card
        period = run.periods.set_index(["unique_id", "days"]).loc[("total", days)]
        expected = [ahead.yhat.sum(), period.yhat_lower, period.yhat_upper]
        shown = re.search(r"([\d,]+) units sold likely between ([\d,]+) and ([\d,]+)", card)
        assert [number(x) for x in shown.groups()] == [round(x) for x in expected]
        assert period.yhat == pytest.approx(ahead.yhat.sum())
        summed = ahead.yhat_upper.sum() - ahead.yhat_lower.sum()
        assert 0 < period.yhat_upper - period.yhat_lower < summed
        recent = units[start - pd.Timedelta(days=28) : start - pd.Timedelta(days=1)].sum()
        ago = start - pd.Timedelta(days=364)
        year = units[ago : ago + pd.Timedelta(days=days - 1)].sum()
        assert f"against {recent * days / 28:,.0f} in " in card
        assert f"against {year:,.0f} on the same days last year" in card
        change = ahead.yhat.sum() / year - 1
        assert f"{change:+.0%}".replace("-", "−") in card
    assert "No comparison with last year" not in paths["html"].read_text()


def test_product_table_names_every_product_and_sums_its_forecast(lake, product_run):
    run, paths = product_run
    page = Page(paths["html"].read_text())
    table = page.table("Product")
    names = lake.query("SELECT DISTINCT product_id, product_name, category FROM daily_sales")
    assert sorted(table.ID) == sorted(names.product_id)
    assert dict(zip(table.ID, table.Product, strict=True)) == dict(
        zip(names.product_id, names.product_name, strict=True)
    )
    assert dict(zip(table.ID, table.Category, strict=True)) == dict(
        zip(names.product_id, names.category, strict=True)
    )
    sums = run.forecasts.sort_values("ds").groupby("unique_id").head(7).groupby("unique_id").yhat
    week = table.set_index("ID")["v_Next week"].astype(float)
    assert np.allclose(week.sort_index(), sums.sum().loc[week.index].sort_index(), atol=1e-3)
    revenue = table["v_Revenue, last 4 weeks"].astype(float)
    assert (np.diff(revenue) <= 0).all()  # by revenue first
    weekly = run.periods[run.periods.days == 7].set_index("unique_id").backtest_error
    trust = table.set_index("ID")["How far to trust it"].str.extract(r"±(\d+)% a week")[0]
    assert trust.notna().all()  # the week's total as the backtests missed it
    assert (trust.astype(int) == (100 * weekly.loc[trust.index]).round().astype(int)).all()
    categories = page.table("Category")
    assert sorted(categories.Category) == sorted(names.category.unique())
    # charts: the total with its interval level, then the top four products by name
    assert page.alts[0] == "All products: daily units sold" and len(page.alts) == 1 + 4
    for alt in page.alts[1:]:
        assert any(alt.startswith(f"{name} (") for name in names.product_name)
    assert "Shaded: the 90% range" in paths["html"].read_text()


def test_page_is_offline_and_explains_accuracy_and_settings(lake, product_run):
    run, paths = product_run
    text = paths["html"].read_text()
    page = Page(text)
    assert page.scripts == [None]  # one inline script, nothing fetched
    assert "http://" not in text and "https://" not in text
    accuracy = page.table("Typical error on a day")
    assert accuracy["Typical error on a day"].tolist() == ["This forecast", "Same as last week"]
    assert list(accuracy.columns[1:4]) == ["Total", "Categories", "Products"]
    assert "yearly patterns are learnt from a single year" in text
    assert text.index("How far to trust it</h2>") < text.index("Data and settings</h2>")
    assert f"public holidays of {lake.settings.country}" in text
    assert f"against the hours of the {lake.settings.timezone} clock" in text
    assert "Run</dt><dd>products;" in text
    assert f"({RECONCILIATION[run.reconciliation]} reconciliation)" in text


def test_csv_has_names_rounded_values_and_iso_dates(product_run):
    run, paths = product_run
    raw = paths["csv"].read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # plain UTF-8, no byte order mark
    exported = pd.read_csv(paths["csv"], dtype={"date": str})
    assert len(exported) == len(run.forecasts)
    assert not exported.duplicated(["id", "date"]).any()
    assert exported.date.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert list(exported.columns[:6]) == ["date", "level", "id", "name", "category", "measure"]
    assert exported.loc[exported.level == "total", "name"].eq("All products").all()
    products = exported[exported.level == "product"]
    assert products.name.notna().all() and products.category.notna().all()
    for column in ("forecast", "lower_90", "upper_90", "lower_80", "upper_80"):
        assert np.allclose(exported[column] * 10, (exported[column] * 10).round())
    merged = exported.merge(
        run.forecasts.assign(date=run.forecasts.ds.dt.strftime("%Y-%m-%d")),
        left_on=["id", "date"],
        right_on=["unique_id", "date"],
    )
    assert np.allclose(merged.forecast, merged.yhat.round(1))


def test_category_level_lists_and_charts_every_category_in_revenue(lake, tmp_path):
    """At category level every category is in the table and charted (none left out by ``top``);
    revenue is rounded to cents in the CSV."""
    run = run_forecast(lake, "category", measure="revenue", horizon=14, run_id="categories", **FAST)
    paths = export_report(lake, run.run_id, tmp_path, top=1)
    page = Page(paths["html"].read_text())
    categories = sorted(lake.query("SELECT DISTINCT category FROM daily_sales").category)
    assert sorted(page.table("Category").Category) == categories
    assert sorted(page.alts[1:]) == categories
    assert [card.split(" · ")[0] for card in page.cards] == ["Next week", "Next 14 days"]
    exported = pd.read_csv(paths["csv"])
    assert np.allclose(exported.forecast * 100, (exported.forecast * 100).round())
    assert not np.allclose(exported.forecast * 10, (exported.forecast * 10).round())


def test_a_run_that_fails_midway_never_reaches_the_report(lake, product_run, tmp_path, monkeypatch):
    """A run whose writing fails after its forecasts has no run record: the report takes the
    latest complete run instead, and refuses the failed one by name."""
    latest = lake.query("SELECT run_id FROM forecast_runs ORDER BY created DESC, run_id DESC")
    written = []
    write = lake.write_dataset

    def failing(table, frame, partition):
        if written:
            raise OSError("disk full")
        written.append(table)
        return write(table, frame, partition)

    monkeypatch.setattr(lake, "write_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        run_forecast(lake, "product", horizon=28, run_id="zz-failed", **FAST)
    monkeypatch.undo()
    assert written == ["forecasts"]
    partial = lake.query("SELECT count(*) AS n FROM forecasts WHERE run_id = 'zz-failed'")
    assert partial.n.iloc[0] > 0  # its forecasts are in the lake, yet:
    paths = export_report(lake, output_dir=tmp_path)
    assert f"Run</dt><dd>{latest.run_id.iloc[0]};" in paths["html"].read_text()
    with pytest.raises(ValueError, match="no run record"):
        export_report(lake, "zz-failed", tmp_path / "failed")


@pytest.mark.parametrize(
    ("change", "shown"),
    [(-0.004, "→ flat (0%)"), (0.004, "→ flat (0%)"), (-0.006, "→ flat (−1%)"), (0.2, "▲ +20%")],
)
def test_changes_read_with_a_true_minus_and_no_signed_zero(change, shown):
    from helpers.report import _arrow

    assert re.sub("<[^>]+>", "", _arrow(change)) == shown
