"""nbval runs the notebooks as committed (``pytest --nbval-lax notebooks/``), in file order,
on a throwaway local root at a small scale chosen through the environment.

The kernels inherit the environment when they start: the backend is ``local`` and the root a
temporary folder (never the user's ``SALESCAST_ROOT``), and ``SALESCAST_SCALE`` is 0.05 unless
it is set already.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

SCALE = "0.05"
_made: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the first notebook's kernel starts: the small scale and a throwaway root."""
    if item.path.suffix != ".ipynb" or _made:
        return
    _made.append(tempfile.mkdtemp(prefix="salescast-nbval-"))
    os.environ["SALESCAST_ROOT"] = _made[0]
    os.environ["SALESCAST_BACKEND"] = "local"
    os.environ.setdefault("SALESCAST_SCALE", SCALE)


def pytest_sessionfinish(session):
    for root in _made:
        shutil.rmtree(root, ignore_errors=True)
