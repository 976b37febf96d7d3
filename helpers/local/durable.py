"""Durable file names: what every local service needs after it creates, renames or removes a
file that must survive a crash (a lake object, a shard segment, a view's manifest)."""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(path: Path) -> None:
    """Make the names in folder ``path`` (new, renamed or removed files) durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
