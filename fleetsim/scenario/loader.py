"""Scenario files -> validated `Scenario`, with errors that name the file, the field and the line.

YAML is read with `yaml.safe_load` only (a scenario can never run code); TOML with tomllib.
`--set a.b.c=VALUE` overrides are applied to the raw data before validation, so they are typed
and checked by the same schema as the file.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleetsim.errors import ScenarioError
from fleetsim.scenario import overrides as _ov
from fleetsim.scenario.model import Scenario
from fleetsim.scenario.overrides import _line_of, child, split_set_path  # noqa: F401 (re-exported)


def read_scenario_data(path: str | Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """Parse the file into plain data (and the YAML node tree, for line numbers)."""
    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"scenario file not found: {path}")
    if path.is_dir():
        raise ScenarioError(f"{path} is a folder; give a scenario file (.yaml, .yml or .toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario file: {exc}", file=str(path)) from None
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text), None
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"broken TOML: {exc}", file=str(path)) from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters already: inside the try
        node = loader.get_single_node()
        _refuse_alias_bombs(node, str(path))
        _refuse_duplicate_keys(node, str(path))
        # Built from the checked node tree: an alias becomes one shared object, not a copy.
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"broken YAML: {problem}", file=str(path), line=line) from None
    except RecursionError:
        raise ScenarioError(
            "YAML nested too deeply; a scenario needs a handful of levels", file=str(path)
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        raise ScenarioError("the scenario file is empty; it needs at least 'name'", file=str(path))
    if not isinstance(data, dict):
        raise ScenarioError(
            f"a scenario is a mapping of sections (name, seed, serving, ...), not a {type(data).__name__}",
            file=str(path),
        )
    return data, node


MAX_EXPANDED_NODES = 100_000  # a scenario has hundreds; "billion laughs" files have billions


def _refuse_alias_bombs(root: yaml.Node | None, file: str) -> None:
    """Aliases share one node, but everything that reads the data (pydantic, JSON, --set)
    walks each use: nested aliases expand exponentially ("billion laughs"), and an alias inside
    its own anchor never ends. Count the expanded tree (each node's size once) and refuse both."""
    size: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)] if root is not None else []
    while stack:  # post-order walk without recursion: deep files must not crash the walk
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        kids = _children(node)
        if not children_done:
            if key in open_ids:
                raise ScenarioError(
                    "a YAML alias refers to its own anchor (an endless structure); "
                    "copy the values instead", file=file, line=node.start_mark.line + 1,
                )
            open_ids.add(key)
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in size)
            continue
        open_ids.discard(key)
        size[key] = 1 + sum(size[id(kid)] for kid in kids)
        if size[key] > MAX_EXPANDED_NODES:
            raise ScenarioError(
                f"YAML aliases here expand to {size[key]:,} values (more than "
                f"{MAX_EXPANDED_NODES:,}); a scenario never needs that many: write the values "
                "out or nest fewer aliases", file=file, line=node.start_mark.line + 1,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _refuse_duplicate_keys(
    node: yaml.Node | None, file: str, path: str = "", seen_nodes: set[int] | None = None
) -> None:
    """YAML lets a later key silently replace an earlier one; in a scenario that hides a mistake.
    A node shared by aliases is checked once (`seen_nodes`), at the first path that uses it."""
    if seen_nodes is None:
        seen_nodes = set()
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            key = str(knode.value)
            here = f"{path}.{key}" if path else key
            if key in seen:
                raise ScenarioError(
                    f"'{key}' is given twice (first on line {seen[key]}); keep one",
                    file=file, field=here, line=knode.start_mark.line + 1,
                )
            seen[key] = knode.start_mark.line + 1
            _refuse_duplicate_keys(vnode, file, here, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, file, f"{path}.{i}", seen_nodes)


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str],
                    notes: list[str] | None = None) -> dict[str, Any]:
    """`overrides.apply_overrides` against the `Scenario` schema."""
    return _ov.apply_overrides(data, overrides, notes, root=Scenario)


MAX_EXTENDS_DEPTH = 8


def resolve_extends(data: dict[str, Any], path: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A scenario that says `extends: BASE.yaml` (or `extends: {file: BASE.yaml, drop: [a.b,
    ...]}`) is the base file's data with its own on top: mappings merge key by key, anything
    else replaces; `drop` removes dotted paths of the base first (a channel, a pool). The base
    path is relative to the file that names it; a base may extend another."""
    ext = data.get("extends")
    if ext is None:
        return data
    here = Path(path)
    if isinstance(ext, str):
        ext = {"file": ext}
    if not isinstance(ext, dict) or not isinstance(ext.get("file"), str) or set(ext) - {"file", "drop"}:
        raise ScenarioError("extends is a file name, or {file: NAME, drop: [dotted.path, ...]}",
                            file=str(here), field="extends")
    base_path = (here.parent / ext["file"]).resolve()
    key = str(base_path)
    if key in _seen or len(_seen) >= MAX_EXTENDS_DEPTH:
        raise ScenarioError(f"extends loops or nests more than {MAX_EXTENDS_DEPTH} deep at {ext['file']}",
                            file=str(here), field="extends.file")
    try:
        base, _ = read_scenario_data(base_path)
    except ScenarioError as exc:
        raise ScenarioError(f"extends: {exc.message}", file=str(here), field="extends.file") from None
    base = resolve_extends(base, base_path, _seen + (str(here.resolve()),))
    drops = ext.get("drop") or []
    if not isinstance(drops, list) or not all(isinstance(d, str) for d in drops):
        raise ScenarioError("extends.drop is a list of dotted paths", file=str(here), field="extends.drop")
    for dotted in drops:
        keys = dotted.split(".")
        node = base
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if not isinstance(node, dict) or keys[-1] not in node:
            raise ScenarioError(f"extends.drop: '{dotted}' is not in {ext['file']}", file=str(here),
                                field="extends.drop")
        del node[keys[-1]]
    own = {k: v for k, v in data.items() if k != "extends"}
    return _deep_merge(base, own)


def _deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for k, v in top.items():
            out[k] = _deep_merge(base[k], v) if k in base else v
        return out
    return top


def load_scenario(path: str | Path, overrides: typing.Sequence[str] = ()) -> Scenario:
    """Read, override and validate a scenario file; references to catalogs are checked by the API."""
    data, node = read_scenario_data(path)
    data = resolve_extends(data, path)
    notes: list[str] = []
    try:
        data = apply_overrides(data, overrides, notes) if overrides else data
    except ScenarioError as exc:
        raise exc.with_file(str(path)) from None
    set_paths = {o.split("=", 1)[0].strip() for o in overrides}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _ov.validation_error_to_scenario_error(exc, data, str(path), node, set_paths,
                                                     root=Scenario) from None
    scenario._source_path = Path(path).resolve()
    scenario._notes = notes
    return scenario


def line_of(path: str | Path, dotted: str | None) -> int | None:
    """Line of a dotted field in a YAML scenario file (None for TOML or when not found)."""
    if not dotted:
        return None
    data, node = read_scenario_data(path)
    keys = split_set_path(dotted, data)
    if keys[0] not in data:
        return None  # a section the file does not have (set by --set): no line to point at
    return _line_of(node, keys)
