"""Regenerate the example input folders ``examples/*/inputs/`` (one summer weekday, 15 min).

Usage: ``python examples/make_example_inputs.py [OUT_ROOT]`` (default: the examples folder).

PV, base load and EV sessions come from :mod:`cems.planning.default_inputs`. Prices are
written as columns so the examples run without the tariffs package:

* ``import_price_krw_per_kwh``: the KEPCO summer weekday TOU bands in force from 2026
  (light 22-08 h, mid 08-15 h and 21-22 h, peak 15-21 h) at the summer 고압A 선택Ⅱ rates of
  the site's plan (일반용(갑)Ⅱ 84.1 / 135.3 / 157.8, 일반용(을) 87.3 / 140.2 / 222.3,
  산업용(을) 116.0 / 163.8 / 229.0 KRW/kWh; KEPCO 기본공급약관 별표1 and the 2026-06-01
  tariff table, as in tariffs/data), energy charge only (no VAT, fund, climate or fuel-cost
  adjustment);
* ``smp_krw_per_kwh``: an illustrative hourly SMP shape around the 2025 mainland mean
  (~118 KRW/kWh): lower at midday (solar), higher in the evening; not market data.

Sejong also gets one paid DR event (17:00-18:00, baseline 700 kW, 150 kW reduction at
1,300 KRW/kWh; illustrative).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cems.config import load_site  # noqa: E402
from cems.planning import default_inputs, horizon_index, write_inputs  # noqa: E402

DAY = "2026-07-15"  # a Wednesday in summer
RATES = {"general_a2_high_a_2": (84.1, 135.3, 157.8),
         "general_b_high_a_2": (87.3, 140.2, 222.3),
         "industrial_b_high_a_2": (116.0, 163.8, 229.0)}
BANDS = "LLLLLLLLMMMMMMMPPPPPPMLL"  # hour 0..23, summer weekday, 2026 table
SMP_BY_HOUR = (112, 108, 105, 104, 104, 107, 113, 120, 122, 118, 108, 98,
               95, 96, 100, 110, 124, 136, 142, 140, 134, 126, 120, 116)


def make(site_dir: Path, out_root: Path) -> Path:
    config = load_site(site_dir / "site.yaml")
    index = horizon_index(config, DAY, 1)
    inputs = default_inputs(config, index)
    light, mid, peak = RATES[config.site.grid.tariff_plan]
    band = np.array([BANDS[h] for h in index.hour])
    inputs.timeseries["import_price_krw_per_kwh"] = np.select(
        [band == "L", band == "M"], [light, mid], peak)
    inputs.timeseries["smp_krw_per_kwh"] = np.array([SMP_BY_HOUR[h] for h in index.hour],
                                                    dtype=float)
    if config.site.id.startswith("sejong"):
        tz = config.site.timezone
        inputs.dr_events = pd.DataFrame({
            "start": [pd.Timestamp(f"{DAY} 17:00", tz=tz)],
            "end": [pd.Timestamp(f"{DAY} 18:00", tz=tz)],
            "baseline_kw": [700.0], "reduction_kw": [150.0], "price_krw_per_kwh": [1300.0],
            "mode": ["soft"]})
    out = out_root / site_dir.name / "inputs"
    write_inputs(inputs, out)
    return out


def main() -> None:
    out_root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples"
    for name in ("sejong_5_1", "busan_eco_delta"):
        print(make(ROOT / "examples" / name, out_root))


if __name__ == "__main__":
    main()
