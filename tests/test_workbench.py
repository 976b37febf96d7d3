"""The notebooks' steps: scale, the lake checked against the table, freshness, live sessions."""

from __future__ import annotations

import pandas as pd
import pytest

import helpers
from helpers import generate, plots, workbench
from helpers.exceptions import SalescastError


def test_scale_multiplies_volumes_and_refuses_nonsense(monkeypatch):
    monkeypatch.delenv("SALESCAST_SCALE", raising=False)
    assert workbench.sales_params(2000, 50, seed=1).orders_per_day == 2000
    monkeypatch.setenv("SALESCAST_SCALE", "0.1")
    params = workbench.sales_params(2000, 50, seed=1)
    assert (params.orders_per_day, params.n_products, params.seed) == (200, 5, 1)
    assert workbench.sales_params(2000, 10, seed=1).n_products == workbench.MIN_PRODUCTS
    for bad in ("zero", "0", "-1"):
        monkeypatch.setenv("SALESCAST_SCALE", bad)
        with pytest.raises(SalescastError, match=f"SALESCAST_SCALE={bad!r} is not a positive"):
            workbench.scale()


def test_check_lake_finds_what_the_lake_has_not_caught_up_with(tmp_path, make_orders):
    root = tmp_path / "root"
    orders = make_orders(40, seed=2)
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(orders)
        platform.flush()
        assert workbench.check_lake(platform).matches
    # a writer that does not consume: its changes stay in the table's stream
    with helpers.connect(root=root, consume=False) as writer:
        writer.orders.update(orders.order_id[0], quantity=99)
        writer.orders.delete([orders.order_id[1]])
        writer.orders.put(make_orders(1, seed=3))
        price = float(orders.unit_price[2])
        writer.orders.update(orders.order_id[2], unit_price=price + 0.01)
        nearly = float(orders.unit_price[4]) * (1 + 1e-12)  # within isclose: the same price
        writer.orders.update(orders.order_id[4], unit_price=nearly)
        moved = orders.order_ts[3] + pd.Timedelta(hours=1)
        writer.orders.update(orders.order_id[3], order_ts=moved)
        check = workbench.check_lake(writer)
    assert not check.matches
    assert check.missing_from_lake == ["o-3-000000"]
    assert check.only_in_lake == [orders.order_id[1]]
    assert check.different[["order_id", "field", "table"]].to_dict("records") == [
        {"order_id": orders.order_id[3], "field": "order_ts", "table": moved},
        {"order_id": orders.order_id[0], "field": "quantity", "table": 99},
        {"order_id": orders.order_id[2], "field": "unit_price", "table": price + 0.01},
    ]
    figures = check.figures()
    assert (figures["table_orders"], figures["lake_orders"]) == (40, 40)
    assert figures["lake_matches_table"] is False
    assert check.summary()["count"].tolist() == [40, 40, 1, 1, 3]


def test_freshness_is_the_wait_until_the_lake_holds_what_the_table_had():
    timeline = pd.DataFrame(
        {
            "elapsed_s": [0.0, 0.5, 1.0, 1.5, 2.0],
            "table": [100, 110, 120, 120, 120],
            "lake": [100, 100, 110, 110, 120],
            "failed": [0, 0, 0, 0, 0],
        }
    )
    # 110 accepted at 0.5 s reached the lake at 1.0 s; 120 at 1.0 s reached it at 2.0 s
    delays, unreached = workbench._freshness(timeline)
    assert (delays.tolist(), unreached) == ([0.5, 1.0, 0.5, 0.0], 0)


def test_a_lake_that_never_catches_up_is_not_fresh():
    timeline = pd.DataFrame(
        {
            "elapsed_s": [0.0, 0.5, 1.0, 1.5],
            "table": [100, 300, 500, 500],
            "lake": [100, 200, 200, 200],
            "failed": [0, 0, 0, 0],
        }
    )
    delays, unreached = workbench._freshness(timeline)
    assert unreached == 3  # lower bounds: until the last sample
    assert delays.tolist() == [1.0, 0.5, 0.0]
    session = workbench.LiveSession({}, timeline, delays, unreached)
    assert session.freshness["unreached"] == 3 and session.freshness["max_s"] == 1.0


