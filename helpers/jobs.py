"""Scheduled runs: the notebooks executed in order with papermill, into ``runs/<run id>/``.

A run gives every notebook the parameters it declares (its ``parameters`` cell, read with
``papermill.inspect_notebook``), from ``-p NAME VALUE`` and a YAML file, typed as the notebook
declares them. It stops at the first failing notebook and names it and the cell; either way it
writes ``summary.json`` and ``summary.md``: times, each notebook's key figures (what its last
cell records with :func:`helpers.workbench.record`) and where the report is.

Examples
--------
>>> job = run_notebooks({"DAYS": 30, "LEVEL": "category"})       # doctest: +SKIP
>>> job.folder / "summary.md"                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import nbformat
import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError

from helpers import progress as progress_bars
from helpers.config import PROJECT_ROOT
from helpers.exceptions import JobFailedError, JobParameterError
from helpers.limits import PARAMETERS
from helpers.workbench import FIGURES_MIME

NOTEBOOKS = PROJECT_ROOT / "notebooks"
RUNS = PROJECT_ROOT / "runs"
TEARDOWN = "99_teardown"
"""Not part of a run: removing everything is asked for on its own."""
AUTOMATIC = ("RUN_ID", "OUTPUT")
"""Parameters a run fills in when not given: its id, and the report folder inside the run."""
_EXAMPLES = {"int": "30", "float": "1.5", "bool": "true", "str": "text"}
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
NOTEBOOK_NAME = re.compile(r"\d\d_[a-z0-9_]+\.ipynb")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def job_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The notebooks a run executes, in order: ``NN_name.ipynb`` (so that JupyterLab's
    ``-Copy1`` duplicates stay out), teardown excepted."""
    return sorted(
        path
        for path in folder.glob("*.ipynb")
        if NOTEBOOK_NAME.fullmatch(path.name) and path.stem != TEARDOWN
    )


def notebook_parameters(notebooks: list[Path]) -> dict[str, dict[str, Any]]:
    """Every declared parameter: its type, default, help and the notebooks declaring it."""
    declared: dict[str, dict[str, Any]] = {}
    for path in notebooks:
        for name, spec in papermill.inspect_notebook(str(path)).items():
            entry = declared.setdefault(
                name,
                {
                    "type": spec["inferred_type_name"],
                    "default": spec["default"],
                    "help": spec["help"],
                    "notebooks": [],
                },
            )
            entry["notebooks"].append(path.stem)
    return declared


def read_parameter_file(path: str | Path) -> dict[str, Any]:
    """Parameters from a YAML mapping of ``NAME: value``."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise JobParameterError(f"cannot read parameter file {path}: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise JobParameterError(
            f"parameter file {path} must be a YAML mapping of NAME: value, "
            f"not a {type(values).__name__}"
        )
    return values


def typed_parameters(values: dict[str, Any], declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``values`` checked against the declared names and converted to the declared types."""
    typed = {}
    for name, value in values.items():
        if name not in declared:
            known = ", ".join(sorted(declared))
            raise JobParameterError(f"no notebook declares parameter {name!r}; known: {known}")
        kind = declared[name]["type"]
        typed[name] = _convert(name, value, kind)
        limit = PARAMETERS.get(name)
        problem = limit.problem(typed[name]) if limit else None
        if problem:
            raise JobParameterError(f"parameter {name}: {problem}; nothing was run")
    return typed


def _convert(name: str, value: Any, kind: str) -> Any:
    """A value as the declared type: text (from ``-p``) parsed for that type, values from a
    YAML file checked against it."""
    if value is None or kind not in _EXAMPLES:
        problem = "has no value" if value is None else f"has an unknown declared type {kind!r}"
        raise JobParameterError(f"parameter {name} {problem}; pass e.g. -p {name} 1")
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    try:
        if isinstance(value, str):
            text = value.strip()
            if kind == "bool":
                return _BOOLEANS[text.lower()]
            parsed = int(text, 10) if kind == "int" else float(text)
        elif isinstance(value, bool) != (kind == "bool"):
            raise ValueError
        else:
            parsed = {"int": int, "float": float, "bool": bool}[kind](value)
            if parsed != value:
                raise ValueError
        if kind == "float" and not math.isfinite(parsed):
            raise ValueError
        return parsed
    except (KeyError, ValueError, TypeError):
        raise JobParameterError(
            f"parameter {name} must be {kind}, got {value!r}; pass e.g. -p {name} {_EXAMPLES[kind]}"
        ) from None


