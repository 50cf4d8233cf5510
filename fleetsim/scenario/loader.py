"""Scenario files -> validated `Scenario`, with errors that name the file, the field and the line.

YAML is read with `yaml.safe_load` only (a scenario can never run code); TOML with tomllib.
`--set a.b.c=VALUE` overrides are applied to the raw data before validation, so they are typed
and checked by the same schema as the file.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fleetsim.errors import ScenarioError
from fleetsim.scenario.model import Scenario


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
    """Apply `a.b.c=VALUE` strings; VALUE is read as YAML so numbers, booleans and lists keep type.

    Setting a `kind` (`fleet.planner.kind=cheapest`) switches the section to another member of
    its union: the section's fields that the new kind does not have are dropped, each with a line
    in `notes`, rather than refused under a name the user did not touch."""
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set takes PATH=VALUE (for example serving.duration_s=120), got '{item}'")
        dotted, raw = item.split("=", 1)
        if not dotted.strip() or any(not k for k in dotted.strip().split(".")):
            raise ScenarioError(f"--set path '{dotted}' is empty or has an empty part")
        keys = split_set_path(dotted.strip(), data)
        _check_path_exists(keys, data)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        cursor: Any = data
        for key in keys[:-1]:
            # Copy each section on the way down: a YAML alias shares one object between places,
            # and --set must change only the place it names.
            if isinstance(cursor, list):
                i = int(key)  # index checked by _check_path_exists
                nxt = cursor[i] = _shallow_copy(cursor[i])
                cursor = nxt
                continue
            nxt = cursor.get(key)
            if nxt is None:
                nxt = {}
            if not isinstance(nxt, (dict, list)):
                raise ScenarioError(f"--set path '{dotted}': '{key}' holds a value, not a section")
            nxt = cursor[key] = _shallow_copy(nxt)
            cursor = nxt
        if isinstance(cursor, list):
            cursor[int(keys[-1])] = value
        else:
            cursor[keys[-1]] = value
            if keys[-1] == "kind":
                _drop_fields_of_other_kinds(keys, cursor, data, notes)
    return data


def _drop_fields_of_other_kinds(keys: list[str], section: dict[str, Any], data: dict[str, Any],
                                notes: list[str] | None) -> None:
    """After `--set SECTION.kind=X`: drop the fields of SECTION that kind X does not have."""
    model = _model_at(keys, data)
    if model is None or "kind" not in model.model_fields:
        return  # an unknown kind: validation names the kinds allowed
    allowed = _field_names(model)
    where = ".".join(keys[:-1])
    for key in [k for k in section if k not in allowed]:
        del section[key]
        if notes is not None:
            notes.append(f"{where}.{key} dropped: {where}.kind={section['kind']} has no such field "
                         f"(its fields: {', '.join(k for k in model.model_fields)})")


def _shallow_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    return obj


_CATALOG_SECTIONS = {("catalog", "chips"): "load_chips", ("catalog", "models"): "load_models"}


def split_set_path(dotted: str, data: Any) -> list[str]:
    """Split a --set path on dots, keeping names that contain dots whole.

    Pool, workload and catalog names may hold dots (`qwen2.5-7b`). At each level the longest run
    of parts that names a key present in the data there is one key; under catalog.chips and
    catalog.models the built-in catalog names count too, so
    `catalog.models.qwen2.5-7b.num_layers` reaches the built-in model without the scenario
    listing it first.
    """
    parts = dotted.split(".")
    keys: list[str] = []
    node: Any = data
    i = 0
    while i < len(parts):
        names: set[str] = {k for k in node if isinstance(k, str)} if isinstance(node, dict) else set()
        section = _CATALOG_SECTIONS.get(tuple(keys))
        if section is not None:
            names |= _builtin_names(section)
        take = 1
        for j in range(len(parts), i + 1, -1):
            if ".".join(parts[i:j]) in names:
                take = j - i
                break
        key = ".".join(parts[i:i + take])
        keys.append(key)
        node = child(node, key)
        i += take
    return keys


def child(node: Any, key: str) -> Any:
    """One step down a scenario's plain data: a dict key or a list index; None when absent."""
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    return None


# The built-in catalog's names ("chips" or "models" -> names). The scenario layer does not import
# the catalog (the two stay independent); fleetsim.api, which sits above both, installs this.
CATALOG_NAMES: typing.Callable[[str], set[str]] | None = None


def _builtin_names(loader_name: str) -> set[str]:
    if CATALOG_NAMES is None:
        return set()
    return set(CATALOG_NAMES("chips" if loader_name == "load_chips" else "models"))


def _check_path_exists(keys: list[str], data: dict[str, Any]) -> None:
    """Refuse a --set path that names no field of the schema (dict keys are free: pool names...)."""
    model: Any = Scenario
    node: Any = data
    for depth, key in enumerate(keys):
        model = _strip_optional(model)
        node_kind = node.get("kind") if isinstance(node, dict) else None
        model = _pick_union_member(model, node_kind)
        where = ".".join(keys[:depth]) or "the scenario"
        if isinstance(model, type) and issubclass(model, BaseModel):
            names = _field_names(model)
            if key not in names:
                raise ScenarioError(
                    f"--set path '{'.'.join(keys)}' does not exist: {where} has no field '{key}'"
                    f"{_did_you_mean(key, names)}; allowed: {', '.join(names)}",
                    field=".".join(keys),
                )
            model = model.model_fields[names[key]].annotation
        elif typing.get_origin(model) is dict:
            present = set(node) if isinstance(node, dict) else set()
            if key not in present and depth < len(keys) - 1:
                _check_new_entry(keys, depth, present, data)
            model = typing.get_args(model)[1]
        elif typing.get_origin(model) is list:
            size = len(node) if isinstance(node, list) else 0
            if not key.isdigit() or int(key) >= size:
                raise ScenarioError(
                    f"--set path '{'.'.join(keys)}' does not exist: {where} is a list of {size} "
                    f"item(s); use an index from 0 to {size - 1}" if size else
                    f"--set path '{'.'.join(keys)}' does not exist: {where} is an empty list",
                    field=".".join(keys),
                )
            model = typing.get_args(model)[0]
            node = node[int(key)]
            continue
        else:
            return  # a free-form value (dict[str, Any] and the like): the schema checks it later
        node = node.get(key) if isinstance(node, dict) else None


