"""The demo's two simulated worlds, sampled the same way: powers, states of charge and the
cars' stays.

The controlled world is the Modbus simulator the runtime talks to; the baseline world is a
second twin of the same site with the same random draws and no control. Both are sampled
every :data:`SAMPLE_S` simulated seconds into a trace (one ``<device>_kw`` column per
device, ``<ess>_soc_pct`` per battery, and site totals for the chart), and each car's stay
is recorded as it ends, so :mod:`cems.accounting` can compare the worlds like for like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from cems.accounting.ev import EvSession
from cems.config.model import SiteConfig
from cems.runtime.clock import SteppedClock
from device_drivers.sim import SiteSimulator
from device_drivers.sim.physics import EvChargerModel
from device_drivers.sim.twin import Twin

#: Simulated seconds between samples of the traces.
SAMPLE_S = 60


def trace_row(config: SiteConfig, twin: Twin) -> dict[str, float]:
    """The world's instantaneous state: every device's power (``<id>_kw``; meters > 0
    import, ESS > 0 discharging, chargers > 0 charging), each battery's SOC, and the site
    totals the chart draws (``load_kw``, ``pv_kw``, ``ev_kw``, ``fc_kw``, ``ess_kw``)."""
    state = twin.state()
    row: dict[str, float] = {"load_kw": state["_site"]["base_load_kw"]}
    for name, values in state.items():
        if name != "_site" and "active_power_kw" in values:
            row[f"{name}_kw"] = values["active_power_kw"]
    a = config.assets
    row["pv_kw"] = sum(row.get(f"{p.id}_kw", 0.0) for p in a.pv)
    row["ev_kw"] = sum(row.get(f"{c.id}_kw", 0.0) for c in a.ev_chargers)
    row["fc_kw"] = sum(row.get(f"{f.id}_kw", 0.0) for f in a.fuel_cells)
    row["ess_kw"] = sum(row.get(f"{e.id}_kw", 0.0) for e in a.ess)
    stored = capacity = 0.0
    for ess in a.ess:
        if ess.id in state:
            row[f"{ess.id}_soc_pct"] = state[ess.id]["soc_pct"]
            stored += state[ess.id]["soc_pct"] * ess.capacity_kwh
            capacity += ess.capacity_kwh
    row["ess_soc_pct"] = stored / capacity if capacity else 0.0
    return row


@dataclass
class WorldRecord:
    """One world's trace and the cars' stays seen so far."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    departed: list[tuple[datetime, EvSession]] = field(default_factory=list)
    snapshots: dict[datetime, list[EvSession]] = field(default_factory=dict)

    def trace(self) -> pd.DataFrame:
        """The samples as a frame indexed by time."""
        return pd.DataFrame(self.rows).set_index("time")

    def sessions_between(self, start: datetime, end: datetime) -> list[EvSession]:
        """Stays that ended in ``(start, end]`` (recorded at the first sample after)."""
        return [s for when, s in self.departed if start < when <= end]


def _chargers(twin: Twin) -> dict[str, EvChargerModel]:
    return {name: m for name, m in twin.models.items() if isinstance(m, EvChargerModel)}


def _collect(record: WorldRecord, twin: Twin, when: datetime) -> None:
    for name, model in _chargers(twin).items():
        for arrival, final, target in model.departed:
            record.departed.append((when, EvSession(name, arrival, final, target,
                                                    model.battery_kwh)))
        model.departed.clear()


def _snapshot(twin: Twin) -> list[EvSession]:
    return [EvSession(name, m.arrival_soc_pct, m.ev_soc_pct, m.target_soc_pct, m.battery_kwh)
            for name, m in _chargers(twin).items() if m.connected]


class Recorder:
    """Steps the controlled and the baseline world together and samples both."""

    def __init__(self, config: SiteConfig, sim: SiteSimulator, baseline: Twin,
                 clock: SteppedClock, snapshot_times: tuple[datetime, ...] = ()) -> None:
        self.config, self.sim, self.baseline, self.clock = config, sim, baseline, clock
        self.controlled, self.uncontrolled = WorldRecord(), WorldRecord()
        self.snapshot_times = sorted(snapshot_times)
        self.next_sample = clock.now()

    def _sample(self, when: datetime) -> None:
        for record, twin in ((self.controlled, self.sim.twin), (self.uncontrolled,
                                                                self.baseline)):
            twin.advance_to(when)
            _collect(record, twin, when)
            if when in self.snapshot_times:
                record.snapshots[when] = _snapshot(twin)
            record.rows.append({"time": when, **trace_row(self.config, twin)})

    def advance_to(self, when: datetime) -> None:
        """Move both worlds to ``when``, sampling every sample time on the way."""
        while self.next_sample < when:  # samples at t are taken on the way past t
            self._sample(self.next_sample)
            self.next_sample += timedelta(seconds=SAMPLE_S)
        self.sim.advance_to(when)
        self.baseline.advance_to(when)
        self.clock.advance_to(when)

    def finish(self, end: datetime) -> None:
        """Take the last sample at ``end`` (stays ending at it, the end snapshot)."""
        if self.next_sample <= end:
            self.advance_to(end + timedelta(microseconds=1))
