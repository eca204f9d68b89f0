"""Brokerage settlement after the delivery day: forecast error, incentive, revenue, payouts.

Forecast error (재생에너지 발전량 예측제도, 규칙 제14.1.1조 11·12호, 제14.4.2조, 별표2 Ⅴ.1.가):

* Main resources (주요자원) are the PV resources; ESS are auxiliary (보조자원); EVs are not
  part of a 예측형 집합전력자원 (제14.1.1조 5호) and are left out of the error.
* A resource under curtailment (급전지시 등 출력제어) in an hour is left out of that hour:
  capacity, forecast and actual (제14.4.2조 ③ 3호, 4호).
* Capacity factor ``CF_t = MGOM_t / ICM_t × 100`` with ``ICM_t`` the capacity (kWh in one
  hour) of the main resources left in the hour; the hour is evaluated only if CF >= 10 %
  (제14.4.2조 ②; SVF flag in 별표2).
* Per round n: ``FER_n,t = |(FGM + FGA) - (MGOM + MGOA)| / ICM × 100`` (forecast minus actual
  of main plus auxiliary resources, over main capacity). The formula itself is an image
  missing from the stored text; this reading follows the variables 별표2 lists for it.
  ``FER_t`` is the mean of the two rounds.
* Price ``FP_t``: FER <= 6 % -> 4 KRW/kWh, 6 % < FER <= 8 % -> 3, else 0 (별표2 Ⅴ.1.가).
  It is paid on the main resources' actual energy of the hour (``IFP = MGOM × FP``), and
  only if the main resources exceed 20 MW (제14.1.1조 5호); otherwise every price is 0.
  JFPF (×0.5 for Jeju resources also in the 입찰제도) is not modelled.

Revenue per resource (this project's statement; KPX pays the broker): energy at SMP plus REC
(actual × REC weight × REC price) plus the resource's share of the incentive (its own
eligible actual energy × FP_t) minus the broker fee per kWh. Each line is rounded to whole won
(half up) and an owner's payout is the sum of the rounded lines of its resources, so the
totals add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from cems.markets.bids import Bid
from cems.markets.dr_settlement import round_won
from cems.markets.portfolio import HOURS, Portfolio

#: Main-resource capacity a 예측형 집합전력자원 must exceed (kW), 규칙 제14.1.1조 5호.
INCENTIVE_MIN_CAPACITY_KW = 20_000.0
MIN_CAPACITY_FACTOR_PCT = 10.0


def incentive_price_krw_per_kwh(error_pct: float) -> float:
    """FP for an hourly mean error (별표2 Ⅴ.1.가): <= 6 % -> 4, <= 8 % -> 3, else 0."""
    if error_pct <= 6.0:
        return 4.0
    if error_pct <= 8.0:
        return 3.0
    return 0.0


@dataclass(frozen=True)
class ErrorHour:
    """One hour of the forecast-error evaluation (0 = 00:00-01:00 local)."""

    hour: int
    capacity_kwh: float
    actual_main_kwh: float
    capacity_factor_pct: float | None
    eligible: bool
    error_pct_rounds: tuple[float, float] | None
    error_pct: float | None
    price_krw_per_kwh: float


def forecast_errors(
    capacity_kw: np.ndarray,
    is_main: np.ndarray,
    is_aux: np.ndarray,
    forecasts_kwh: tuple[np.ndarray, np.ndarray],
    actual_kwh: np.ndarray,
    curtailed: np.ndarray,
    *,
    qualifies: bool,
) -> list[ErrorHour]:
    """Evaluate each hour; arrays are (resources x 24) except ``capacity_kw``/``is_*`` (R,)."""
    active = ~curtailed
    main = active & is_main[:, None]
    aux = active & is_aux[:, None]
    counted = main | aux
    out = []
    for t in range(HOURS):
        capacity = float((capacity_kw * main[:, t]).sum())  # kW x 1 h
        actual_main = float((actual_kwh[:, t] * main[:, t]).sum())
        cf = actual_main / capacity * 100.0 if capacity > 0 else None
        eligible = cf is not None and cf >= MIN_CAPACITY_FACTOR_PCT
        rounds = None
        error = None
        price = 0.0
        if eligible:
            actual_all = float((actual_kwh[:, t] * counted[:, t]).sum())
            per_round = tuple(
                abs(float((f[:, t] * counted[:, t]).sum()) - actual_all) / capacity * 100.0
                for f in forecasts_kwh
            )
            rounds = (per_round[0], per_round[1])
            error = (rounds[0] + rounds[1]) / 2.0
            price = incentive_price_krw_per_kwh(error) if qualifies else 0.0
        out.append(ErrorHour(t, capacity, actual_main, cf, eligible, rounds, error, price))
    return out


@dataclass(frozen=True)
class ResourceRevenue:
    """One resource's day in whole won (``net = energy + rec + incentive - fee``)."""

    resource_id: str
    owner: str
    actual_kwh: float
    energy_krw: int
    rec_krw: int
    incentive_krw: int
    fee_krw: int

    @property
    def net_krw(self) -> int:
        """What the owner receives for this resource."""
        return self.energy_krw + self.rec_krw + self.incentive_krw - self.fee_krw