# Dicts whose entries exist without being written: the built-in catalogs and the default hall.
_IMPLICIT_ENTRIES = {("catalog", "chips"): "chips", ("catalog", "models"): "models",
                     ("reliability", "chips"): "chips", ("reliability", "halls"): "halls"}


def _check_new_entry(keys: list[str], depth: int, present: set[str], data: dict[str, Any]) -> None:
    """`--set serving.pools.h2O.replicas=2` names a field inside an entry that does not exist: a
    misspelling, not a new pool. (A whole new entry, `serving.pools.new={...}`, is allowed.)"""
    key, where = keys[depth], ".".join(keys[:depth])
    known = set(present)
    implicit = _IMPLICIT_ENTRIES.get(tuple(keys[:depth]))
    if implicit == "halls":
        known.add("default")
    elif implicit is not None:
        known |= _builtin_names("load_chips" if implicit == "chips" else "load_models")
        if implicit == "chips" and keys[0] == "reliability":
            known |= set((data.get("catalog") or {}).get("chips") or {})
    if key in known:
        return
    raise ScenarioError(
        f"--set path '{'.'.join(keys)}' does not exist: {where} has no entry '{key}'"
        f"{_did_you_mean(key, known)}; entries: {', '.join(sorted(present)) or 'none'} "
        f"(to add one, set the whole entry: {where}.{key}={{...}})",
        field=".".join(keys),
    )


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """Names a file may use for a model's fields (aliases too, such as `class`) -> field name."""
    names = {}
    for name, info in model.model_fields.items():
        names[info.alias or name] = name
        names[name] = name
    return names


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return tp


def _union_members(tp: Any) -> list[Any]:
    tp = _strip_optional(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip_optional(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _pick_union_member(tp: Any, kind: str | None) -> Any:
    members = _union_members(tp)
    if len(members) == 1:
        return members[0]
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel) and "kind" in member.model_fields:
            allowed = typing.get_args(member.model_fields["kind"].annotation)
            if kind in allowed:
                return member
    return tp


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _real_path(loc: tuple[Any, ...], data: Any) -> tuple[list[str], Any]:
    """Drop pydantic's union-tag entries from an error location by walking the real data."""
    path: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(str(part))
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and part == loc[-1]:
            path.append(part)  # a missing or unknown key: the last element names it
        # else: a union tag such as 'poisson' or 'function-after[...]': not part of the file
    return path, node


def _model_at(path: list[str], data: Any) -> type[BaseModel] | None:
    """The pydantic model that holds the last element of path (for listing allowed fields)."""
    model: Any = Scenario
    node: Any = data
    for key in path[:-1]:
        model = _pick_union_member(model, node.get("kind") if isinstance(node, dict) else None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            name = _field_names(model).get(key)
            if name is None:
                return None
            model = model.model_fields[name].annotation
        elif typing.get_origin(_strip_optional(model)) is dict:
            model = typing.get_args(_strip_optional(model))[1]
        else:
            return None
        node = node.get(key) if isinstance(node, dict) else None
    model = _pick_union_member(model, node.get("kind") if isinstance(node, dict) else None)
    if typing.get_origin(_strip_optional(model)) is dict:
        return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _line_of(node: yaml.Node | None, path: list[str]) -> int | None:
    line = None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for knode, vnode in node.value:
                if str(knode.value) == key:
                    line = knode.start_mark.line + 1
                    nxt = vnode
                    break
            if nxt is None:
                return line if line else node.start_mark.line + 1
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _describe(err: dict[str, Any], path: list[str], data: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(path, data)
        allowed = list(model.model_fields) if model else []
        hint = _did_you_mean(path[-1], allowed) if path else ""
        return f"unknown field{hint}; allowed here: {', '.join(allowed)}" if allowed else "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a section (a mapping of field: value), got {err.get('input')!r}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg += f" (got {err.get('input')!r})"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        msg += f" (got {err.get('input')!r})"
    return msg


def validation_error_to_scenario_error(
    exc: ValidationError, data: Any, file: str | None, node: yaml.Node | None, set_paths: set[str]
) -> ScenarioError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    path, _ = _real_path(tuple(err["loc"]), data)
    dotted = ".".join(path) or None
    message = _describe(err, path, data)
    if dotted and any(dotted == p or dotted.startswith(p + ".") or p.startswith(dotted + ".") for p in set_paths):
        message += " (value from --set)"
    if len(errors) > 1:
        message += f" [and {len(errors) - 1} more problem(s); fix this one first]"
    return ScenarioError(message, file=file, field=dotted, line=_line_of(node, path))


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
        raise validation_error_to_scenario_error(exc, data, str(path), node, set_paths) from None
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
