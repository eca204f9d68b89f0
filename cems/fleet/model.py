"""The portfolio file: a broker's sites (each a site file) and its aggregated resources.

``portfolio.yaml`` (format ``cems-portfolio/1``)::

    format: cems-portfolio/1
    broker: {id: busan-vpp, name: "Busan community VPP"}
    timezone: Asia/Seoul
    resources: resources.csv      # the broker's aggregated resources
    sites:                        # site files, relative to this file
      - sites/apartment-0001.yaml
      - sites/office-0002.yaml

``resources.csv`` is a brokerage resource CSV (:mod:`cems.markets.portfolio`: columns
``resource_id,site,kind,capacity_kw,owner,rec_weight``) whose ``resource_id`` is
``SITE_ID/ASSET_ID`` (asset ids repeat across sites) and whose ``site`` is the site id.

:func:`read_portfolio_file` reads the file alone (fast: what ``plan`` needs before it hands
the sites to the workers, which load them); :func:`check_portfolio` also loads every site file
with the normal site checks and checks the resources against them (``cems portfolio
validate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cems.config import load_site
from cems.errors import CemsError, ConfigError, InputError
from cems.markets.portfolio import Portfolio, read_portfolio, site_portfolio

PORTFOLIO_FORMAT = "cems-portfolio/1"
#: Conventional names inside a portfolio folder.
PORTFOLIO_FILE = "portfolio.yaml"
RESOURCES_FILE = "resources.csv"
#: Separator of site id and asset id in an aggregated resource id.
ID_SEPARATOR = "/"


@dataclass(frozen=True)
class PortfolioFile:
    """A read portfolio file: where it is, the broker, the site files and the resources."""

    path: Path
    broker_id: str
    broker_name: str
    timezone: str
    site_files: tuple[Path, ...]
    resources: Portfolio


def resolve(path: str | Path) -> Path:
    """The portfolio file of ``path`` (a portfolio file, or a folder holding one)."""
    target = Path(path)
    if target.is_dir():
        target = target / PORTFOLIO_FILE
    if not target.is_file():
        raise InputError(f"{target}: no portfolio file there (make one with `cems portfolio make`)")
    return target


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a mapping")
    return value


def read_portfolio_file(path: str | Path) -> PortfolioFile:
    """Read and check ``portfolio.yaml`` (format, broker, site list, resources CSV); the site
    files are only checked to exist."""
    file = resolve(path)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: not valid YAML ({exc})") from exc
    data = _mapping(document, str(file))
    if data.get("format") != PORTFOLIO_FORMAT:
        raise InputError(f"{file}: format must be {PORTFOLIO_FORMAT!r}, got {data.get('format')!r}")
    broker = _mapping(data.get("broker"), f"{file}: broker")
    broker_id = str(broker.get("id") or "").strip()
    if not broker_id:
        raise InputError(f"{file}: broker.id is empty")
    sites = data.get("sites")
    if not isinstance(sites, list) or not sites:
        raise InputError(f"{file}: sites must be a non-empty list of site files")
    base = file.parent
    paths: list[Path] = []
    seen: dict[Path, int] = {}
    for i, entry in enumerate(sites):
        if not isinstance(entry, str) or not entry.strip():
            raise InputError(f"{file}: sites[{i}] must be a path to a site file")
        site_path = (base / entry).resolve()
        if site_path in seen:
            raise InputError(f"{file}: sites[{i}] {entry!r} repeats sites[{seen[site_path]}]")
        if not site_path.is_file():
            raise InputError(f"{file}: sites[{i}] {entry!r}: no such file")
        seen[site_path] = i
        paths.append(site_path)
    resources_name = data.get("resources")
    if not isinstance(resources_name, str) or not resources_name.strip():
        raise InputError(f"{file}: resources must name the broker's resource CSV")
    resources_path = base / resources_name
    if not resources_path.is_file():
        raise InputError(f"{file}: resources {resources_name!r}: no such file")
    resources = read_portfolio(resources_path)
    return PortfolioFile(
        file,
        broker_id,
        str(broker.get("name") or broker_id),
        str(data.get("timezone") or "Asia/Seoul"),
        tuple(paths),
        resources,
    )


def _raw_site_id(path: Path) -> str:
    """``site.id`` read from a site file that failed its checks ("" when unreadable)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return str(data["site"]["id"])
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return ""


def _site_problems(portfolio: PortfolioFile) -> Iterator[str]:
    """Every problem of the site files and of the resources against them."""
    registered = {r.resource_id: r for r in portfolio.resources.resources}
    seen_sites: dict[str, Path] = {}
    covered: set[str] = set()
    unchecked: set[str] = set()  # sites whose file failed: their resources are not judged
    for path in portfolio.site_files:
        try:
            config = load_site(path, require_files=True)
        except (ConfigError, CemsError) as exc:
            if isinstance(exc, ConfigError):
                yield f"{path}: invalid site file: " + "; ".join(str(p) for p in exc.problems[:5])
            else:
                yield f"{path}: {exc}"
            unchecked.add(_raw_site_id(path))
            continue
        site_id = config.site.id
        if site_id in seen_sites:
            yield f"{path}: site id {site_id!r} repeats {seen_sites[site_id]}"
            continue
        seen_sites[site_id] = path
        if not config.brokerage.enabled:
            continue
        try:
            own = site_portfolio(config)
        except CemsError as exc:
            yield f"{path}: {exc}"
            continue
        for resource in own.resources:
            rid = f"{site_id}{ID_SEPARATOR}{resource.resource_id}"
            covered.add(rid)
            row = registered.get(rid)
            if row is None:
                yield (
                    f"{path}: brokerage resource {resource.resource_id!r} is not in the "
                    f"resources file as {rid!r}"
                )
            elif row.kind != resource.kind or abs(row.capacity_kw - resource.capacity_kw) > 1e-6:
                yield (
                    f"{rid}: the resources file says {row.kind} {row.capacity_kw:g} kW, "
                    f"the site file {resource.kind} {resource.capacity_kw:g} kW"
                )
            elif row.site != site_id:
                yield f"{rid}: the resources file puts it on site {row.site!r}, not {site_id!r}"
    for rid in sorted(set(registered) - covered):
        if registered[rid].site in unchecked:
            continue
        yield (
            f"resources file: {rid!r} is no brokerage resource of a listed site (ids are "
            f"SITE_ID{ID_SEPARATOR}ASSET_ID)"
        )


def check_portfolio(path: str | Path) -> tuple[PortfolioFile, list[str]]:
    """Read the portfolio file and check every site and resource; return the problems."""
    portfolio = read_portfolio_file(path)
    return portfolio, list(_site_problems(portfolio))
