"""Render the site-file reference (``docs/config-reference.md``) from the pydantic schema.

The schema is the single source of truth: field names, types, defaults, bounds and
descriptions all come from :mod:`cems.config.model` and its parts (:mod:`cems.config.base`,
:mod:`cems.config.connections`). Regenerate the document with
``python -m cems.config.reference > docs/config-reference.md``; a test keeps it current.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cems.config.model import SiteConfig

HEADER = """# Site file reference

Generated from `cems/config/` by `python -m cems.config.reference`; do not edit by
hand. A site is one YAML file; `cems validate SITE.yaml` checks it. Unknown keys are errors.
Units are in the field names (`_kw`, `_kwh`, `_krw`, `_pct`, `_deg`, `_s`, `_min`, `_h`).
Relative paths are resolved against the folder of the site file. Clock times are `"HH:MM"`
(quote them). Timestamps need a UTC offset (`2026-03-01T00:00:00+09:00`).

Cross-field rules (checked after the fields): ids are unique across assets, charger groups,
deferrable loads and meters; household ids and AMI source ids are unique; every reference
(meter, charger group, AMI source, device profile, tariff plan, brokerage resource) resolves;
`soc_min < soc_max` and `soc_initial` lies between them; `min_kw <= max_kw`; a fuel cell's
`safe_kw` is 0 or within its range; `max_discharge_kw > 0` exactly when a charger is
bidirectional; a deferrable load's energy fits `max_kw` x window; `import_limit_kw <=
contract_power_kw`; household `asset_share` values sum to at most 1; each Modbus endpoint
(host, port, device id) is used once; `ami` connections only on meters; `replan_interval_min`
is a multiple of `step_min`; `setpoint_expiry_s > poll_interval_s`; `plus_dr` only in Jeju.
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


_BOUNDS = ((Gt, "gt", ">"), (Ge, "ge", ">="), (Lt, "lt", "<"), (Le, "le", "<="))


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for cls, attr, sign in _BOUNDS:
            if isinstance(item, cls):
                parts.append(f"{sign} {getattr(item, attr)}")
    return ", ".join(parts)


def _models(annotation: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Annotated, tuple, typing.Union, types.UnionType):
        found: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            found.extend(_models(arg))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def render_reference() -> str:
    """Return the Markdown reference of every section of a site file."""
    sections: list[str] = [HEADER]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("(root)", SiteConfig)]
    while queue:
        where, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines = [
            f"## `{model.__name__}` — {where}",
            "",
            doc,
            "",
            "| field | type | default | bounds | description |",
            "|---|---|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            default = field.default
            if default is PydanticUndefined:
                shown = "**required**"
            elif isinstance(default, BaseModel):
                shown = "(section defaults)"
            elif default == ():
                shown = "[]"
            else:
                shown = f"`{default}`"
            lines.append(
                f"| `{name}` | {_type_name(field.annotation)} | {shown} | "
                f"{_bounds(field.metadata)} | {field.description or ''} |"
            )
            path = name if where == "(root)" else f"{where}.{name}"
            queue.extend((path, sub) for sub in _models(field.annotation))
        sections.append("\n".join(lines) + "\n")
    return "\n".join(sections)


if __name__ == "__main__":
    print(render_reference(), end="")
