"""Brokerage settlement after the delivery day: forecast error, incentive, revenue, payouts.

Resources (규칙 제1.1.2조 97호, 제14.1.1조 5·9·10호, 제14.2.1조):

* Small-scale resources (소규모전력자원) are new and renewable energy plants (신에너지 및
  재생에너지 설비), ESS and EVs. The portfolio kinds: ``pv``, ``ess``, ``ev`` and ``fc``
  (fuel cell, 신에너지). All are paid their metered energy at SMP and RECs at their weight.
* The forecast incentive (재생에너지 발전량 예측제도) concerns only the 예측형 집합전력자원,
  made of small renewable resources and ESS (제14.1.1조 5호): PV resources are its main
  resources (주요자원, 9호), ESS auxiliary (보조자원, 10호). EVs are not part of it (5호), nor
  are fuel cells: 제14.2.1조 단서 excludes plants running on 신에너지 from the 예측제도, and a
  fuel cell is not a 소규모재생전력자원 either. Both are left out of the capacity, the
  forecast, the actual, the error and the incentive.

Forecast error (제14.4.2조, 별표2 Ⅴ.1.가) per hour ``t``, with 별표8 7.1.7-7.1.9 rounding:

* A resource under curtailment (급전지시 등 출력제어) in an hour is left out of that hour:
  capacity, forecast and actual (제14.4.2조 ③ 3호, 4호).
* ``ICM_t``: capacity of the main resources left in the hour, whole kW (7.1.8).
  ``MGOM_t``, ``MGOA_t``, ``FGM_n,t``, ``FGA_n,t``: the main / auxiliary resources' actual and
  round-n forecast energy of the hour, each summed over the resources, then whole kWh (7.1.9).
* ``CF_t = MGOM_t / ICM_t × 100`` to 0.001 % (7.1.7); the hour is evaluated only if
  CF >= 10 % (제14.4.2조 ②; SVF in 별표2).
* ``FER_n,t = |(FGM_n,t + FGA_n,t) - (MGOM_t + MGOA_t)| / ICM_t × 100`` per round, and the
  hour's ``FER_t`` = the mean of the two rounds, rounded to 0.001 % (7.1.7 names the
  "시간대별 오차율(FER)", the hourly mean; the per-round values are kept exact and only shown
  to 0.001 %). The formula itself is an image missing from the stored text; this reading
  follows the variables 별표2 lists for it and 제14.1.1조 12호 (forecast minus traded energy
  of the 보유자원, over main capacity).
* ``FP_t``: FER <= 6 % -> 4 KRW/kWh, 6 % < FER <= 8 % -> 3, else 0 (별표2 Ⅴ.1.가).
  ``IFP_t = MGOM_t × FP_t`` (별표2; its ×1,000 turns MWh into kWh), whole won per hour
  (7.1.3), paid only when the aggregate is a registered 대상자원 (:func:`incentive_eligibility`)
  and its main resources exceed 20 MW (제14.1.1조 5호). ``IFP_d = Σ IFP_t``. JFPF (×0.5 for
  Jeju resources in the 입찰제도) is not modelled.
* 7.1.4 cuts the *claimed amount* (청구금액) of the 예측제도정산금 below 10 won; the
  incentive is claimed once a month (제14.5.5.8조 ①), so the cut applies to the month's
  claim (:func:`forecast_claim_krw`), not to each day.

Revenue per resource (this project's statement; KPX pays the broker): energy at SMP, rounded
to the won per resource and hour (7.1.3; SMP to 0.01 KRW/kWh, 7.1.1; metered energy to the
Wh, 7.1.2), plus REC (day's energy × REC weight × REC price), plus the resource's share of
``IFP_d`` (pro rata to its paid energy × price in each hour, whole won by largest remainder so
the shares add up to ``IFP_d`` exactly), minus the broker fee per kWh. REC and fee are rounded
to whole won per resource and day. An owner's payout is the sum of the rounded lines of its
resources, so the totals add up exactly. Every won rounding is :func:`cems.accounting.round_won`
(half away from zero, 별표8 "반올림").

Eligibility over time (제14.3.1조-제14.3.5조): see :func:`incentive_eligibility`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from cems.accounting import round_won
from cems.errors import InputError
from cems.markets.bids import Bid
from cems.markets.portfolio import HOURS, Portfolio
from tariffs.money import truncate_10_won

#: Main-resource capacity a 예측형 집합전력자원 must exceed (kW), 규칙 제14.1.1조 5호.
INCENTIVE_MIN_CAPACITY_KW = 20_000.0
#: Capacity factor from which an hour is evaluated (%), 제14.4.2조 ②.
MIN_CAPACITY_FACTOR_PCT = 10.0
#: Largest mean error that passes the registration test or extends it (%), 제14.3.2조 ②,
#: 제14.3.4조 ②.
MAX_MEAN_ERROR_PCT = Decimal(10)
#: Hours with main capacity <= 20 MW after which a registration test is void, 제14.3.1조 단서.
MAX_LOW_CAPACITY_HOURS = 168
#: Months a registration lasts before it is re-evaluated, 제14.3.4조 ①.
REGISTRATION_MONTHS = 3
#: Kinds in the 예측형 집합전력자원 (제14.1.1조 5·9·10호).
MAIN_KINDS = ("pv",)
AUX_KINDS = ("ess",)

_KWH = Decimal(1)
_WH = Decimal("0.001")
_PCT = Decimal("0.001")
_PRICE = Decimal("0.01")


# -- rounding (규칙 별표8 7.1) ----------------------------------------------------------

def _decimal(value: float | Decimal | Fraction) -> Decimal:
    """The decimal a float prints as (what the input file said), or an exact ratio."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, Fraction):
        return Decimal(value.numerator) / Decimal(value.denominator)
    return Decimal(repr(float(value)))


