"""Kill -9 a streaming process at random moments, restart it, and lose nothing accepted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import helpers
from tests.test_platform import assert_lake_matches_table

pytestmark = pytest.mark.slow


def writer_script(
    days: int, end: str, orders_per_day: int, n_products: int, chunk: int, warm: int = 0
) -> str:
    """A writer that is its own consumer: it puts, amends and cancels ``days`` of generated
    orders up to ``end`` (run with the root and a seed) and prints every change only after the
    platform accepted it. With ``warm``, its first ``warm`` changes are flushed before it says
    it is ready: the pipe's, the delivery's and the consumer's runtimes are started (a cold
    start on a busy machine can outlast a round) and have checkpointed when the kill may come.
    """
    return textwrap.dedent(
        f"""
        import json, sys
        import helpers
        from helpers.generate import SalesParams, backfill

        root, seed = sys.argv[1], int(sys.argv[2])
        params = SalesParams(seed=seed, orders_per_day={orders_per_day}, n_products={n_products})
        changes = list(backfill({days}, end="{end}", params=params, chunk_orders={chunk}))

        def apply(change):
            ids = change.frame["order_id"].tolist()
            if change.action == "put":
                platform.orders.put(change.frame)
            elif change.action == "update":
                platform.orders.update(change.frame)
            else:
                platform.orders.delete(ids)
            return json.dumps({{"action": change.action, "ids": ids}})

        with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
            warmed = [apply(change) for change in changes[:{warm}]]
            if warmed:
                platform.flush(timeout=300)
            print(json.dumps({{"ready": True}}), flush=True)
            print(*warmed, sep="\\n", flush=True)
            for change in changes[{warm}:]:
                print(apply(change), flush=True)
        """
    )


WRITER = writer_script(30, "2026-02-01", orders_per_day=400, n_products=10, chunk=300)


def accepted_changes(output: str) -> list[dict]:
    """The complete lines a writer printed; a line cut by the kill is not counted."""
    changes = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "action" in entry:
            changes.append(entry)
    return changes


def assert_accepted_in_lake(platform, accepted: list[dict]) -> pd.DataFrame:
    """After a flush, every accepted change reached the lake at least once, the latest event
    per order equals the table, and nothing is pending; returns the lake."""
    platform.flush(timeout=120)
    lake = platform.read_lake()
    for action, event in (("put", None), ("update", "MODIFY"), ("delete", "REMOVE")):
        ids = {i for change in accepted if change["action"] == action for i in change["ids"]}
        events = lake if event is None else lake[lake.event_name == event]
        assert ids <= set(events.order_id), f"accepted {action}s missing from the lake"
    assert_lake_matches_table(platform)
    assert platform.status().set_index("stage").pending.sum() == 0
    return lake


def kill_writers(
    script: str, root, rng: random.Random, wait: tuple[float, float], **environment: str
) -> list[dict]:
    """Five rounds of ``script`` writing to ``root``, each killed (SIGKILL) after a random
    wait in ``wait`` seconds; the changes the writers said were accepted."""
    environment = {**os.environ, "PYTHONPATH": os.getcwd(), **environment}
    accepted: list[dict] = []
    for round_number in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(round_number)],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        assert json.loads(writer.stdout.readline()) == {"ready": True}
        time.sleep(rng.uniform(*wait))
        writer.send_signal(signal.SIGKILL)
        output, _ = writer.communicate()
        assert writer.returncode == -signal.SIGKILL
        accepted += accepted_changes(output)
    return accepted


def test_sigkill_loses_no_accepted_change(tmp_path):
    root = tmp_path / "root"
    accepted = kill_writers(WRITER, root, random.Random(20261127), (0.3, 2.5))

    assert sum(len(change["ids"]) for change in accepted) > 1000, "kills came too early"
    with helpers.connect(root=root) as platform:
        lake = assert_accepted_in_lake(platform, accepted)
        assert not pd.isna(lake.event_seq).any()


# The same writer with retention trimming all the time: its clock two days ahead, so that
# everything the consumers passed is due, and segments small (in the pipe's runtime too), so
# that trims remove many.
TRIMMING_WRITER = (
    writer_script(30, "2026-02-01", 400, 10, 300, warm=5)
    .replace(
        "import helpers\n",
        "import time\nimport helpers\n"
        "import helpers.local.platform as local\n"
        "local._retention_clock = lambda: time.time() + 2 * 86400\n",
        1,
    )
    .replace("buffer_interval_s=0.1", "buffer_interval_s=0.1, retention_interval_s=0.05")
)


def test_sigkill_while_trimming_loses_no_accepted_change(tmp_path):
    root = tmp_path / "root"
    accepted = kill_writers(
        TRIMMING_WRITER,
        root,
        random.Random(20261207),
        (0.5, 2.5),
        SALESCAST_KINESIS_SEGMENT_BYTES="20000",
    )

    assert sum(len(change["ids"]) for change in accepted) > 1000, "kills came too early"
    with helpers.connect(root=root) as platform:
        assert platform.table.trim_horizon() > 0, "nothing was trimmed"
        assert any(platform.stream.trim_horizon(s.index) for s in platform.stream.shards)
        assert_accepted_in_lake(platform, accepted)
