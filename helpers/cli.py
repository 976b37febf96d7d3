"""The ``salescast`` command: stream orders, look at the lake, check the pipeline.

Examples
--------
$ salescast stream --days 730                 # backfill two years of history, wait for the lake
$ salescast stream --rate 200 --duration 60  # then stream live orders for a minute
$ salescast lake                             # partitions, objects and a few records
$ salescast status                           # records per stage, lag, failures
"""

from __future__ import annotations

import contextlib
import math
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

import helpers
from helpers import generate, jobs, workbench
from helpers.config import BACKENDS, Settings
from helpers.exceptions import JobParameterError, QueryError, SalescastError
from helpers.limits import PARAMETERS, Limit
from helpers.local.platform import STATE_MARKER

app = typer.Typer(
    help="Sales forecasting workbench: stream orders to the lake, query and forecast them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # rich help shows every flag as "--yes <bool>" and eats "[...]"
)


def _within(limit: Limit, help: str, **option: Any) -> Any:
    """An option whose values ``limit`` checks as it parses them, before the command runs;
    the refusal names the option, the value and what is allowed, and so does the help."""

    def parse(text: str) -> Any:
        if not isinstance(text, str):  # the option's default
            return text
        try:
            return limit.parse(text)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return typer.Option(help=f"{help}; {limit}", parser=parse, metavar=_metavar(limit), **option)


def _metavar(limit: Limit) -> str:
    if limit.choices:
        return "[" + "|".join(limit.choices) + "]"
    return "INTEGER" if limit.kind is int else "NUMBER"


