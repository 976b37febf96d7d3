"""nbval runs the notebooks as committed (``pytest --nbval-lax notebooks/``), in file order,
on a throwaway local root at a small scale chosen through the environment.

The kernels inherit the environment when they start: the backend is ``local`` and the root a
temporary folder (never the user's ``SALESCAST_ROOT``), and ``SALESCAST_SCALE`` is 0.05 unless
it is set already. The environment is put back when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

SCALE = "0.05"
_made: list[str] = []
_previous: dict[str, str | None] = {}


def _set(name: str, value: str) -> None:
    _previous.setdefault(name, os.environ.get(name))
    os.environ[name] = value


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the first notebook's kernel starts: the small scale and a throwaway root."""
    if item.path.suffix != ".ipynb" or _made:
        return
    _made.append(tempfile.mkdtemp(prefix="salescast-nbval-"))
    _set("SALESCAST_ROOT", _made[0])
    _set("SALESCAST_BACKEND", "local")
    _set("SALESCAST_SCALE", os.environ.get("SALESCAST_SCALE", SCALE))


def pytest_sessionfinish(session):
    for root in _made:
        shutil.rmtree(root, ignore_errors=True)
    for name, value in _previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
