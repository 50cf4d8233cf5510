"""Thin click commands: parse, call `fleetsim.api`, print. User errors exit 2 with one line."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import Any

import click

from fleetsim import __version__
from fleetsim.errors import FleetsimError

SET_HELP = "Override a scenario field, typed by the schema: --set serving.duration_s=120 (repeatable)."


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout` and job schedulers send), raised like Ctrl-C so a run that is
    stopped still leaves error.json marked interrupted."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by a subprocess test
    raise Terminated("terminated by SIGTERM")


def _on_sigint(signum, frame):  # pragma: no cover - exercised by a subprocess test
    raise KeyboardInterrupt


def user_errors(fn):
    """Turn a FleetsimError into one line on stderr and exit code 2 (never a traceback).

    SIGINT and SIGTERM get explicit handlers: a process started with SIGINT ignored (a
    background job of a non-interactive shell, some CI runners) inherits SIG_IGN, and Python
    then installs no Ctrl-C handler of its own, so without this it could not be stopped by SIGINT."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal

        try:
            signal.signal(signal.SIGTERM, _on_sigterm)
            signal.signal(signal.SIGINT, _on_sigint)
        except ValueError:  # not the main thread (an embedding program): leave its handlers alone
            pass
        try:
            return fn(*args, **kwargs)
        except FleetsimError as exc:
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))
            click.echo(f"error: {text}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:
            click.echo(f"interrupted{': ' + str(exc) if str(exc) else ''}", err=True)
            sys.exit(143 if isinstance(exc, Terminated) else 130)

    return wrapper


def _load(scenario: Path, overrides: tuple[str, ...]):
    """api.load_scenario, printing on stderr what loading changed that the user did not write."""
    from fleetsim import api

    scen = api.load_scenario(scenario, overrides)
    for note in scen.notes:
        click.echo(f"note: {note}", err=True)
    return scen


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
@click.option("-q", "--quiet", is_flag=True, help="Print only the run folder (progress is also off when CI is set).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier fleetsim run in the -o folder.")
@click.option("--no-plots", is_flag=True, help="Skip drawing plots/ and report.html.")
@user_errors
def run(scenario: Path, out_dir: Path | None, seed: int | None, overrides: tuple[str, ...], quiet: bool,
        overwrite: bool, no_plots: bool) -> None:
    """Run SCENARIO and write its run folder (tables, summary.json, manifest.json, plots, report.html).

    \b
    Example:
      fleetsim run scenarios/quickstart.yaml -o outputs/quick --set serving.duration_s=120
    """
    from fleetsim import api

    scen = _load(scenario, overrides)
    for line in api.input_warnings(scen):
        click.echo(f"warning: {scenario}: {line}", err=True)
    for warning in api.size_warnings(scen):  # refused past the memory limit already, by loading
        click.echo(f"warning: {warning}", err=True)
    out_dir = out_dir or api.default_run_dir(scen.name)
    with _progress(quiet) as progress:
        # plots and report.html before manifest.json, which lists them (an interrupt while
        # plotting leaves error.json, never a folder that looks complete)
        try:
            result = api.run(scen, out_dir=out_dir, seed=seed, progress=progress, overwrite=overwrite,
                             plots=not no_plots)
        except FleetsimError as exc:  # one found mid-run (a fleet window too big): name the file
            raise exc.with_file(str(scenario)) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    report = result.run_dir / "report.html"
    if not quiet:
        click.echo(api.summary_text(result.summary))
    click.echo(f"outputs: {result.run_dir}")
    if not no_plots and not quiet:
        click.echo(f"report: {report}")


# ---- (branch report) progress, plot, report, compare --------------------------------------------


def _quiet(quiet: bool) -> bool:
    """No progress output with --quiet or in CI (logs of a CI job are not a terminal)."""
    import os

    return quiet or bool(os.environ.get("CI"))


class _RichProgress:
    """Stage messages on stderr, and a bar with the time left for anything running past a couple
    of seconds (fleetsim.progress: `update(label, done, total)`)."""

    SHOW_AFTER_S = 2.0

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.bar = None
        self.tasks: dict[str, Any] = {}
        self.first_seen: dict[str, float] = {}

    def __call__(self, msg: str) -> None:
        if self.bar is not None and msg[:1].isspace():
            return  # a detail line (one search window): the bar already shows how far it is
        (self.bar.console if self.bar else self.console).print(f"... {msg}", highlight=False, markup=False)

    def update(self, label: str, done: float, total: float) -> None:
        import time

        now = time.monotonic()
        start = self.first_seen.setdefault(label, now)
        if self.bar is None:
            if now - start < self.SHOW_AFTER_S:
                return
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                console=self.console, transient=False)
            self.bar.start()
        if label not in self.tasks:
            for task in self.bar.tasks:  # a new stage: earlier ones are over (a search stops early)
                if not task.finished:
                    self.bar.update(task.id, completed=task.total)
            self.tasks[label] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[label], completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class _Silent:
    def __call__(self, msg: str) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _progress(quiet: bool):
    reporter = _Silent() if _quiet(quiet) else _RichProgress()
    try:
        yield reporter
    finally:
        reporter.close()


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--svg", is_flag=True, help="Also write each plot as SVG (for slides), from the same drawn figure.")
@user_errors
def plot(run_dir: Path, svg: bool) -> None:
    """Redraw RUN_DIR/plots (PNG, and SVG with --svg) from the run folder's tables alone.

    \b
    Example:
      fleetsim plot outputs/quick --svg
    """
    from fleetsim import api

    for path in api.plot(run_dir, svg=svg):
        click.echo(str(path))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the page (default: RUN_DIR/report.html).")
