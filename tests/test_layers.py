"""The package's layers: inside ``cems`` imports go one way, and only the store speaks SQL.

Order, lowest first (a module may import its own layer and lower ones):

    utilities < config < store < accounting < planning/forecast < markets < dispatch
    < runtime < reports < web/cli

Utilities shared by every layer: ``cems`` itself (the version), ``cems.errors``,
``cems.timeutil`` (imports errors), ``cems.quiet``, ``cems.billing_io`` and
``cems.jsontext`` (errors only).
``cems.devices`` builds device clients from the site's configuration, so it imports
``cems.config`` and sits with it. ``cems.cli`` may import anything (it wires the layers
together), and ``cems.__main__`` is the CLI's entry point.

Imports are read with :mod:`ast` from the source, at module level and inside functions alike
(a deferred import is still a dependency), including ``if TYPE_CHECKING:`` blocks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cems"

#: Layer of each part of ``cems`` (the first one or two name components); lowest first.
LAYERS: dict[str, int] = {
    "cems": 0, "cems.errors": 0, "cems.timeutil": 0, "cems.quiet": 0, "cems.billing_io": 0,
    "cems.jsontext": 0,
    "cems.config": 1, "cems.devices": 1,
    "cems.store": 2,
    "cems.accounting": 3,
    "cems.planning": 4, "cems.forecast": 4,
    "cems.markets": 5,
    "cems.dispatch": 6,
    "cems.runtime": 7, "cems.fleet": 7,
    "cems.reports": 8,
    "cems.web": 9, "cems.cli": 9, "cems.__main__": 9,
}
#: Parts that may import any other part.
IMPORT_ANYTHING = {"cems.cli", "cems.__main__"}

#: Known violations in files owned elsewhere: (importing module, part of cems it may still
#: import against the order) → the file whose owner is to remove the import. An entry that
#: no longer occurs fails ``test_allow_list_has_no_stale_entries``.
ALLOWED: dict[tuple[str, str], str] = {
    # reads participant usage through cems.reports.data.household_usage; that reader
    # belongs in the store (or markets) so that markets need not import reports
    ("cems.markets.dr_accept", "cems.reports"): "cems/markets/dr_accept.py",
    # re-plans through cems.runtime.planner / cems.runtime.state
    ("cems.markets.dr_workflow", "cems.runtime"): "cems/markets/dr_workflow.py",
    # the demo's households: resident report, savings and rendering from cems.reports
    ("cems.runtime.demo_households", "cems.reports"): "cems/runtime/demo_households.py",
}
#: Top-level packages only the store may import.
SQL_PACKAGES = {"sqlalchemy"}


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = PACKAGE) -> Iterator[str]:
    """Every module name ``path`` imports (absolute; relative imports resolved)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name
            # ``from cems import accounting`` imports the sub-module cems.accounting
            if name == "cems":
                yield from (f"cems.{alias.name}" for alias in node.names
                            if (root / alias.name).exists()
                            or (root / f"{alias.name}.py").exists())


def _part(module: str) -> str:
    """The layered part of a ``cems`` module: ``cems.x`` of ``cems.x.y``."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _edges() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for target in _imports(path):
            yield module, target


def _violations() -> set[tuple[str, str]]:
    found = set()
    for module, target in _edges():
        if target != "cems" and not target.startswith("cems."):
            continue
        source, dest = _part(module), _part(target)
        if source in IMPORT_ANYTHING or source == dest:
            continue
        if LAYERS[dest] > LAYERS[source]:
            found.add((module, dest))
    return found


def test_every_part_of_cems_has_a_layer() -> None:
    parts = {_part(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    unplaced = sorted(parts - set(LAYERS))
    assert not unplaced, f"place these in tests/test_layers.py LAYERS: {unplaced}"


def test_utilities_import_only_utilities() -> None:
    low = {part for part, layer in LAYERS.items() if layer == 0}
    wrong = sorted((m, t) for m, t in _edges()
                   if _part(m) in low and t.startswith("cems.") and _part(t) not in low)
    assert not wrong, f"shared utilities must not depend on the layers: {wrong}"


def test_imports_go_down_the_layers() -> None:
    new = sorted(_violations() - set(ALLOWED))
    assert not new, (
        "imports against the layer order (a module may import its own layer and lower ones; "
        "order in tests/test_layers.py):\n" + "\n".join(
            f"  {m} imports {t} (layer {LAYERS[_part(m)]} -> {LAYERS[t]})" for m, t in new))


def test_allow_list_has_no_stale_entries() -> None:
    stale = sorted(set(ALLOWED) - _violations())
    assert not stale, f"fixed: remove these from ALLOWED in tests/test_layers.py: {stale}"


def test_only_the_store_imports_sqlalchemy() -> None:
    wrong = sorted((m, t) for m, t in _edges()
                   if t.split(".")[0] in SQL_PACKAGES and not m.startswith("cems.store"))
    assert not wrong, f"SQL belongs to cems.store (add a TelemetryStore method): {wrong}"


def test_the_checker_sees_deferred_relative_and_type_checking_imports(tmp_path: Path) -> None:
    root = tmp_path / "cems"
    (root / "markets").mkdir(parents=True)
    (root / "store").mkdir()
    probe = root / "markets" / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\n"
                     "from ..store import schema\n"
                     "from . import cbl\n"
                     "from cems import store\n"
                     "if TYPE_CHECKING:\n    import cems.reports.data\n"
                     "def f():\n    from cems.web.app import create_app\n", encoding="utf-8")
    found = set(_imports(probe, root))
    assert {"cems.store", "cems.markets", "cems.reports.data", "cems.web.app"} <= found
