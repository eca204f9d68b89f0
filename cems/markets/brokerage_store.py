"""Store a settled brokerage day in the telemetry store, in the shape the reports read.

One ``settlements`` row of kind ``brokerage`` per resource of the community's site: amount
= the resource's net revenue of the day (energy + REC + incentive - fee, whole won),
period = the local delivery day, reference ``D/resource_id``, detail with the revenue lines
and, under ``forecast``, the day's forecast evaluation of the whole portfolio and the
incentive decision (:meth:`~cems.markets.brokerage.BrokerSettlement.forecast_record`): the
history :func:`forecast_history` reads back for the registration rules (규칙 제14.3.1조-
제14.3.5조) without a table of its own. The resident report shares the sum of a month's
rows by ``asset_share``
(:func:`cems.reports.data.brokerage_total_krw`), so only the community's own resources
(portfolio rows whose ``site`` is the community's site) are stored; other owners' resources
in a broker's portfolio are left out and listed. Storing a day again replaces its rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from cems.errors import InputError
from cems.markets.brokerage import BrokerSettlement, DayErrors
from cems.markets.portfolio import Portfolio
from cems.store import TelemetryStore

KIND = "brokerage"


@dataclass(frozen=True)
class StoredDay:
    """What :func:`store_day` wrote."""

    site: str
    stored: tuple[str, ...]  # resource ids stored
    left_out: tuple[str, ...]  # resource ids of other sites
    amount_krw: int  # sum of the stored rows
    replaced: int  # rows of an earlier settlement of the day removed


def community_site(portfolio: Portfolio, site_id: str | None) -> str:
    """The site whose resources are the community's: ``site_id`` when given (it must appear
    in the portfolio), else the portfolio's only site (a mixed portfolio is an error)."""
    sites = list(dict.fromkeys(r.site for r in portfolio.resources))
    if site_id is not None:
        if site_id not in sites:
            raise InputError(f"the portfolio has no resource of site {site_id!r} (its site "
                             f"column names {', '.join(sites)}); nothing to store")
        return site_id
    if len(sites) != 1:
        raise InputError(f"the portfolio covers sites {', '.join(sites)}; give --site "
                         "SITE.yaml so only that community's resources are stored")
    return sites[0]


def settlement_rows(result: BrokerSettlement, portfolio: Portfolio, site_id: str,
                    tz: str) -> list[dict[str, Any]]:
    """The ``settlements`` rows (``record_settlement`` keys) of the site's resources."""
    start = pd.Timestamp(result.delivery.isoformat(), tz=tz)
    end = start + timedelta(days=1)
    by_id = {r.resource_id: r for r in portfolio.resources}
    day = result.delivery.isoformat()
    forecast = result.forecast_record()
    rows = []
    for revenue in result.resources:
        resource = by_id[revenue.resource_id]
        if resource.site != site_id:
            continue
        rows.append({
            "reference": f"{day}/{revenue.resource_id}",
            "start": start.to_pydatetime(), "end": end.to_pydatetime(),
            "amount_krw": revenue.net_krw,
            "detail": {
                "delivery_date": day, "resource_id": revenue.resource_id,
                "site": resource.site, "kind": resource.kind, "owner": revenue.owner,
                "actual_kwh": revenue.actual_kwh, "energy_krw": revenue.energy_krw,
                "rec_krw": revenue.rec_krw, "incentive_krw": revenue.incentive_krw,
                "fee_krw": revenue.fee_krw, "net_krw": revenue.net_krw,
                "forecast": forecast,
            },
        })
    return rows


def store_day(store: TelemetryStore, result: BrokerSettlement, portfolio: Portfolio, *,
              site_id: str | None, tz: str) -> StoredDay:
    """Write the day's rows of the community's resources, replacing an earlier settlement
    of the same day (idempotent)."""
    site = community_site(portfolio, site_id)
    rows = settlement_rows(result, portfolio, site, tz)
    replaced = store.replace_settlements(kind=KIND, reference_prefix=f"{result.delivery}/",
                                         rows=rows)
    stored = tuple(r["detail"]["resource_id"] for r in rows)
    left_out = tuple(r.resource_id for r in portfolio.resources if r.site != site)
    return StoredDay(site, stored, left_out, sum(int(r["amount_krw"]) for r in rows), replaced)


def forecast_history(store: TelemetryStore, *, before: date | None = None) -> list[DayErrors]:
    """The settled days' forecast evaluations from the stored ``brokerage`` rows (one per
    delivery day, oldest first; days before ``before`` when given). Rows stored before the
    evaluation was kept (no ``forecast`` in the detail) give no day."""
    rows = store.settlements(KIND)
    days: dict[date, DayErrors] = {}
    if rows.empty:
        return []
    for text in rows["detail_json"]:
        try:
            detail = json.loads(text) if text else None
        except ValueError:
            continue
        if not isinstance(detail, dict) or not isinstance(detail.get("forecast"), dict):
            continue
        try:
            day = date.fromisoformat(str(detail.get("delivery_date")))
        except ValueError:
            continue
        if (before is None or day < before) and day not in days:
            days[day] = DayErrors.from_record(day, detail["forecast"])
    return [days[d] for d in sorted(days)]
