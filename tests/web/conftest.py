"""A seeded site with users (operator, broker, residents of h-a and h-b) for web tests.

The store holds the seeded April 2026 readings and their 15-minute aggregates, built here as
the runtime's aggregate job keeps them."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORTS_CONFTEST = REPO / "tests" / "reports" / "conftest.py"
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
    """Site YAML path; its data_dir holds the seeded store (with April's aggregates) and
    users.json."""
    import pandas as pd

    from cems.store import open_store
    from cems.web.auth import UserFile

    seed = _seed_module()
    root = tmp_path_factory.mktemp("web_site")
    site = root / "site.yaml"
    site.write_text(seed.SITE_YAML, encoding="utf-8")
    seed.seed_store(root / "data")
    store = open_store(data_dir=root / "data")
    store.aggregate(pd.Timestamp("2026-04-01", tz="Asia/Seoul"),
                    pd.Timestamp("2026-05-01", tz="Asia/Seoul"))
    store.engine.dispose()
    users = UserFile(root / "data" / "users.json")
    for name, (role, household, password) in PASSWORDS.items():
        users.add(name, role, password, household)
    yield site


def copy_site(web_site: Path, root: Path) -> Path:
    """Copy the seeded site (store and users, no sessions) under ``root``; the new YAML path."""
    import shutil

    shutil.copytree(web_site.parent, root, ignore=shutil.ignore_patterns("web_sessions.sqlite*"))
    return root / web_site.name


@pytest.fixture
def fresh_site(web_site: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded site for tests that write readings, change users or
    restart the app."""
    return copy_site(web_site, tmp_path / "site")


@pytest.fixture(scope="module")
def module_site(web_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``fresh_site``, shared by the tests of one module (e.g. one served process)."""
    return copy_site(web_site, tmp_path_factory.mktemp("module_site") / "site")


@contextmanager
def _serving(site: Path, *args: str) -> Iterator[str]:
    from loopback_ports import free_port

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "cems", "serve", str(site),
                             "--host", "127.0.0.1", "--port", str(port), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"cems serve did not start within 30 s:\n{out[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="session")
def cems_server() -> Callable[..., AbstractContextManager[str]]:
    """``with cems_server(site, *args) as base_url``: a real ``cems serve`` process on
    127.0.0.1 and a free port, stopped on exit (bounded in time)."""
    return _serving
