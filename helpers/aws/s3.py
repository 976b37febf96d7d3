"""S3: listing the lake, and the buckets deploy creates and teardown empties.

Not handled: buckets with Object Lock (their versions cannot be deleted), MFA delete, and
requester-pays buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from helpers.exceptions import DeployError


def list_objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """ListObjectsV2 entries (``Key``, ``Size``, ``LastModified``) under a prefix, in key order."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def ensure_bucket(client: Any, bucket: str, region: str) -> bool:
    """Create a private, encrypted bucket unless it exists; returns whether it was created.

    Public access is blocked and objects are encrypted with S3-managed keys (SSE-S3).
    """
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    location = {} if region == "us-east-1" else {"LocationConstraint": region}
    client.create_bucket(
        Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {})
    )
    client.get_waiter("bucket_exists").wait(Bucket=bucket)
    client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    return True


def empty_bucket(client: Any, bucket: str) -> int:
    """Delete every object version and delete marker of a bucket; returns how many.

    A missing bucket counts as empty.
    """
    deleted = 0
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            doomed = [
                {"Key": entry["Key"], "VersionId": entry["VersionId"]}
                for kind in ("Versions", "DeleteMarkers")
                for entry in page.get(kind, [])
            ]
            for start in range(0, len(doomed), 1000):
                response = client.delete_objects(
                    Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True}
                )
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise DeployError(
                        f"could not delete s3://{bucket}/{first['Key']}: {first['Message']}"
                    )
                deleted += len(doomed[start : start + 1000])
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchBucket":
            return deleted
        raise
    return deleted