@dataclass
class NotebookRun:
    """One notebook of a run."""

    notebook: str
    status: str
    seconds: float
    output: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobRun:
    """A run: where it is, what it was given, and how each notebook went."""

    run_id: str
    folder: Path
    parameters: dict[str, Any]
    started: str
    environment: dict[str, str] = field(default_factory=dict)
    """The ``SALESCAST_*`` settings the notebooks' kernels inherited (backend, root, scale)."""
    notebooks: list[NotebookRun] = field(default_factory=list)
    status: str = "running"
    error: str = ""
    finished: str = ""
    seconds: float = 0.0

    @property
    def report(self) -> str | None:
        """The HTML report the run made, if it got that far."""
        for notebook in self.notebooks:
            if "report" in notebook.figures:
                return notebook.figures["report"]
        return None

    def write_summary(self) -> None:
        """``summary.json`` for programs, ``summary.md`` for people."""
        data = asdict(self) | {"folder": str(self.folder), "report": self.report}
        (self.folder / "summary.json").write_text(json.dumps(data, indent=2, default=str))
        lines = [
            f"# Run {self.run_id}: {self.status}",
            "",
            f"Started {self.started}, finished {self.finished or '-'} ({self.seconds:.0f} s); "
            f"report: {self.report or 'none'}.",
            "",
            f"Settings from the environment: {self.environment or 'none'}.",
            "",
            "| notebook | status | seconds | key figures |",
            "|---|---|---:|---|",
        ]
        for notebook in self.notebooks:
            figures = ", ".join(
                f"{name}={value}" for name, value in _flat(notebook.figures).items()
            )
            lines.append(
                f"| {notebook.notebook} | {notebook.status} | {notebook.seconds:.1f} | {figures} |"
            )
        if self.error:
            lines += ["", f"Error: {self.error}"]
        (self.folder / "summary.md").write_text("\n".join(lines) + "\n")


