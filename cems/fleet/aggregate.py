"""The portfolio's bid for one KPX round: the sites' planned trading-meter energy, summed.

Each planned site returns its resources' planned traded energy per local hour (what its plan
sends through its trading meters, :mod:`cems.markets.traded`); the portfolio bid lists every
registered resource (``SITE_ID/ASSET_ID`` rows of the resources file) with that site's
figures, and its hourly aggregate is their sum. A registered resource whose site failed has
no plan and is left out of the bid (listed in ``unplanned``); a planned resource missing from
the resources file is not registered with the broker and is left out too (``unregistered``).

The 20 MW condition (규칙 제14.1.1조 5호, :data:`cems.markets.brokerage.
INCENTIVE_MIN_CAPACITY_KW`): the forecast incentive needs the aggregate's main resources
(PV) to exceed 20 MW of registered capacity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np

from cems.fleet.model import ID_SEPARATOR
from cems.fleet.work import SitePlan
from cems.markets.bids import Bid, make_bid
from cems.markets.brokerage import INCENTIVE_MIN_CAPACITY_KW, MAIN_KINDS
from cems.markets.portfolio import HOURS, Portfolio


@dataclass(frozen=True)
class PortfolioBid:
    """The round's bid over the resources that have a plan, and what was left out."""

    bid: Bid
    portfolio: Portfolio
    unplanned: tuple[str, ...]
    unregistered: tuple[str, ...]
    registered_main_kw: float

    @property
    def hourly_kwh(self) -> np.ndarray:
        """The portfolio's bid per local hour (kWh)."""
        return self.bid.aggregate_kwh if len(self.bid.resource_ids) else np.zeros(HOURS)

    @property
    def total_kwh(self) -> float:
        """The day's bid (kWh)."""
        return float(self.hourly_kwh.sum())

    @property
    def above_20_mw(self) -> bool:
        """Whether the registered main (PV) capacity exceeds 20 MW (제14.1.1조 5호)."""
        return self.registered_main_kw > INCENTIVE_MIN_CAPACITY_KW


def aggregate_bid(
    registered: Portfolio, plans: Iterable[SitePlan], delivery: date, round_no: int, tz: str
) -> PortfolioBid:
    """The portfolio's round bid from the sites' plans (resources in the resources file's
    order)."""
    planned: dict[str, tuple[float, ...]] = {}
    for plan in plans:
        for rid, row in zip(plan.resource_ids, plan.traded_kwh, strict=True):
            planned[f"{plan.site_id}{ID_SEPARATOR}{rid}"] = row
    kept = tuple(r for r in registered.resources if r.resource_id in planned)
    unplanned = tuple(r.resource_id for r in registered.resources if r.resource_id not in planned)
    known = {r.resource_id for r in registered.resources}
    unregistered = tuple(sorted(rid for rid in planned if rid not in known))
    portfolio = Portfolio(kept)
    matrix = np.array([planned[r.resource_id] for r in kept], dtype=float).reshape(len(kept), HOURS)
    bid = make_bid(portfolio, delivery, round_no, tz, matrix)
    main_kw = sum(r.capacity_kw for r in registered.resources if r.kind in MAIN_KINDS)
    return PortfolioBid(bid, portfolio, unplanned, unregistered, float(main_kw))