def _half_up(value: Decimal | Fraction, step: Decimal) -> Decimal:
    """Round to a multiple of ``step``, halves away from zero (반올림)."""
    if isinstance(value, Fraction):
        scaled = value / Fraction(step)
        whole = (abs(scaled.numerator) * 2 + scaled.denominator) // (2 * scaled.denominator)
        return (whole if scaled >= 0 else -whole) * step
    return value.quantize(step, rounding=ROUND_HALF_UP)


def to_kwh(value: float | Decimal) -> Decimal:
    """Energy of the 예측제도 (FGM, MGOM, FGA, MGOA) and capacity ICM in whole kWh / kW: MWh
    or MW rounded half up at the fourth decimal (규칙 별표8 7.1.8, 7.1.9)."""
    return _half_up(_decimal(value), _KWH)


def to_wh(value: float | Decimal) -> Decimal:
    """Metered energy (MGO) in kWh to the Wh: MWh rounded half up at the seventh decimal
    (규칙 별표8 7.1.2)."""
    return _half_up(_decimal(value), _WH)


def to_pct(value: Decimal | Fraction) -> Decimal:
    """FER and CF to 0.001 %: rounded half up at the fourth decimal (규칙 별표8 7.1.7)."""
    return _half_up(value if isinstance(value, Fraction) else _decimal(value), _PCT)


def to_price(value: float | Decimal) -> Decimal:
    """SMP in KRW/kWh to 0.01: rounded half up at the third decimal (규칙 별표8 7.1.1)."""
    return _half_up(_decimal(value), _PRICE)


def forecast_claim_krw(daily_incentive_krw: Iterable[int]) -> int:
    """The month's claim of the 예측제도정산금 (제14.5.5.8조 ①: one claim per trading
    month): the days' ``IFP_d`` summed and cut below 10 won (국고단수계산법, 규칙 별표8
    7.1.4)."""
    return truncate_10_won(Decimal(sum(int(v) for v in daily_incentive_krw)))


def incentive_price_krw_per_kwh(error_pct: float | Decimal) -> float:
    """FP for an hourly mean error (별표2 Ⅴ.1.가): <= 6 % -> 4, <= 8 % -> 3, else 0."""
    error = _decimal(error_pct)
    if error <= 6:
        return 4.0
    if error <= 8:
        return 3.0
    return 0.0


# -- one day's forecast error ------------------------------------------------------------

@dataclass(frozen=True)
class ErrorHour:
    """One hour of the forecast-error evaluation (0 = 00:00-01:00 local).

    ``capacity_kwh`` is ICM before the CF flag (the main capacity left after curtailment,
    whole kW); ``actual_main_kwh`` is MGOM (whole kWh); ``incentive_krw`` is IFP_t."""

    hour: int
    capacity_kwh: float
    actual_main_kwh: float
    capacity_factor_pct: float | None
    eligible: bool
    error_pct_rounds: tuple[float, float] | None
    error_pct: float | None
    price_krw_per_kwh: float
    incentive_krw: int = 0

    @property
    def low_capacity(self) -> bool:
        """Main capacity at or below 20 MW in this hour (제14.3.1조 단서 counts these)."""
        return self.capacity_kwh <= INCENTIVE_MIN_CAPACITY_KW


