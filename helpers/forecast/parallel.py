"""Fit series in worker processes that any caller can start, with a progress bar.

Workers come from joblib's loky executor: it starts its processes fresh (no fork, so it is safe
beside the pipeline's threads) and does not run the caller's main module in them, so a plain
script without an ``if __name__ == "__main__":`` guard can forecast. The executor is reused
between calls, so Prophet and statsforecast are imported once per worker, and its workers exit
when the process that started them dies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from helpers.forecast.models import SeriesFit, SeriesTask, fit_series
from helpers.progress import tqdm


def fit_all(
    tasks: list[SeriesTask], n_jobs: int | None = None, progress: bool = True, desc: str = "fits"
) -> dict[str, SeriesFit]:
    """:func:`~helpers.forecast.models.fit_series` of every task, by ``unique_id``."""
    workers = (os.cpu_count() or 1) if n_jobs is None else max(1, n_jobs)
    results: dict[str, SeriesFit] = {}
    with tqdm(total=len(tasks), desc=desc, unit="series", disable=not progress) as bar:
        for fit in _run(tasks, workers):
            results[fit.unique_id] = fit
            bar.update()
    return results


def _run(tasks: list[SeriesTask], workers: int) -> Iterator[SeriesFit]:
    if workers == 1 or len(tasks) <= 1:
        yield from map(fit_series, tasks)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
    yield from parallel(delayed(fit_series)(task) for task in tasks)
