"""The lake's object store (helpers/local/s3.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import helpers.local.s3 as s3
from helpers.local.s3 import Bucket


def keys(bucket: Bucket, prefix: str = "") -> list[str]:
    return [info.key for info in bucket.list_objects(prefix)]


def test_put_get_and_list_by_prefix_in_key_order(bucket):
    written = {
        "sales/year=2026/month=01/day=02/b.parquet": b"b" * 10,
        "sales/year=2026/month=01/day=02/a.parquet": b"a" * 3,
        "sales/year=2026/month=01/day=10/c.parquet": b"c",
        "sales/year=2025/month=12/day=31/z.parquet": b"zz",
        "salesforce.txt": b"s",
        "errors/processing-failed/2026/01/02/e": b"{}\n",
        "top": b"",
    }
    for key, body in written.items():
        bucket.put_object(key, body)
    for key, body in written.items():
        assert bucket.get_object(key) == body
    assert keys(bucket) == sorted(written)
    assert keys(bucket, "sales/") == [
        "sales/year=2025/month=12/day=31/z.parquet",
        "sales/year=2026/month=01/day=02/a.parquet",
        "sales/year=2026/month=01/day=02/b.parquet",
        "sales/year=2026/month=01/day=10/c.parquet",
    ]
    assert keys(bucket, "sales") == [k for k in sorted(written) if k.startswith("sales")]
    assert keys(bucket, "sales/year=2026/month=01/day=0") == [
        "sales/year=2026/month=01/day=02/a.parquet",
        "sales/year=2026/month=01/day=02/b.parquet",
    ]
    assert keys(bucket, "sales/year=2026/month=01/day=02/b") == [
        "sales/year=2026/month=01/day=02/b.parquet"
    ]
    assert keys(bucket, "nothing/here/") == []
    sizes = {info.key: info.size for info in bucket.list_objects()}
    assert sizes == {key: len(body) for key, body in written.items()}
    assert all(info.last_modified.tzinfo is not None for info in bucket.list_objects())


def test_overwrite_replaces_the_object(bucket):
    bucket.put_object("a/b", b"first version, longer")
    bucket.put_object("a/b", b"second")
    assert bucket.get_object("a/b") == b"second"
    assert keys(bucket) == ["a/b"]


def test_missing_object_is_a_key_error(bucket):
    with pytest.raises(KeyError, match="s3://lake/no/such"):
        bucket.get_object("no/such")


def test_objects_live_in_the_bucket_folder(bucket):
    bucket.put_object("x/y.parquet", b"data")
    assert bucket.local_path("x/y.parquet").read_bytes() == b"data"
    assert bucket.uri("x/y.parquet") == "s3://lake/x/y.parquet"


@pytest.mark.parametrize("key", ["", "/abs/key", "../escape", "a/../../escape", "a/.."])
def test_invalid_keys_are_rejected(bucket, tmp_path, key):
    with pytest.raises(ValueError, match="invalid object key"):
        bucket.put_object(key, b"x")
    assert keys(bucket) == []
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "s3" / "escape").exists()


def test_staging_is_outside_the_bucket_and_objects_appear_whole(bucket, monkeypatch):
    body = os.urandom(256 * 1024)
    staging = bucket._staging
    assert bucket.path not in staging.parents and staging != bucket.path
    seen = []
    real_replace = os.replace

    def observing_replace(source, target):
        # just before the rename: the whole body is staged, nothing is visible in the bucket
        seen.append((keys(bucket), Path(source).read_bytes() == body, os.fspath(source)))
        real_replace(source, target)

    monkeypatch.setattr(s3.os, "replace", observing_replace)
    bucket.put_object("big/object.bin", body)
    ((visible, staged_whole, source),) = seen
    assert visible == []
    assert staged_whole
    assert os.path.dirname(source) == os.fspath(staging)
    assert bucket.get_object("big/object.bin") == body
    assert list(staging.iterdir()) == []


def test_crash_before_rename_leaves_no_partial_object(bucket, monkeypatch):
    bucket.put_object("keep", b"kept")

    def crash(source, target):
        raise OSError("killed during the rename")

    monkeypatch.setattr(s3.os, "replace", crash)
    with pytest.raises(OSError):
        bucket.put_object("lost/object", b"half written")
    monkeypatch.undo()
    assert keys(bucket) == ["keep"]
    with pytest.raises(KeyError):
        bucket.get_object("lost/object")
    assert len(list(bucket._staging.iterdir())) == 1  # the orphan, outside the bucket
    Bucket(bucket.path.parent, "lake").clear_staging()
    assert list(bucket._staging.iterdir()) == []
    assert keys(bucket) == ["keep"]


def test_delete_objects_by_prefix(bucket):
    for key in ["sales/a/1", "sales/a/2", "sales/b/1", "errors/x", "salesman"]:
        bucket.put_object(key, b"x")
    assert bucket.delete_objects("sales/a/") == 2
    assert keys(bucket) == ["errors/x", "sales/b/1", "salesman"]
    assert bucket.delete_objects("nothing/") == 0
    assert bucket.delete_objects("sales") == 2
    assert keys(bucket) == ["errors/x"]
    bucket.put_object("sales/a/1", b"again")  # a deleted key can be written again
    assert bucket.get_object("sales/a/1") == b"again"
    assert bucket.delete_objects() == 2
    assert keys(bucket) == []


def test_buckets_are_separate(tmp_path):
    one, two = Bucket(tmp_path, "one"), Bucket(tmp_path, "two")
    one.put_object("k", b"1")
    two.put_object("k", b"2")
    assert (one.get_object("k"), two.get_object("k")) == (b"1", b"2")
    assert keys(one) == keys(two) == ["k"]


@pytest.mark.parametrize("key", ["a//b", "a/./b", "dir/"])
def test_keys_are_rejected_or_listed_as_given(bucket, key):
    try:
        bucket.put_object(key, b"x")
    except ValueError:
        return
    assert keys(bucket) == [key]


def test_a_key_may_also_be_a_prefix_of_another_key(bucket):
    bucket.put_object("a", b"1")
    try:
        bucket.put_object("a/b", b"2")
    except ValueError:
        return
    assert keys(bucket) == ["a", "a/b"]
