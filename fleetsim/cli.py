"""Thin click commands: parse, call `fleetsim.api`, print. User errors exit 2 with one line."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from fleetsim import __version__
from fleetsim.errors import FleetsimError

SET_HELP = "Override a scenario field, typed by the schema: --set serving.duration_s=120 (repeatable)."


def user_errors(fn):
    """Turn a FleetsimError into one line on stderr and exit code 2 (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FleetsimError as exc:
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))
            click.echo(f"error: {text}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fleetsim")
def main() -> None:
    """fleetsim: simulate an AI inference fleet of mixed accelerators.

    \b
    Example:
      fleetsim run scenarios/quickstart.yaml -o outputs/quick
    """


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Run folder (default: outputs/<name>-<timestamp>/).")
@click.option("--seed", type=click.IntRange(min=0), help="Override the scenario's seed.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@click.option("-q", "--quiet", is_flag=True, help="Print only the run folder.")
@user_errors
def run(scenario: Path, out_dir: Path | None, seed: int | None, overrides: tuple[str, ...], quiet: bool) -> None:
    """Run SCENARIO and write its run folder (tables, summary.json, manifest.json).

    \b
    Example:
      fleetsim run scenarios/quickstart.yaml -o outputs/quick --set serving.duration_s=120
    """
    from fleetsim import api
    from fleetsim.results.runfolder import default_run_dir

    scen = api.load_scenario(scenario, overrides)
    out_dir = out_dir or default_run_dir(scen.name)
    progress = None if quiet else (lambda msg: click.echo(f"... {msg}", err=True))
    result = api.run(scen, out_dir=out_dir, seed=seed, progress=progress)
    if not quiet:
        from fleetsim.results.display import summary_text

        click.echo(summary_text(result.summary))
    click.echo(f"outputs: {result.run_dir}")


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@user_errors
def validate(scenario: Path, overrides: tuple[str, ...]) -> None:
    """Check SCENARIO without running it (schema, chip and model names, model fits HBM).

    \b
    Example:
      fleetsim validate scenarios/quickstart.yaml --set serving.pools.h20.replicas=8
    """
    from fleetsim import api

    scen = api.load_scenario(scenario, overrides)
    click.echo(f"ok: {scenario} ({scen.name})")


def _catalog_command(kind: str):
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
                  show_default=True)
    @click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path),
                  help="Include this scenario's catalog additions and overrides.")
    @user_errors
    def command(fmt: str, scenario: Path | None) -> None:
        from fleetsim import api

        scen = api.load_file(scenario) if scenario is not None else None
        click.echo(api.catalog_table(kind, fmt, scen))

    command.__doc__ = (
        f"List the {kind} catalog with sources.\n\n    \b\n    Example:\n      fleetsim {kind} --format csv > {kind}.csv"
    )
    return command


main.command(name="chips")(_catalog_command("chips"))
main.command(name="models")(_catalog_command("models"))


@main.command()
@click.argument("chip")
@click.argument("measurements", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the fitted chip override (YAML) here.")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path),
              help="Use this scenario's catalog (for a chip it adds).")
@user_errors
def calibrate(chip: str, measurements: Path, out_file: Path | None, scenario: Path | None) -> None:
    """Fit CHIP's efficiency factors to MEASUREMENTS.csv and print the fit error per point.

    \b
    Example:
      fleetsim calibrate ascend-910c scenarios/examples/calibration_points.csv -o 910c.yaml
    """
    from fleetsim import api

    scen = api.load_file(scenario) if scenario is not None else None
    result = api.calibrate(chip, measurements, scen)
    click.echo(str(result))
    text = result.to_override_yaml()
    if out_file is not None:
        try:
            out_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise FleetsimError(f"cannot write {out_file}: {exc.strerror or exc}") from None
        click.echo(f"override written: {out_file}")
    else:
        click.echo(text)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@user_errors
