"""Progress bars as people see them: text in a notebook (saved at their last state, by
papermill too), whole lines in a log."""

from __future__ import annotations

import io

import nbformat
import papermill
from nbformat.v4 import new_code_cell, new_notebook

from helpers import progress


def test_a_notebook_run_by_papermill_keeps_its_bars_last_state_as_text(tmp_path):
    """A widget's state is not saved with the notebook: the bar is text on stdout instead."""
    notebook = new_notebook(
        cells=[
            new_code_cell(
                "from helpers.progress import tqdm\nfor _ in tqdm(range(3), desc='steps'):\n    pass"
            )
        ]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source, executed = tmp_path / "bar.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)

    papermill.execute_notebook(str(source), str(executed), progress_bar=False, cwd=str(tmp_path))

    outputs = nbformat.read(executed, as_version=4).cells[0].outputs
    assert {(output.output_type, output.get("name")) for output in outputs} == {
        ("stream", "stdout")
    }
    last = "".join(output.text for output in outputs).split("\r")[-1]
    assert last.startswith("steps: 100%") and "3/3" in last


def test_a_bar_that_writes_to_a_log_writes_whole_lines():
    log = io.StringIO()

    for _ in progress.tqdm(range(3), desc="steps", file=log, mininterval=0):
        pass

    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and lines[-1].startswith("steps: 100%")
    assert len(lines) == len(set(lines))  # the closing redraw is not written twice
