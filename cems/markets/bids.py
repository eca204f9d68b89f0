"""Day-ahead bid files for the two KPX forecast rounds (규칙 제14.4.1조).

Round 1 closes at 10:00 and round 2 at 17:00 on the day before delivery (D-1); each round
carries 24 hourly values per resource (제14.4.1조 ② 1호, 2호). Per round, the submission
closest to the deadline counts (3호): the file ``bid_D_rN.json`` holds it (a new bid for the
same round replaces the file). A round without a submission takes the most recent earlier
submission (4호): :func:`valid_bids`.

JSON format (``cems-kpx-bid/1``), the file :mod:`cems.markets.brokerage` settles from::

    {"format": "cems-kpx-bid/1", "delivery_date": "2026-07-21", "round": 1,
     "deadline": "2026-07-20T10:00:00+09:00", "timezone": "Asia/Seoul", "unit": "kWh",
     "hours": ["00:00", ..., "23:00"],
     "resources": [{"resource_id": "pv-01", "kind": "pv", "capacity_kw": 1000.0,
                    "forecast_kwh": [24 numbers]}, ...],
     "aggregate_kwh": [24 numbers], "submitted_at": "2026-07-20T09:30:00+09:00"}

``submitted_at`` is when the file was written (absent in older files).

CSV format: one row per resource and a final ``TOTAL`` row, columns
``delivery_date,round,deadline,resource_id,kind,capacity_kw,h01..h24`` where ``h01`` is the
hour 00:00-01:00 (KPX 1시) and ``h24`` the hour 23:00-24:00.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cems.errors import InputError
from cems.jsontext import dumps
from cems.markets.portfolio import HOURS, Portfolio

if TYPE_CHECKING:
    from cems.config.model import SiteConfig

FORMAT = "cems-kpx-bid/1"
#: Local deadline hour on D-1 per round (규칙 제14.4.1조 ② 1호).
DEADLINE_HOUR = {1: 10, 2: 17}
#: Folder of a site's bid files inside its data directory.
BIDS_FOLDER = "bids"


def deadline(delivery: date, round_no: int, tz: str) -> pd.Timestamp:
    """The submission deadline of ``round_no`` for ``delivery`` (D-1 10:00 or 17:00 local)."""
    if round_no not in DEADLINE_HOUR:
        raise InputError(f"round must be 1 or 2, got {round_no}")
    day_before = delivery - timedelta(days=1)
    return pd.Timestamp(f"{day_before.isoformat()}T{DEADLINE_HOUR[round_no]:02d}:00", tz=tz)


def bid_path(directory: str | Path, delivery: date, round_no: int, suffix: str = "json") -> Path:
    """Conventional file name of a bid: ``bid_2026-07-21_r1.json``."""
    return Path(directory) / f"bid_{delivery.isoformat()}_r{round_no}.{suffix}"


def bids_dir(config: SiteConfig) -> Path:
    """Where a site's bid files live: ``<data_dir>/bids`` (the runtime writes them there)."""
    return Path(config.site.data_dir) / BIDS_FOLDER


@dataclass(frozen=True)
class Bid:
    """One round's forecast: a (resources x 24) kWh matrix in portfolio order."""

    delivery: date
    round_no: int
    tz: str
    resource_ids: tuple[str, ...]
    forecast_kwh: np.ndarray

    @property
    def aggregate_kwh(self) -> np.ndarray:
        """The portfolio's hourly total."""
        return self.forecast_kwh.sum(axis=0)

    def to_json(self, portfolio: Portfolio) -> dict[str, Any]:
        """The ``cems-kpx-bid/1`` document."""
        by_id = {r.resource_id: r for r in portfolio.resources}
        return {
            "format": FORMAT,
            "delivery_date": self.delivery.isoformat(),
            "round": self.round_no,
            "deadline": deadline(self.delivery, self.round_no, self.tz).isoformat(),
            "timezone": self.tz,
            "unit": "kWh",
            "hours": [f"{h:02d}:00" for h in range(HOURS)],
            "resources": [
                {
                    "resource_id": rid,
                    "kind": by_id[rid].kind,
                    "capacity_kw": by_id[rid].capacity_kw,
                    "forecast_kwh": [round(float(v), 6) for v in self.forecast_kwh[i]],
                }
                for i, rid in enumerate(self.resource_ids)
            ],
            "aggregate_kwh": [round(float(v), 6) for v in self.aggregate_kwh],
        }

    def to_csv(self, portfolio: Portfolio) -> str:
        """The wide CSV form (one row per resource plus ``TOTAL``)."""
        by_id = {r.resource_id: r for r in portfolio.resources}
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["delivery_date", "round", "deadline", "resource_id", "kind",
                         "capacity_kw", *[f"h{h:02d}" for h in range(1, HOURS + 1)]])
        stamp = deadline(self.delivery, self.round_no, self.tz).isoformat()
        head = [self.delivery.isoformat(), self.round_no, stamp]
        for i, rid in enumerate(self.resource_ids):
            writer.writerow([*head, rid, by_id[rid].kind, f"{by_id[rid].capacity_kw:g}",
                             *[f"{v:g}" for v in self.forecast_kwh[i]]])
        total_kw = sum(r.capacity_kw for r in portfolio.resources)
        writer.writerow([*head, "TOTAL", "aggregate", f"{total_kw:g}",
                         *[f"{v:g}" for v in self.aggregate_kwh]])
        return buffer.getvalue()