@user_errors
def report(run_dir: Path, out_file: Path | None) -> None:
    """Write one self-contained report.html for RUN_DIR: headline numbers, tables, plots, findings
    and the placeholder figures the result rests on.

    \b
    Example:
      fleetsim report outputs/quick
    """
    from fleetsim import api

    click.echo(f"report: {api.report(run_dir, out_file)}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("compare.html"), show_default=True, help="Where to write the page.")
@user_errors
def compare(run_dirs: tuple[Path, ...], out_file: Path) -> None:
    """Headline metrics and key plots of several run folders side by side, in one HTML page.

    \b
    Example:
      fleetsim compare outputs/base outputs/h20-ban -o compare.html
    """
    from fleetsim import api

    click.echo(f"comparison: {api.compare(run_dirs, out_file)}")


# ---- end (branch report) ------------------------------------------------------------------------


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

    scen = _load(scenario, overrides)
    for line in api.input_warnings(scen):
        click.echo(f"warning: {scenario}: {line}", err=True)
    click.echo(f"ok: {scenario} ({scen.name})")
    for line in api.derived_facts(scen):
        click.echo(f"  {line}")


# What `fleetsim chips|models` ends with: a scenario fragment that loads as written (tested).
CATALOG_EXAMPLE = {
    "chips": (
        "\nOverride a figure, or add a chip, in a scenario file:\n"
        "catalog:\n"
        "  chips:\n"
        "    t-head-ppu:\n"
        "      price_usd: 9000          # your quote replaces the placeholder\n"
        "      hbm_tbps: 1.6\n"
    ),
    "models": (
        "\nOverride a figure of a model in a scenario file:\n"
        "catalog:\n"
        "  models:\n"
        "    qwen2.5-72b:\n"
        "      max_context_tokens: 131072   # with YaRN rope scaling\n"
    ),
}


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
        if fmt == "table":
            click.echo(CATALOG_EXAMPLE[kind])

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
      fleetsim calibrate all fleetsim/catalog/measurements.csv   (refit families and engines)
    """
    from fleetsim import api

    scen = api.load_file(scenario) if scenario is not None else None
    result = api.calibrate(chip, measurements, scen)
    click.echo(str(result))
    if out_file is not None:
        click.echo(f"override written: {api.write_calibration(result, out_file)}")
    else:
        click.echo(result.to_override_yaml())


def _grid(text: str, name: str) -> list[float]:
    """lo:hi:n -> n evenly spaced values (the sweep's range syntax); a, b, ... -> those values."""
    import numpy as np

    if ":" not in text:
        return _values(text, name)

    from fleetsim.sweep.spec import _range_from_text

    axis = _range_from_text(text, f"--{name}")
    if axis.n is None:
        raise click.BadParameter("give lo:hi:n, for example 0.2:0.6:5", param_hint=f"--{name}")
    return [float(v) for v in np.linspace(axis.lo, axis.hi, axis.n)]


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--chip", required=True, help="The chip to decide on (stated relative to --reference).")
@click.option("--versus", required=True, help="The alternative chip (as the scenario prices it).")
@click.option("--reference", default=None, help="Chip the fractions refer to (default: the chip's relative_to, else h100).")
@click.option("--perf", default="0.2:0.6:5", show_default=True, help="Performance fractions lo:hi:n (or a,b,...).")
@click.option("--price", default="0.2:0.8:7", show_default=True, help="Price fractions lo:hi:n (or a,b,...).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), help="Folder for decide.parquet, frontier.parquet, frontier.png (with --futures: also decide_futures.parquet, tornado, decide.html; finished points are kept there and a rerun resumes).")
@click.option("--futures", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fleet-level frontier: run every point's fleet over this many futures (the same futures at every point); 0: cost per Mtok only.")
@click.option("--ban", "bans", default=None, metavar="P[,P...]",
              help="With --futures: the alternative's channel's ban probability per year (an exporter-side random cycle and the planner's belief), one frontier per value; 'own' keeps the scenario's regime.")
@click.option("--crash", "crashes", default=None, metavar="S[,S...]",
              help="With --futures: the chip's crash rate as a multiple of its catalog hazard, one frontier per value.")
@click.option("--ban-closed-days", type=click.FloatRange(min=1), default=365.0, show_default=True,
              help="Mean days a random ban lasts.")
@click.option("--ban-on", "ban_on", default=None, metavar="YYYY-MM-DD",
              help="With --ban: each P is instead the probability of one dated exporter ban of the alternative's "
                   "channel on this day (a fleet event with that probability: the world draws it, the planner's "
                   "futures hold it with that probability), lasting to the end.")
@click.option("--tornado", is_flag=True, help="With --futures: also what moves the decision (each input low/high, paired on the futures).")
@click.option("--windows/--no-windows", default=False, show_default=True,
              help="With --futures: keep the fleet's serving windows (SLO attainment; slower).")
@click.option("--workers", type=click.IntRange(min=1), help="Process-pool workers (default: the core count; 1: in this process).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Run on this Dask scheduler.")
@click.option("--dask-local", type=click.IntRange(min=1), metavar="N",
              help="Start a Dask LocalCluster of N workers on loopback and run there.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@user_errors
def decide(scenario: Path, chip: str, versus: str, reference: str | None, perf: str, price: str,
           out_dir: Path | None, futures: int, bans: str | None, crashes: str | None, ban_closed_days: float,
           ban_on: str | None, tornado: bool, windows: bool, workers: int | None, scheduler: str | None, dask_local: int | None,
           overrides: tuple[str, ...]) -> None:
    """Break-even frontier of CHIP against VERSUS: the price fraction (of the reference chip's)
    at which the chip's cost per Mtok at the SLO equals the alternative's, at each performance
    fraction (capacity cached per performance fraction). With --futures F, also where the chip
    enters the planner's fleet (its share of installed capacity over F futures a point), across --ban and
    --crash, and with --tornado what moves that decision.

    \b
    Example:
      fleetsim decide scenarios/alibaba_2025.yaml --chip t-head-ppu --versus h20 --perf 0.3:0.5:3
      fleetsim decide scenarios/alibaba_2025.yaml --chip t-head-ppu --versus h20 --futures 8 \
          --perf 0.2:0.6:10 --price 0.1:1.0:10 -o decide_out
    """
    from fleetsim import api
    from fleetsim.sweep import entry

    if not futures and (bans or crashes or tornado):
        raise click.UsageError("--ban, --crash and --tornado need --futures F (the fleet-level frontier)")
    if ban_on is not None:
        import datetime as _dt

        try:
            ban_on = _dt.date.fromisoformat(ban_on)
        except ValueError:
            raise click.BadParameter(f"give a date YYYY-MM-DD, not {ban_on!r}", param_hint="--ban-on") from None
    scen = api.load_scenario(scenario, overrides)
    try:
        if futures:
            log = (lambda m: click.echo(m, err=True))
            out = entry.decide(scen, chip, versus, reference, _grid(perf, "perf"), _grid(price, "price"),
                               out_dir=out_dir, futures=futures, bans=_values(bans, "ban", allow_own=True),
                               crashes=_values(crashes, "crash"), tornado=tornado, windows=windows,
                               ban_closed_days=ban_closed_days, ban_on=ban_on, workers=workers, scheduler=scheduler,
                               dask_local=dask_local, log=log)
        else:
            with _progress(False) as progress:
                out = entry.decide(scen, chip, versus, reference, _grid(perf, "perf"), _grid(price, "price"),
                                   out_dir=out_dir, progress=progress)
    except FleetsimError as exc:
        raise exc.with_file(str(scenario)) from None
    click.echo(out["text"])
    if out_dir is not None:
        click.echo(f"outputs: {out_dir}")


def _weights(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"give comma-separated weights in [0, 1], not {text!r}", param_hint="--risk-aversion")
    if any(not 0.0 <= w <= 1.0 for w in out):
        raise click.BadParameter(f"weights must lie in [0, 1], not {text!r}", param_hint="--risk-aversion")
    return out


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--futures", "-k", default=20, show_default=True, type=click.IntRange(2, 1000),
              help="Futures the stochastic plan samples (K).")
@click.option("--holdout", "-n", default=100, show_default=True, type=click.IntRange(2, 5000),
              help="Held-out futures every plan is scored on (N, common random numbers).")
@click.option("--risk-aversion", "risk", default="0,0.5,1", show_default=True,
              help="Mean-CVaR weights of the price-of-security front (0: expectation).")
@click.option("--alpha", "alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="CVaR level (default: the planner's, 0.9).")
@click.option("--horizon", "horizon", type=click.IntRange(1, 120), default=None,
              help="Planning periods looked ahead (default: the planner's, at least 12).")
@click.option("--world", type=click.Choice(["scripted", "model"]), default="scripted", show_default=True,
              help="Held-out futures: the planner's regime model plus the scripted events (scripted), "
                   "or the model alone (model).")
@click.option("--rolling", is_flag=True,
              help="Score whole rolling runs (every policy re-planning each period) on the fleet's "
                   "--holdout futures instead of one planning day's orders (slower: one fleet run per "
                   "policy and future).")
@click.option("--day", default=None, metavar="YYYY-MM-DD",
              help="Planning day (default: the fleet's start); the world up to it is the fleet seed's, "
                   "simulated under the scenario's planner.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Run folder for hedge.parquet, summary.json, plots/hedge.png.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in --out.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@user_errors
def hedge(scenario: Path, futures: int, holdout: int, risk: str, alpha: float | None, horizon: int | None,
          world: str, rolling: bool, day: str | None, out_dir: Path | None, overwrite: bool, overrides: tuple[str, ...]) -> None:
    """Value of hedging, out of sample: on the first planning day, the stochastic plan (K futures),
    the expected-value plan (one mean future), mean-CVaR plans, each rule policy and the oracle,
    all scored on the same N held-out futures: expected cost, unmet demand, CVaR and stranded
    money with 95% intervals; VSS and EVPI as paired differences.

    \b
    Example:
      fleetsim hedge scenarios/alibaba_2025.yaml --futures 10 --holdout 40 -o outputs/hedge
    """
    from fleetsim import api

    scen = api.load_scenario(scenario, overrides)
    try:
        with _progress(False) as progress:
            out = api.hedge(scen, out_dir=out_dir, futures=futures, holdout=holdout, risk_weights=_weights(risk),
                            horizon_periods=horizon, world=world, cvar_alpha=alpha, day=day, rolling=rolling,
                            overwrite=overwrite,
                            progress=progress)
    except FleetsimError as exc:
        raise exc.with_file(str(scenario)) from None
    click.echo(out["text"])
    if out_dir is not None:
        click.echo(f"outputs: {out_dir}")


def _values(text: str | None, name: str, allow_own: bool = False) -> list | None:
    """'0,0.5,1' -> [0.0, 0.5, 1.0] ('own' -> None: the scenario's own regime)."""
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if allow_own and part == "own":
            out.append(None)
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise click.BadParameter(f"'{part}' is not a number" + (" or 'own'" if allow_own else ""),
                                     param_hint=f"--{name}") from None
    return out


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--chip", required=True, help="The domestic chip (stated relative to a reference chip).")
@click.option("--versus", required=True, help="The alternative whose supply can be banned.")
@click.option("--ban-prob", "ban_prob", default="0:0.8:5", show_default=True,
              help="The alternative's ban probabilities a year, lo:hi:n.")
@click.option("--futures", default=8, show_default=True, type=click.IntRange(2, 1000),
              help="Paired futures per fleet run.")
@click.option("--ban-days", default=240.0, show_default=True, type=click.FloatRange(min=1),
              help="Mean length of a ban, days (ASSUMPTION: between the 2025 H20 and H200 closures).")
@click.option("--steps", default=4, show_default=True, type=click.IntRange(2, 12),
              help="Fleet runs (probes) per heat or crash-rate threshold, ends included.")
@click.option("--unmet-usd-per-mtok", "unmet_usd", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Price of a million unmet tokens in the fleet cost per Mtok of demand (ASSUMPTION: the optimal planner's default).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), help="Folder for criteria.csv, ban.parquet.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@user_errors
def criteria(scenario: Path, chip: str, versus: str, ban_prob: str, futures: int, ban_days: float,
             steps: int, unmet_usd: float, out_dir: Path | None, overrides: tuple[str, ...]) -> None:
    """The story's "choose the domestic chip when / choose Nvidia when", computed: the break-even
    price, the alternative's ban probability above which the chip's fleet is cheaper per Mtok
    (and leaves less demand unmet), where each chip stops meeting the SLO (model size,
    prompt length, TTFT target) and the heat and crash rate at which the chip stops being the
    cheaper choice, each with its interval.

    \b
    Example:
      fleetsim criteria scenarios/alibaba_2025.yaml --chip t-head-ppu --versus h20 --futures 8
    """
    from fleetsim import api
    from fleetsim.sweep import entry
    from fleetsim.sweep.criteria import criteria_text

    scen = api.load_scenario(scenario, overrides)
    try:
        with _progress(False) as progress:
            out = entry.criteria(scen, chip, versus, _grid(ban_prob, "ban-prob"), futures=futures,
                                 ban_days=ban_days, steps=steps, out_dir=out_dir, progress=progress,
                                 log=progress, unmet_usd_per_mtok=unmet_usd)
    except FleetsimError as exc:
        raise exc.with_file(str(scenario)) from None
    click.echo(criteria_text(out))
    if out_dir is not None:
        click.echo(f"outputs: {out_dir}")


@main.command()
@click.argument("chip")
@click.argument("model")
@click.argument("engine", required=False)
@click.option("--tp", type=int, help="Chips per replica (default: the smallest that fits one node).")
@click.option("--precision", default="bf16", show_default=True, help="Weight precision.")
@user_errors
def support(chip: str, model: str, engine: str | None, tp: int | None, precision: str) -> None:
    """Say what the kernel's figures for CHIP x MODEL [x ENGINE] rest on: measured-near,
    transferred (which rule, from where) or roofline-only.

    \b
    Example:
      fleetsim support h100 llama-3.1-70b trtllm
    """
    from fleetsim import api

    click.echo(api.support(chip, model, engine, tp, precision))


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

    scen = _load(scenario, overrides)
    try:
        with _progress(False) as progress:  # (report) a bar with time left on long searches
            rows = api.capacity_table(scen, progress=progress)
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
@click.option("--independent", is_flag=True, default=None,
              help="Give every point its own seeds (default: replicate r of every point shares its seed, "
                   "so differences between points are paired on common random numbers).")
@click.option("--baseline", type=click.IntRange(min=0), help="Point the paired differences are taken against (default 0).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (also when $CI is set).")
@click.option("--seek", "seek_path", metavar="PATH",
              help="Goal seek: bisect this numeric --set path for the --target (common random numbers).")
@click.option("--target", metavar="METRIC<=X", help="With --seek: the condition to meet (<=, >=, <, >).")
@click.option("--bracket", metavar="LO:HI", help="With --seek: the interval to search (default: a quarter to "
              "four times the scenario's value).")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="With --seek: stop when the bracket is narrower than this share of its value.")
@click.option("--max-probes", type=click.IntRange(min=2), default=30, show_default=True,
              help="With --seek: the most runs of the scenario per seed.")
@user_errors
def sweep(scenario: Path, params, ranges, sample, seeds, seed, sweep_file, overrides, out_dir, workers,
          scheduler, dask_local, metric, heatmap, retry_failed, quiet, independent, baseline, seek_path, target, bracket, tol,
          max_probes) -> None:
    """Run SCENARIO over a grid or Latin hypercube of --set values, resumably; or, with --seek,
    find the value of one path that just meets a target.

    \b
    Example:
      fleetsim sweep scenarios/serving_quickstart.yaml --param serving.pools.h20.replicas=2,4 \\
        --range serving.workloads.chat.arrival.rate_per_s=3:6:3 --seeds 3 -o outputs/sw
      fleetsim sweep scenarios/serving_quickstart.yaml --file scenarios/sweeps/quickstart-capacity.yaml
      fleetsim sweep scenarios/fleet_small.yaml --param fleet.budget.total_usd=0.2e9,0.9e9
      fleetsim sweep scenarios/fleet_small.yaml --seek fleet.budget.total_usd \\
        --target 'unmet_demand_share<=0.01' --bracket 1e8:1e9
    """
    import signal

    from fleetsim import sweep as sweeps
    from fleetsim.sweep.spec import SweepError, parse_param, parse_range
    from fleetsim.sweep.summary import summary_text

    def _term(signum, frame):  # SIGTERM stops like Ctrl-C: runs in flight end, finished ones stay
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)

    if seek_path is not None or target is not None:
        if seek_path is None or target is None:
            raise SweepError("--seek PATH and --target 'METRIC<=X' go together")
        if params or ranges or sample or sweep_file or heatmap or metric:
            raise SweepError("--seek searches one path: leave out --param, --range, --sample, --file, "
                             "--metric and --heatmap")
        span = None
        if bracket is not None:
            parts = bracket.split(":")
            try:
                span = (float(parts[0]), float(parts[1])) if len(parts) == 2 else None
            except ValueError:
                span = None
            if span is None:
                raise SweepError(f"--bracket takes LO:HI (for example 1e8:1e9), got '{bracket}'")
        res = sweeps.seek(scenario, seek_path, target, bracket=span, seeds=seeds or 1, seed=seed,
                       overrides=overrides, out_dir=out_dir, rel_tol=tol, max_probes=max_probes,
                       log=click.echo)
        click.echo(res.text())
        return
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
    res = sweeps.sweep(scenario, params=pmap, ranges=rmap, sample=sample, seeds=seeds, seed=seed,
                    overrides=overrides, sweep_file=sweep_file, out_dir=out_dir, workers=workers,
                    scheduler=scheduler, dask_local=dask_local, metric=metric,
                    heatmap=heatmap.split(",") if heatmap else None, quiet=quiet,
                    retry_failed=retry_failed, log=log, independent=independent, baseline=baseline)
    click.echo(summary_text(res, metric))


if __name__ == "__main__":  # pragma: no cover
    main()
