"""Progress bars: widgets in a notebook someone is watching, text lines everywhere else.

``salescast run`` sets ``SALESCAST_PROGRESS=text`` for the kernels it starts: a widget's state
is not saved in the executed notebook, so every bar would be stored stuck at its start; a text
bar leaves its last line. Every module of helpers takes its bars from here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _text_tqdm

VARIABLE = "SALESCAST_PROGRESS"


def tqdm(*args: Any, **kwargs: Any):
    """``tqdm.auto.tqdm``, or a plain text bar on stdout when ``SALESCAST_PROGRESS=text``."""
    if os.environ.get(VARIABLE) == "text":
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", 1.0)
        return _text_tqdm(*args, **kwargs)
    return _auto_tqdm(*args, **kwargs)
