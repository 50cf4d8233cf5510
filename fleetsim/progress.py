"""Progress hooks shared by every layer (no fleetsim imports: anything may use it).

A `progress` argument is a callable taking a stage message. If it also has an
`update(label, done, total)` method, long loops report how far they are, so the CLI can draw a
bar with the time left. `None` means silent.
"""

from __future__ import annotations

from typing import Any, Callable

Progress = Callable[[str], None]


def update(progress: Any, label: str, done: float, total: float) -> None:
    """Tell `progress` how far `label` is (done out of total, any unit); no-op without a bar."""
    fn = getattr(progress, "update", None)
    if fn is not None:
        fn(label, done, total)


def run_env(env: Any, until: float, progress: Any = None, label: str = "simulate", steps: int = 100) -> None:
    """`env.run(until=...)` in `steps` slices, reporting simulated time after each one.

    Slicing a SimPy run changes nothing it computes: run(until=t) stops before events at t and
    the next slice resumes there, so a run with a bar is identical to one without.
    """
    if getattr(progress, "update", None) is None or until <= 0:
        env.run(until=until)
        return
    for i in range(1, steps + 1):
        t = until * i / steps
        if t > env.now:
            env.run(until=t)
        update(progress, label, t, until)
