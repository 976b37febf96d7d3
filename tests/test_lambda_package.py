"""The Lambda deployment package: transform.py alone and unchanged, standard library only,
and it handles the documentation's sample events when run with nothing but the standard library."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.aws.awslambda import HANDLER, SOURCE, code_key, package_module
from helpers.aws.support import load_support

FIXTURES = Path(__file__).parent / "fixtures"

RUNNER = """
import base64, json, sys
sys.path.insert(0, sys.argv[1])
module, function = sys.argv[2].rsplit(".", 1)
handler = getattr(__import__(module), function)
results = []
for path in sys.argv[3:]:
    sample = json.load(open(path, encoding="utf-8"))
    if "records" not in sample:  # a DynamoDB Streams record, as the pipe forwards it
        data = base64.b64encode(json.dumps(sample).encode()).decode()
        sample = {"records": [{"recordId": "r-1", "data": data}]}
    results.append(handler(sample, None))
third_party = sorted(
    name for name in sys.modules
    if name.split(".")[0] not in sys.stdlib_module_names and name not in ("__main__", module)
)
print(json.dumps({"results": results, "third_party": third_party, "path": sys.path}))
"""


def test_the_package_holds_transform_py_unchanged_and_is_reproducible():
    package = package_module()
    archive = zipfile.ZipFile(io.BytesIO(package))
    assert archive.namelist() == ["transform.py"]
    assert archive.read("transform.py") == SOURCE.read_bytes()
    assert package == package_module()  # same bytes, same key: no needless stack update
    assert code_key(package).startswith("lambda/transform-")


SAMPLES = sorted(FIXTURES.glob("*.json"))


def run_package(python: str, folder: Path) -> dict:
    """The packaged handler on every sample event, in ``python`` with the standard library
    alone (isolated, no site-packages): its results, third-party modules and path."""
    zipfile.ZipFile(io.BytesIO(package_module())).extractall(folder / "task")
    command = [python, "-I", "-S", "-c", RUNNER, str(folder / "task"), HANDLER]
    result = subprocess.run(
        [*command, *map(str, SAMPLES)], capture_output=True, text=True, cwd=folder, check=True
    )
    return json.loads(result.stdout)


def interpreter(runtime: str) -> str | None:
    """A Python of the Lambda runtime's version that runs on this machine (under pyenv, or on
    PATH: a pyenv shim of a version not selected is there but fails)."""
    version = runtime.removeprefix("python")
    candidates = [str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python")]
    candidates += [found] if (found := shutil.which(runtime)) else []
    for python in candidates:
        if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
            return python
    return None


def deployable_runtimes(today: dt.date) -> list[str]:
    """The Python runtimes deploy accepts today, oldest first."""
    runtimes = load_support()["runtimes"]
    allowed = [
        name
        for name, dates in runtimes.items()
        if dt.date.fromisoformat(dates["deprecated"]) > today
    ]
    return sorted(allowed, key=lambda name: tuple(map(int, name[6:].split("."))))


ALLOWED = deployable_runtimes(dt.date.today())


@pytest.mark.parametrize("runtime", sorted({ALLOWED[0], ALLOWED[-1], "python3.13"} & set(ALLOWED)))
def test_the_handler_answers_alike_on_the_oldest_and_newest_runtimes_deploy_accepts(
    runtime, tmp_path
):
    """The Lambda may be deployed on any runtime deploy accepts: on the oldest and the newest
    (and the template's default) that this machine has, it gives this Python's answers."""
    python = interpreter(runtime)
    if python is None:
        pytest.skip(f"no {runtime} on this machine")
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()

    there = run_package(python, tmp_path / "there")

    assert there["third_party"] == []
    assert there["results"] == run_package(sys.executable, tmp_path / "here")["results"]


def test_the_packaged_handler_runs_on_the_standard_library_alone(tmp_path):
    samples = SAMPLES
    report = run_package(sys.executable, tmp_path)
    assert not any("site-packages" in entry for entry in report["path"])
    assert report["third_party"] == []
    by_name = dict(zip((p.stem for p in samples), report["results"], strict=True))

    firehose = by_name["firehose_kinesis_event"]["records"]
    sample = json.loads((FIXTURES / "firehose_kinesis_event.json").read_text(encoding="utf-8"))
    assert [r["recordId"] for r in firehose] == [r["recordId"] for r in sample["records"]]
    assert {r["result"] for r in firehose} <= {"Ok", "Dropped", "ProcessingFailed"}
    assert any(r["result"] == "Ok" for r in firehose)
    for name, event_name in (("insert", "INSERT"), ("modify", "MODIFY"), ("remove", "REMOVE")):
        (record,) = by_name[f"dynamodb_stream_{name}"]["records"]
        assert record["result"] == "Ok"
        assert record["metadata"]["partitionKeys"] == {"year": "2026", "month": "01", "day": "05"}
        row = json.loads(base64.b64decode(record["data"]))
        assert row["event_name"] == event_name and row["order_id"] == "o-000001"
