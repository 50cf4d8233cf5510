"""Parameter sweeps over a scenario's `--set` paths, on a process pool or a Dask cluster.

Resumable (a Parquet file per finished run, keyed by a content hash), reproducible (seeds from
numpy SeedSequence per point and replicate), summarised as tables with 95% intervals and plots.
Runs scenarios through `fleetsim.api` only (which never imports this package).

    from fleetsim.sweep import sweep, seek
"""

from fleetsim.sweep.entry import seek, sweep  # (entry.decide: the submodule `decide` keeps its name)
from fleetsim.sweep.runner import SweepResult, resolve_points, run_point, run_sweep
from fleetsim.sweep.spec import (
           SweepError,
           SweepSpec,
           load_sweep_file,
           merge,
           parse_param,
           parse_range,
)

__all__ = ["SweepError", "SweepResult", "SweepSpec", "load_sweep_file", "merge", "parse_param",
           "parse_range", "resolve_points", "run_point", "run_sweep", "seek", "sweep"]
