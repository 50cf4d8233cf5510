"""Generate docs/scenario-reference.md from the pydantic schema, so the reference cannot drift.

    python -m fleetsim.scenario.reference            # rewrite docs/scenario-reference.md
    python -m fleetsim.scenario.reference --check    # exit 1 if the committed file is stale
    python -m fleetsim.scenario.reference -o -       # print to stdout

Every section (pydantic model reachable from `Scenario`), field, type, default, constraint and
description comes from the models themselves; a rule checked by a validator is listed when the
validator has a docstring. tests/test_reference_doc.py holds the committed file equal to `render()`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from fleetsim.scenario.model import Scenario

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "scenario-reference.md"
COMMAND = "python -m fleetsim.scenario.reference"


@dataclass
class _Section:
    model: type[BaseModel]
    paths: list[str] = field(default_factory=list)
    kind: str | None = None  # the `kind:` value that selects this shape, if it is a union member

    @property
    def anchor(self) -> str:
        return self.model.__name__.lower()

    @property
    def title(self) -> str:
        return self.paths[0] or "top level"


# ---------------------------------------------------------------------------------------------
# Walking the schema.


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated layers, collecting their constraint metadata."""
    metadata: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        for item in extra:
            metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return tp, metadata


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _kind_of(model: type[BaseModel]) -> str | None:
    f = model.model_fields.get("kind")
    if f is None:
        return None
    values = typing.get_args(f.annotation)
    return str(values[0]) if len(values) == 1 else None


def _children(tp: Any, path: str) -> list[tuple[type[BaseModel], str]]:
    """The models a field's type holds, with the path a user writes to reach them."""
    tp, _ = _unwrap(tp)
    if _is_model(tp):
        return [(tp, path)]
    if _is_union(tp):
        return [c for arg in typing.get_args(tp) for c in _children(arg, path)]
    origin = typing.get_origin(tp)
    if origin is list:
        return _children(typing.get_args(tp)[0], f"{path}[]")
    if origin is dict:
        return _children(typing.get_args(tp)[1], f"{path}.<name>")
    return []


def _field_key(name: str, info: FieldInfo) -> str:
    return info.alias or name


def collect_sections(root: type[BaseModel] = Scenario) -> list[_Section]:
    """Every model reachable from root, in file order (depth first, fields in declared order)."""
    found: dict[type[BaseModel], _Section] = {}
    order: list[_Section] = []

    def walk(model: type[BaseModel], path: str) -> None:
        if model in found:
            if path not in found[model].paths:
                found[model].paths.append(path)
            return
        section = found[model] = _Section(model, [path], _kind_of(model))
        order.append(section)
        for name, info in model.model_fields.items():
            key = _field_key(name, info)
            for child, child_path in _children(info.annotation, f"{path}.{key}" if path else key):
                walk(child, child_path)

    walk(root, "")
    return order


# ---------------------------------------------------------------------------------------------
# Rendering one field.


