"""Site + inputs -> problem: default inputs, window and session mapping, example inputs."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cems.config import load_site
from cems.errors import InputError
from cems.planning import build_problem, default_inputs, horizon_index, read_inputs
from cems.planning.default_inputs import base_load, pv_clear_sky


@pytest.fixture(scope="module")
def sejong(sejong_site: Path):  # type: ignore[no-untyped-def]
    return load_site(sejong_site)


def test_horizon_is_local_midnight_in_15_min_steps(sejong) -> None:  # type: ignore[no-untyped-def]
    idx = horizon_index(sejong, "2026-07-15", 2)
    assert len(idx) == 2 * 96
    assert idx[0].isoformat() == "2026-07-15T00:00:00+09:00"
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        horizon_index(sejong, "2026-7-5", 1)


def test_default_pv_is_clear_sky_shaped_and_clipped(sejong) -> None:  # type: ignore[no-untyped-def]
    idx = horizon_index(sejong, "2026-07-15", 1)
    pv = pv_clear_sky(sejong, idx)
    # night (00:00-04:00 and 21:00-24:00 local): no sun in Sejong in July
    assert (pv[idx.hour < 4] == 0).all() and (pv[idx.hour >= 21] == 0).all()
    # never above the five inverters' AC limit (5 x 92 kW = 460 kW), and peak around noon
    assert pv.max() <= 460.0 + 1e-9
    assert 10 <= pv.idxmax().hour <= 13
    # 500 kWp under clear sky in July at 14 % losses: a plausible 2-4 MWh day (5.8 kWh/kWp
    # at most), i.e. well above zero and below 500 x 7 = 3500 kWh
    assert 1500 < pv.sum() * 0.25 < 3500


def test_default_load_matches_daily_energy(sejong) -> None:  # type: ignore[no-untyped-def]
    idx = horizon_index(sejong, "2026-07-15", 1)
    load = base_load(sejong, idx)
    # loads.base.daily_energy_kwh = 9000 -> sum of 96 quarter hours x 0.25 h = 9000 kWh
    assert load.sum() * 0.25 == pytest.approx(9000.0, rel=1e-9)
    assert load.min() > 0
    assert load.max() <= 900.0 + 1e-9  # never above peak_kw
    # evening peak (the typical day peaks at 19-21 h)
    assert 18 <= load.idxmax().hour <= 21


def test_default_load_of_a_short_horizon_is_a_slice_of_the_day(sejong) -> None:  # type: ignore[no-untyped-def]
    # A rolling 2-h plan must see the same kW as those 2 h of a whole-day forecast (the
    # scaling to peak_kw once used only the horizon's part of the shape).
    day = base_load(sejong, horizon_index(sejong, "2026-07-15", 1))
    for start in ("2026-07-15 03:00", "2026-07-15 12:15", "2026-07-15 19:30"):
        idx = pd.date_range(start, periods=8, freq="15min", tz="Asia/Seoul")
        np.testing.assert_allclose(base_load(sejong, idx).to_numpy(), day[idx].to_numpy(),
                                   rtol=1e-12)


def test_default_ev_sessions_and_deferrable_windows(sejong) -> None:  # type: ignore[no-untyped-def]
    idx = horizon_index(sejong, "2026-07-15", 1)
    inputs = default_inputs(sejong, idx)
    ev = inputs.ev_sessions
    # every charger: one session still plugged in from the night before, one arriving at
    # night -> 2 x 40 sessions; V2G exactly on the 10 bidirectional chargers
    assert len(ev) == 80
    bidir = {c.id for c in sejong.assets.ev_chargers if c.bidirectional}
    assert set(ev.loc[ev["v2g"], "charger_id"]) == bidir
    problem, notes = build_problem(sejong, _with_prices(inputs), idx)
    dhw = {d.id: d for d in problem.deferrable if d.id.startswith("heat-pump-dhw")}
    # window 22:00-06:00 (8 h, 120 kWh): yesterday's night covers 00:00-06:00 = 6/8 of it
    # -> 90 kWh in steps 0..23; tonight's covers 22:00-24:00 = 2/8 -> 30 kWh in steps 88..95
    assert dhw["heat-pump-dhw@0714"].energy_kwh == pytest.approx(90.0)
    assert (dhw["heat-pump-dhw@0714"].start_step, dhw["heat-pump-dhw@0714"].end_step) == (0, 24)
    assert dhw["heat-pump-dhw@0715"].energy_kwh == pytest.approx(30.0)
    assert (dhw["heat-pump-dhw@0715"].start_step, dhw["heat-pump-dhw@0715"].end_step) == (88, 96)
    laundry = next(d for d in problem.deferrable if d.id.startswith("laundry"))
    # 09:00-18:00 -> steps 36..72, one uninterrupted block
    assert (laundry.start_step, laundry.end_step, laundry.interruptible) == (36, 72, False)
    assert any("exports valued at 0" in n or "SMP" in n for n in notes)


def test_site_v2g_floor_and_billing_demand_reach_the_problem(sejong) -> None:  # type: ignore[no-untyped-def]
    idx = horizon_index(sejong, "2026-07-15", 1)
    inputs = _with_prices(default_inputs(sejong, idx))
    chargers = tuple(c.model_copy(update={"v2g_min_soc": 0.55,
                                          "v2g_degradation_krw_per_kwh": 25.0})
                     if c.id == "evc-01" else c for c in sejong.assets.ev_chargers)
    grid = sejong.site.grid.model_copy(update={"billing_demand_kw": 800.0})
    site = sejong.model_copy(update={
        "assets": sejong.assets.model_copy(update={"ev_chargers": chargers}),
        "site": sejong.site.model_copy(update={"grid": grid})})
    problem, notes = build_problem(site, inputs, idx)
    on_01 = [x for x in problem.ev_sessions if x.charger_id == "evc-01"]
    others = [x for x in problem.ev_sessions if x.charger_id != "evc-01"]
    assert on_01 and all((x.soc_min_v2g, x.v2g_degradation_krw_per_kwh) == (0.55, 25.0)
                         for x in on_01)
    assert all((x.soc_min_v2g, x.v2g_degradation_krw_per_kwh) == (0.3, 0.0) for x in others)
    # 30 % of the 1,500 kW contract is 450 kW; the site's billing demand 800 kW is higher
    plain, _ = build_problem(sejong, inputs, idx)
    assert plain.demand_charge is not None and plain.demand_charge.floor_kw == 450.0
    assert problem.demand_charge is not None and problem.demand_charge.floor_kw == 800.0
    assert any("billing demand 800 kW" in n for n in notes)


def _with_prices(inputs):  # type: ignore[no-untyped-def]
    inputs.timeseries["import_price_krw_per_kwh"] = 100.0
    return inputs


def test_example_inputs_are_reproducible(repo_root: Path, tmp_path: Path) -> None:
    # examples/make_example_inputs.py regenerates exactly the committed input folders
    proc = subprocess.run([sys.executable, str(repo_root / "examples/make_example_inputs.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    for name in ("sejong_5_1", "busan_eco_delta"):
        committed = repo_root / "examples" / name / "inputs"
        made = tmp_path / name / "inputs"
        files = sorted(p.name for p in committed.iterdir())
        assert files == sorted(p.name for p in made.iterdir())
        _match, mismatch, errors = filecmp.cmpfiles(committed, made, files, shallow=False)
        assert not mismatch and not errors, mismatch


def test_example_inputs_read_back(repo_root: Path, sejong) -> None:  # type: ignore[no-untyped-def]
    idx = horizon_index(sejong, "2026-07-15", 1)
    inputs = read_inputs(repo_root / "examples/sejong_5_1/inputs", idx)
    assert list(inputs.timeseries.index) == list(idx)
    assert len(inputs.dr_events) == 1
    problem, _ = build_problem(sejong, inputs, idx)
    ev = problem.dr_events[0]
    # 17:00-18:00 local -> steps 68..72 of a 15-min day
    assert (ev.start_step, ev.end_step, ev.hard) == (68, 72, False)
    # the committed inputs carry 일반용(갑)Ⅱ 고압A 선택Ⅱ summer light, 84.1 KRW/kWh, from 22 h
    assert np.all(problem.arrays["import_price"][idx.hour >= 22] == 84.1)
    assert isinstance(problem.index, pd.DatetimeIndex)