#: Tolerance when checking a forecast against a resource's capacity (kWh).
_TOLERANCE_KWH = 1e-6


def make_bid(portfolio: Portfolio, delivery: date, round_no: int, tz: str,
             forecast_kwh: np.ndarray) -> Bid:
    """A checked bid: one row of 24 finite hourly kWh per resource (portfolio order), each
    0 <= value <= capacity x 1 h, the same rules :func:`read_resource_hours` applies to a
    forecast file."""
    deadline(delivery, round_no, tz)  # checks the round
    values = np.asarray(forecast_kwh, dtype=float)
    if values.shape != (len(portfolio.resources), HOURS):
        raise InputError(f"a bid needs {len(portfolio.resources)} x {HOURS} hourly values "
                         f"(resources x hours), got {values.shape}")
    for i, resource in enumerate(portfolio.resources):
        row = values[i]
        bad = [f"{h:02d}:00" for h in range(HOURS)
               if not np.isfinite(row[h]) or row[h] < 0
               or row[h] > resource.capacity_kw * 1.0 + _TOLERANCE_KWH]
        if bad:
            raise InputError(
                f"bid for {delivery.isoformat()} round {round_no}: {resource.resource_id!r} "
                f"needs 0 <= kWh <= {resource.capacity_kw:g} (capacity x 1 h) in hour(s) "
                f"{', '.join(bad)}")
    return Bid(delivery, round_no, tz, tuple(portfolio.ids), values.copy())


def write_bid_files(bid: Bid, portfolio: Portfolio, directory: str | Path, *,
                    submitted_at: datetime | None = None) -> tuple[Path, Path]:
    """Write ``bid_D_rN.json`` and ``bid_D_rN.csv`` into ``directory`` (created if needed);
    each file is written to a temporary name and renamed, so a reader never sees half a
    bid. The JSON records ``submitted_at`` (default: now), the submission time
    :func:`valid_bids` orders submissions by. Returns the two paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = bid_path(folder, bid.delivery, bid.round_no, "json")
    csv_path = bid_path(folder, bid.delivery, bid.round_no, "csv")
    stamp = pd.Timestamp(submitted_at) if submitted_at is not None else pd.Timestamp.now(
        tz=bid.tz)
    if stamp.tzinfo is None:
        raise InputError(f"submitted_at {stamp.isoformat()} needs a UTC offset")
    document = {**bid.to_json(portfolio), "submitted_at": stamp.tz_convert(bid.tz).isoformat()}
    texts = ((json_path, dumps(document) + "\n"),
             (csv_path, bid.to_csv(portfolio)))
    for path, text in texts:
        partial = path.with_name(path.name + ".part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    return json_path, csv_path


def read_bid(path: str | Path, portfolio: Portfolio, delivery: date, round_no: int) -> Bid:
    """Read a JSON bid and check it matches the portfolio, the day and the round."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{file}: bid file not found; write it with `cems broker bid`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: not a readable JSON bid: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{file}: not a {FORMAT} bid file")
    if data.get("delivery_date") != delivery.isoformat() or data.get("round") != round_no:
        raise InputError(
            f"{file}: is the round {data.get('round')} bid for {data.get('delivery_date')}, "
            f"expected round {round_no} for {delivery.isoformat()}"
        )
    rows = {item.get("resource_id"): item for item in data.get("resources", [])}
    matrix = np.zeros((len(portfolio.resources), HOURS))
    for i, resource in enumerate(portfolio.resources):
        item = rows.get(resource.resource_id)
        if item is None:
            raise InputError(f"{file}: no forecast for resource {resource.resource_id!r}")
        values = item.get("forecast_kwh")
        if not isinstance(values, list) or len(values) != HOURS:
            raise InputError(f"{file}: resource {resource.resource_id!r} needs 24 forecast_kwh "
                             "values")
        try:
            matrix[i] = [float(v) for v in values]
        except (TypeError, ValueError):
            raise InputError(f"{file}: resource {resource.resource_id!r} has a non-numeric "
                             "forecast") from None
    extra = set(rows) - set(portfolio.ids)
    if extra:
        raise InputError(f"{file}: resource(s) {', '.join(sorted(map(str, extra)))} are not in "
                         "the portfolio")
    return Bid(delivery, round_no, str(data.get("timezone", "Asia/Seoul")),
               tuple(portfolio.ids), matrix)