@dataclass(frozen=True)
class BrokerSettlement:
    """A settled delivery day."""

    delivery: date
    main_capacity_kw: float
    qualifies: bool
    hours: tuple[ErrorHour, ...]
    resources: tuple[ResourceRevenue, ...]

    @property
    def mean_error_pct(self) -> float | None:
        """Mean hourly error over the eligible hours (the 제14.3.4조 statistic for a day)."""
        values = [h.error_pct for h in self.hours if h.error_pct is not None]
        return sum(values) / len(values) if values else None

    @property
    def payouts_krw(self) -> dict[str, int]:
        """Net won per owner, owners in first-appearance order."""
        out: dict[str, int] = {}
        for r in self.resources:
            out[r.owner] = out.get(r.owner, 0) + r.net_krw
        return out

    @property
    def incentive_krw(self) -> int:
        """Forecast incentive of the day."""
        return sum(r.incentive_krw for r in self.resources)


def settle_day(
    portfolio: Portfolio,
    bids: tuple[Bid, Bid],
    actual_kwh: np.ndarray,
    curtailed: np.ndarray,
    smp_krw_per_kwh: np.ndarray,
    *,
    rec_price_krw_per_kwh: float,
    fee_krw_per_kwh: float,
) -> BrokerSettlement:
    """Settle one delivery day from the two round bids and the metered actuals."""
    kinds = np.array([r.kind for r in portfolio.resources])
    capacity = np.array([r.capacity_kw for r in portfolio.resources])
    is_main = kinds == "pv"
    main_capacity = float(capacity[is_main].sum())
    qualifies = main_capacity > INCENTIVE_MIN_CAPACITY_KW
    hours = forecast_errors(capacity, is_main, kinds == "ess",
                            (bids[0].forecast_kwh, bids[1].forecast_kwh), actual_kwh,
                            curtailed, qualifies=qualifies)
    price = np.array([h.price_krw_per_kwh for h in hours])
    paid_main = actual_kwh * (is_main[:, None] & ~curtailed)
    revenues = []
    for i, resource in enumerate(portfolio.resources):
        energy = float(actual_kwh[i].sum())
        revenues.append(ResourceRevenue(
            resource_id=resource.resource_id,
            owner=resource.owner,
            actual_kwh=energy,
            energy_krw=round_won(float((actual_kwh[i] * smp_krw_per_kwh).sum())),
            rec_krw=round_won(energy * resource.rec_weight * rec_price_krw_per_kwh),
            incentive_krw=round_won(float((paid_main[i] * price).sum())),
            fee_krw=round_won(energy * fee_krw_per_kwh),
        ))
    return BrokerSettlement(bids[0].delivery, main_capacity, qualifies, tuple(hours),
                            tuple(revenues))
