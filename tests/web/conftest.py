"""A seeded site with users (operator, broker, residents of h-a and h-b) for web tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

REPORTS_CONFTEST = Path(__file__).resolve().parent.parent / "reports" / "conftest.py"
PASSWORDS = {
    "op": ("operator", None, "operator-pass-1"),
    "brk": ("broker", None, "broker-pass-12"),
    "res-a": ("resident", "h-a", "resident-a-pass"),
    "res-b": ("resident", "h-b", "resident-b-pass"),
}


def _seed_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("reports_seed", REPORTS_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Site YAML path; its data_dir holds the seeded store and users.json."""
    from cems.web.auth import UserFile

    seed = _seed_module()
    root = tmp_path_factory.mktemp("web_site")
    site = root / "site.yaml"
    site.write_text(seed.SITE_YAML, encoding="utf-8")
    seed.seed_store(root / "data")
    users = UserFile(root / "data" / "users.json")
    for name, (role, household, password) in PASSWORDS.items():
        users.add(name, role, password, household)
    yield site
