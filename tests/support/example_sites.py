"""Copies of the example sites whose Modbus ports are free loopback ports.

The example sites listen on fixed ports (written in their site files), which
``cems demo`` and anything else on the machine may be holding. A test that serves or reads
an example site works on a copy instead: the site's folder (the site file and whatever it
names relatively, such as ``inputs/``) is copied, and every distinct ``port: N`` in the
site file is rewritten, as text, to a port from :func:`loopback_ports.free_port`. Comments,
key order and line numbers stay as they are; devices that shared a port still share one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from loopback_ports import free_port

#: ``port: 502`` (block or flow style, the key optionally quoted); not ``http_port:``,
#: ``export:`` or ``portfolio_file:``.
_PORT = re.compile(r"""(?P<key>(?<![\w-])["']?port["']?\s*:\s*)(?P<port>\d+)\b""")


@dataclass(frozen=True)
class ExampleSite:
    """A copied example site: its site file and the port each original port became."""

    path: Path
    ports: dict[int, int]  # original port -> allocated port


def _ports_in(node: Any) -> Iterator[int]:
    """Every value of a ``port`` key anywhere in a loaded YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "port" and isinstance(value, int):
                yield value
            else:
                yield from _ports_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _ports_in(item)


def copy_on_free_ports(site: Path, dest: Path) -> ExampleSite:
    """Copy ``site``'s folder to ``dest/<folder name>`` with every port made a free one.

    The site's ``data_dir`` folder (runtime output, if one was left there) is not copied.
    Raises AssertionError if a port of the copy is not one of the allocated ports, so a
    port written in a form the rewrite missed cannot slip through to a test.
    """
    site = site.resolve()
    text = site.read_text(encoding="utf-8")
    data_dir = str((yaml.safe_load(text).get("site") or {}).get("data_dir") or "")

    def skip(folder: str, names: list[str]) -> set[str]:
        return {data_dir} & set(names) if Path(folder) == site.parent else set()

    target = dest / site.parent.name
    shutil.copytree(site.parent, target, ignore=skip)

    ports: dict[int, int] = {}

    def replace(match: re.Match[str]) -> str:
        old = int(match["port"])
        if old not in ports:
            ports[old] = free_port()
        return f"{match['key']}{ports[old]}"

    new_text = _PORT.sub(replace, text)
    left = sorted(set(_ports_in(yaml.safe_load(new_text))) - set(ports.values()))
    assert not left, f"{site}: ports {left} were not rewritten to free ports"
    new_site = target / site.name
    new_site.write_text(new_text, encoding="utf-8")
    return ExampleSite(new_site, ports)
