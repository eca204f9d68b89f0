"""Benchmark: a broker portfolio's day-ahead planning on Dask distributed (issue 19).

    python benchmarks/portfolio_bench.py [--sites 1000] [--sample 40] [--json]

On a synthetic portfolio (``cems portfolio make``, seed 1) it measures:

1. **engine overhead**: the same ``--sample`` sites planned by a plain Python loop in this
   process and by the engine with one local worker (engine start, worker imports included
   there, excluded); the difference per site is the overhead vs a plain loop. It splits into
   the engine's own cost (wall minus the time the tasks spent inside the worker: pickling,
   scheduling, the result's trip back) and the plan itself running slower or faster in a
   worker process. Also the bare per-task cost: 500 no-op tasks on one worker.
2. **scaling**: the sample planned with 1 and with 2 local workers (speed-up, efficiency).
3. **the full portfolio**: ``--sites`` sites day-ahead through the command's own path
   (:func:`cems.fleet.run.plan_portfolio`: engine, store, portfolio bid) on 2 workers;
   wall time, sites/s, sites/s per core.

Targets (issue 19): 1,000 sites <= 600 s on this machine; per-site engine overhead stated
(target here: <= 10 % of a site's plan). Progress goes to standard error; figures and
ratios to targets to standard output (``--json``: one document).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from cems.fleet.engine import run_batch
from cems.fleet.model import read_portfolio_file
from cems.fleet.run import plan_portfolio
from cems.fleet.synthetic import make_portfolio
from cems.fleet.work import SitePlan, plan_site

DELIVERY = date(2026, 7, 21)
TARGET_WALL_S = 600.0
TARGET_OVERHEAD_RATIO = 0.10
NOOP_TASKS = 500


def noop_site(
    site_file: str, delivery: date, round_no: int = 1, time_limit_s: float = 60.0
) -> SitePlan:
    """A task that does nothing: the engine's own cost per task."""
    return SitePlan(site_file, site_file, "optimal", 0.0, (), (), (), 0.0, "")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _engine(files: list[str], workers: int, task=plan_site) -> tuple[float, float, int, float]:
    """(wall excluding engine start, engine start, failed, sum of in-worker task times)."""
    result = run_batch(files, DELIVERY, workers=workers, task=task)
    inside = sum(p.task_s for p in result.planned)
    return result.wall_s - result.start_s, result.start_s, len(result.failed), inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000, help="full portfolio size")
    parser.add_argument(
        "--sample", type=int, default=40, help="sites for the overhead and scaling runs"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="portfolio-bench-") as tmp:
        folder = Path(tmp) / "pf"
        made = make_portfolio(folder, args.sites, seed=1)
        files = [str(p) for p in read_portfolio_file(folder).site_files]
        sample = files[: args.sample]
        _log(f"portfolio: {made.sites} sites {made.by_archetype}, {made.resources} resources")

        _log(f"1. engine overhead: {len(sample)} sites, plain loop vs 1 worker")
        plan_site(sample[0], DELIVERY)  # imports and caches warm, as in a worker
        t0 = time.perf_counter()
        for path in sample:
            plan_site(path, DELIVERY)
        loop_s = time.perf_counter() - t0
        one_s, start_s, failed, inside_s = _engine(sample, 1)
        noop_s, _, _, _ = _engine([f"noop-{i}" for i in range(NOOP_TASKS)], 1, noop_site)
        per_site_loop = loop_s / len(sample)
        overhead = (one_s - loop_s) / len(sample)
        engine_cost = (one_s - inside_s) / len(sample)

        _log(f"2. scaling: {len(sample)} sites on 2 workers")
        two_s, _, failed2, inside2_s = _engine(sample, 2)

        _log(f"3. full portfolio: {len(files)} sites on 2 workers")
        summary = plan_portfolio(
            read_portfolio_file(folder),
            DELIVERY,
            1,
            address=None,
            workers=2,
            db_url=None,
            now=datetime.now().astimezone(),
        )
    figures = {
        "machine_cores": cores,
        "sites": len(files),
        "sample_sites": len(sample),
        "loop": {"wall_s": round(loop_s, 2), "per_site_s": round(per_site_loop, 4)},
        "engine_1_worker": {
            "wall_s": round(one_s, 2),
            "start_s": round(start_s, 2),
            "per_site_s": round(one_s / len(sample), 4),
            "failed": failed,
        },
        "engine_overhead_per_site_s": round(overhead, 4),
        "engine_cost_per_site_s": round(engine_cost, 4),
        "worker_task_per_site_s": round(inside_s / len(sample), 4),
        "engine_overhead_ratio": round(overhead / per_site_loop, 4),
        "noop_task_ms": round(noop_s / NOOP_TASKS * 1e3, 3),
        "scaling": {
            "workers_1_s": round(one_s, 2),
            "workers_2_s": round(two_s, 2),
            "speedup": round(one_s / two_s, 3),
            "efficiency": round(one_s / two_s / 2, 3),
            "failed": failed2,
            "task_s_1_worker": round(inside_s / len(sample), 4),
            "task_s_2_workers": round(inside2_s / len(sample), 4),
        },
        "full": {
            "wall_s": summary["wall_s"],
            "planned": summary["sites_planned"],
            "failed": summary["sites_failed"],
            "sites_per_s": summary["sites_per_s"],
            "sites_per_s_per_core": round(summary["sites_per_s"] / min(cores, 2), 3),
            "task_s_mean": summary["task_s"]["mean"],
            "bid_total_kwh": summary["bid_total_kwh"],
            "above_20_mw": summary["above_20_mw"],
        },
        "targets": {
            "wall_s": TARGET_WALL_S,
            "wall_ratio": round(summary["wall_s"] / TARGET_WALL_S, 3),
            "wall_met": summary["wall_s"] <= TARGET_WALL_S and summary["sites_failed"] == 0,
            "overhead_ratio_target": TARGET_OVERHEAD_RATIO,
            "overhead_met": overhead / per_site_loop <= TARGET_OVERHEAD_RATIO,
            "engine_cost_ratio": round(engine_cost / per_site_loop, 4),
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    f, t, s = figures["full"], figures["targets"], figures["scaling"]
    print(
        f"full portfolio: {f['planned']}/{len(files)} sites planned in {f['wall_s']:.1f} s "
        f"on 2 workers ({f['sites_per_s']:.2f} sites/s, {f['sites_per_s_per_core']:.2f} per "
        f"core); target <= {TARGET_WALL_S:.0f} s: ratio {t['wall_ratio']:.2f} "
        f"({'met' if t['wall_met'] else 'NOT met'})"
    )
    print(
        f"scaling ({len(sample)} sites): 1 worker {s['workers_1_s']:.1f} s, 2 workers "
        f"{s['workers_2_s']:.1f} s, speed-up {s['speedup']:.2f} (efficiency "
        f"{s['efficiency']:.0%}); a site inside its worker took {s['task_s_1_worker']:.3f} s "
        f"with 1 worker and {s['task_s_2_workers']:.3f} s with 2 (equal on two free cores)"
    )
    print(
        f"engine overhead: plain loop {per_site_loop:.3f} s/site, engine (1 worker) "
        f"{one_s / len(sample):.3f} s/site: {overhead * 1e3:+.1f} ms/site "
        f"({overhead / per_site_loop:+.1%} of a site; target <= "
        f"{TARGET_OVERHEAD_RATIO:.0%}: {'met' if t['overhead_met'] else 'NOT met'}); "
        f"bare task {figures['noop_task_ms']:.2f} ms; engine start {start_s:.1f} s"
    )
    print(
        f"  of which the engine itself (wall minus time inside the tasks): "
        f"{engine_cost * 1e3:.1f} ms/site ({engine_cost / per_site_loop:.1%} of a site)"
    )


if __name__ == "__main__":
    main()
