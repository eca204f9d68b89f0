"""``cems users`` and ``cems serve`` user errors, in real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SITE = """
schema_version: 1
site:
  id: u-site
  name: U site
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {contract_power_kw: 100, import_limit_kw: 100, export_limit_kw: 50,
         tariff_plan: general_b_high_a_2}
meters:
  - {id: m-1, kind: household}
households:
  - {id: h-1, name: "1호", meter: m-1, asset_share: 0.5}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return path


def test_add_list_remove(run_cems, site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("users", "add", site, "ann", "--role", "resident", "--household", "h-1",
                    "--password-stdin", input="a-long-password\n")
    assert proc.returncode == 0, proc.stderr
    stored = (site.parent / "data" / "users.json")
    text = stored.read_text(encoding="utf-8")
    assert "a-long-password" not in text
    assert json.loads(text)["users"][0]["password_hash"].startswith("$argon2id$")
    assert stored.stat().st_mode & 0o077 == 0
    listed = run_cems("users", "list", site)
    assert listed.stdout.split() == ["ann", "resident", "h-1"]
    assert run_cems("users", "remove", site, "ann").returncode == 0
    assert run_cems("users", "list", site).stdout == ""


def test_add_refuses_to_replace_without_replace(run_cems, site: Path) -> None:  # type: ignore[no-untyped-def]
    stored = site.parent / "data" / "users.json"
    first = run_cems("users", "add", site, "ann", "--role", "resident", "--household", "h-1",
                     "--password-stdin", input="a-long-password\n")
    assert first.returncode == 0, first.stderr
    before = stored.read_text(encoding="utf-8")
    # the same name again: refused, exit 2, a clear message, the file untouched
    again = run_cems("users", "add", site, "ann", "--role", "operator", "--password-stdin",
                     input="another-password\n")
    assert again.returncode == 2
    assert "user 'ann' already exists" in again.stderr and "--replace" in again.stderr
    assert "Traceback" not in again.stderr and again.stdout == ""
    assert stored.read_text(encoding="utf-8") == before
    # with --replace: the new role and hash
    replaced = run_cems("users", "add", site, "ann", "--role", "operator", "--replace",
                        "--password-stdin", input="another-password\n")
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced" in replaced.stdout
    users = json.loads(stored.read_text(encoding="utf-8"))["users"]
    assert [(u["username"], u["role"], u["household_id"]) for u in users] == [
        ("ann", "operator", None)]
    assert users[0]["password_hash"] != json.loads(before)["users"][0]["password_hash"]
    # --replace for a new name just adds it
    new = run_cems("users", "add", site, "bob", "--role", "broker", "--replace",
                   "--password-stdin", input="a-long-password\n")
    assert new.returncode == 0 and "replaced" not in new.stdout
    assert run_cems("users", "list", site).stdout.split() == ["ann", "operator", "bob", "broker"]


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("--role", "resident"), "a-long-password\n", "needs --household"),
    (("--role", "resident", "--household", "h-9"), "a-long-password\n", "not in the site"),
    (("--role", "operator"), "short\n", "at least 10 characters"),
    (("--role", "broker", "--household", "h-1"), "a-long-password\n", "residents only"),
])
def test_add_user_errors(run_cems, site: Path, args: tuple[str, ...], stdin: str,  # type: ignore[no-untyped-def]
                         message: str) -> None:
    proc = run_cems("users", "add", site, "bob", *args, "--password-stdin", input=stdin)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_without_users_is_a_user_error(run_cems, site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("serve", site, "--port", "8999")
    assert proc.returncode == 2 and "cems users add" in proc.stderr
    assert "Traceback" not in proc.stderr
