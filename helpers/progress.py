"""Progress bars: widgets in a notebook someone is watching, a redrawn bar in a terminal, and
plain lines everywhere else.

``salescast run`` sets ``SALESCAST_PROGRESS=text`` for the kernels it starts: a widget's state
is not saved in the executed notebook, so every bar would be stored stuck at its start; a text
bar leaves its last line. Outside a notebook, when the bar's stream is not a terminal (a cron
log, a pipe), a redrawn bar would be one endless line of carriage returns: there each update is
a line of its own, every :data:`LOG_INTERVAL_S` at most. Every module of helpers takes its bars
from here.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _text_tqdm

VARIABLE = "SALESCAST_PROGRESS"
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
    """``tqdm.auto.tqdm``; a plain text bar on stdout when ``SALESCAST_PROGRESS=text``; lines
    when the stream is not a terminal and this is no notebook."""
    if os.environ.get(VARIABLE) == "text":
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", 1.0)
        return _text_tqdm(*args, **kwargs)
    stream = kwargs.get("file") or sys.stderr
    if not _IN_NOTEBOOK and not stream.isatty():
        kwargs |= {"file": _Lines(stream), "ascii": True, "ncols": 80}
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        return _text_tqdm(*args, **kwargs)
    return _auto_tqdm(*args, **kwargs)
