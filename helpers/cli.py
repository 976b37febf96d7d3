"""The ``salescast`` command: stream orders, look at the lake, check the pipeline.

Examples
--------
$ salescast stream --days 730                 # backfill two years of history, wait for the lake
$ salescast stream --rate 200 --duration 60  # then stream live orders for a minute
$ salescast lake                             # partitions, objects and a few records
$ salescast status                           # records per stage, lag, failures
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

import helpers
from helpers import generate, jobs, workbench
from helpers.exceptions import JobParameterError, SalescastError

app = typer.Typer(
    help="Sales forecasting workbench: stream orders to the lake, query and forecast them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Root = Annotated[
    Path | None,
    typer.Option(help="Local state and lake folder [env SALESCAST_ROOT; default data/local]"),
]
Backend = Annotated[str | None, typer.Option(help="local or aws [env SALESCAST_BACKEND]")]


def _connect(backend: str | None, root: Path | None, **settings) -> helpers.Platform:
    try:
        return helpers.connect(backend=backend, root=root, **settings)
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None


def _show(frame: pd.DataFrame) -> None:
    typer.echo(frame.to_string(index=False) if len(frame) else "(none)")


@app.command()
def stream(
    days: Annotated[int, typer.Option(help="Days of history to backfill (0 for none)")] = 730,
    end: Annotated[str | None, typer.Option(help="First day not backfilled (ISO date)")] = None,
    rate: Annotated[float, typer.Option(help="Live orders per second after the backfill")] = 0.0,
    duration: Annotated[float, typer.Option(help="Seconds of live streaming")] = 0.0,
    orders_per_day: Annotated[int, typer.Option(help="Baseline orders per day")] = 1000,
    products: Annotated[int, typer.Option(help="Products in the catalog")] = 50,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same orders")] = 42,
    reset: Annotated[bool, typer.Option(help="Remove local state first")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the lake")] = 600.0,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Backfill history and/or stream live orders, then wait until the lake has them all."""
    params = generate.SalesParams(seed=seed, orders_per_day=orders_per_day, n_products=products)
    if reset:
        _connect(backend, root, consume=False).teardown()
    with _connect(backend, root) as platform:
        if days:
            typer.echo(f"backfilling {days} days of history (seed {seed})")
            counts = workbench.backfill(platform, days, params, end)
            typer.echo(f"  {counts}")
        if rate and duration:
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
    records: Annotated[int, typer.Option(help="How many records to show")] = 5,
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
    output: Annotated[str, typer.Option(help="table or csv")] = "table",
    database: Annotated[str | None, typer.Option(help="Default database")] = None,
    root: Root = None,
    backend: Backend = None,
) -> None:
    """Run Athena SQL over the lake and print the result."""
    from helpers import queries

    if output not in ("table", "csv"):
        typer.secho("error: --output must be table or csv", fg="red", err=True)
        raise typer.Exit(2)
    text = queries.load(sql) if sql in (*queries.VIEWS, *queries.NAMED) else sql
    if sql in queries.VIEWS:
        text = f"SELECT * FROM {sql}"
    with _connect(backend, root, consume=False) as platform:
        try:
            frame = platform.query(text, database=database)
        except SalescastError as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(1) from None
        if output == "csv":
            typer.echo(frame.to_csv(index=False), nl=False)
        else:
            _show(frame)
            typer.echo(f"({len(frame)} rows; result at {frame.attrs['output_location']})")


@app.command("forecast")
def forecast_command(
    level: Annotated[str, typer.Option(help="total, category or product")] = "product",
    measure: Annotated[str, typer.Option(help="units, revenue or orders")] = "units",
    horizon: Annotated[int, typer.Option(help="Days to forecast")] = 28,
    folds: Annotated[int, typer.Option(help="Backtest folds")] = 3,
    seasonality_mode: Annotated[
        str, typer.Option(help="Prophet's: auto (by the data), additive or multiplicative")
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
    top: Annotated[int, typer.Option(help="Series to chart")] = 5,
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
        Path | None, typer.Option("--file", "-f", help="YAML file of NAME: value parameters")
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="The run's id; default the UTC time")] = None,
    runs: Annotated[Path, typer.Option(help="Where runs go, one folder each")] = jobs.RUNS,
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
        job = jobs.run_notebooks(parameters, run_id=run_id, notebooks=notebooks, runs=runs)
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo((job.folder / "summary.md").read_text())
    typer.echo(f"notebooks and summary: {job.folder}")


def _parameter_pairs(args: list[str]) -> dict[str, str]:
    """``-p NAME VALUE`` pairs (papermill's form) from the command's extra arguments."""
    pairs, rest = {}, list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise JobParameterError(
                f"unexpected argument {flag!r}: pass parameters as -p NAME VALUE"
            )
        name, value = rest.pop(0), rest.pop(0)
        pairs[name] = value
    return pairs


@app.command()
def deploy(
    prefix: Annotated[
        str | None, typer.Option(help="Stack and name prefix [env SALESCAST_PREFIX]")
    ] = None,
) -> None:
    """Create or update the AWS stack: package and upload the transform Lambda, apply a change
    set, show the stack's events, then list its resources. Credentials and region come from
    boto3's usual chain (environment, profile, role)."""
    from botocore.exceptions import BotoCoreError, ClientError

    with _connect("aws", None, prefix=prefix) as platform:
        try:
            resources = platform.provision()
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
    platform = _connect(backend, root, consume=False)
    if platform.settings.backend == "local":
        platform.teardown()
        typer.echo(f"removed {platform.settings.root}")
        return
    try:
        removed = platform.teardown()
    except SalescastError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed stack {removed['stack'] or '(none)'} and {removed['objects']} objects")


if __name__ == "__main__":  # pragma: no cover
    app()