def _sum_kwh(values: np.ndarray, mask: np.ndarray) -> Decimal:
    """Σ of the masked values as exact decimals, then whole kWh (별표8 7.1.9)."""
    return to_kwh(sum((_decimal(v) for v, m in zip(values, mask, strict=True) if m),
                      Decimal(0)))


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
    """Evaluate each hour; arrays are (resources x 24) except ``capacity_kw``/``is_*`` (R,).
    Prices and IFP_t are 0 unless ``qualifies`` (registered and above 20 MW)."""
    active = ~curtailed
    main = active & is_main[:, None]
    aux = active & is_aux[:, None]
    out = []
    for t in range(HOURS):
        icm = _sum_kwh(capacity_kw, main[:, t])  # kW x 1 h, whole kW (7.1.8)
        mgom = _sum_kwh(actual_kwh[:, t], main[:, t])
        cf = to_pct(Fraction(mgom) / Fraction(icm) * 100) if icm > 0 else None
        eligible = cf is not None and cf >= MIN_CAPACITY_FACTOR_PCT
        rounds = None
        error = None
        price = 0.0
        ifp = 0
        if eligible:
            actual_all = mgom + _sum_kwh(actual_kwh[:, t], aux[:, t])
            per_round = [  # exact: 7.1.7 rounds the hour's FER, not each round's
                Fraction(abs(_sum_kwh(f[:, t], main[:, t]) + _sum_kwh(f[:, t], aux[:, t])
                             - actual_all)) / Fraction(icm) * 100
                for f in forecasts_kwh
            ]
            mean = to_pct((per_round[0] + per_round[1]) / 2)
            rounds = (float(to_pct(per_round[0])), float(to_pct(per_round[1])))  # shown
            error = float(mean)
            if qualifies:
                price = incentive_price_krw_per_kwh(mean)
                ifp = round_won(mgom * _decimal(price))  # whole won per hour (7.1.3)
        out.append(ErrorHour(t, float(icm), float(mgom), None if cf is None else float(cf),
                             eligible, rounds, error, price, ifp))
    return out


# -- eligibility over time (제14.3.1조-제14.3.5조) -----------------------------------------

@dataclass(frozen=True)
class DayErrors:
    """One settled delivery day's evaluation, what the eligibility rules need of it.

    ``error_pct_hours``: FER_t of each hour (0.001 %), ``None`` where the hour was not
    evaluated (CF < 10 %); ``low_capacity_hours``: hours with main capacity <= 20 MW."""

    delivery: date
    error_pct_hours: tuple[Decimal | None, ...]
    low_capacity_hours: int

    @property
    def error_sum_pct(self) -> Decimal:
        """Σ FER_t over the evaluated hours."""
        return sum((e for e in self.error_pct_hours if e is not None), Decimal(0))

    @property
    def evaluated_hours(self) -> int:
        """Hours with CF >= 10 %."""
        return sum(1 for e in self.error_pct_hours if e is not None)

    @classmethod
    def from_record(cls, delivery: date, record: Mapping[str, Any]) -> DayErrors:
        """Read back the ``forecast`` record :meth:`BrokerSettlement.forecast_record` wrote."""
        hours = record.get("error_pct_hours")
        if not isinstance(hours, list) or len(hours) != HOURS:
            raise InputError(f"stored brokerage day {delivery}: forecast record needs 24 "
                             "error_pct_hours")
        return cls(delivery, tuple(None if v is None else _decimal(v) for v in hours),
                   int(record.get("low_capacity_hours", 0)))


@dataclass(frozen=True)
class PeriodErrors:
    """The evaluation of whole months ``first`` .. ``last`` (inclusive) from the history.

    The mean error is the arithmetic mean of FER_t over every hour of the period with
    CF >= 10 % (제14.3.2조 ②, 제14.3.4조 ②): Σ FER_t / number of such hours, each hour
    counting once whatever its energy (not a mean of daily or monthly means)."""

    first: date
    last: date
    missing: tuple[date, ...]
    error_sum_pct: Decimal
    evaluated_hours: int
    low_capacity_hours: int

    @property
    def mean_error_pct(self) -> Decimal | None:
        """The period's mean error (exact), ``None`` without an evaluated hour."""
        if not self.evaluated_hours:
            return None
        return self.error_sum_pct / self.evaluated_hours

    @property
    def within_limit(self) -> bool:
        """Mean error <= 10 % (compared exactly: Σ FER <= 10 × hours)."""
        return (self.evaluated_hours > 0
                and self.error_sum_pct <= MAX_MEAN_ERROR_PCT * self.evaluated_hours)

    def describe(self) -> str:
        """'mean error 5.123 % over 250 hours' (the mean shown to 0.001 %)."""
        mean = self.mean_error_pct
        if mean is None:
            return "no hour with CF >= 10 %"
        return f"mean error {to_pct(mean)} % over {self.evaluated_hours} hours"


