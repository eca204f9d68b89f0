"""The example-site copier gives every example port a free one and changes nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from example_sites import copy_on_free_ports

from cems.config import load_site


@pytest.mark.parametrize("name", ["sejong_5_1", "busan_eco_delta"])
def test_copy_moves_every_port_and_keeps_the_rest(repo_root: Path, tmp_path: Path,
                                                  name: str) -> None:
    original = repo_root / "examples" / name / "site.yaml"
    copy = copy_on_free_ports(original, tmp_path)

    assert copy.path == tmp_path / name / "site.yaml"
    old_config, new_config = load_site(original), load_site(copy.path)
    old_ports = {c.port for c in _tcp_connections(old_config)}
    assert set(copy.ports) == old_ports and len(old_ports) == 5  # meters, PV, ESS, FC, EV
    assert len(set(copy.ports.values())) == len(old_ports)
    assert not set(copy.ports.values()) & old_ports
    # Each device keeps its address but on its port's replacement.
    for old, new in zip(_tcp_connections(old_config), _tcp_connections(new_config),
                        strict=True):
        assert (new.host, new.device_id, new.port) == (old.host, old.device_id,
                                                       copy.ports[old.port])

    # The text differs only in the port numbers: same lines, comments included.
    old_lines = original.read_text(encoding="utf-8").splitlines()
    new_lines = copy.path.read_text(encoding="utf-8").splitlines()
    assert len(new_lines) == len(old_lines)
    for old_line, new_line in zip(old_lines, new_lines, strict=True):
        assert re.sub(r"port: \d+", "port: N", old_line) == re.sub(r"port: \d+", "port: N",
                                                                   new_line)
    # What the site file names relatively comes along; relative paths resolve in the copy.
    for f in (original.parent / "inputs").iterdir():
        assert (copy.path.parent / "inputs" / f.name).read_bytes() == f.read_bytes()
    assert new_config.site.data_dir == (copy.path.parent / "data").resolve()


def test_a_port_the_rewrite_cannot_see_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "odd" / "site.yaml"
    site.parent.mkdir()
    site.write_text("site: {id: x}\nmeters:\n  - {id: m, connection: {port: 502}}\n"
                    "  - {id: n, connection: {port: !!int 503}}\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"ports \[503\] were not rewritten"):
        copy_on_free_ports(site, tmp_path / "out")


def _tcp_connections(config):  # type: ignore[no-untyped-def]
    """The connection blocks with a TCP port, in the site file's order."""
    from cems.devices import connections

    return [conn for *_, conn in connections(config) if getattr(conn, "port", None)]
