"""Optimising planner: a rolling two-stage stochastic MILP (HiGHS via scipy.optimize.milp).

`problem` holds the planning problem as plain arrays, `milp` builds and solves it; the fleet
adapter (`adapter`) turns the fleet's PlanningState into a Problem and registers `kind: optimal`.
"""

from fleetsim.fleet.optimal.milp import FAMILIES, Plan, PlanInfeasible, cvar, solve
from fleetsim.fleet.optimal.problem import Option, Pool, Problem
from fleetsim.fleet.optimal import adapter as _adapter  # noqa: E402,F401 - registers kind: optimal

__all__ = ["FAMILIES", "Option", "Plan", "PlanInfeasible", "Pool", "Problem", "cvar", "solve"]
