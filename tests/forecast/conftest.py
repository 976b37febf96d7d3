"""Generated sales for the forecast tests, made once per module."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.forecast.support import generated_daily_sales


@pytest.fixture(scope="module")
def daily_sales() -> pd.DataFrame:
    """150 days of a small generated shop (4 products in 2 categories) in daily_sales shape."""
    return generated_daily_sales()
