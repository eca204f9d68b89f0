"""``cems portfolio plan`` end to end: the batch, the store, the portfolio bid, the summary.

Each site's outcome is written to the store's ``portfolio_sites`` table as the engine hands
it over (a crash midway keeps what was done); the portfolio's round bid goes to the store's
``bids`` table (market :data:`PORTFOLIO_MARKET`) and to ``bids/bid_D_rN.json|csv`` in the
portfolio folder (:func:`cems.markets.bids.write_bid_files`).

Summary figures (the ``--json`` document):

* ``sites_total``, ``sites_planned``, ``sites_failed`` (counts) and ``failures`` (one entry
  per failed site: ``site_file``, ``reason``, ``attempts``);
* ``wall_s``: from starting the engine to the last outcome, engine start included
  (``engine.start_s``); ``sites_per_s`` = planned and failed sites / ``wall_s``;
* ``bid_total_kwh`` and ``bid_kwh_per_hour`` (24 local hours, 00:00 first): the portfolio's
  round bid, the sum of the planned sites' trading-meter energy;
* ``registered_main_kw`` and ``above_20_mw``: the 20 MW condition of the forecast incentive;
* ``task_s``: mean and max of a site's time inside its worker (load, plan, bid).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

from cems.fleet.aggregate import aggregate_bid
from cems.fleet.engine import ATTEMPTS, Progress, SiteError, run_batch
from cems.fleet.model import PortfolioFile
from cems.fleet.work import SITE_TIME_LIMIT_S, SitePlan
from cems.markets.bids import write_bid_files
from cems.store import open_store
from cems.store.db import sqlite_url
from cems.store.portfolio import PortfolioResults, SiteOutcome

#: Market name of the portfolio's bids in the store.
PORTFOLIO_MARKET = "brokerage-portfolio"
#: The store's file inside the portfolio folder when no store URL is given.
STORE_FILE = "portfolio.sqlite"
#: Folder of the portfolio's bid files inside the portfolio folder.
BIDS_FOLDER = "bids"


def _outcome(item: SitePlan | SiteError, delivery: date, now: datetime) -> SiteOutcome:
    if isinstance(item, SitePlan):
        return SiteOutcome(
            delivery_date=delivery.isoformat(),
            site_id=item.site_id,
            site_file=item.site_file,
            status="planned",
            attempts=1,
            created=now,
            objective_krw=item.objective_krw,
            task_s=round(item.task_s, 4),
            worker=item.worker,
            traded_kwh={
                rid: [round(v, 6) for v in row]
                for rid, row in zip(item.resource_ids, item.traded_kwh, strict=True)
            },
        )
    # a failed site is keyed by its file (its id may be what could not be read)
    return SiteOutcome(
        delivery_date=delivery.isoformat(),
        site_id=f"file:{item.site_file}",
        site_file=item.site_file,
        status="failed",
        attempts=item.attempts,
        created=now,
        reason=item.reason,
    )


def plan_portfolio(
    portfolio: PortfolioFile,
    delivery: date,
    round_no: int,
    *,
    address: str | None,
    workers: int,
    db_url: str | None,
    now: datetime,
    time_limit_s: float = SITE_TIME_LIMIT_S,
) -> dict[str, Any]:
    """Plan and bid the portfolio for ``delivery``; return the summary document."""
    folder = portfolio.path.parent
    url = db_url or sqlite_url(folder / STORE_FILE)
    store = open_store(url)
    results = PortfolioResults(store)
    files = [str(p) for p in portfolio.site_files]
    progress = Progress(len(files))
    batch = run_batch(
        files,
        delivery,
        round_no,
        address=address,
        workers=workers,
        time_limit_s=time_limit_s,
        on_result=lambda item: results.record(_outcome(item, delivery, now)),
        progress=progress,
    )
    aggregated = aggregate_bid(
        portfolio.resources, batch.planned, delivery, round_no, portfolio.timezone
    )
    paths = write_bid_files(
        aggregated.bid, aggregated.portfolio, folder / BIDS_FOLDER, submitted_at=now
    )
    document = {
        **aggregated.bid.to_json(aggregated.portfolio),
        "submitted_at": now.isoformat(),
        "broker_id": portfolio.broker_id,
    }
    store.record_bid(
        market=PORTFOLIO_MARKET,
        trade_date=delivery.isoformat(),
        round_no=round_no,
        submitted=now,
        payload=document,
    )
    task_s = [p.task_s for p in batch.planned]
    reasons = Counter(f.reason.split(":", 1)[0] for f in batch.failed)
    hourly = aggregated.hourly_kwh
    done = len(batch.planned) + len(batch.failed)
    return {
        "portfolio": str(portfolio.path),
        "broker_id": portfolio.broker_id,
        "delivery_date": delivery.isoformat(),
        "round": round_no,
        "sites_total": len(files),
        "sites_planned": len(batch.planned),
        "sites_failed": len(batch.failed),
        "failures": [
            {"site_file": f.site_file, "reason": f.reason, "attempts": f.attempts}
            for f in sorted(batch.failed, key=lambda f: f.site_file)
        ],
        "failure_kinds": dict(reasons),
        "wall_s": round(batch.wall_s, 3),
        "sites_per_s": round(done / batch.wall_s, 3) if batch.wall_s > 0 else None,
        "task_s": {
            "mean": round(sum(task_s) / len(task_s), 4) if task_s else None,
            "max": round(max(task_s), 4) if task_s else None,
        },
        "engine": {
            "kind": "dask",
            "address": address or "local",
            "workers": batch.workers,
            "start_s": round(batch.start_s, 3),
            "attempts_per_site": ATTEMPTS,
        },
        "bid_total_kwh": round(aggregated.total_kwh, 3),
        "bid_kwh_per_hour": [round(float(v), 3) for v in hourly],
        "resources_bid": len(aggregated.portfolio.resources),
        "resources_unplanned": len(aggregated.unplanned),
        "resources_unregistered": list(aggregated.unregistered),
        "registered_main_kw": round(aggregated.registered_main_kw, 3),
        "above_20_mw": aggregated.above_20_mw,
        "store": store.engine.url.render_as_string(hide_password=True),
        "bid_files": [str(p) for p in paths],
    }
