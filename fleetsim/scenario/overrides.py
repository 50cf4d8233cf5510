"""`--set a.b.c=VALUE` overrides and pydantic errors -> ScenarioError, walking a schema given
as `root` (the `Scenario` class).

Below both `scenario.model` (whose `Scenario.with_overrides` applies overrides) and
`scenario.loader` (which reads files): the schema is a parameter, so neither of those two
imports the other.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fleetsim.errors import ScenarioError


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str],
                    notes: list[str] | None = None, *, root: type[BaseModel]) -> dict[str, Any]:
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
        _check_path_exists(keys, data, root)
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
                _drop_fields_of_other_kinds(keys, cursor, data, notes, root)
    return data


def _drop_fields_of_other_kinds(keys: list[str], section: dict[str, Any], data: dict[str, Any],
                                notes: list[str] | None, root: type[BaseModel]) -> None:
    """After `--set SECTION.kind=X`: drop the fields of SECTION that kind X does not have."""
    model = _model_at(keys, data, root)
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


def _check_path_exists(keys: list[str], data: dict[str, Any], root: type[BaseModel]) -> None:
    """Refuse a --set path that names no field of the schema (dict keys are free: pool names...)."""
    model: Any = root
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


def _model_at(path: list[str], data: Any, root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model that holds the last element of path (for listing allowed fields)."""
    model: Any = root
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


def _describe(err: dict[str, Any], path: list[str], data: Any, root: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(path, data, root)
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
    exc: ValidationError, data: Any, file: str | None, node: yaml.Node | None, set_paths: set[str],
    *, root: type[BaseModel],
) -> ScenarioError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    path, _ = _real_path(tuple(err["loc"]), data)
    dotted = ".".join(path) or None
    message = _describe(err, path, data, root)
    if dotted and any(dotted == p or dotted.startswith(p + ".") or p.startswith(dotted + ".") for p in set_paths):
        message += " (value from --set)"
    if len(errors) > 1:
        message += f" [and {len(errors) - 1} more problem(s); fix this one first]"
    return ScenarioError(message, file=file, field=dotted, line=_line_of(node, path))
