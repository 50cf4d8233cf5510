"""Independent pieces of one run shared with a forked child (at the bottom of the package, beside
fleetsim.rng): a fleet future's serving windows, a run folder's figures.

The child inherits everything already built (catalogs, kernels, the fleet's state, the tables),
computes every other item and sends its answers back pickled; the answers come back in item
order, so the result is what one process computes, in about half the wall time on two cores.
A child that fails or dies leaves its items to this process (which then raises, if an item
really fails, as one process would). Only on Linux, where a fork is cheap and safe, and only
when two CPUs are ours and no other thread runs; FLEETSIM_FUTURE_WORKERS=1 (what a pool of
futures or a sweep's workers set, so pools never nest) or FLEETSIM_FORK=0 keeps everything in
this process.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from typing import Any, Callable, Sequence


def fork_workers() -> int:
    """2 where a run may share its pieces with a forked child, else 1."""
    if os.environ.get("FLEETSIM_FORK", "1") == "0" or os.environ.get("FLEETSIM_FUTURE_WORKERS") == "1":
        return 1
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return 1
    if threading.active_count() > 1:  # a fork copies only this thread: another's locks would hang it
        return 1
    return min(2, len(os.sched_getaffinity(0)))


def fork_map(fn: Callable[[Any], Any], items: Sequence[Any], min_items: int = 2,
             done: Callable[[int], None] | None = None) -> list[Any]:
    """[fn(x) for x in items], the odd-numbered items computed in a forked child when
    fork_workers() > 1 and there are at least `min_items`. `done(k)` is called in this process
    with the count of items it has so far (its own as they finish, the child's at the end)."""
    n = len(items)
    if n < max(2, min_items) or fork_workers() < 2:
        out = []
        for x in items:
            out.append(fn(x))
            if done is not None:
                done(len(out))
        return out
    child_idx = list(range(1, n, 2))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its share, pickled to the pipe; never returns into the caller
        code = 1
        try:
            os.close(read_fd)
            os.environ["FLEETSIM_FORK"] = "0"  # no grandchildren
            data = pickle.dumps([fn(items[i]) for i in child_idx], protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as w:
                w.write(data)
            code = 0
        except BaseException:  # the parent redoes the share and raises what one process would
            pass
        finally:
            os._exit(code)  # no atexit hooks, no parent's cleanup in the child
    os.close(write_fd)
    results: dict[int, Any] = {}
    reaped = False
    try:
        for i in range(0, n, 2):
            results[i] = fn(items[i])
            if done is not None:
                done(len(results))
        with os.fdopen(read_fd, "rb") as r:
            read_fd = -1
            data = r.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        if status == 0 and data:
            results.update(zip(child_idx, pickle.loads(data)))
    finally:
        if not reaped:  # this process failed or was interrupted: stop the child and reap it
            if read_fd >= 0:
                os.close(read_fd)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
    for i in child_idx:
        if i not in results:
            results[i] = fn(items[i])
    if done is not None:
        done(n)
    return [results[i] for i in range(n)]


class Helper:
    """A forked child that prepares now (e.g. imports matplotlib while this process simulates)
    and later does one call for this process: `call(fn, *args)` sends it (fn by reference, so a
    module-level function) and returns its pickled answer. None from `call` when the helper
    failed or died (the caller then does the work itself, raising what one process would);
    `close()` stops it if it is still waiting."""

    def __init__(self, prepare: Callable[[], Any]) -> None:
        to_child, self._send = os.pipe()
        self._recv, from_child = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.close(self._send)
                os.close(self._recv)
                prepare()
                with os.fdopen(to_child, "rb") as r:
                    job = r.read()
                if job:
                    fn, args = pickle.loads(job)
                    data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
                    with os.fdopen(from_child, "wb") as w:
                        w.write(data)
                    code = 0
            except BaseException:  # the caller does the work itself and raises what it meets
                pass
            finally:
                os._exit(code)
        os.close(to_child)
        os.close(from_child)

    def call(self, fn: Callable, *args) -> Any:
        if self.pid is None:
            return None
        try:
            with os.fdopen(self._send, "wb") as w:
                self._send = -1
                w.write(pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL))
            with os.fdopen(self._recv, "rb") as r:
                self._recv = -1
                data = r.read()
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            return pickle.loads(data) if status == 0 and data else None
        except (OSError, pickle.PicklingError, AttributeError, TypeError):
            return None  # the child is gone (a broken pipe), or fn cannot be sent: the caller does it
        finally:
            self.close()

    def close(self) -> None:
        for fd in (self._send, self._recv):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._send = self._recv = -1
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None
