"""The same sweep through the process pool and a Dask LocalCluster gives the same table.

The LocalCluster runs 2 worker processes (processes=True, one thread each) on loopback: the
same isolation as the pool's spawned workers. Dask is in the `test` extra so CI runs this.
"""

from __future__ import annotations

import pandas as pd
from test_sweep import RATE, REPLICAS, tiny

from fleetsim.sweep import runner
from fleetsim.sweep.spec import SweepSpec, parse_range


def test_pool_and_dask_local_cluster_give_the_same_table(tmp_path):
    path = tiny(tmp_path)
    spec = SweepSpec(params={REPLICAS: [1, 2]}, ranges=dict([parse_range(f"{RATE}=2:6:2")]), seeds=2)
    pool = runner.run_sweep(path, spec, tmp_path / "pool", workers=2, quiet=True, plots=False)
    dask = runner.run_sweep(path, spec, tmp_path / "dask", dask_local=2, quiet=True, plots=False)
    assert pool.executor.startswith("process-pool") and dask.executor.startswith("dask")
    assert (pool.ran, dask.ran) == (8, 8)
    pd.testing.assert_frame_equal(pool.table, dask.table)
    pd.testing.assert_frame_equal(pool.aggregate, dask.aggregate)
    assert (pool.table.status == "ok").all()
    # threads in one process (processes=False) agree too: no state shared between runs
    threads = runner.run_sweep(path, spec, tmp_path / "threads", dask_local=2, dask_processes=False,
                               quiet=True, plots=False)
    pd.testing.assert_frame_equal(pool.table, threads.table)
