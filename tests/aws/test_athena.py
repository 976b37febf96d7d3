"""What the aws backend sends Athena and how it reads Athena's failures (the SQL itself runs on
a real account only)."""

from __future__ import annotations

from helpers.aws.athena import binding, query_error


def test_positional_parameters_go_as_sql_literals_and_named_ones_to_awswrangler():
    assert binding(["p-1", "it's", 3, 2.5, True, None]) == {
        "params": ["'p-1'", "'it''s'", "3", "2.5", "TRUE", "NULL"],
        "paramstyle": "qmark",
    }
    assert binding({"product": "p-1"}) == {"params": {"product": "p-1"}, "paramstyle": "named"}
    assert binding(None) == {}


def test_athena_failures_become_query_errors_with_their_position():
    error = query_error("COLUMN_NOT_FOUND: line 1:18: Column 'colour' cannot be resolved")
    assert (error.code, error.line, error.column) == ("COLUMN_NOT_FOUND", 1, 18)
    assert str(error) == "COLUMN_NOT_FOUND: line 1:18: Column 'colour' cannot be resolved"
    error = query_error("TABLE_NOT_FOUND: Table 'x' does not exist")
    assert (error.code, error.line) == ("TABLE_NOT_FOUND", None)
    assert query_error("Query exhausted resources").code == "GENERIC_USER_ERROR"
