"""Benchmark the tariff engine: a year of 15-minute prices, and 12 monthly bills x 1,000 homes.

Run from the repository root: ``python benchmarks/tariff_bench.py [--households N]``.
Prints wall-clock figures (median of repeats) and ratios; no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tariffs


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_prices(repeats: int) -> None:
    index = pd.date_range("2026-01-01", "2027-01-01", freq="15min", tz="Asia/Seoul",
                          inclusive="left")
    tariffs.energy_price_series("industrial_b_high_a_2", index[:96])  # load data files once
    for plan in ("industrial_b_high_a_2", "general_b_high_a_2", "residential_low"):
        t_price = _median_seconds(lambda p=plan: tariffs.energy_price_series(p, index), repeats)
        t_label = _median_seconds(lambda p=plan: tariffs.period_labels(p, index), repeats)
        print(f"year of 15-min prices, {plan:<22} {len(index):>6} steps: "
              f"{t_price * 1000:7.1f} ms ({len(index) / t_price / 1e6:5.2f} M steps/s); "
              f"labels {t_label * 1000:7.1f} ms; {t_price:.1%} of the 1 s budget")


def _household_year(rng: np.random.Generator, index: pd.DatetimeIndex) -> pd.DataFrame:
    hours = index.hour.to_numpy()
    evening = np.where((hours >= 18) & (hours <= 22), 0.6, 0.25)
    load = rng.gamma(2.0, evening / 2.0)
    pv = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * rng.uniform(0.0, 1.2)
    return pd.DataFrame({"import_kwh": np.clip(load - pv, 0, None),
                         "export_kwh": np.clip(pv - load, 0, None)}, index=index)


def bench_households(households: int) -> None:
    index = pd.date_range("2025-07-01", "2026-07-01", freq="1h", tz="Asia/Seoul",
                          inclusive="left")
    rng = np.random.default_rng(7)
    data = [_household_year(rng, index) for _ in range(households)]
    start = time.perf_counter()
    total = 0
    for frame in data:
        total += sum(b.total_krw for b in tariffs.bills("residential_low", frame))
    elapsed = time.perf_counter() - start
    n = households * 12
    print(f"{households} households x 12 months (hourly data, residential_low, PV netting): "
          f"{elapsed:6.2f} s, {n / elapsed:7.0f} bills/s, {elapsed / n * 1000:5.2f} ms/bill; "
          f"sum of bills {total:,} KRW")
    print(f"  ratio: one household-year ({12} bills) = {elapsed / households * 1000:5.1f} ms")


def bench_tou_year(repeats: int) -> None:
    index = pd.date_range("2025-07-01", "2026-07-01", freq="15min", tz="Asia/Seoul",
                          inclusive="left")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"import_kwh": rng.uniform(20, 120, len(index))}, index=index)
    t = _median_seconds(lambda: tariffs.bills("general_b_high_a_2", frame, contract_kw=500),
                        repeats)
    print(f"12 monthly bills of one 일반용(을) customer, 15-min data ({len(index)} rows): "
          f"{t * 1000:7.1f} ms ({t / 12 * 1000:5.1f} ms/bill)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    bench_prices(args.repeats)
    bench_tou_year(max(1, args.repeats // 2))
    bench_households(args.households)


if __name__ == "__main__":
    main()
