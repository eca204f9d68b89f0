"""Read a site YAML file into a validated :class:`SiteConfig`, or report every problem.

Problems are reported as :class:`cems.errors.Problem` lines (``assets.ess[0].soc_max:
must be <= 1.0 (got 1.2)  (line 14)``) inside one :class:`cems.errors.ConfigError`.
Malformed YAML reports its line and column; duplicate keys are errors, since YAML would
otherwise keep the last one silently.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cems.config.checks import check_files, check_site
from cems.config.model import SiteConfig
from cems.errors import ConfigError, Problem

PathPart = str | int


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictSafeLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A safe YAML loader that rejects duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def format_path(parts: Sequence[PathPart]) -> str:
    """Render ``('assets', 'ess', 0, 'soc_max')`` as ``assets.ess[0].soc_max``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(root: yaml.Node | None, parts: Sequence[PathPart]) -> int | None:
    """Return the 1-based line of the node at ``parts`` (or its nearest ancestor)."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in parts:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key_node, value_node in node.value:
                if getattr(key_node, "value", None) == part:
                    child = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _unwrap(annotation: Any) -> list[Any]:
    """Return the concrete member types of an annotation (Optional, tuple, Annotated...)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members: list[Any] = []
        for arg in typing.get_args(annotation):
            members.extend(_unwrap(arg))
        return members
    if origin is tuple:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _clean_location(loc: Sequence[PathPart]) -> tuple[list[PathPart], type[BaseModel] | None]:
    """Drop discriminator tags from a pydantic location; return it with the owning model.

    The owning model is the class whose field the last element names (used to list the
    allowed keys of an unknown-key error).
    """
    parts: list[PathPart] = []
    current: list[Any] = [SiteConfig]
    owner: type[BaseModel] | None = SiteConfig
    for part in loc:
        models = [m for m in current if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(part, int):
            parts.append(part)
            continue
        tagged = [m for m in models if part in _tags_of(m)]
        if tagged and len(models) > 1:
            current = tagged
            continue
        parts.append(part)
        owner = models[0] if models else None
        field = owner.model_fields.get(part) if owner is not None else None
        current = _unwrap(field.annotation) if field is not None else []
    return parts, owner


def _tags_of(model: type[BaseModel]) -> tuple[str, ...]:
    """The discriminator values (``protocol`` literals) a connection model accepts."""
    field = model.model_fields.get("protocol")
    return typing.get_args(field.annotation) if field is not None else ()


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)


def _message(error: ErrorDetails, owner: type[BaseModel] | None, name: PathPart | None) -> str:
    """Turn one pydantic error into 'what is wrong, what is allowed (got X)'."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _describe(error.get("input"))
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        allowed = sorted(owner.model_fields) if owner is not None else []
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field{hint} (allowed: {', '.join(allowed)})"
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit} (got {got})"
    if kind == "finite_number":
        return f"must be a finite number, not infinity or NaN (got {got})"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        what = "a whole number" if kind.startswith("int") else "a number"
        return f"must be {what} (got {got})"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false (got {got})"
    if kind in ("string_type",):
        return f"must be text (got {got})"
    if kind == "string_pattern_mismatch":
        return (
            "must be an id made of letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit (got {got})"
        )
    if kind in ("string_too_short", "too_short"):
        return f"must not be empty (got {got})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {got})"
    if kind == "union_tag_invalid":
        return f"protocol must be one of {ctx.get('expected_tags')} (got {ctx.get('tag')!r})"
    if kind == "union_tag_not_found":
        return (
            "missing 'protocol' (one of 'modbus_tcp', 'modbus_rtu_over_tcp', "
            "'modbus_rtu', 'ami')"
        )
    if kind == "timezone_aware":
        return f"timestamp needs a UTC offset, e.g. 2026-03-01T00:00:00+09:00 (got {got})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of fields (got {got})"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list (got {got})"
    if kind in ("datetime_type", "datetime_parsing", "datetime_from_date_parsing"):
        return f"must be a date-time with UTC offset, e.g. 2026-03-01T00:00:00+09:00 (got {got})"
    if kind in ("time_type", "time_parsing"):
        return f"must be a clock time HH:MM (got {got})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{message} (got {got})"


def _problems_from_validation(exc: ValidationError, root: yaml.Node | None) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        parts, owner = _clean_location(error["loc"])
        name = parts[-1] if parts else None
        message = _message(error, owner, name)
        problems.append(Problem(format_path(parts), message, _line_of(root, parts)))
    return problems


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text into data and its node tree; malformed YAML -> ConfigError."""
    try:
        loader = _StrictSafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        detail = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise ConfigError(source, [Problem("", f"malformed YAML at {where}{detail}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", f"malformed YAML: {exc}")]) from None
    return data, root


def load_site_text(
    text: str, source: str = "<string>", base_dir: Path | None = None, *,
    require_files: bool = False,
) -> SiteConfig:
    """Validate YAML text as a site; relative paths resolve against ``base_dir``.

    With ``require_files`` every file or folder the site names (AMI sources, the broker
    portfolio) must exist (:func:`cems.config.checks.check_files`), as ``cems validate``
    checks; the runtime reads them only when it needs them.
    """
    data, root = parse_yaml(text, source)
    if not isinstance(data, dict):
        message = f"the file must hold a mapping with a 'site' key (got {_describe(data)})"
        raise ConfigError(source, [Problem("", message)])
    try:
        config = SiteConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(source, _problems_from_validation(exc, root)) from None
    findings = check_site(config) + (check_files(config) if require_files else [])
    problems = [Problem(p.path, p.message, _line_of(root, p.parts)) for p in findings]
    if problems:
        raise ConfigError(source, problems)
    return config


def load_site(path: str | Path, *, require_files: bool = False) -> SiteConfig:
    """Read and validate a site YAML file; raise :class:`ConfigError` listing every problem.

    ``require_files``: also check that the files the site names exist (see
    :func:`load_site_text`).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(file), [Problem("", "file not found")]) from None
    except IsADirectoryError:
        message = "is a directory; give the site YAML file"
        raise ConfigError(str(file), [Problem("", message)]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), [Problem("", f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigError(str(file), [Problem("", f"cannot read: {exc.strerror}")]) from None
    return load_site_text(text, str(file), base_dir=file.resolve().parent,
                          require_files=require_files)
