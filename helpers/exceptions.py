"""Errors the platform raises, one small class each, all under :class:`SalescastError`."""

from __future__ import annotations


class SalescastError(Exception):
    """Base class of every error the platform raises on purpose."""


class InvalidOrderError(SalescastError, ValueError):
    """An order breaks the schema; names the field, the problem, and the fix."""

    def __init__(self, field: str, problem: str, fix: str, where: str | None = None):
        self.field, self.problem, self.fix, self.where = field, problem, fix, where
        prefix = f"{where}: " if where else ""
        super().__init__(
            f"{prefix}field {field!r} {problem}; {fix}. Nothing in this call was written."
        )

    def at(self, where: str) -> InvalidOrderError:
        """The same error, located at an order or record position."""
        return InvalidOrderError(self.field, self.problem, self.fix, where)


class OrderNotFoundError(SalescastError, KeyError):
    """An update named an order that is not in the table."""

    def __str__(self) -> str:
        return (
            f"order {self.args[0]!r} is not in the table; put it first with orders.put "
            "(update only changes existing orders). Nothing in this call was written."
        )


class PipelineStuckError(SalescastError, TimeoutError):
    """flush() timed out, or a stage gave up on changes; names the stage."""

    def __init__(self, stage: str, pending: int, timeout: float | None, hint: str):
        self.stage, self.pending = stage, pending
        if timeout is None:  # the stage went on without them
            super().__init__(f"{stage}: {pending} change(s) will not reach the lake. {hint}")
            return
        super().__init__(
            f"{stage} did not catch up within {timeout:g}s: {pending} change(s) still pending. {hint}"
        )


class QueryError(SalescastError):
    """A query failed; names Athena's error type, the problem and its position."""

    def __init__(self, code: str, message: str, line: int | None = None, column: int | None = None):
        self.code, self.line, self.column = code, line, column
        where = f"line {line}:{column}: " if line is not None else ""
        super().__init__(f"{code}: {where}{message}")


class BackendError(SalescastError, ValueError):
    """An unknown backend or a setting that does not fit it."""


class StateFileError(SalescastError, RuntimeError):
    """A local service's state file cannot be read (damaged, or not its kind); names the file
    and the fix."""


class DeployError(SalescastError, RuntimeError):
    """Provisioning or teardown of the AWS stack failed; names the resource and the reason."""


class JobParameterError(SalescastError, ValueError):
    """A run was given a parameter no notebook declares, or a value of the wrong type."""


class JobFailedError(SalescastError, RuntimeError):
    """A notebook of a run failed; names the notebook, the cell and where its output is."""
