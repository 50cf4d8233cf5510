"""Imports go downward (DESIGN.md Layout): no two fleetsim modules import each other, counting
imports inside functions too (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "fleetsim"
# Known and not yet broken: none (scenario.loader <-> scenario.model went through
# scenario.overrides, which takes the schema as a parameter).
KNOWN: set[frozenset[str]] = set()


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    mods = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n in mods and n != mod:
                    graph[mod].add(n)
    return graph


def test_no_two_modules_import_each_other():
    g = imports()
    # a package and its own submodules (re-exports in __init__, `from pkg import sub`) are one unit
    pairs = {frozenset({a, b}) for a, deps in g.items() for b in deps if a in g.get(b, set())
             and not (a.startswith(b + ".") or b.startswith(a + "."))}
    assert pairs - KNOWN == set(), sorted(tuple(sorted(p)) for p in pairs - KNOWN)


def test_api_does_not_import_sweep_and_records_does_not_import_sim():
    g = imports()
    assert not {m for m in g["fleetsim.api"] if m.startswith("fleetsim.sweep")}
    assert "fleetsim.fleet.sim" not in g["fleetsim.fleet.records"]
    assert "fleetsim.scenario.loader" not in g["fleetsim.scenario.model"]
