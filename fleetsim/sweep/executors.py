"""Two executors behind one map-shaped interface: `map_unordered(fn, tasks)` yields results as
runs finish. Parallel across runs, never inside one: each run is one `fleetsim.api.run` call."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def default_workers() -> int:
    """Cores this process may use (the affinity mask, else the core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class ProcessPool:
    """concurrent.futures process pool (spawned workers: no state inherited from the parent)."""

    name = "process-pool"

    def __init__(self, workers: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers or default_workers()
        # One BLAS thread per worker: N workers each starting a BLAS pool as wide as the machine
        # oversubscribe the cores (parallel across runs, not inside one). Spawned workers read
        # these when they import numpy; a value the user set is kept.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        futures = [self._pool.submit(fn, t) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BrokenProcessPool:
            from fleetsim.errors import FleetsimError

            raise FleetsimError(
                "a sweep worker process died (out of memory, killed, or a script calling "
                "fleetsim.sweep.sweep without an `if __name__ == \"__main__\":` guard); finished "
                "points are kept: rerun to resume") from None

    def close(self, kill: bool = False) -> None:
        """With `kill` (an interrupted sweep): stop the runs in flight now, not after they finish."""
        from fleetsim.pools import shutdown

        shutdown(self._pool, kill=kill)


class DaskExecutor:
    """dask.distributed: a running scheduler (`address`) or a LocalCluster on loopback."""

    name = "dask"

    def __init__(self, address: str | None = None, local_workers: int | None = None,
                 processes: bool = True) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            from fleetsim.errors import FleetsimError

            raise FleetsimError("Dask is not installed: pip install 'fleetsim[dask]'") from None
        self._cluster = None
        if address is not None:
            try:
                self.client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                from fleetsim.errors import FleetsimError

                raise FleetsimError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            n = local_workers or default_workers()
            # Loopback only; threads (processes=False) talk in-process and need no address.
            where = {"host": "127.0.0.1"} if processes else {}
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                         dashboard_address=None, **where)
            self.client = Client(self._cluster)
        self.workers = len(self.client.scheduler_info().get("workers", {}))

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        from distributed import as_completed

        futures = self.client.map(fn, list(tasks), pure=False)
        self._futures = futures
        for fut in as_completed(futures):
            yield fut.result()

    def close(self, kill: bool = False) -> None:
        if kill and getattr(self, "_futures", None):
            self.client.cancel(self._futures)
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


class SerialExecutor:
    """Runs in this process, one after another (debugging, and tests that patch the runner)."""

    name = "serial"
    workers = 1

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        for t in tasks:
            yield fn(t)

    def close(self, kill: bool = False) -> None:
        pass
