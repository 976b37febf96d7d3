"""The project's SQL, written once in Athena's dialect and run unchanged on both backends.

Views (``orders_current``, ``daily_sales``) are created in the catalog; named queries are
what the notebooks run. Table names are unqualified: they resolve in the query's database.

Examples
--------
>>> load("daily_revenue").splitlines()[1]
'SELECT ds, sum(revenue) AS revenue, sum(units) AS units, sum(orders) AS orders'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent
VIEWS = ("orders_current", "daily_sales")
"""Catalog views, in the order they must be created (each reads the ones before it)."""
NAMED = (
    "daily_revenue",
    "top_products",
    "revenue_by_category_channel",
    "week_over_week",
    "data_freshness",
)
"""The queries the notebooks run as they are (also saved as Athena named queries on aws)."""
PARAMETERISED = ("hourly_profile",)
"""Queries that steps run with parameters (``platform.named_query(name, params=[...])``)."""


def load(name: str) -> str:
    """The SQL text of a view or named query."""
    path = FOLDER / f"{name}.sql"
    if not path.exists():
        known = ", ".join((*VIEWS, *NAMED, *PARAMETERISED))
        raise KeyError(f"no query named {name!r}; known: {known}")
    return path.read_text()


def sql_literal(value: Any) -> str:
    """A Python value as an Athena SQL literal (how query parameters are bound)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
