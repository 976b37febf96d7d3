"""status on aws (moto): the lake row names the codes of the failed records it finds."""

from __future__ import annotations

import json

from tests.contract.conftest import AwsProbe


def test_status_names_the_codes_of_failed_records(aws_platform):
    probe, prefix = AwsProbe(aws_platform), aws_platform.settings.error_prefix
    for n, fields in enumerate(
        [
            {"ErrorCode": "DataFormatConversion.MalformedData"},
            {"lastErrorCode": "DataFormatConversion.MalformedData"},
            {"errorCode": "Lambda.ProcessingFailedStatus"},
        ]
    ):
        document = {"attemptsMade": 1, "arrivalTimestamp": 0, "rawData": "", **fields}
        probe.put_object(f"{prefix}x/2026/01/05/failed-{n}", json.dumps(document).encode())
    lake = aws_platform.status().set_index("stage").loc["lake"]
    assert lake["failed"] == 3
    assert lake["detail"].endswith(
        "3 error objects (2 DataFormatConversion.MalformedData, 1 Lambda.ProcessingFailedStatus)"
    )
