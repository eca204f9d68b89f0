"""Small optimiser days shared by the tests: an 8-hour day with PV, a battery and a V2G
session (shifted by ``shift`` so that every input changes), and the same day with a fuel
cell whose heat meets a demand through a store, and a demand charge."""

from __future__ import annotations

import dataclasses

import numpy as np

from optimizer import (
    DemandCharge,
    DispatchProblem,
    EvCharger,
    EvSession,
    FuelCell,
    Grid,
    HeatSink,
    PvSource,
    Storage,
)


def mpc_day(shift: float) -> DispatchProblem:
    """PV, a battery and a V2G session over 8 hourly steps; ``shift`` moves every input."""
    t = np.arange(8)
    return DispatchProblem(
        n_steps=8, step_h=1.0, load_kw=20 + 5 * np.sin(t) + shift,
        grid=Grid(import_price_krw_per_kwh=100 + 20 * (t % 3) + shift,
                  export_price_krw_per_kwh=30),
        pv=(PvSource("pv", np.clip(15 * np.sin(t / 2.5), 0, None) + shift),),
        storage=(Storage("b", 40, 10, 10, soc_initial=0.3 + 0.05 * shift),),
        chargers=(EvCharger("c", 11, bidirectional=True, max_discharge_kw=7),),
        ev_sessions=(EvSession("s", "c", 2, 7, 60, 0.4, 0.6, v2g=True),))


def heated_day(shift: float) -> DispatchProblem:
    """:func:`mpc_day` with a fuel cell whose heat meets a demand through a store, and a
    demand charge."""
    t = np.arange(8)
    return dataclasses.replace(
        mpc_day(shift),
        fuel_cells=(FuelCell("fc", max_kw=12, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=60 + shift, heat_per_kwh=0.9,
                             heat_value_krw_per_kwh=50),),
        heat_sink=HeatSink(demand_kwh=4 + 3 * np.cos(t) + shift, storage_kwh=6 + shift,
                           initial_kwh=shift),
        demand_charge=DemandCharge(8000.0, t >= 2, floor_kw=5.0, month_fraction=(1 + shift) / 31))
