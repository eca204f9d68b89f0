"""The service EV charging delivered over a period: energy into cars, targets met, and the
energy banked in cars still plugged in at the period's ends.

A charging session is a car's stay: it arrives at some SOC with a target (the driver's
need) and leaves at some SOC. Two ways of running the chargers deliver the same service
when every car leaves with the same energy. Over a period ``[start, end)``:

* ``ev_energy_kwh``: energy put into the batteries of the cars that left during the period
  (their whole stay, net of V2G), battery side;
* ``ev_sessions``, ``ev_targets_met_pct`` (share of those cars that left at their target, to
  half a percentage point), ``ev_short_kwh`` (energy they lacked);
* ``ev_in_progress_start_kwh`` / ``ev_in_progress_end_kwh``: energy already put into cars
  plugged in at the start / still plugged in at the end. Like a battery's state of charge,
  the change between them is energy bought in the period for service after it (or before
  it): :mod:`cems.accounting.costs` prices it (``ev_in_progress`` line).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: SOC tolerance for "target met" (percentage points).
TARGET_TOLERANCE_PCT = 0.5


@dataclass(frozen=True)
class EvSession:
    """One car's stay, or its part so far: SOC (%) at arrival, now (or at departure) and
    its target, and the battery's capacity."""

    charger_id: str
    arrival_soc_pct: float
    soc_pct: float
    target_soc_pct: float
    capacity_kwh: float

    @property
    def energy_kwh(self) -> float:
        """Energy put into the battery since arrival (net of V2G), kWh."""
        return (self.soc_pct - self.arrival_soc_pct) / 100.0 * self.capacity_kwh

    @property
    def short_kwh(self) -> float:
        """Energy missing to the target, kWh (0 when met)."""
        return max(self.target_soc_pct - self.soc_pct, 0.0) / 100.0 * self.capacity_kwh

    @property
    def target_met(self) -> bool:
        return self.soc_pct >= self.target_soc_pct - TARGET_TOLERANCE_PCT


def ev_figures(departed: Iterable[EvSession], at_start: Iterable[EvSession] = (),
               at_end: Iterable[EvSession] = ()) -> dict[str, float | int | None]:
    """The period's EV figures from the sessions that ended in it and the snapshots of the
    sessions in progress at its start and at its end (see the module docstring)."""
    left = list(departed)
    met = sum(s.target_met for s in left)
    return {
        "ev_energy_kwh": round(sum(s.energy_kwh for s in left), 3),
        "ev_sessions": len(left),
        "ev_targets_met_pct": round(100.0 * met / len(left), 3) if left else None,
        "ev_short_kwh": round(sum(s.short_kwh for s in left), 3),
        "ev_in_progress_start_kwh": round(sum(s.energy_kwh for s in at_start), 3),
        "ev_in_progress_end_kwh": round(sum(s.energy_kwh for s in at_end), 3),
    }
