"""Lambda handlers for the local engine's tests, imported by the runtime processes."""

from __future__ import annotations

import base64
import logging
import os
import time

logger = logging.getLogger("tests.local.handlers")


class OrderRejected(Exception):
    pass


def echo(event, context):
    """The event, the runtime's pid and what the context says."""
    return {
        "event": event,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "log_group": context.log_group_name,
    }


def raising(event, context):
    raise OrderRejected(f"order {event.get('order_id')} rejected")


def sleepy(event, context):
    started = time.time()
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0), "pid": os.getpid(), "span": (started, time.time())}


def logging_handler(event, context):
    logger.info("handling %s", event["marker"])
    logger.warning("careful with %s", event["marker"])
    return "logged"


def exiting(event, context):
    os._exit(3)


# Firehose transformation Lambdas that misbehave ----------------------------------------------


def firehose_raising(event, context):
    raise RuntimeError("transform exploded")


def firehose_omitting_first(event, context):
    """Returns every record Ok but the first, whose recordId it leaves out."""
    from helpers.transform import lambda_handler

    response = lambda_handler(event, context)
    return {"records": response["records"][1:]}


def firehose_bad_quantity(event, context):
    """Ok records whose JSON has a quantity that is not a number."""
    from helpers.transform import lambda_handler

    response = lambda_handler(event, context)
    for record in response["records"]:
        row = base64.b64decode(record["data"]).decode()
        if '"order_id":"o-00001"' in row:
            row = row.replace('"quantity":2', '"quantity":"abc"')
            record["data"] = base64.b64encode(row.encode()).decode()
    return response


def firehose_two_rows_and_none(event, context):
    """Ok records where o-00001's data holds two JSON lines and o-00002's a blank line: as many
    lines as records in all, but not one each."""
    from helpers.transform import lambda_handler

    response = lambda_handler(event, context)
    for record in response["records"]:
        row = base64.b64decode(record["data"])
        if b'"order_id":"o-00001"' in row:
            record["data"] = base64.b64encode(row + row).decode()
        elif b'"order_id":"o-00002"' in row:
            record["data"] = base64.b64encode(b" \n").decode()
    return response


def firehose_no_partition_keys(event, context):
    """Ok records without the day partition key for order o-00001."""
    from helpers.transform import lambda_handler

    response = lambda_handler(event, context)
    for record in response["records"]:
        row = base64.b64decode(record["data"]).decode()
        if '"order_id":"o-00001"' in row:
            keys = dict(record["metadata"]["partitionKeys"])
            del keys["day"]
            record["metadata"] = {"partitionKeys": keys}
    return response


def firehose_failing_with_new_data(event, context):
    """ProcessingFailed for every record, returning data of its own."""
    return {
        "records": [
            {
                "recordId": record["recordId"],
                "result": "ProcessingFailed",
                "data": base64.b64encode(b"not the original").decode(),
            }
            for record in event["records"]
        ]
    }


def firehose_using_context(event, context):
    """The transform, logging how much time it has left, as handlers often do."""
    from helpers.transform import lambda_handler

    logger.info(
        "request %s, %d ms left", context.aws_request_id, context.get_remaining_time_in_millis()
    )
    return lambda_handler(event, context)


def firehose_slow(event, context):
    """The transform, after sleeping longer than its function's timeout."""
    from helpers.transform import lambda_handler

    time.sleep(1.5)
    return lambda_handler(event, context)


def firehose_held_for_order_0(event, context):
    """The transform; a batch holding order o-00000 first waits for the file named by
    ``SALESCAST_TEST_RELEASE`` to exist."""
    from helpers.transform import lambda_handler

    if any(b"o-00000" in base64.b64decode(record["data"]) for record in event["records"]):
        release = os.environ["SALESCAST_TEST_RELEASE"]
        deadline = time.monotonic() + 60
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
    return lambda_handler(event, context)
