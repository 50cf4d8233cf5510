"""Problems made from other problems: one future of many, and the expected-value problem (one
mean future). Used by the planner (`plan_on: mean_future`) and by `fleetsim hedge`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fleetsim.fleet.optimal.problem import Problem


def one_future(pr: Problem, k: int) -> Problem:
    """Future k of `pr` as a problem of its own (its first stage no longer shared)."""
    sl = slice(k, k + 1)
    return replace(pr, demand_rps=pr.demand_rps[sl], future_weight=None,
                   channel_state={c: np.asarray(s, dtype=object)[sl] for c, s in pr.channel_state.items()},
                   removal_period={c: np.asarray(r)[sl] for c, r in pr.removal_period.items()},
                   installed=None if pr.installed is None else pr.installed[sl],
                   rented=None if pr.rented is None else pr.rented[sl])


def mean_future(pr: Problem) -> Problem:
    """The expected-value problem: one future with the futures' mean demand and each channel's
    most likely state in each period (a state has no mean; ties go to the first in sorted order)."""
    w = pr.weights()
    states = {}
    for c, s in pr.channel_state.items():
        s = np.asarray(s, dtype=object)
        row = np.empty((1, pr.T), dtype=object)
        for t in range(pr.T):
            names = sorted(set(s[:, t]))
            mass = [float(w[s[:, t] == n].sum()) for n in names]
            row[0, t] = names[int(np.argmax(mass))]
        states[c] = row
    mean = lambda a: None if a is None else np.einsum("k,k...->...", w, np.asarray(a, float))[None]
    removal = {c: np.array([int(round(float(w @ np.asarray(r, float))))]) for c, r in pr.removal_period.items()}
    return replace(pr, demand_rps=mean(pr.demand_rps), future_weight=None, channel_state=states,
                   removal_period=removal, installed=mean(pr.installed), rented=mean(pr.rented))