def goodput(scenario: Path, overrides: tuple[str, ...]) -> None:
    """Goodput per replica at each workload's SLO with its 95% interval, availability and the
    derated (per installed replica) value, for every pool (cached).

    \b
    Example:
      fleetsim goodput scenarios/quickstart.yaml
    """
    from fleetsim import api

    scen = api.load_scenario(scenario, overrides)
    try:
        rows = api.capacity_table(scen, progress=lambda m: click.echo(f"... {m}", err=True))
    except FleetsimError as exc:
        raise exc.with_file(str(scenario)) from None
    from fleetsim.serving.capacity import format_capacity_table

    click.echo(format_capacity_table(rows))


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--param", "params", multiple=True, metavar="PATH=V1,V2,...",
              help="A grid axis: listed values of a --set path (repeatable).")
@click.option("--range", "ranges", multiple=True, metavar="PATH=LO:HI:N",
              help="A grid axis of N evenly spaced values; LO:HI with --sample (repeatable).")
@click.option("--sample", type=click.IntRange(min=1), help="Latin hypercube of N points over the ranges (seeded).")
@click.option("--seeds", type=click.IntRange(min=1), help="Replicates per point (default 1).")
@click.option("--seed", type=click.IntRange(min=0), help="Root seed (default: the scenario's).")
@click.option("--file", "sweep_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A sweep file (YAML) with params, ranges, sample, seeds, set (see docs/sweeps.md).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Base override for every point.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Sweep folder (default outputs/sweeps/<sweep file or scenario name>/); rerun to resume.")
@click.option("--workers", type=click.IntRange(min=1), help="Process-pool workers (default: the core count).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Run on this Dask scheduler.")
@click.option("--dask-local", type=click.IntRange(min=1), metavar="N",
              help="Start a Dask LocalCluster of N workers on loopback and run there.")
@click.option("--metric", help="Metric for the tornado and heatmap plots (a column of results.csv).")
@click.option("--heatmap", metavar="PATH_A,PATH_B", help="Two swept paths for the heatmap.")
@click.option("--retry-failed", is_flag=True, help="Rerun points that failed before.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (also when $CI is set).")
@user_errors
def sweep(scenario: Path, params, ranges, sample, seeds, seed, sweep_file, overrides, out_dir, workers,
          scheduler, dask_local, metric, heatmap, retry_failed, quiet) -> None:
    """Run SCENARIO over a grid or Latin hypercube of --set values, resumably.

    \b
    Example:
      fleetsim sweep scenarios/quickstart.yaml --param serving.pools.h20.replicas=2,4 \\
        --range serving.workloads.chat.arrival.rate_per_s=3:6:3 --seeds 3 -o outputs/sw
      fleetsim sweep scenarios/quickstart.yaml --file scenarios/sweeps/quickstart-load.yaml
    """
    import signal

    from fleetsim import api
    from fleetsim.sweep.spec import parse_param, parse_range
    from fleetsim.sweep.summary import summary_text

    def _term(signum, frame):  # SIGTERM stops like Ctrl-C: runs in flight end, finished ones stay
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    pmap, rmap = {}, {}
    for text in params:
        path, values = parse_param(text)
        if path in pmap:
            raise FleetsimError(f"axis '{path}' is given twice; keep one")
        pmap[path] = values
    for text in ranges:
        path, axis = parse_range(text)
        if path in rmap or path in pmap:
            raise FleetsimError(f"axis '{path}' is given twice; keep one")
        rmap[path] = axis
    log = None if quiet else (lambda msg: click.echo(f"... {msg}", err=True))
    res = api.sweep(scenario, params=pmap, ranges=rmap, sample=sample, seeds=seeds, seed=seed,
                    overrides=overrides, sweep_file=sweep_file, out_dir=out_dir, workers=workers,
                    scheduler=scheduler, dask_local=dask_local, metric=metric,
                    heatmap=heatmap.split(",") if heatmap else None, quiet=quiet,
                    retry_failed=retry_failed, log=log)
    click.echo(summary_text(res, metric))


if __name__ == "__main__":  # pragma: no cover
    main()
