"""The same sweep through the process pool and through Dask gives the same table.

Dask runs twice: on a LocalCluster of 2 worker processes (processes=True, one thread each, on
loopback) reached through its address, as `--scheduler tcp://...` does, and through
`--dask-local`'s own LocalCluster with threads in one process (processes=False, cheap to start).
Dask is in the `test` extra so CI runs this.
"""

from __future__ import annotations

import pandas as pd
from distributed import LocalCluster
from test_sweep import RATE, REPLICAS, tiny

import json

import test_futures as fut

from fleetsim.sweep import runner
from fleetsim.sweep.spec import SweepSpec, parse_range


def test_pool_and_dask_give_the_same_table(tmp_path):
    path = tiny(tmp_path)
    spec = SweepSpec(params={REPLICAS: [1, 2]}, ranges=dict([parse_range(f"{RATE}=2:6:2")]), seeds=2)
    pool = runner.run_sweep(path, spec, tmp_path / "pool", workers=2, quiet=True, plots=False)
    assert pool.executor == "process-pool (2 workers)" and pool.ran == 8
    assert (pool.table.status == "ok").all()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask = runner.run_sweep(path, spec, tmp_path / "dask", scheduler=cluster.scheduler_address,
                                quiet=True, plots=False)
    assert dask.executor == "dask (2 workers)" and dask.ran == 8
    pd.testing.assert_frame_equal(pool.table, dask.table)
    pd.testing.assert_frame_equal(pool.aggregate, dask.aggregate)
    threads = runner.run_sweep(path, spec, tmp_path / "threads", dask_local=2, dask_processes=False,
                               quiet=True, plots=False)
    assert threads.executor == "dask (2 workers)" and threads.ran == 8
    pd.testing.assert_frame_equal(pool.table, threads.table)


def test_fleet_sweep_gives_the_same_bytes_on_the_pool_and_on_dask(tmp_path):
    """Futures of a fleet sweep (a row per point, replicate and future) and the paired differences:
    the same bytes from the process pool and from Dask (threads in one process: cheap to start)."""
    sc_file = tmp_path / "f.yaml"
    sc_file.write_text(json.dumps(fut.noisy({"years": 0.25}, replications=2).model_dump(mode="json")))
    spec = SweepSpec(params={"fleet.finance.power_usd_per_kwh": [0.07, 0.08]}, seeds=1)
    pool = runner.run_sweep(sc_file, spec, tmp_path / "pool", workers=2, quiet=True, plots=False)
    dask = runner.run_sweep(sc_file, spec, tmp_path / "dask", dask_local=2, dask_processes=False,
                            quiet=True, plots=False)
    assert (pool.table.status == "ok").all() and pool.ran == dask.ran == 2
    for name in ("results.parquet", "futures.parquet", "paired.parquet", "aggregate.parquet"):
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
