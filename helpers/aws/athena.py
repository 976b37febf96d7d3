"""Athena: queries through awswrangler, with errors as :class:`~helpers.exceptions.QueryError`.

Queries run with ``ctas_approach=False``: the result is the CSV Athena writes to the
workgroup's output location (no temporary tables in the catalog, so the reader needs no Glue
write permissions). Named parameters (``:name``, a dict) are bound by awswrangler on the
client; positional ones (``?``, a list) are Athena execution parameters, sent as SQL literals.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pandas as pd

from helpers.exceptions import QueryError
from helpers.queries import sql_literal

_ERROR = re.compile(
    r"^(?P<code>[A-Z_]+): (?:line (?P<line>\d+):(?P<column>\d+): )?(?P<message>.*)", re.S
)


def read_sql_query(
    sql: str,
    database: str,
    workgroup: str,
    s3_output: str,
    session: boto3.Session,
    params: list | dict | None = None,
) -> pd.DataFrame:
    """The query's result; ``attrs`` hold ``query_execution_id`` and ``output_location``."""
    import awswrangler as wr

    try:
        frame = wr.athena.read_sql_query(
            sql,
            database=database,
            workgroup=workgroup,
            s3_output=s3_output,
            ctas_approach=False,
            boto3_session=session,
            **binding(params),
        )
    except wr.exceptions.QueryFailed as error:
        raise query_error(str(error)) from None
    metadata = frame.query_metadata
    frame.attrs["query_execution_id"] = metadata["QueryExecutionId"]
    frame.attrs["output_location"] = metadata["ResultConfiguration"]["OutputLocation"]
    return frame


def binding(params: list | dict | None) -> dict[str, Any]:
    """awswrangler's ``params`` and ``paramstyle`` for the platform's ``params``: a list goes
    to Athena as execution parameters (SQL literals, ``qmark``), a dict is bound by awswrangler
    (``named``)."""
    if isinstance(params, list):
        return {"params": [sql_literal(value) for value in params], "paramstyle": "qmark"}
    if isinstance(params, dict):
        return {"params": params, "paramstyle": "named"}
    return {}


def run_statement(
    sql: str, database: str, workgroup: str, s3_output: str, session: boto3.Session
) -> str:
    """Run a statement (DDL such as CREATE VIEW) to completion; returns its execution id."""
    import awswrangler as wr

    try:
        execution = wr.athena.start_query_execution(
            sql,
            database=database,
            workgroup=workgroup,
            s3_output=s3_output,
            boto3_session=session,
            wait=True,
        )
    except wr.exceptions.QueryFailed as error:
        raise query_error(str(error)) from None
    return execution["QueryExecutionId"]


def query_error(reason: str) -> QueryError:
    """Athena's StateChangeReason (``COLUMN_NOT_FOUND: line 1:8: ...``) as a QueryError."""
    match = _ERROR.match(reason.strip())
    if match is None:
        return QueryError("GENERIC_USER_ERROR", reason)
    line, column = match["line"], match["column"]
    return QueryError(
        match["code"],
        match["message"],
        int(line) if line else None,
        int(column) if column else None,
    )
