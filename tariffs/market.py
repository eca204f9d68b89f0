"""Market prices and settlements: SMP series, REC revenue, broker fee, 국민DR compensation.

- SMP (계통한계가격): hourly KRW/kWh read from a CSV ``timestamp,smp_krw_per_kwh``.
- Brokerage (소규모 전력중개, 규칙 제1.1.2조): exported kWh are paid hourly at SMP; RECs
  (1 REC = 1 MWh x REC weight) are sold at the REC price; the broker keeps a fee.
- 국민DR (규칙 별표26 2.나, RDF = 1): pay = reduced kWh x (RBPy / MRT + MGP) x RTWF with
  RTWF = 1 + (60 / RT) / 10, RT = minimum notice in minutes (30-minute notice -> x1.2).

Amounts are exact (Decimal) and returned unrounded as float KRW; settlement rounding is
not specified in the stored rules and is left to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from tariffs.errors import TariffError
from tariffs.tou_calendar import LOCAL_TZ


def _d(value: float, name: str, *, positive: bool = False) -> Decimal:
    if value is None or not np.isfinite(value) or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise TariffError(f"{name} must be a number {need}, got {value!r}")
    return Decimal(repr(float(value)))


def dr_compensation_krw(
    reduced_kwh: float,
    *,
    rbp_krw_per_kw_year: float,
    mrt_h: float,
    mgp_krw_per_kwh: float,
    notice_minutes: float,
) -> float:
    """국민DR pay for one event: kWh x (RBP / MRT + MGP) x (1 + (60 / notice) / 10).

    ``reduced_kwh`` below zero pays nothing (Max(DR, 0)); ``mrt_h`` is the market's maximum
    reduction hours (MRT) and ``notice_minutes`` the resource's minimum notice (RT).
    """
    if reduced_kwh is None or not np.isfinite(reduced_kwh):
        raise TariffError(f"reduced_kwh must be a number, got {reduced_kwh!r}")
    kwh = max(Decimal(repr(float(reduced_kwh))), Decimal(0))
    rbp = _d(rbp_krw_per_kw_year, "rbp_krw_per_kw_year")
    mrt = _d(mrt_h, "mrt_h", positive=True)
    mgp = _d(mgp_krw_per_kwh, "mgp_krw_per_kwh")
    rt = _d(notice_minutes, "notice_minutes", positive=True)
    weight = 1 + (Decimal(60) / rt) / 10
    return float(kwh * (rbp / mrt + mgp) * weight)


def load_smp_csv(path: str | Path) -> pd.Series:
    """Read hourly SMP (``timestamp,smp_krw_per_kwh``; tz-aware, hourly, no gaps)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TariffError(f"{path}: cannot read SMP file: {exc}") from exc
    for col in ("timestamp", "smp_krw_per_kwh"):
        if col not in frame.columns:
            raise TariffError(
                f"{path}: column {col!r} is missing (header: timestamp,smp_krw_per_kwh)"
            )
    stamps = []
    for i, text in enumerate(frame["timestamp"], start=2):
        try:
            ts = pd.Timestamp(text)
        except ValueError as exc:
            raise TariffError(f"{path}: line {i}: timestamp {text!r} is not ISO 8601") from exc
        if ts.tzinfo is None:
            raise TariffError(f"{path}: line {i}: timestamp {text!r} has no UTC offset")
        stamps.append(ts)
    values = pd.to_numeric(frame["smp_krw_per_kwh"], errors="coerce").to_numpy(float)
    if len(values) and not np.isfinite(values).all():
        i = int(np.argmax(~np.isfinite(values))) + 2
        raise TariffError(f"{path}: line {i}: smp_krw_per_kwh is not a number")
    index = pd.DatetimeIndex(stamps).tz_convert(LOCAL_TZ) if stamps else pd.DatetimeIndex([])
    if len(index) > 1:
        diffs = index[1:] - index[:-1]
        bad = diffs != pd.Timedelta(hours=1)
        if bad.any():
            i = int(np.argmax(bad)) + 3
            raise TariffError(f"{path}: line {i}: expected hourly rows without gaps or duplicates")
    return pd.Series(values, index=index, name="smp_krw_per_kwh")


@dataclass(frozen=True)
class BrokerageSettlement:
    """Revenue of exported energy sold through a broker, KRW (unrounded)."""

    energy_kwh: float
    smp_krw: float
    rec_krw: float
    broker_fee_krw: float
    net_krw: float


def smp_revenue_krw(export_kwh: pd.Series, smp: pd.Series) -> float:
    """Sum of hourly exported kWh x SMP; ``export_kwh`` may be 15-minute (summed per hour)."""
    if export_kwh.index.tz is None or smp.index.tz is None:
        raise TariffError("export_kwh and smp need tz-aware timestamps")
    hourly = export_kwh.tz_convert(LOCAL_TZ).resample("1h").sum()
    price = smp.tz_convert(LOCAL_TZ).reindex(hourly.index)
    missing = price.isna() & (hourly > 0)
    if missing.any():
        raise TariffError(f"no SMP for hour {missing.idxmax().isoformat()}; extend the SMP file")
    return float((hourly * price.fillna(0.0)).sum())


def rec_revenue_krw(
    energy_kwh: float, *, rec_price_krw_per_rec: float, weight: float = 1.0
) -> float:
    """REC revenue: (kWh / 1000) x REC weight x price per REC (1 REC = 1 MWh weighted)."""
    kwh = _d(energy_kwh, "energy_kwh")
    return float(kwh / 1000 * _d(weight, "weight") * _d(rec_price_krw_per_rec, "rec_price"))


def brokerage_settlement(
    export_kwh: pd.Series,
    smp: pd.Series,
    *,
    rec_price_krw_per_rec: float,
    rec_weight: float = 1.0,
    broker_fee_rate: float = 0.0,
) -> BrokerageSettlement:
    """SMP + REC revenue of ``export_kwh``, minus a broker fee (share of both)."""
    fee_rate = _d(broker_fee_rate, "broker_fee_rate")
    if fee_rate > 1:
        raise TariffError(f"broker_fee_rate {broker_fee_rate} must be a share between 0 and 1")
    energy = float(export_kwh.sum())
    smp_krw = smp_revenue_krw(export_kwh, smp)
    rec_krw = rec_revenue_krw(energy, rec_price_krw_per_rec=rec_price_krw_per_rec,
                              weight=rec_weight)
    fee = float((Decimal(repr(smp_krw)) + Decimal(repr(rec_krw))) * fee_rate)
    return BrokerageSettlement(energy, smp_krw, rec_krw, fee, smp_krw + rec_krw - fee)
