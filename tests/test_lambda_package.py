"""The Lambda deployment package: transform.py alone and unchanged, standard library only,
and it handles the documentation's sample events when run with nothing but the standard library."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers.aws.awslambda import HANDLER, SOURCE, code_key, package_transform

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
    package = package_transform()
    archive = zipfile.ZipFile(io.BytesIO(package))
    assert archive.namelist() == ["transform.py"]
    assert archive.read("transform.py") == SOURCE.read_bytes()
    assert package == package_transform()  # same bytes, same key: no needless stack update
    assert code_key(package).startswith("lambda/transform-")


def test_the_packaged_handler_runs_on_the_standard_library_alone(tmp_path):
    zipfile.ZipFile(io.BytesIO(package_transform())).extractall(tmp_path / "task")
    samples = sorted(FIXTURES.glob("*.json"))
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            RUNNER,
            str(tmp_path / "task"),
            HANDLER,
            *map(str, samples),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    report = json.loads(result.stdout)
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