_BID_NAME = re.compile(r"^bid_(\d{4}-\d{2}-\d{2})_r([12])\.json$")


@dataclass(frozen=True)
class ValidBids:
    """The two rounds that count for a delivery day (제14.4.1조 ② 3호, 4호), the file each
    came from, and a note for each round that fell back on an earlier submission."""

    rounds: tuple[Bid, Bid]
    sources: tuple[Path, Path]
    notes: tuple[str, ...]


def _bid_files(folder: Path, tz: str) -> list[tuple[pd.Timestamp, date, int, Path]]:
    """Bid files in ``folder`` as (deadline, day, round, path), latest deadline first."""
    out = []
    for path in folder.glob("bid_*_r*.json"):
        match = _BID_NAME.match(path.name)
        if match is None:
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        round_no = int(match.group(2))
        out.append((deadline(day, round_no, tz), day, round_no, path))
    return sorted(out, key=lambda f: f[0], reverse=True)


def _submitted(path: Path, closes: pd.Timestamp) -> pd.Timestamp:
    """When a file counts as submitted: its ``submitted_at``, but never later than its own
    deadline ``closes`` (a file does not say which earlier submission it replaced, so a late
    one stands at its deadline); files without one stand at their deadline."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        stamp = pd.Timestamp(str(data["submitted_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return closes
    return closes if stamp.tzinfo is None else min(stamp, closes)


def latest_submission(folder: str | Path, before: pd.Timestamp, tz: str
                      ) -> tuple[pd.Timestamp, date, int, Path] | None:
    """The bid file submitted last at or before ``before`` (제14.4.1조 ② 4호): (submission
    time, day, round, path), or None. Files are visited latest deadline first and the search
    stops once no remaining file can be later than the best found."""
    best: tuple[pd.Timestamp, date, int, Path] | None = None
    for closes, day, round_no, path in _bid_files(Path(folder), tz):
        if best is not None and closes <= best[0]:
            break
        when = _submitted(path, closes)
        if when <= before and (best is None or when > best[0]):
            best = (when, day, round_no, path)
    return best


def valid_bids(folder: str | Path, portfolio: Portfolio, delivery: date, tz: str) -> ValidBids:
    """The submissions that count for ``delivery``, read from the bid files in ``folder``.

    * Round n's own file ``bid_D_rN.json`` is the submission closest to its deadline
      (제14.4.1조 ② 3호).
    * Without it, the most recent earlier submission counts (4호): the latest bid file
      submitted at or before round n's deadline, whatever day or round it was made for, its
      24 hourly values taken for D. A file's submission time is its ``submitted_at``, at
      most its own deadline (files without one stand at their deadline). So a missing round
      2 takes D's round 1; a missing round 1 takes D's round 2 only if that was submitted by
      D-1 10:00, else the previous day's round 2, then its round 1, and so on.
    * Nothing submitted at or before round 1's deadline: an error.
    """
    directory = Path(folder)
    rounds: list[Bid] = []
    sources: list[Path] = []
    notes: list[str] = []
    for round_no in (1, 2):
        own = bid_path(directory, delivery, round_no)
        if own.exists():
            rounds.append(read_bid(own, portfolio, delivery, round_no))
            sources.append(own)
            continue
        found = latest_submission(directory, deadline(delivery, round_no, tz), tz)
        if found is None:
            raise InputError(
                f"{own}: bid file not found, and no earlier submission in {directory} to take "
                f"its place (규칙 제14.4.1조 ② 4호); write it with `cems broker bid`")
        when, day, number, path = found
        try:
            bid = read_bid(path, portfolio, day, number)
        except InputError as exc:
            raise InputError(f"round {round_no} for {delivery} falls back on {path.name} (the "
                             f"latest earlier submission, 규칙 제14.4.1조 ② 4호): {exc}") from None
        rounds.append(Bid(delivery, round_no, bid.tz, bid.resource_ids, bid.forecast_kwh))
        sources.append(path)
        notes.append(f"no round {round_no} bid ({own.name}); the latest earlier submission "
                     f"counts: round {number} for {day} ({path.name}, submitted by "
                     f"{when.tz_convert(tz).isoformat()}) (규칙 제14.4.1조 ② 4호)")
    return ValidBids((rounds[0], rounds[1]), (sources[0], sources[1]), tuple(notes))
