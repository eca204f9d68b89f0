"""Fuel cells as brokerage resources (kind ``fc``), worked by hand.

규칙 제1.1.2조 97호: 소규모전력자원 are the 신에너지 및 재생에너지 설비, ESS and EVs of
전기사업법 시행령 제1조의3, so a fuel cell (신에너지) up to 1,000 kW is one: paid its metered
energy at SMP and RECs at its weight like the others. It is not part of the 예측형
집합전력자원 (제14.1.1조 5호: 재생에너지 resources and ESS only) and 제14.2.1조 단서 excludes
plants running on 신에너지 from the 예측제도: neither main nor auxiliary, so it counts in
no capacity, forecast, actual or error and earns no incentive.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.bids import Bid
from cems.markets.brokerage import settle_day
from cems.markets.portfolio import Portfolio, Resource, read_portfolio, site_portfolio

DAY = date(2026, 7, 21)
TZ = "Asia/Seoul"


def test_fuel_cell_paid_energy_and_rec_but_outside_the_forecast_incentive() -> None:
    # 21 PV of 1,000 kW (REC 1.0) + fc-1 of 440 kW (REC weight 1.9 in the portfolio row)
    # PV: 500 kWh each at 12:00, forecast exactly (both rounds)
    # fc-1: 400 kWh in every hour, forecast 0 in round 1 and 440 in round 2
    # If fc-1 were an auxiliary resource, 12:00 would have FER_1 = |10,500 - 10,900| / 21,000
    # = 1.905 % and 03:00 none (CF 0); left out (제14.2.1조 단서), FER = 0 % at 12:00.
    pv = tuple(Resource(f"pv-{i:02d}", "s", "pv", 1000.0, "coop", 1.0) for i in range(21))
    fc = Resource("fc-1", "s", "fc", 440.0, "coop", 1.9)
    portfolio = Portfolio((*pv, fc))
    actual = np.zeros((22, 24))
    actual[:21, 12] = 500.0
    actual[21, :] = 400.0
    round1, round2 = actual.copy(), actual.copy()
    round1[21, :] = 0.0
    round2[21, :] = 440.0
    ids = tuple(portfolio.ids)
    result = settle_day(portfolio, (Bid(DAY, 1, TZ, ids, round1), Bid(DAY, 2, TZ, ids, round2)),
                        actual, np.zeros((22, 24), dtype=bool), np.full(24, 100.0),
                        rec_price_krw_per_kwh=70, fee_krw_per_kwh=5,
                        registered_from=date(2026, 7, 1))
    assert result.main_capacity_kw == 21_000.0  # the fuel cell adds no main capacity
    noon = result.hours[12]
    assert (noon.capacity_kwh, noon.actual_main_kwh) == (21_000.0, 10_500.0)
    assert noon.error_pct_rounds == (0.0, 0.0) and noon.error_pct == 0.0
    assert not result.hours[3].eligible  # fc output alone: CF 0 % (no main output)
    # IFP_t = 10,500 x 4 = 42,000 won, all to the PV: 2,000 each
    assert result.incentive_krw == 42_000
    by_id = {r.resource_id: r for r in result.resources}
    assert by_id["pv-00"].incentive_krw == 2_000
    # fc-1: 24 x 400 = 9,600 kWh; energy 9,600 x 100 = 960,000; REC 9,600 x 1.9 x 70 =
    # 1,276,800; fee 9,600 x 5 = 48,000; incentive 0 -> net 2,188,800
    cell = by_id["fc-1"]
    assert (cell.actual_kwh, cell.energy_krw, cell.rec_krw, cell.incentive_krw, cell.fee_krw) \
        == (9_600.0, 960_000, 1_276_800, 0, 48_000)
    assert cell.net_krw == 2_188_800


def test_fuel_cell_rows_in_a_portfolio_file(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("resource_id,site,kind,capacity_kw,owner,rec_weight\n"
                    "fc-1,s,FC,1000,coop,1.9\n", encoding="utf-8")
    portfolio = read_portfolio(path)
    assert portfolio.resources[0].kind == "fc" and portfolio.capacity_kw("fc") == 1000.0


SITE = """
schema_version: 1
site:
  id: fc-site
  name: Fuel-cell block
  latitude: 36.5
  longitude: 127.3
  grid: {contract_power_kw: 500, import_limit_kw: 500, export_limit_kw: 500,
         tariff_plan: general_b_high_a_2, meter: grid-meter}
assets:
  pv:
    - {id: pv-1, kwp: 50, tilt_deg: 15, azimuth_deg: 180, inverter_ac_kw: 45}
  fuel_cells:
    - {id: fc-1, min_kw: 100, max_kw: MAX, electrical_efficiency: 0.45,
       fuel_price_krw_per_kwh: 60}
meters:
  - {id: grid-meter, kind: grid}
brokerage:
  enabled: true
  resources: [pv-1, fc-1]
  rec_weight: 1.2
"""


def site(tmp_path: Path, max_kw: float) -> SiteConfig:
    data = yaml.safe_load(SITE.replace("MAX", str(max_kw)))
    # the model alone: the site checks (cems/config/checks.py) still refuse fuel cells as
    # brokerage resources; that rule belongs to the config code
    return SiteConfig.model_validate(data, context={"base_dir": tmp_path})


def test_site_portfolio_takes_a_fuel_cell(tmp_path: Path) -> None:
    portfolio = site_portfolio(site(tmp_path, 440))
    assert [(r.resource_id, r.kind, r.capacity_kw, r.rec_weight, r.owner)
            for r in portfolio.resources] == [("pv-1", "pv", 45.0, 1.2, "fc-site"),
                                              ("fc-1", "fc", 440.0, 0.0, "fc-site")]
    with pytest.raises(InputError, match=r"'fc-1': 1200 kW exceeds the 1,000 kW limit for a "
                                         r"small-scale fuel-cell resource"):
        site_portfolio(site(tmp_path, 1200))