def _flat(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar figures by dotted name, floats rounded, for the summary table; lists left out."""
    flat: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{name}.")
        elif isinstance(value, float):
            flat[f"{prefix}{name}"] = round(value, 2)
        elif not isinstance(value, list):
            flat[f"{prefix}{name}"] = value
    return flat


def run_notebooks(
    parameters: dict[str, Any] | None = None,
    run_id: str | None = None,
    notebooks: list[Path] | None = None,
    runs: Path = RUNS,
    progress: bool = True,
) -> JobRun:
    """Execute the notebooks in order into ``runs/<run id>/``; raises JobFailedError at the
    first failure, naming the notebook and the cell, after writing the summary.

    Kernels start in the caller's working directory, and relative ``ROOT`` and ``OUTPUT``
    parameters are made absolute, so that paths mean what they mean to the caller.
    """
    notebooks = job_notebooks() if notebooks is None else notebooks
    declared = notebook_parameters(notebooks)
    given = typed_parameters(parameters or {}, declared)
    for name in ("ROOT", "OUTPUT"):
        if given.get(name):
            given[name] = str(Path(given[name]).resolve())
    run_id = run_id or new_run_id()
    if not RUN_ID.fullmatch(run_id):
        raise JobParameterError(
            f"run id {run_id!r} is not a folder name; use letters, digits, '.', '_' and '-'"
        )
    folder = Path(runs).resolve() / run_id
    if folder.exists():
        raise JobParameterError(f"run folder {folder} exists; choose another run id")
    folder.mkdir(parents=True)
    automatic = {"RUN_ID": run_id, "OUTPUT": str(folder / "report")}
    settings = {k: v for k, v in sorted(os.environ.items()) if k.startswith("SALESCAST_")}
    job = JobRun(run_id, folder, given, _now(), settings)
    started = time.perf_counter()
    try:
        with progress_bars.tqdm(
            notebooks, desc="notebooks", unit="notebook", disable=not progress
        ) as bar:
            for path in bar:
                bar.set_postfix_str(path.stem)
                own = {name for name, spec in declared.items() if path.stem in spec["notebooks"]}
                values = {name: automatic[name] for name in AUTOMATIC if name in own}
                values |= {name: value for name, value in given.items() if name in own}
                job.notebooks.append(_execute(path, folder / path.name, values, job))
                if job.status == "failed":
                    break
        if job.status == "running":
            job.status = "succeeded"
    except BaseException:  # interrupted (Ctrl-C): the summary says how far it got
        job.status = "interrupted"
        raise
    finally:
        job.finished, job.seconds = _now(), round(time.perf_counter() - started, 1)
        job.write_summary()
    if job.status == "failed":
        raise JobFailedError(f"{job.error}. Summary: {folder / 'summary.md'}")
    return job


def new_run_id() -> str:
    """A run's default id: the UTC time to the second."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _IpcKernelManager(AsyncKernelManager):
    """Kernels on local IPC sockets rather than TCP ports: nothing to eavesdrop on, and no
    warning from every kernel saying its TCP traffic is unencrypted."""

    managers: ClassVar[weakref.WeakSet[_IpcKernelManager]] = weakref.WeakSet()
    """Every manager alive, so that an interrupted run can stop its kernel."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault(
            "ip", os.path.join(tempfile.gettempdir(), f"salescast-{uuid.uuid4().hex}")
        )
        super().__init__(**kwargs)
        self.managers.add(self)

    async def _async_interrupt_kernel(self) -> None:
        """Interrupts, except the one jupyter_client sends on the way to every shutdown: the
        kernel is idle then, and logs a stray "KeyboardInterrupt caught in kernel" when the
        interrupt lands while it handles a message."""
        if not self.shutting_down:
            await super()._async_interrupt_kernel()

    @classmethod
    def kill_kernels(cls) -> None:
        """Kill every kernel still running (its process group: the kernel leads its own)."""
        for manager in list(cls.managers):
            process = getattr(manager.provisioner, "process", None)
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def _interruptible(work: Callable[[], None]) -> None:
    """``work`` in a worker thread, so that Ctrl-C reaches this one as KeyboardInterrupt.

    nbclient, run on the main thread, takes SIGINT for itself: a run went on through Ctrl-C
    while its kernel logged a stray KeyboardInterrupt. Off the main thread it cannot; an
    interrupt kills the kernel, waits for the worker to see it, and goes on up.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the caller's thread below
            failure.append(error)

    worker = threading.Thread(target=run, name="salescast-notebook", daemon=True)
    worker.start()
    try:
        worker.join()
    except KeyboardInterrupt:
        _IpcKernelManager.kill_kernels()
        worker.join(timeout=30)
        raise
    if failure:
        raise failure[0]


def _execute(path: Path, output: Path, values: dict[str, Any], job: JobRun) -> NotebookRun:
    started = time.perf_counter()
    status = "succeeded"
    try:
        _interruptible(
            lambda: papermill.execute_notebook(
                str(path),
                str(output),
                parameters=values,
                progress_bar=False,
                kernel_manager_class=_IpcKernelManager,
            )
        )
    except PapermillExecutionError as error:
        status = job.status = "failed"
        job.error = (
            f"{path.stem} failed in cell [{error.exec_count}] ({_first_line(error.source)!r}): "
            f"{error.ename}: {error.evalue}. The executed notebook, with the traceback: {output}"
        )
    except Exception as error:  # the kernel died, or would not start
        status = job.status = "failed"
        where = _running_cell(output)
        job.error = (
            f"{path.stem} could not run{where}: {type(error).__name__}: {error}. A kernel that "
            f"dies has usually run out of memory: try a smaller SALESCAST_SCALE or fewer DAYS. "
            f"The notebook as far as it got: {output}"
        )
    seconds = round(time.perf_counter() - started, 1)
    return NotebookRun(path.stem, status, seconds, str(output), recorded_figures(output))


def _first_line(source: str) -> str:
    return source.strip().splitlines()[0] if source.strip() else ""


def _running_cell(output: Path) -> str:
    """Where the kernel went away: " in cell N ('first line')" for the last cell papermill
    started, if any."""
    if not output.exists():
        return ""
    cells = nbformat.read(output, as_version=4).cells
    started = [
        index
        for index, cell in enumerate(cells)
        if cell.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    if not started:
        return ""
    return f" in cell {started[-1]} ({_first_line(cells[started[-1]].source)!r})"


def recorded_figures(path: Path) -> dict[str, Any]:
    """The figures an executed notebook recorded (the last :func:`~helpers.workbench.record`)."""
    if not path.exists():
        return {}
    figures: dict[str, Any] = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if FIGURES_MIME in data:
                figures = dict(data[FIGURES_MIME])
    return figures
