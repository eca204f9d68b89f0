"""House rules of the foundation: package boundaries, CLI surface, generated docs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cems.cli import COMMAND_MODULES, build_parser
from cems.config.reference import render_reference

LIBRARIES = ("optimizer", "tariffs", "device_drivers")


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_never_import_cems_or_each_other(repo_root, library):
    forbidden = {"cems", *LIBRARIES} - {library}
    offenders = {
        str(path.relative_to(repo_root)): sorted(_imported_top_levels(path) & forbidden)
        for path in (repo_root / library).rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{library} imports {offenders}"


def test_help_lists_exactly_the_registered_commands(run_cems):
    result = run_cems("--help")
    assert result.returncode == 0
    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert len(registered) >= len(COMMAND_MODULES)  # each module adds at least one command
    for command in registered:
        assert command in result.stdout


def test_every_listed_command_has_working_help(run_cems):
    parser = build_parser()
    for command in parser._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
        result = run_cems(command, "--help")
        assert result.returncode == 0, f"cems {command} --help failed: {result.stderr}"
        assert "usage:" in result.stdout


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_each_command_module_registers_the_command_named_like_it(module):
    # cems.cli.main builds only the chosen command's parser and relies on this.
    import argparse
    import importlib

    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(subparsers)
    assert list(subparsers.choices) == [module.rsplit(".", 1)[1]]


def test_running_one_command_builds_only_its_parser():
    parser = build_parser("validate")
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands == {"validate"}
    assert len(set(build_parser("nonsense")._subparsers._group_actions[0].choices)) == len(
        COMMAND_MODULES
    )  # an unknown word gets the full parser, so argparse lists every choice


def test_unknown_command_is_a_usage_error(run_cems):
    result = run_cems("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_reference_is_current(repo_root):
    committed = (repo_root / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/config-reference.md is stale: run "
        "`python -m cems.config.reference > docs/config-reference.md`"
    )


def test_every_data_file_of_the_packages_is_declared_package_data(repo_root):
    # A file the code reads at run time (templates, tariff YAML, the dashboard's script)
    # but that no package-data pattern names would be missing from a wheel install.
    import fnmatch
    import tomllib

    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["*"]
    undeclared = [
        str(path.relative_to(repo_root))
        for package in ("cems", "optimizer", "tariffs", "device_drivers")
        for path in (repo_root / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
        and not any(fnmatch.fnmatch(path.name, p) for p in patterns)
    ]
    assert not undeclared, f"add patterns for these to [tool.setuptools.package-data]: {undeclared}"