def _iso_date(text: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date such as 2026-03-01") from None
    return text


Root = Annotated[
    Path | None,
    typer.Option(
        help="Local state and lake folder",
        envvar="SALESCAST_ROOT",
        show_envvar=True,
        show_default="data/local",
        file_okay=False,
    ),
]
Backend = Annotated[
    str | None,
    _within(
        Limit(str, choices=BACKENDS),
        "Where the platform runs",
        envvar="SALESCAST_BACKEND",
        show_envvar=True,
        show_default="local",
    ),
]


def _connect(
    backend: str | None, root: Path | None, existing: bool = True, **settings: Any
) -> helpers.Platform:
    """The platform; with ``existing``, a local root must already hold salescast state
    (commands that only read or add to it never create an empty one)."""
    try:
        if existing:
            resolved = Settings.from_env(backend=backend, root=root)
            if resolved.backend == "local" and not (resolved.root / STATE_MARKER).exists():
                raise SalescastError(
                    f"no salescast state at {resolved.root}: stream orders there first "
                    f"(salescast stream --root {resolved.root}), or point --root or "
                    f"SALESCAST_ROOT at an existing root"
                )
        return helpers.connect(backend=backend, root=root, **settings)
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None


def _show(frame: pd.DataFrame) -> None:
    typer.echo(frame.to_string(index=False) if len(frame) else "(none)")


@app.command()
def stream(
    ctx: typer.Context,
    days: Annotated[
        int, _within(PARAMETERS["DAYS"], "Days of history to backfill (0 for none)")
    ] = 730,
    end: Annotated[
        str | None,
        typer.Option(
            help="First day not backfilled (ISO date); default today",
            parser=_iso_date,
            metavar="DATE",
        ),
    ] = None,
    rate: Annotated[
        float, _within(PARAMETERS["LIVE_RATE"], "Live orders per second after the backfill")
    ] = 0.0,
    duration: Annotated[
        float, _within(PARAMETERS["LIVE_SECONDS"], "Seconds of live streaming, with --rate")
    ] = 0.0,
    orders_per_day: Annotated[
        int, _within(PARAMETERS["ORDERS_PER_DAY"], "Baseline orders per day")
    ] = 1000,
    products: Annotated[int, _within(PARAMETERS["PRODUCTS"], "Products in the catalog")] = 50,
    seed: Annotated[
        int, _within(PARAMETERS["SEED"], "Seed; the same seed gives the same orders")
    ] = 42,
    reset: Annotated[bool, typer.Option("--reset", help="Remove local state first")] = False,
    timeout: Annotated[
        float, _within(PARAMETERS["TIMEOUT"], "Seconds to wait for the lake")
    ] = 600.0,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Backfill history and/or stream live orders, then wait until the lake has them all."""
    if bool(rate) != bool(duration):
        given = f"--rate {rate:g}" if rate else f"--duration {duration:g}"
        missing = "--duration" if rate else "--rate"
        ctx.fail(f"{given} needs {missing} too: live streaming takes a rate and a duration")
    params = generate.SalesParams(seed=seed, orders_per_day=orders_per_day, n_products=products)
    if reset:
        _connect(backend, root, existing=False, consume=False).teardown()
    with _connect(backend, root, existing=False) as platform:
        if days:
            typer.echo(f"backfilling {days} days of history (seed {seed})")
            counts = workbench.backfill(platform, days, params, end)
            typer.echo(f"  {counts}")
        if rate:
            typer.echo(f"streaming {rate:g} orders/s for {duration:g}s")
            session = workbench.stream_live(
                platform, rate, duration, params, timeout=timeout, scaled=False
            )
            freshness = session.freshness
            typer.echo(
                f"  {session.counts}; reached the lake in p50 {freshness['p50_s']:g}s, "
                f"p95 {freshness['p95_s']:g}s"
            )
        typer.echo("waiting for the lake")
        try:
            platform.flush(timeout=timeout, progress=True)
        except SalescastError as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(1) from None
        _show(platform.status())


@app.command()
def lake(
    records: Annotated[int, _within(PARAMETERS["RECORDS"], "How many records to show")] = 5,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """List the lake's partitions and objects, failed records, and show a few records."""
    with _connect(backend, root, consume=False) as platform:
        objects = platform.lake_objects()
        typer.echo(f"{len(objects)} objects, {objects['size'].sum() if len(objects) else 0} bytes")
        if len(objects):
            partitions = workbench.lake_partitions(objects)
            typer.echo(f"{len(partitions)} partitions (first and last 5):")
            _show(pd.concat([partitions.head(5), partitions.tail(5)]).drop_duplicates())
        errors = platform.lake_objects(platform.settings.error_prefix)
        typer.echo(f"{len(errors)} error objects under {platform.settings.error_prefix}")
        if len(errors):
            _show(errors[["key", "size", "last_modified"]].tail(5))
        typer.echo("records:")
        _show(platform.read_lake(limit=records))


@app.command()
def status(root: Root = None, backend: Backend = None) -> None:
    """Records per stage, pending changes (lag), failures, and time since the last delivery."""
    with _connect(backend, root, consume=False) as platform:
        frame = platform.status()
        _show(frame)
        for stage, error in frame.attrs.get("errors", {}).items():
            typer.secho(f"{stage} is failing: {error!r}", fg="red")


@app.command()
def watch(
    top: Annotated[int, _within(PARAMETERS["TOP"], "Products to show after the total")] = 5,
    every: Annotated[
        float, _within(Limit(float, 0, above=True), "Seconds between refreshes")
    ] = 5.0,
    seconds: Annotated[
        float | None,
        _within(Limit(float, 0), "Stop after this many seconds; default until Ctrl-C"),
    ] = None,
    once: Annotated[bool, typer.Option(help="Print once and stop")] = False,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Today's sales against the forecast as the real-time consumer sees them: the total and
    the top products (sold so far, expected so far with its 90 % band, the end-of-day nowcast
    with its 90 % interval) and the open alerts, refreshed every few seconds."""
    from helpers import live

    deadline = math.inf if seconds is None else time.monotonic() + seconds
    with _connect(backend, root, consume=False) as platform, contextlib.suppress(KeyboardInterrupt):
        while True:
            typer.echo(live.watch_text(platform, top))
            left = deadline - time.monotonic()
            if once or left <= 0:
                return
            time.sleep(min(every, left))
            typer.echo("")


@app.command()
def trim(root: Root = None, backend: Backend = None) -> None:
    """Apply retention now: trim the streams, expire Athena results and old records."""
    with _connect(backend, root, consume=False) as platform:
        for what, count in platform.trim().items():
            typer.echo(f"{what}: {count:,}")


@app.command()
def crawl(root: Root = None, backend: Backend = None) -> None:
    """Run the crawler: catalog the lake's table, new partitions and the views."""
    with _connect(backend, root, consume=False) as platform:
        result = platform.crawl()
        typer.echo(
            f"tables created: {result['tables_created'] or 'none'}; "
            f"updated: {result['tables_updated'] or 'none'}; "
            f"partitions added: {result['partitions_added']}; "
            f"views created: {result['views_created'] or 'none'}"
        )
        for message in result["messages"]:
            typer.echo(f"  {message}")


@app.command()
def compact(root: Root = None) -> None:
    """Compact the local lake's small objects (on aws, see the README: a Glue job or CTAS)."""
    with _connect("local", root, consume=False) as platform:
        result = platform.compact()
        typer.echo(
            f"{result['sources']} objects into {len(result['outputs'])} in "
            f"{len(result['partitions'])} partitions; {result['deleted']} deleted"
        )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="Athena SQL, or the name of a named query")],
    output: Annotated[
        str, _within(Limit(str, choices=("table", "csv")), "How to print the result")
    ] = "table",
    database: Annotated[str | None, typer.Option(help="Default database")] = None,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Run Athena SQL over the lake and print the result."""
    from helpers import queries

    text = queries.load(sql) if sql in (*queries.VIEWS, *queries.NAMED) else sql
    if sql in queries.VIEWS:
        text = f"SELECT * FROM {sql}"
    with _connect(backend, root, consume=False) as platform:
        try:
            frame = platform.query(text, database=database)
        except SalescastError as error:
            missing = isinstance(error, QueryError) and error.code == "TABLE_NOT_FOUND"
            crawled = platform.settings.changes_table in set(platform.catalog_tables()["name"])
            if missing and not crawled:
                error = SalescastError(
                    f"{error}. The lake is not cataloged yet: run `salescast crawl` first, "
                    "to catalog its table and create the views"
                )
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(1) from None
        if output == "csv":
            typer.echo(frame.to_csv(index=False), nl=False)
        else:
            _show(frame)
            typer.echo(f"({len(frame)} rows; result at {frame.attrs['output_location']})")


@app.command("forecast")
def forecast_command(
    level: Annotated[
        str, _within(PARAMETERS["LEVEL"], "The lowest level; every level above it too")
    ] = "product",
    measure: Annotated[str, _within(PARAMETERS["MEASURE"], "What to forecast")] = "units",
    horizon: Annotated[int, _within(PARAMETERS["HORIZON"], "Days to forecast")] = 28,
    folds: Annotated[int, _within(PARAMETERS["FOLDS"], "Backtest folds")] = 3,
    seasonality_mode: Annotated[
        str, _within(PARAMETERS["SEASONALITY_MODE"], "Prophet's; auto decides by the data")
    ] = "auto",
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Backtest and forecast daily sales, and write both back to the lake as tables."""
    from helpers.forecast import run_forecast, summarize

    with _connect(backend, root, consume=False) as platform:
        try:
            run = run_forecast(
                platform, level, measure, horizon, folds, seasonality_mode=seasonality_mode
            )
        except (SalescastError, ValueError) as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(1) from None
        typer.echo(
            f"run {run.run_id}: {run.series} series at {level} level, {horizon} days"
            + (f", levels reconciled by {run.reconciliation}" if run.reconciliation else "")
        )
        _show(summarize(run.metrics).reset_index())
        for table, location in run.locations.items():
            typer.echo(f"{table}: {location}")


@app.command()
def report(
    run_id: Annotated[str | None, typer.Option(help="The run; the latest by default")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder; default <root>/reports/<run id>")
    ] = None,
    top: Annotated[int, _within(PARAMETERS["TOP"], "Series to chart")] = 6,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Export a forecasting run as a self-contained HTML report and a CSV of forecasts."""
    from helpers.report import export_report

    with _connect(backend, root, consume=False) as platform:
        try:
            paths = export_report(platform, run_id, output, top)
        except (SalescastError, ValueError) as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"report: {paths['html']}\nforecasts: {paths['csv']}")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Parameters: -p NAME VALUE (repeatable), e.g. -p DAYS 30 -p LEVEL category.",
)
def run(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="YAML file of NAME: value parameters", exists=True, dir_okay=False
        ),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="The run's id; default the UTC time")] = None,
    runs: Annotated[
        Path, typer.Option(help="Where runs go, one folder each", file_okay=False)
    ] = jobs.RUNS,
    list_parameters: Annotated[
        bool, typer.Option("--list-parameters", help="Show the notebooks' parameters and stop")
    ] = False,
) -> None:
    """Run the notebooks in order with papermill into runs/<run id>/, then summarize."""
    try:
        notebooks = jobs.job_notebooks()
        if list_parameters:
            declared = jobs.notebook_parameters(notebooks)
            _show(
                pd.DataFrame(
                    [
                        (
                            name,
                            spec["type"],
                            spec["default"],
                            ", ".join(spec["notebooks"]),
                            spec["help"],
                        )
                        for name, spec in declared.items()
                    ],
                    columns=["parameter", "type", "default", "notebooks", "help"],
                )
            )
            return
        parameters = jobs.read_parameter_file(file) if file else {}
        parameters |= _parameter_pairs(ctx.args)
        run_id = run_id or jobs.new_run_id()
        job = jobs.run_notebooks(parameters, run_id=run_id, notebooks=notebooks, runs=runs)
    except JobParameterError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        summary = runs.resolve() / str(run_id) / "summary.md"
        where = f"; how far it got: {summary}" if summary.exists() else ""
        typer.secho(f"interrupted{where}", fg="red", err=True)
        raise typer.Exit(130) from None
    typer.echo((job.folder / "summary.md").read_text())
    typer.echo(f"notebooks and summary: {job.folder}")


def _parameter_pairs(args: list[str]) -> dict[str, str]:
    """``-p NAME VALUE`` pairs (papermill's form) from the command's extra arguments."""
    pairs, rest = {}, list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter"):
            raise JobParameterError(
                f"unexpected argument {flag!r}: pass parameters as -p NAME VALUE"
            )
        if not rest:
            raise JobParameterError(f"{flag} needs a NAME and a VALUE, e.g. {flag} DAYS 30")
        name = rest.pop(0)
        if not rest or rest[0] in ("-p", "--parameter"):
            raise JobParameterError(f"{flag} {name} has no VALUE: pass {flag} {name} VALUE")
        pairs[name] = rest.pop(0)
    return pairs


@app.command()
def deploy(
    prefix: Annotated[
        str | None, typer.Option(help="Stack and name prefix [env SALESCAST_PREFIX]")
    ] = None,
    allow_replacement: Annotated[
        bool,
        typer.Option(help="Accept a change that replaces the table, the stream or the lake"),
    ] = False,
) -> None:
    """Create or update the AWS stack: package and upload the transform Lambda, apply a change
    set, show the stack's events, then list its resources. Credentials and region come from
    boto3's usual chain (environment, profile, role). Refuses a region without every resource
    type, a deprecated Lambda runtime, and replacing what holds data unless allowed."""
    from botocore.exceptions import BotoCoreError, ClientError

    with _connect("aws", None, existing=False, prefix=prefix) as platform:
        try:
            resources = platform.provision(allow_replacement=allow_replacement)
        except (SalescastError, BotoCoreError, ClientError) as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(1) from None
        _show(resources)
        typer.echo(f"stack {platform.names.stack} in {platform.session.region} is ready")


@app.command()
def teardown(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm removal")] = False,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Remove the local state and lake, or on aws empty the buckets and delete the stack
    (asks for --yes)."""
    if not yes:
        typer.secho("refusing to remove anything without --yes", fg="red", err=True)
        raise typer.Exit(2)
    try:
        resolved = Settings.from_env(backend=backend, root=root)
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    if resolved.backend == "local" and not resolved.root.exists():
        typer.echo(f"nothing to remove: there is nothing at {resolved.root}")
        return
    platform = _connect(backend, root, existing=False, consume=False)
    if platform.settings.backend == "local":
        platform.teardown()
        typer.echo(f"removed {platform.settings.root}")
        return
    try:
        removed = platform.teardown()
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    kept = f", what it kept ({', '.join(removed['kept'])})" if removed["kept"] else ""
    typer.echo(
        f"removed stack {removed['stack'] or '(none)'}{kept} and {removed['objects']} objects"
    )


if __name__ == "__main__":  # pragma: no cover
    app()
