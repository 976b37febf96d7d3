"""Fit series in worker processes that any caller can start, with a progress bar.

Workers come from joblib's loky executor: it starts its processes fresh (no fork, so it is safe
beside the pipeline's threads) and does not run the caller's main module in them, so a plain
script without an ``if __name__ == "__main__":`` guard can forecast. The executor is reused
between calls, so Prophet and statsforecast are imported once per worker. A worker exits as
soon as the process that started it is gone (a killed notebook or ``salescast forecast``):
loky's own workers would wait on their queue for minutes, holding hundreds of MB each.
"""

from __future__ import annotations

import os
import threading
import time
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
    yield from parallel(delayed(_fit_in_worker)(task, os.getpid()) for task in tasks)


def _fit_in_worker(task: SeriesTask, caller: int) -> SeriesFit:
    """:func:`fit_series` in a worker that watches its caller."""
    _watch(caller)
    return fit_series(task)


_watching: set[int] = set()


def _watch(caller: int, every: float = 0.5) -> None:
    """Exit this worker process once ``caller`` (the process that asked for the fits) is gone:
    its parent then becomes another process. Started once per worker."""
    if caller in _watching or os.getpid() == caller:
        return
    _watching.add(caller)

    def watch() -> None:
        while os.getppid() == caller:
            time.sleep(every)
        os._exit(0)  # the caller is gone: nobody waits for this worker's results

    threading.Thread(target=watch, name="watch-caller", daemon=True).start()