def test_live_session_counts_changes_and_measures_freshness(tmp_path, monkeypatch):
    monkeypatch.delenv("SALESCAST_SCALE", raising=False)
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.2) as platform:
        session = workbench.stream_live(
            platform, rate=40, seconds=3, params=workbench.sales_params(100, 5, seed=4)
        )
        lake = platform.status().set_index("stage").loc["lake", "records"]
    assert session.counts["put"] == 120
    assert lake == sum(session.counts.values())  # the session waited for the lake
    assert session.timeline["lake"].iloc[-1] == lake
    freshness = session.freshness
    assert 0 <= freshness["p50_s"] <= freshness["p95_s"] <= freshness["max_s"] < 10
    assert freshness["unreached"] == 0
    chart = plots.pipeline_timeline(session.timeline)
    lake_line = next(line for line in chart.axes[0].lines if line.get_label() == "lake")
    assert lake_line.get_ydata()[-1] == lake - session.timeline["lake"].iloc[0]


def test_no_live_session_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SALESCAST_SCALE", raising=False)
    with helpers.connect(root=tmp_path / "root", consume=False) as platform:
        session = workbench.stream_live(platform, 100, 0, workbench.sales_params(100, 5, seed=4))
        assert platform.orders.count() == 0
    assert session.counts == {"put": 0, "update": 0, "delete": 0}
    assert session.timeline.empty and "elapsed_s" in session.timeline.columns


def test_reset_removes_a_salescast_root_and_nothing_else(tmp_path, make_orders):
    root = tmp_path / "root"
    with workbench.connect(root=str(root)) as platform:
        platform.orders.put(make_orders(3))
    with workbench.connect(root=str(root), reset=True) as platform:
        assert platform.orders.count() == 0
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(SalescastError, match="holds files but no salescast state"):
        workbench.connect(root=str(precious), reset=True)
    assert (precious / "chapter1.tex").exists()
    with pytest.raises(SalescastError, match="RESET only applies to the local backend"):
        workbench.connect(backend="aws", reset=True)


def test_paced_session_catches_up_with_today_then_streams_the_day_as_forecast(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("SALESCAST_SCALE", raising=False)
    params = workbench.sales_params(2000, 5, seed=4)
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.2) as platform:
        started = pd.Timestamp.now(tz="UTC")
        session = workbench.stream_paced(platform, speed=3600, seconds=2, params=params)
        table = platform.orders.scan()
        lake = platform.status().set_index("stage").loc["lake", "records"]
        assert workbench.stream_paced(platform, 3600, 0, params).timeline.empty
    earlier = {uid for c in generate.day_so_far(started, params) for uid in c.frame.order_id}
    assert earlier <= set(table.order_id)  # the day so far, as the backfill draws it
    paced = table[~table.order_id.isin(earlier)]
    assert (pd.to_datetime(paced.order_ts, utc=True) >= started.floor("ms")).all()
    assert (pd.to_datetime(paced.order_ts, utc=True) < started + pd.Timedelta(hours=3)).all()
    assert session.counts["put"] - session.counts["delete"] == len(table)  # cancelled: gone
    assert lake == sum(session.counts.values())  # the session waited for the lake


def test_a_shocked_live_session_streams_the_products_extra_orders(tmp_path, monkeypatch):
    monkeypatch.delenv("SALESCAST_SCALE", raising=False)
    params = workbench.sales_params(100, 5, seed=4)
    cut = generate.Shock("p-0001", 0.0, start_minute=0, end_minute=1)
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.2) as platform:
        session = workbench.stream_live(platform, 50, 2, params, shocks=[cut])
        products = platform.orders.scan().product_id
    assert "p-0001" not in set(products)
    assert session.counts["put"] - session.counts["delete"] == len(products) > 40
