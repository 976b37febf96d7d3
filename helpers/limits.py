"""What values the settings of a run allow, one table for the ``salescast`` options and the
notebooks' parameters, so that both refuse a bad value before anything is written.

A :class:`Limit` is a range of numbers or a set of choices; :data:`PARAMETERS` holds one per
notebook parameter that has one (``salescast run`` checks them all before the first notebook
starts), and the command's options take theirs from the same table.

Examples
--------
>>> PARAMETERS["HORIZON"].problem(0)
'0 is not allowed: a whole number from 1 to 3660'
>>> PARAMETERS["LEVEL"].problem("product") is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from helpers.forecast.runs import SEASONALITY_MODES
from helpers.forecast.series import LEVELS, MEASURES

MAX_DAYS = 3660
"""Ten years of days: the longest backfill or horizon, well inside what dates can hold."""


@dataclass(frozen=True)
class Limit:
    """A whole number (``kind`` int) or a number (float) from ``low`` (excluded when
    ``above``) to ``high``, or one of ``choices``."""

    kind: type = int
    low: float | None = None
    high: float | None = None
    above: bool = False
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        noun = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{noun} above {self.low:g}" if self.above else f"{noun} of {self.low:g} or more"
        return noun

    def problem(self, value: Any) -> str | None:
        """None when ``value`` (already of the kind) is allowed, else what is wrong with it."""
        if self.choices:
            allowed = value in self.choices
        else:
            allowed = math.isfinite(value)
            if self.low is not None:
                allowed &= value > self.low if self.above else value >= self.low
            if self.high is not None:
                allowed &= value <= self.high
        return None if allowed else f"{value!r} is not allowed: {self}"

    def parse(self, text: str) -> Any:
        """``text`` from a command line as an allowed value; ValueError saying why not."""
        if self.choices or self.kind is str:
            value: Any = text
        else:
            try:
                value = int(text, 10) if self.kind is int else float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not {self}") from None
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value


PARAMETERS = {
    "BACKEND": Limit(str, choices=("", "local", "aws")),
    "DAYS": Limit(int, 0, MAX_DAYS),
    "ORDERS_PER_DAY": Limit(int, 1),
    "PRODUCTS": Limit(int, 1),
    "SEED": Limit(int, 0),
    "LIVE_RATE": Limit(float, 0),
    "LIVE_SPEED": Limit(float, 0, above=True),
    "LIVE_SECONDS": Limit(float, 0),
    "SHOCK_FACTOR": Limit(float, 0),
    "SHOCK_MINUTE": Limit(float, 0),
    "TIMEOUT": Limit(float, 0, above=True),
    "RECORDS": Limit(int, 0),
    "ERRORS": Limit(int, 0),
    "TOP": Limit(int, 1),
    "LEVEL": Limit(str, choices=tuple(LEVELS)),
    "MEASURE": Limit(str, choices=MEASURES),
    "HORIZON": Limit(int, 1, MAX_DAYS),
    "FOLDS": Limit(int, 1),
    "SEASONALITY_MODE": Limit(str, choices=SEASONALITY_MODES),
}
"""The allowed values of the notebooks' parameters, by name; parameters not here take any
value of their declared type."""