_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def _type_text(tp: Any, sections: dict[type[BaseModel], _Section]) -> str:
    tp, _ = _unwrap(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if tp is Any:
        return "any"
    if _is_model(tp):
        s = sections[tp]
        return f"[`{s.title}`](#{s.anchor})"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        values = [f"`{json.dumps(v)}`" for v in typing.get_args(tp)]
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
    if _is_union(tp):
        args = [_unwrap(a)[0] for a in typing.get_args(tp)]
        real = [a for a in args if a is not type(None)]
        nullable = len(real) < len(args)
        if len(real) > 1 and all(_is_model(a) and sections[a].kind for a in real):
            text = "one of (by `kind`): " + ", ".join(
                f"[{sections[a].kind}](#{sections[a].anchor})" for a in real
            )
        else:
            text = " or ".join(_type_text(a, sections) for a in real)
        return f"{text} or null" if nullable else text
    if origin is list:
        return f"list of {_type_text(typing.get_args(tp)[0], sections)}"
    if origin is dict:
        return f"map of name to {_type_text(typing.get_args(tp)[1], sections)}"
    return getattr(tp, "__name__", str(tp))


def _constraint_text(items: list[Any]) -> str:
    out: list[str] = []
    for m in items:
        if isinstance(m, at.Gt):
            out.append(f"> {_scalar(m.gt)}")
        elif isinstance(m, at.Ge):
            out.append(f">= {_scalar(m.ge)}")
        elif isinstance(m, at.Lt):
            out.append(f"< {_scalar(m.lt)}")
        elif isinstance(m, at.Le):
            out.append(f"<= {_scalar(m.le)}")
        elif isinstance(m, at.MultipleOf):
            out.append(f"multiple of {_scalar(m.multiple_of)}")
        elif isinstance(m, at.MinLen):
            out.append(f"length >= {m.min_length}")
        elif isinstance(m, at.MaxLen):
            out.append(f"length <= {m.max_length}")
        else:
            pattern = getattr(m, "pattern", None)
            if pattern is not None:
                out.append(f"matches `{pattern}`")
            if getattr(m, "allow_inf_nan", None) is False:
                out.append("finite")
    return ", ".join(dict.fromkeys(out))


def _field_constraints(info: FieldInfo) -> str:
    items = list(info.metadata)

    def inner(tp: Any) -> None:
        tp, meta = _unwrap(tp)
        items.extend(meta)
        if _is_union(tp):
            for arg in typing.get_args(tp):
                if not _is_model(_unwrap(arg)[0]):
                    inner(arg)

    inner(info.annotation)
    return _constraint_text(items)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        text = repr(v)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def _flow(v: Any) -> str:
    """A value as a YAML flow literal a user could paste."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v) if (not v or not v.replace("-", "").replace("_", "").isalnum()) else v
    return _scalar(v)


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel):
        try:
            if value == type(value)():
                return "all defaults"
        except Exception:  # noqa: BLE001 (a model with required fields has no all-default form)
            pass
        return f"`{_flow(value.model_dump(mode='json', by_alias=True))}`"
    if isinstance(value, (dict, list)):
        dumped = json.loads(json.dumps(value, default=lambda m: m.model_dump(mode="json", by_alias=True)))
        return f"`{_flow(dumped)}`"
    return f"`{_scalar(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rules(model: type[BaseModel]) -> list[str]:
    """Docstrings of the model's own validators: cross-field rules that no single field shows.

    Validators inherited from a base class (StrictModel's) hold for every section and are not
    repeated in each.
    """
    decorators = model.__pydantic_decorators__
    rules = []
    for group in (decorators.field_validators, decorators.model_validators):
        for dec in group.values():
            if not getattr(dec.func, "__qualname__", "").startswith(model.__qualname__ + "."):
                continue
            doc = inspect.getdoc(dec.func)
            if doc:
                rules.append(" ".join(doc.split()))
    return rules


def _render_section(s: _Section, sections: dict[type[BaseModel], _Section]) -> list[str]:
    title = f"`{s.title}`" if s.paths[0] else "Top level"
    if s.kind:
        title += f" with `kind: {s.kind}`"
    lines = [f'<a id="{s.anchor}"></a>', "", f"## {title}", ""]
    doc = s.model.__doc__
    if doc:
        lines += [inspect.cleandoc(doc), ""]
    if len(s.paths) > 1:
        lines += ["Also used at: " + ", ".join(f"`{p}`" for p in s.paths[1:]) + ".", ""]
    lines += [
        f"Python: `{s.model.__module__}.{s.model.__name__}`.",
        "",
        "| field | type | default | constraints | description |",
        "|---|---|---|---|---|",
    ]
    for name, info in s.model.model_fields.items():
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{_field_key(name, info)}`",
                    _cell(_type_text(info.annotation, sections)),
                    _cell(_default_text(info)),
                    _cell(_field_constraints(info)),
                    _cell(info.description or ""),
                ]
            )
            + " |"
        )
    rules = _rules(s.model)
    if rules:
        lines += ["", "Rules:", ""] + [f"- {r}" for r in rules]
    return lines + [""]


def render(root: type[BaseModel] = Scenario) -> str:
    """The whole reference page as Markdown (deterministic: no dates, no machine details)."""
    order = collect_sections(root)
    sections = {s.model: s for s in order}
    lines = [
        "# Scenario reference",
        "",
        f"<!-- generated by `{COMMAND}`, do not edit -->",
        "",
        f"Generated by `{COMMAND}` from the pydantic schema in `fleetsim/scenario/`;",
        "do not edit this file: change the schema (field `description=`, class and validator",
        "docstrings) and regenerate. `tests/test_reference_doc.py` fails when the two differ.",
        "",
        "How to read it: a scenario is a YAML or TOML file whose top level is the first section",
        "below. Units are in field names (`_s` seconds, `_c` degrees Celsius, `_usd`). Unknown",
        "fields are errors. `<name>` in a path is a name you choose (a workload, a pool, a hall);",
        "`[]` is a list item. Where a field takes one of several shapes, its `kind:` picks the",
        "shape. `null` (YAML `~` or leaving the field out) means none. Constraints are checked on",
        "load: `fleetsim validate SCENARIO` reports the first one broken, with file, field and line.",
        "",
        "Sections:",
        "",
    ]
    for s in order:
        label = f"`{s.title}`" + (f" (kind: {s.kind})" if s.kind else "")
        lines.append(f"- [{label}](#{s.anchor})")
    lines.append("")
    for s in order:
        lines += _render_section(s, sections)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(DEFAULT_PATH), help="file to write, or - for stdout")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the schema")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            print(f"{out} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
