"""A handler module whose import (the Lambda Init phase) takes one second."""

from __future__ import annotations

import time

time.sleep(1.0)


def quick(event, context):
    return {"ok": True, "remaining_ms": context.get_remaining_time_in_millis()}
