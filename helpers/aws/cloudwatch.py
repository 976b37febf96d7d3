"""CloudWatch: the pipeline's recent metrics, for ``status``.

Metrics arrive a minute or two late and best-effort (the services say so), so ``status``
shows them as recent activity, not as an exact account.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

WINDOW = timedelta(hours=1)


def metrics(
    client: Any, namespace: str, dimension: str, value: str, wanted: dict[str, str]
) -> dict[str, float]:
    """One statistic per metric over the last hour: ``wanted`` maps metric -> Sum|Maximum."""
    now = datetime.now(UTC)
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": name,
                    "Dimensions": [{"Name": dimension, "Value": value}],
                },
                "Period": int(WINDOW.total_seconds()),
                "Stat": stat,
            },
        }
        for i, (name, stat) in enumerate(wanted.items())
    ]
    response = client.get_metric_data(
        MetricDataQueries=queries, StartTime=now - WINDOW, EndTime=now
    )
    found = {result["Id"]: result["Values"] for result in response["MetricDataResults"]}
    reduce = {"Sum": sum, "Maximum": lambda values: max(values, default=0.0)}
    return {
        name: float(reduce[stat](found.get(f"m{i}", [])))
        for i, (name, stat) in enumerate(wanted.items())
    }
