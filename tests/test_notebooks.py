"""The notebooks as committed, and ``salescast run`` executing them with papermill.

nbval runs the notebooks themselves (``notebooks/``, see its conftest); these tests check
their shape and run them as a job with parameters, reading the figures they record.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

import helpers
from helpers import jobs
from helpers.cli import app
from helpers.exceptions import JobFailedError, JobParameterError

NOTEBOOKS = sorted(jobs.NOTEBOOKS.glob("*.ipynb"))
LOGIC = (
    ast.FunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.For,
    ast.While,
    ast.If,
    ast.IfExp,
    ast.Try,
    ast.With,
    ast.ListComp,
    ast.DictComp,
    ast.SetComp,
    ast.GeneratorExp,
)
PARAMETER_LINE = re.compile(r"^[A-Z][A-Z0-9_]*: (str|int|float|bool) = \S.*  # \S.*$")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_thin_and_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    cells = notebook.cells
    code = [cell for cell in cells if cell.cell_type == "code"]
    assert notebook.metadata.kernelspec.name == "python3"
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        f"{path.name} has outputs: clear them before committing"
    )
    tagged = [cell for cell in cells if "parameters" in cell.metadata.get("tags", [])]
    assert tagged == [cells[1]], "exactly one parameters cell, right after the purpose"
    for line in cells[1].source.splitlines():
        assert PARAMETER_LINE.match(line), (
            f"{path.name}: {line!r} is not NAME: type = value  # help"
        )
    assert cells[2].source.startswith("from helpers import")
    for cell in code[1:]:
        tree = ast.parse(cell.source)
        assert len(tree.body) <= 3, f"long cell in {path.name}: {cell.source}"
        for node in ast.walk(tree):
            assert not isinstance(node, LOGIC), f"logic in {path.name}: {cell.source}"
            literal_key = isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            assert not literal_key, f"a literal name in {path.name}: {cell.source}"
    assert code[-1].source.startswith("workbench.record(")


def test_notebooks_are_numbered_and_teardown_is_not_part_of_a_run():
    names = [path.stem for path in NOTEBOOKS]
    assert names == [
        "00_provision",
        "01_generate_and_stream",
        "02_inspect_lake",
        "03_query",
        "04_forecast",
        "05_report",
        "06_live",
        "99_teardown",
    ]
    assert [path.stem for path in jobs.job_notebooks()] == names[:-1]


def test_parameters_are_checked_and_typed_as_the_notebooks_declare():
    declared = jobs.notebook_parameters(jobs.job_notebooks())
    assert declared["DAYS"]["type"] == "int" and declared["DAYS"]["notebooks"] == [
        "01_generate_and_stream"
    ]
    typed = jobs.typed_parameters(
        {"DAYS": "30", "LIVE_SPEED": "5", "RESET": "true", "LEVEL": "category", "RUN_ID": 7},
        declared,
    )
    assert typed == {
        "DAYS": 30,
        "LIVE_SPEED": 5.0,
        "RESET": True,
        "LEVEL": "category",
        "RUN_ID": "7",
    }
    with pytest.raises(JobParameterError, match=r"DAYS must be int, got 'ten'.*-p DAYS 30"):
        jobs.typed_parameters({"DAYS": "ten"}, declared)
    with pytest.raises(JobParameterError, match="RESET must be bool"):
        jobs.typed_parameters({"RESET": "maybe"}, declared)
    with pytest.raises(JobParameterError, match=r"'DAYZ'; known: .*DAYS"):
        jobs.typed_parameters({"DAYZ": 3}, declared)


def test_parameter_file_must_be_a_mapping(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("DAYS: 30\nLEVEL: category\n")
    bad.write_text("- DAYS\n- 30\n")
    assert jobs.read_parameter_file(good) == {"DAYS": 30, "LEVEL": "category"}
    with pytest.raises(JobParameterError, match="must be a YAML mapping"):
        jobs.read_parameter_file(bad)
    with pytest.raises(JobParameterError, match="cannot read parameter file"):
        jobs.read_parameter_file(tmp_path / "missing.yaml")


def test_cli_lists_parameters_and_refuses_malformed_ones():
    runner = CliRunner()
    listed = runner.invoke(app, ["run", "--list-parameters"])
    assert listed.exit_code == 0 and "SEASONALITY_MODE" in listed.output
    missing = runner.invoke(app, ["run", "-p", "DAYS"])
    assert missing.exit_code == 2 and "-p DAYS has no VALUE" in missing.output
    stray = runner.invoke(app, ["run", "DAYS", "30"])
    assert stray.exit_code == 2 and "pass parameters as -p NAME VALUE" in stray.output


@pytest.fixture
def small(tmp_path, monkeypatch):
    """A throwaway local root at a small scale; the notebooks' kernels inherit it."""
    monkeypatch.setenv("SALESCAST_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("SALESCAST_BACKEND", "local")
    monkeypatch.setenv("SALESCAST_SCALE", "0.05")
    return tmp_path


@pytest.mark.slow
def test_run_executes_the_notebooks_in_order_with_parameters(small):
    parameters_file = small / "params.yaml"
    parameters_file.write_text("DAYS: 45\nLEVEL: category\n")
    arguments = ["run", "-f", str(parameters_file), "--run-id", "test-run"]
    arguments += ["-p", "HORIZON", "7", "-p", "FOLDS", "1", "-p", "LIVE_SECONDS", "40"]
    result = CliRunner().invoke(app, [*arguments, "--runs", str(small / "runs")])
    assert result.exit_code == 0, result.output
    folder = small / "runs" / "test-run"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    assert summary["parameters"] == {
        "DAYS": 45,
        "LEVEL": "category",
        "HORIZON": 7,
        "FOLDS": 1,
        "LIVE_SECONDS": 40.0,
    }
    figures = {run["notebook"]: run["figures"] for run in summary["notebooks"]}
    assert list(figures) == [path.stem for path in jobs.job_notebooks()]
    assert all((folder / f"{name}.ipynb").exists() for name in figures)

    executed = nbformat.read(folder / "01_generate_and_stream.ipynb", as_version=4)
    outputs = [output for cell in executed.cells for output in cell.get("outputs", [])]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any("100%" in o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the timeline chart

    streamed = figures["01_generate_and_stream"]
    assert streamed["history"]["put"] > 45 * 25  # 45 days at 1,000 x 0.05 orders a day
    assert streamed["live"]["put"] > 0
    assert streamed["stages"]["lake"] == streamed["stages"]["change stream"]
    assert streamed["stages"]["failed"] == 0
    checked = figures["02_inspect_lake"]
    assert checked["lake_matches_table"] is True
    assert checked["table_orders"] == checked["lake_orders"] == streamed["stages"]["table"]
    assert checked["partitions"] >= 45
    assert figures["03_query"]["crawl"]["partitions_added"] == checked["partitions"]
    assert figures["03_query"]["queries"]["top_products"]["rows"] > 0
    forecast = figures["04_forecast"]
    assert forecast["run_id"] == "test-run"  # the run's id goes to the forecast
    with helpers.connect(consume=False) as platform:
        categories = platform.query("SELECT count(DISTINCT category) AS n FROM daily_sales")
    assert forecast["series"] == categories["n"].iloc[0] > 1
    assert {"chosen", "prophet", "auto_ets", "median", "seasonal_naive"} <= set(forecast["metrics"])
    report = figures["05_report"]["report"]
    assert report == str(folder / "report" / "report.html")
    page = (folder / "report" / "report.html").read_text()
    assert "<section id='headline'><h1>Sales forecast, " in page and "By category</h2>" in page
    executed = nbformat.read(folder / "05_report.ipynb", as_version=4)
    shown = [
        o["data"].get("text/html", "")
        for c in executed.cells
        for o in c.get("outputs", [])
        if "data" in o
    ]
    preview = next(text for text in shown if "Open the report" in text)
    assert "<section id='headline'>" in preview and "Next week · " in preview
    assert "test-run" in (folder / "summary.md").read_text()
    watched = figures["06_live"]  # the forecast run's expectations cover the live day
    assert watched["snapshots"] >= 2 and watched["live"]["put"] >= 0
    assert watched["series"]["total"]["expected_so_far"] > 0


def test_run_stops_at_the_first_failure_naming_notebook_and_cell(small):
    order = [jobs.NOTEBOOKS / "04_forecast.ipynb", jobs.NOTEBOOKS / "05_report.ipynb"]
    with pytest.raises(JobFailedError) as failure:
        jobs.run_notebooks({}, run_id="fails", notebooks=order, runs=small / "runs", progress=False)
    message = str(failure.value)
    assert message.startswith("04_forecast failed in cell [")
    assert "run_forecast" in message and "stream orders first" in message
    summary = json.loads((small / "runs" / "fails" / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert [run["notebook"] for run in summary["notebooks"]] == ["04_forecast"]


def test_a_dying_kernel_is_named_with_its_cell(small):
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    notebook.cells = [
        nbformat.v4.new_code_cell("import os\nimport signal"),
        nbformat.v4.new_code_cell("os.kill(os.getpid(), signal.SIGKILL)"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    path = small / "01_dies.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(JobFailedError) as failure:
        jobs.run_notebooks({}, run_id="dies", notebooks=[path], runs=small / "runs", progress=False)
    message = str(failure.value)
    assert message.startswith(
        "01_dies could not run in cell 1 ('os.kill(os.getpid(), signal.SIGKILL)')"
    )
    assert "smaller SALESCAST_SCALE" in message and "summary.md" in message
    summary = json.loads((small / "runs" / "dies" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["seconds"] > 0


def test_run_paths_are_the_callers_and_run_ids_are_folder_names(small, monkeypatch):
    monkeypatch.chdir(small)
    with pytest.raises(JobParameterError, match="is not a folder name"):
        jobs.run_notebooks({}, run_id="../escape", runs=small / "runs", progress=False)
    order = [jobs.NOTEBOOKS / "99_teardown.ipynb"]
    job = jobs.run_notebooks(
        {"ROOT": "relative-root"},
        run_id="paths",
        notebooks=order,
        runs=Path("runs"),
        progress=False,
    )
    assert job.folder == small / "runs" / "paths"
    assert job.parameters["ROOT"] == str(small / "relative-root")
    assert job.environment["SALESCAST_SCALE"] == "0.05"
    assert json.loads((job.folder / "summary.json").read_text())["status"] == "succeeded"
