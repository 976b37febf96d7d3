"""Progress bars: a text bar in a notebook, a redrawn bar in a terminal, plain lines elsewhere.

In a notebook the bar is text on stdout, not a widget: a widget's state is not saved with the
notebook (neither by papermill nor, by default, by JupyterLab), so every saved bar would show
stuck at its start; a text bar redraws in place while it runs and is saved at its last state.
Outside a notebook, when the bar's stream is not a terminal (a cron log, a pipe), a redrawn bar
would be one endless line of carriage returns: there each update is a line of its own, every
:data:`LOG_INTERVAL_S` at most. Every module of helpers takes its bars from here.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _text_tqdm

LOG_INTERVAL_S = 10.0
_IN_NOTEBOOK = any(base.__module__ == "tqdm.notebook" for base in _auto_tqdm.__mro__)


class _Lines:
    """A stream for tqdm that writes each redraw (``\\r`` and the bar) as a line of its own,
    once: tqdm redraws the last state again when it closes."""

    def __init__(self, stream: TextIO):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        self.stream.flush()


def tqdm(*args: Any, **kwargs: Any):
    """A text bar on stdout in a notebook; lines when the stream is not a terminal; else
    a bar redrawn in place (a terminal)."""
    if _IN_NOTEBOOK:
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", 1.0)
        return _text_tqdm(*args, **kwargs)
    stream = kwargs.get("file") or sys.stderr
    if not stream.isatty():
        kwargs |= {"file": _Lines(stream), "ascii": True, "ncols": 80}
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        return _text_tqdm(*args, **kwargs)
    return _text_tqdm(*args, **kwargs)


def waiting_bar(stage: str, pending: int, progress: bool):
    """The bar of ``flush`` waiting for a stage to take ``pending`` changes (none when
    ``progress`` is off or nothing is pending)."""
    return tqdm(
        total=pending,
        desc=f"waiting for the {stage}",
        unit="change",
        disable=not progress or pending <= 0,
    )
