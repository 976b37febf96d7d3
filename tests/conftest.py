"""Shared fixtures: a platform on a temporary root, and seeded orders; the ``--backend`` option
that picks the backends the contract tests run on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.generate import SalesParams, backfill


def pytest_collection_modifyitems(items):
    """The ``slow`` tests first: on pytest-xdist's two workers the long ones then start early,
    instead of one of them ending the run while the other worker has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        choices=("local", "aws", "all"),
        default="all",
        help="backend(s) for tests/contract: local, aws (on moto), or all (default)",
    )


@pytest.fixture
def platform(tmp_path):
    """A local platform with a short delivery interval, closed after the test."""
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.2) as platform:
        yield platform


@pytest.fixture
def make_orders():
    """``make_orders(n, seed)``: n valid orders spread over 2025, reproducible."""

    def make(n: int, seed: int = 1) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "order_id": [f"o-{seed}-{i:06d}" for i in range(n)],
                "order_ts": pd.Timestamp("2025-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s"),
                "customer_id": [f"c-{i:04d}" for i in rng.integers(0, 500, n)],
                "product_id": [f"p-{i:03d}" for i in rng.integers(0, 20, n)],
                "product_name": 'Teal "Desk" Lamp \\ ünïcode',
                "category": "home",
                "channel": rng.choice(["web", "mobile", "store"], n),
                "quantity": rng.integers(1, 6, n),
                "unit_price": np.round(rng.uniform(1, 100, n), 2),
            }
        )

    return make


@pytest.fixture
def history():
    """A small generated history: 21 days with amendments and cancellations."""
    return list(backfill(21, end="2026-03-01", params=SalesParams(orders_per_day=60, seed=7)))
