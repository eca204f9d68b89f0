"""PV forecast scores by KPX's rule, for one resource or an aggregate, per day and rolling.

The hourly error is :func:`cems.markets.brokerage.forecast_errors` (the one place the rule's
formula lives: 규칙 제14.1.1조 ⑫, 제14.4.2조, 별표2 Ⅴ.1.가): |forecast − actual| / capacity ×
100 per hour, only hours whose capacity factor is at least 10 %, curtailed hours left out,
the mean of the two bid rounds. This module applies it to PV forecasts that are not (yet) a
bid: the whole PV of a site as one aggregate, or each array alone as its own main resource,
and sums days into the period means the registration and incentive tests use (Σ FER_t over
the evaluated hours / their number, 제14.3.2조 ②).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from cems.markets.brokerage import forecast_errors


@dataclass(frozen=True)
class DayScore:
    """One day's evaluation: Σ FER_t (%) over the evaluated hours and their number."""

    error_sum_pct: float
    evaluated_hours: int

    @property
    def mean_error_pct(self) -> float | None:
        """Mean hourly error of the day (None without an evaluated hour)."""
        return self.error_sum_pct / self.evaluated_hours if self.evaluated_hours else None


def score_day(capacity_kw: Mapping[str, float], round1_kwh: Mapping[str, np.ndarray],
              round2_kwh: Mapping[str, np.ndarray], actual_kwh: Mapping[str, np.ndarray],
              curtailed: Mapping[str, np.ndarray] | None = None) -> DayScore:
    """The KPX score of the resources named in ``capacity_kw`` taken together as main
    resources (24 hourly kWh per resource and round)."""
    ids = list(capacity_kw)
    cap = np.array([capacity_kw[i] for i in ids], dtype=float)
    ones = np.ones(len(ids), dtype=bool)
    r1 = np.array([np.asarray(round1_kwh[i], dtype=float) for i in ids])
    r2 = np.array([np.asarray(round2_kwh[i], dtype=float) for i in ids])
    actual = np.array([np.asarray(actual_kwh[i], dtype=float) for i in ids])
    cut = (np.array([np.asarray(curtailed[i], dtype=bool) for i in ids]) if curtailed
           else np.zeros_like(actual, dtype=bool))
    hours = forecast_errors(cap, ones, ~ones, (r1, r2), actual, cut, qualifies=False)
    errors = [h.error_pct for h in hours if h.error_pct is not None]
    return DayScore(float(sum(errors)), len(errors))


def score_resources(capacity_kw: Mapping[str, float], round1_kwh: Mapping[str, np.ndarray],
                    round2_kwh: Mapping[str, np.ndarray], actual_kwh: Mapping[str, np.ndarray],
                    curtailed: Mapping[str, np.ndarray] | None = None
                    ) -> dict[str, DayScore]:
    """Each resource alone, plus the aggregate under the key ``"aggregate"``."""
    out = {}
    for rid in capacity_kw:
        one = {rid: capacity_kw[rid]}
        out[rid] = score_day(one, round1_kwh, round2_kwh, actual_kwh,
                             {rid: curtailed[rid]} if curtailed else None)
    out["aggregate"] = score_day(capacity_kw, round1_kwh, round2_kwh, actual_kwh, curtailed)
    return out


def period_mean_pct(days: Iterable[DayScore]) -> float | None:
    """The period's mean: Σ FER_t over every evaluated hour / the number of hours."""
    total, hours = 0.0, 0
    for day in days:
        total += day.error_sum_pct
        hours += day.evaluated_hours
    return total / hours if hours else None


__all__ = ["DayScore", "period_mean_pct", "score_day", "score_resources"]
