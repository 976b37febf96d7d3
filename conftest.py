"""How pytest-xdist shares the tests out (``-n 2 --dist loadgroup`` in pyproject.toml).

Each test goes to whichever worker is free, except tests that must, or had better, run on one
worker in order: the notebooks (each reads what the ones before it left in the session's root)
and the modules whose tests all read one expensive module fixture. xdist's own ``xdist_group``
marker cannot group them under pytest 9.2 (it renames ``item._nodeid``, which pytest 9.2 no
longer reads), so the groups are named here by path.
"""

from __future__ import annotations

import pytest

GROUPS = (
    "notebooks/",
    "tests/test_report.py::",  # the module's 400-day lake and forecast run
    "tests/forecast/test_expectations.py::",  # the module's run and platform
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with the groups above, in collection order within each."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = next((prefix for prefix in GROUPS if nodeid.startswith(prefix)), None)
            return group or super()._split_scope(nodeid)

    return PathGroupScheduling(config, log)
