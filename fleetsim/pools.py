"""Shutting a concurrent.futures process pool down, for the two pools fleetsim runs (a fleet's
futures, a sweep's points): on an interrupt the runs in flight are stopped now, not after they
finish, and the pool is joined before the interpreter's exit hooks run."""

from __future__ import annotations

from typing import Any


def shutdown(pool: Any, kill: bool = False) -> None:
    """Shut `pool` (a ProcessPoolExecutor) down; with `kill`, terminate its workers first.

    Without `kill`, shutdown(wait=True) lets every running call finish: after Ctrl-C that is a
    whole future (or sweep point) per worker, minutes on a long run. With the workers gone the
    pool's manager thread ends at once; it is still joined (wait=True), since an un-joined one
    races the interpreter's exit hook, which then writes to a closed pipe and prints a traceback
    after "interrupted" (seen on CI)."""
    if kill:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
    pool.shutdown(wait=True, cancel_futures=True)
