"""Damaged state files and a full disk on a real local root: named errors, nothing lost."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

import helpers
from helpers.exceptions import DiskFullError, StateFileError


def test_a_firehose_file_damaged_past_its_first_page_is_named_with_its_fix(tmp_path, make_orders):
    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(make_orders(300))
        platform.flush(timeout=60)
    path = root / "firehose.sqlite"
    size = path.stat().st_size
    assert size > 16384  # more than the schema's page
    with open(path, "r+b") as handle:  # the tables' pages are garbage; the header is fine
        handle.seek(16384)
        handle.write(os.urandom(size - 16384))
    with pytest.raises(StateFileError) as caught:
        helpers.connect(root=root)
    message = str(caught.value)
    assert str(path) in message and "Restore it from a copy of the root" in message


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 24 MiB mounted in tmp_path (needs root; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk) -> None:
    """Take every free byte of the disk with a file of its own."""
    with open(disk / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC


def _free(disk) -> None:
    (disk / "filler").unlink()


def test_a_full_disk_during_put_is_named_and_loses_nothing_accepted(small_disk, make_orders):
    root = small_disk / "root"
    accepted = make_orders(200, seed=1)
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(accepted)
        platform.flush(timeout=60)
        _fill(small_disk)
        refused = make_orders(2000, seed=2)
        with pytest.raises(DiskFullError) as caught:
            platform.orders.put(refused)
        message = str(caught.value)
        assert f"the disk mounted at {small_disk} is full" in message
        assert "dynamodb.sqlite" in message and "Free space on that disk" in message
        _free(small_disk)
        later = make_orders(100, seed=3)
        platform.orders.put(later)
        platform.flush(timeout=60)
        lake = set(platform.read_lake().order_id)
        assert set(accepted.order_id) | set(later.order_id) <= lake
        assert not set(refused.order_id) & lake
        assert platform.orders.count() == 300


def test_a_full_disk_during_close_is_named_and_what_was_read_is_delivered_later(
    small_disk, make_orders
):
    root = small_disk / "root"
    accepted = make_orders(300, seed=1)
    platform = helpers.connect(root=root, buffer_interval_s=3600)
    platform.orders.put(accepted)
    while platform.delivery.buffered < 300:  # in the delivery stream's buffer, not the lake
        platform._stop.wait(0.05)
    _fill(small_disk)
    with pytest.raises(DiskFullError, match=f"the disk mounted at {small_disk} is full"):
        platform.close()
    _free(small_disk)
    with helpers.connect(root=root, buffer_interval_s=0.1) as again:
        again.flush(timeout=60)
        assert set(accepted.order_id) <= set(again.read_lake().order_id)
