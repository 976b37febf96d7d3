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


class TrimmedDataAccessError(SalescastError, LookupError):
    """A read asked for records that retention already trimmed from a stream; ``code`` is the
    name of the exception AWS answers with (``TrimmedDataAccessException`` for DynamoDB
    Streams), or ``TrimmedPosition`` for Kinesis, which answers none and skips them."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


class DiskFullError(SalescastError, OSError):
    """A write found no room left on a disk; names the disk and the fix. What the call was
    writing is not accepted, and nothing accepted before it is lost."""

    def __init__(self, message: str):
        super().__init__(28, message)  # ENOSPC
        self.message = message

    def __str__(self) -> str:
        return self.message

    @classmethod
    def at(cls, path, doing: str) -> DiskFullError:
        """The error for a write to ``path`` (``doing`` says what it was) that found the disk
        full: names the disk by its mount point and what is free on it."""
        import os
        import shutil

        place = os.path.abspath(path)
        while not os.path.exists(place):
            place = os.path.dirname(place)
        mount = place
        while not os.path.ismount(mount):
            mount = os.path.dirname(mount)
        try:
            free = f"{shutil.disk_usage(mount).free / 2**20:,.1f} MiB free"
        except OSError:
            free = "free space unknown"
        return cls(
            f"the disk mounted at {mount} is full ({free}) while {doing} ({path}): the write"
            " was not accepted, and nothing accepted before it is lost. Free space on that"
            " disk (salescast trim removes what retention allows), or move the root to a larger"
            " one, then try again"
        )