@dataclass(frozen=True)
class IncentiveEligibility:
    """Whether the forecast incentive applies on a delivery day, and why.

    ``status``: ``registered`` (applies), ``not_registered``, ``awaiting_registration``,
    ``deregistered``, ``undetermined`` (history incomplete), ``too_small`` (main capacity
    not above 20 MW, set by :func:`settle_day`)."""

    applies: bool
    status: str
    reason: str
    period: tuple[date, date] | None = None  # the registration period holding the day


def _month(day: date) -> int:
    return day.year * 12 + day.month - 1


def _first(month: int) -> date:
    return date(month // 12, month % 12 + 1, 1)


def _last(month: int) -> date:
    return _first(month + 1) - timedelta(days=1)


def _label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def _span(first: int, end: int) -> str:
    return _label(first) if end == first + 1 else f"{_label(first)}..{_label(end - 1)}"


def period_errors(history: Mapping[date, DayErrors], first_month: int,
                  end_month: int) -> PeriodErrors:
    """Aggregate the months ``[first_month, end_month)`` (month numbers year × 12 + m - 1)."""
    first, last = _first(first_month), _last(end_month - 1)
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    present = [history[d] for d in days if d in history]
    return PeriodErrors(
        first, last, tuple(d for d in days if d not in history),
        sum((d.error_sum_pct for d in present), Decimal(0)),
        sum(d.evaluated_hours for d in present),
        sum(d.low_capacity_hours for d in present),
    )


def _missing(period: PeriodErrors) -> str:
    days = period.missing
    return (f"{len(days)} day(s) not settled ({days[0]}"
            f"{'' if len(days) == 1 else f' .. {days[-1]}'})")


def _test(history: Mapping[date, DayErrors], month: int) -> tuple[bool, str]:
    """The registration test of one month (제14.3.1조, 제14.3.2조 ②)."""
    period = period_errors(history, month, month + 1)
    name = f"registration test {_label(month)}"
    if period.missing:
        return False, f"{name} cannot pass: {_missing(period)}"
    if period.low_capacity_hours > MAX_LOW_CAPACITY_HOURS:
        return False, (f"{name} void: main capacity <= 20 MW in {period.low_capacity_hours} "
                       f"hours > {MAX_LOW_CAPACITY_HOURS} (제14.3.1조 단서)")
    if not period.within_limit:
        return False, f"{name} failed: {period.describe()}, above 10 % (제14.3.2조 ②)"
    return True, f"{name} passed: {period.describe()} <= 10 % (제14.3.2조 ②)"


def incentive_eligibility(day: date, history: Iterable[DayErrors], *,
                          registered_from: date | None = None) -> IncentiveEligibility:
    """Whether the aggregate is a registered 대상자원 on ``day`` (제14.3.1조-제14.3.5조).

    ``history``: the settled days before ``day`` (later days are ignored). The rules, read
    on the earliest timeline they allow (the broker applies for each test and registration
    as soon as it may):

    * Registration test (제14.3.1조, 제14.3.2조 ②): every calendar month in which the
      aggregate is not registered is a test month. It passes when every day of it is in
      the history, main capacity was <= 20 MW in at most 168 hours (제14.3.1조 단서), and
      the mean error (:class:`PeriodErrors`) is <= 10 %. The result is notified within the
      next month and the registration starts on the 1st of the month after the application
      (제14.3.3조 ②), so a test passed in month M registers the aggregate from M+2 (M+1:
      ``awaiting_registration``).
    * A registration lasts 3 months (제14.3.4조 ①). At its end the mean error of those 3
      months decides (제14.3.4조 ②): <= 10 % extends it by 3 months; above it deregisters
      the aggregate: nothing is paid from the expiry to the announcement of the mean,
      modelled as the whole following month (제14.3.5조 ①, ``deregistered``), and it must
      pass a new test (제14.3.5조 ④) from the month after that. A period with a day missing
      from the history cannot be evaluated (``undetermined``).
    * ``registered_from`` (the 등록자격 시작일 KPX notified, a 1st of a month) replaces the
      test: the first period starts then and the history before it is not used.
    """
    by_day = {d.delivery: d for d in history if d.delivery < day}
    target = _month(day)
    if registered_from is not None:
        if registered_from.day != 1:
            raise InputError(f"registration start {registered_from} must be the 1st of a month "
                             "(규칙 제14.3.3조 ②)")
        start = _month(registered_from)
        if target < start:
            return IncentiveEligibility(False, "not_registered",
                                        f"before the registration start {registered_from}")
        registered: int | None = start
        basis = "registration start declared"
        testing = 0
    else:
        if not by_day:
            return IncentiveEligibility(
                False, "not_registered",
                "no registered 대상자원: no settled month in the history to pass the "
                "registration test (제14.3.1조); settle every day with the store, or declare "
                "the registration start")
        registered = None
        basis = ""
        testing = _month(min(by_day))
    note = ""
    while True:
        if registered is None:
            if testing >= target:
                return IncentiveEligibility(
                    False, "not_registered",
                    f"not registered: {note or 'no registration test passed yet'}; "
                    f"{_label(target)} can be a test month (제14.3.1조)")
            passed, note = _test(by_day, testing)
            if not passed:
                testing += 1
                continue
            if testing + 2 > target:
                return IncentiveEligibility(
                    False, "awaiting_registration",
                    f"{note}; registered from {_first(testing + 2)} at the earliest "
                    "(notice within the next month, 제14.3.2조 ②; start on the 1st after "
                    "the application, 제14.3.3조 ②)")
            registered, basis = testing + 2, note
        end = registered + REGISTRATION_MONTHS
        if target < end:
            return IncentiveEligibility(
                True, "registered",
                f"registered {_first(registered)} to {_last(end - 1)} ({basis})",
                (_first(registered), _last(end - 1)))
        period = period_errors(by_day, registered, end)
        span = _span(registered, end)
        if period.missing:
            return IncentiveEligibility(
                False, "undetermined",
                f"registration {_first(registered)} to {_last(end - 1)} cannot be re-evaluated "
                f"(제14.3.4조 ②): {_missing(period)}; settle them first")
        if period.within_limit:
            basis = f"extended: {span} {period.describe()} <= 10 % (제14.3.4조 ②)"
            registered = end
            continue
        note = (f"deregistered: {span} {period.describe()}, above 10 % (제14.3.5조 ①)")
        if target == end:
            return IncentiveEligibility(
                False, "deregistered",
                f"{note}; no payment from the expiry to the announcement of the mean; a new "
                "registration test is needed (제14.3.5조 ④)")
        registered, testing = None, end + 1


# -- the day's settlement ------------------------------------------------------------------

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
    incentive_status: str = "registered"
    incentive_reason: str = ""

    @property
    def day_errors(self) -> DayErrors:
        """The day's evaluation as the eligibility rules use it."""
        return DayErrors(
            self.delivery,
            tuple(None if h.error_pct is None else _decimal(h.error_pct) for h in self.hours),
            sum(1 for h in self.hours if h.low_capacity))

    @property
    def evaluated_hours(self) -> int:
        """Hours with CF >= 10 %."""
        return self.day_errors.evaluated_hours

    @property
    def mean_error_pct(self) -> float | None:
        """Mean FER_t over the evaluated hours (the 제14.3.2조 ② statistic for one day),
        to 0.001 %."""
        errors = self.day_errors
        if not errors.evaluated_hours:
            return None
        return float(to_pct(errors.error_sum_pct / errors.evaluated_hours))

    @property
    def low_capacity_hours(self) -> int:
        """Hours with main capacity <= 20 MW (제14.3.1조 단서)."""
        return self.day_errors.low_capacity_hours

    @property
    def payouts_krw(self) -> dict[str, int]:
        """Net won per owner, owners in first-appearance order."""
        out: dict[str, int] = {}
        for r in self.resources:
            out[r.owner] = out.get(r.owner, 0) + r.net_krw
        return out

    @property
    def incentive_krw(self) -> int:
        """Forecast incentive of the day, IFP_d."""
        return sum(r.incentive_krw for r in self.resources)

    def forecast_record(self) -> dict[str, Any]:
        """The day's evaluation and decision as stored with each settlement row
        (read back by :meth:`DayErrors.from_record`)."""
        return {
            "main_capacity_kw": self.main_capacity_kw,
            "error_pct_hours": [h.error_pct for h in self.hours],
            "evaluated_hours": self.evaluated_hours,
            "mean_error_pct": self.mean_error_pct,
            "low_capacity_hours": self.low_capacity_hours,
            "incentive_applies": self.qualifies,
            "incentive_status": self.incentive_status,
            "incentive_reason": self.incentive_reason,
            "incentive_krw": self.incentive_krw,
        }


def allocate_won(total: int, weights: Sequence[Fraction]) -> list[int]:
    """Split ``total`` won pro rata to ``weights`` (>= 0): each share floored, the won left
    go one each to the largest remainders (ties: first in order). Sums to ``total``."""
    whole = sum(weights, Fraction(0))
    if total == 0 or whole == 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    shares = [int(x.numerator // x.denominator) for x in exact]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def settle_day(
    portfolio: Portfolio,
    bids: tuple[Bid, Bid],
    actual_kwh: np.ndarray,
    curtailed: np.ndarray,
    smp_krw_per_kwh: np.ndarray,
    *,
    rec_price_krw_per_kwh: float,
    fee_krw_per_kwh: float,
    history: Iterable[DayErrors] = (),
    registered_from: date | None = None,
) -> BrokerSettlement:
    """Settle one delivery day from the two round bids (the valid submissions, 제14.4.1조 ②)
    and each resource's metered traded energy (``actual_kwh``, resources x 24 in portfolio
    order, wherever it was read from) with its curtailment flags.

    The incentive applies when the main resources exceed 20 MW and
    :func:`incentive_eligibility` finds the aggregate registered on the day, from
    ``history`` (the earlier settled days) and ``registered_from``."""
    delivery = bids[0].delivery
    kinds = np.array([r.kind for r in portfolio.resources])
    capacity = np.array([r.capacity_kw for r in portfolio.resources])
    is_main = np.isin(kinds, MAIN_KINDS)
    main_capacity = float(capacity[is_main].sum())
    eligibility = incentive_eligibility(delivery, history, registered_from=registered_from)
    if main_capacity <= INCENTIVE_MIN_CAPACITY_KW:
        status, reason, qualifies = "too_small", (
            f"main (PV) capacity {main_capacity:,.0f} kW is not above 20 MW "
            "(제14.1.1조 5호)"), False
    else:
        status, reason, qualifies = (eligibility.status, eligibility.reason,
                                     eligibility.applies)
    hours = forecast_errors(capacity, is_main, np.isin(kinds, AUX_KINDS),
                            (bids[0].forecast_kwh, bids[1].forecast_kwh), actual_kwh,
                            curtailed, qualifies=qualifies)
    # each resource's weight in IFP_d: Σ_t IFP_t × its share of the hour's paid main energy
    paid = is_main[:, None] & ~curtailed
    weights = [Fraction(0)] * len(portfolio.resources)
    for h in hours:
        if not h.incentive_krw:
            continue
        energy = [Fraction(_decimal(actual_kwh[i, h.hour])) if paid[i, h.hour] else Fraction(0)
                  for i in range(len(portfolio.resources))]
        hour_total = sum(energy, Fraction(0))
        if hour_total:
            weights = [w + h.incentive_krw * e / hour_total
                       for w, e in zip(weights, energy, strict=True)]
    incentive = allocate_won(sum(h.incentive_krw for h in hours), weights)
    smp = [to_price(v) for v in smp_krw_per_kwh]
    rec_price = _decimal(rec_price_krw_per_kwh)
    fee = _decimal(fee_krw_per_kwh)
    revenues = []
    for i, resource in enumerate(portfolio.resources):
        metered = [to_wh(v) for v in actual_kwh[i]]
        energy = sum(metered, Decimal(0))
        revenues.append(ResourceRevenue(
            resource_id=resource.resource_id,
            owner=resource.owner,
            actual_kwh=float(energy),
            energy_krw=sum(round_won(e * p) for e, p in zip(metered, smp, strict=True)),
            rec_krw=round_won(energy * _decimal(resource.rec_weight) * rec_price),
            incentive_krw=incentive[i],
            fee_krw=round_won(energy * fee),
        ))
    return BrokerSettlement(delivery, main_capacity, qualifies, tuple(hours), tuple(revenues),
                            status, reason)
