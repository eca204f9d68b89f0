"""Load benchmark of ``cems serve``: KPIs, the resident report page, and a login burst.

Run from the repository root: ``python benchmarks/web_bench.py`` (one command, about a
minute). It starts a real ``cems serve`` on 127.0.0.1 and a free port, on a seeded store
in a temporary folder, and measures with 8 concurrent clients:

1. ``GET /api/kpis?date=D`` (operator, bearer token): p50 / p95 (target p95 <= 200 ms);
2. the resident report page ``/households/h-a/report?month=M`` (resident, session cookie):
   p95 (target <= 300 ms);
3. a burst of 50 wrong passwords posted at once (50 usernames, from one address) while the
   8 clients poll ``GET /api/live``: ``/api/live`` p95 during the burst (target <= 300 ms)
   and the server's memory growth, the peak of its RSS (``/proc/PID/status``, sampled every
   20 ms) over its RSS before the burst (target <= 100 MB); the answers' status counts.

Each figure is printed with its ratio to the target (<= 1.00 meets it); the first, uncached
KPI request is printed apart. Prints figures only; no assertions.

The default store is the seeded site of the web tests (tests/support/reports_site.py: PV, grid
meter, two households, April 2026) plus, for day D = 2026-04-10, the plan history of a
running site: a day-ahead plan and 25 hourly rolling plans, each 36 h of 15-minute steps
with 45 columns (what the daily report reads and combines). ``--site SITE.yaml --db URL
--day D --household H --month M`` runs it on another site and store instead (e.g. the
output of ``cems demo``: ``--site examples/sejong_5_1/site.yaml --db
sqlite:///demo-out/cems.sqlite --day 2026-07-15 --household h-101-0101 --month 2026-07``);
the site file is copied with its data_dir in the temporary folder (users and sessions go
there, the store is not written).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {"kpis_p95_ms": 200.0, "report_p95_ms": 300.0, "live_p95_ms": 300.0,
           "memory_growth_mb": 100.0}
PASSWORDS = {"op": ("operator", None, "operator-pass-1"),
             "res": ("resident", None, "resident-pass-1")}
SEED_DAY = "2026-04-10"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seeded_site(folder: Path) -> tuple[Path, str | None, str, str, str]:
    """The web tests' seeded site with a day of plan history; (site, db, day, household,
    month)."""
    import pandas as pd

    from cems.store import open_store
    from cems.store.telemetry import PlanRecord

    sys.path.insert(0, str(REPO / "tests" / "support"))
    from reports_site import SITE_YAML, seed_store

    site = folder / "site.yaml"
    site.write_text(SITE_YAML, encoding="utf-8")
    seed_store(folder / "data")
    store = open_store(data_dir=folder / "data")
    store.aggregate(pd.Timestamp("2026-04-01", tz="Asia/Seoul"),
                    pd.Timestamp("2026-05-01", tz="Asia/Seoul"))
    day = pd.Timestamp(SEED_DAY, tz="Asia/Seoul")
    columns = ["pv-1_pv_kw", "grid-meter_import_kw", "grid-meter_export_kw",
               "load_forecast_kw", "pv_forecast_kw"] + [f"ev-{i:02d}_charge_kw"
                                                        for i in range(40)]
    starts = [(day - pd.Timedelta(hours=14, minutes=30), day, 24)]  # day-ahead, D-1 09:30
    starts += [(day + pd.Timedelta(hours=h), day + pd.Timedelta(hours=h), 36)
               for h in range(25)]                                  # rolling, hourly
    for created, start, hours in starts:
        index = pd.date_range(start.tz_convert("UTC"), periods=hours * 4, freq="15min")
        frame = pd.DataFrame({c: 20.0 + (i % 7) for i, c in enumerate(columns)}, index=index)
        store.record_plan(PlanRecord(created=created, kind="rolling", start=start,
                                     end=start + pd.Timedelta(hours=hours), inputs_digest="b",
                                     status="optimal", objective_krw=1.0, schedule=frame))
    store.engine.dispose()
    return site, None, SEED_DAY, "h-a", "2026-04"


def _copied_site(source: Path, folder: Path) -> Path:
    """``source`` with its data_dir in ``folder`` and its AMI paths absolute."""
    import yaml

    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["site"]["data_dir"] = str(folder / "data")
    for ami in doc.get("ami_sources", []):
        ami["path"] = str((source.parent / ami["path"]).resolve())
    site = folder / "site.yaml"
    site.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return site


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = headers

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, float]:
        start = time.perf_counter()
        data = None if body is None else json.dumps(body)
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        response.read()
        return response.status, (time.perf_counter() - start) * 1000.0

    def close(self) -> None:
        self.connection.close()


def _login(port: int, username: str) -> tuple[str, str]:
    c = Client(port, {})
    c.connection.request("POST", "/api/login", body=json.dumps(
        {"username": username, "password": PASSWORDS[username][2]}),
        headers={"Content-Type": "application/json"})
    response = c.connection.getresponse()
    body = json.loads(response.read())
    c.close()
    if response.status != 200:
        raise SystemExit(f"login {username}: {response.status} {body}")
    return body["token"], body["csrf_token"]


def _concurrently(clients: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _load(port: int, headers: dict[str, str], path: str, clients: int,
          per_client: int) -> tuple[list[float], Counter[int]]:
    """``per_client`` sequential GETs by each of ``clients`` concurrent clients."""
    times: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def work(_i: int) -> None:
        c = Client(port, headers)
        start.wait()
        for _ in range(per_client):
            status, ms = c.request("GET", path)
            with lock:
                times.append(ms)
                statuses[status] += 1
        c.close()

    _concurrently(clients, work)
    return times, statuses


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] \
        if len(values) > 1 else values[0]


def _burst(port: int, pid: int, live_headers: dict[str, str], clients: int
           ) -> dict[str, Any]:
    """50 wrong passwords at once while ``clients`` poll /api/live; RSS sampled."""
    baseline = _rss_mb(pid)
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _rss_mb(pid))
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    live_times: list[float] = []
    live_status: Counter[int] = Counter()
    login_status: Counter[int] = Counter()
    lock = threading.Lock()
    burst_over = threading.Event()

    def poll(_i: int) -> None:
        c = Client(port, live_headers)
        while not burst_over.is_set():
            status, ms = c.request("GET", "/api/live")
            with lock:
                live_times.append(ms)
                live_status[status] += 1
        c.close()

    go = threading.Barrier(50)

    def login(i: int) -> None:
        c = Client(port, {})
        go.wait()
        status, _ = c.request("POST", "/api/login",
                              {"username": f"guess-{i}", "password": "wrong-password-1"})
        with lock:
            login_status[status] += 1
        c.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pollers = [threading.Thread(target=poll, args=(i,)) for i in range(clients)]
    for t in pollers:
        t.start()
    time.sleep(0.3)  # the pollers are running before the burst
    begin = time.perf_counter()
    _concurrently(50, login)
    burst_s = time.perf_counter() - begin
    burst_over.set()
    for t in pollers:
        t.join()
    time.sleep(0.5)
    after = _rss_mb(pid)
    stop.set()
    sampler.join()
    return {"live": live_times, "live_status": live_status, "logins": login_status,
            "burst_s": burst_s, "baseline_mb": baseline, "peak_mb": peak[0],
            "after_mb": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--requests", type=int, default=25,
                        help="requests per client and measure (25)")
    parser.add_argument("--site", type=Path, help="another site file (default: seeded)")
    parser.add_argument("--db", help="its store URL")
    parser.add_argument("--day", help="day of the KPIs (YYYY-MM-DD)")
    parser.add_argument("--household", help="household of the resident page")
    parser.add_argument("--month", help="month of the resident page (YYYY-MM)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout (the table goes to stderr)")
    args = parser.parse_args()

    from cems.web.auth import UserFile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.site:
            site, db = _copied_site(args.site, folder), args.db
            day, household, month = args.day, args.household, args.month
            if not (day and household and month):
                raise SystemExit("--site needs --day, --household and --month")
        else:
            site, db, day, household, month = _seeded_site(folder)
        users = UserFile(folder / "users.json")
        users.add("op", "operator", PASSWORDS["op"][2])
        users.add("res", "resident", PASSWORDS["res"][2], household)
        port = _free_port()
        command = [sys.executable, "-m", "cems", "serve", str(site), "--port", str(port),
                   "--users", str(folder / "users.json")] + (["--db", db] if db else [])
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log = (folder / "serve.log").open("w")
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("cems serve did not start:\n"
                                         + (folder / "serve.log").read_text()[-3000:]) from None
                    time.sleep(0.2)
            token, _ = _login(port, "op")
            res_token, _ = _login(port, "res")
            bearer = {"Authorization": f"Bearer {token}"}
            cookie = {"Cookie": f"cems_session={res_token}"}
            kpis = f"/api/kpis?date={day}"
            cold_status, cold_ms = Client(port, bearer).request("GET", kpis)
            kpi_times, kpi_status = _load(port, bearer, kpis, args.clients, args.requests)
            page = f"/households/{household}/report?month={month}"
            cold_page_status, cold_page_ms = Client(port, cookie).request("GET", page)
            page_times, page_status = _load(port, cookie, page, args.clients, args.requests)
            burst = _burst(port, server.pid, bearer, args.clients)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()

    figures = {"kpis_p95_ms": _p(kpi_times, 95), "report_p95_ms": _p(page_times, 95),
               "live_p95_ms": _p(burst["live"], 95),
               "memory_growth_mb": burst["peak_mb"] - burst["baseline_mb"]}
    out = sys.stderr if args.json else sys.stdout
    if args.json:
        print(json.dumps({
            "clients": args.clients, "requests": args.requests, "day": day,
            "household": household, "month": month,
            "figures": {k: round(v, 1) for k, v in figures.items()},
            "targets": TARGETS,
            "ratios": {k: round(v / TARGETS[k], 2) for k, v in figures.items()},
            "first_kpis_ms": round(cold_ms, 1), "first_report_page_ms": round(cold_page_ms, 1),
            "kpis_p50_ms": round(_p(kpi_times, 50), 1),
            "report_p50_ms": round(_p(page_times, 50), 1),
            "statuses": {"kpis": _counts(kpi_status), "report_page": _counts(page_status),
                         "live": _counts(burst["live_status"]),
                         "logins": _counts(burst["logins"])},
            "rss_mb": {k: round(burst[f"{k}_mb"], 1) for k in ("baseline", "peak", "after")},
        }, indent=2))
    print(f"web_bench: {args.clients} concurrent clients, {args.requests} requests each; "
          f"site {'seeded' if not args.site else args.site}, day {day}, "
          f"household {household} {month}", file=out)
    print(f"  first /api/kpis (uncached): {cold_ms:8.1f} ms  (status {cold_status})", file=out)
    print(f"  first report page (uncached): {cold_page_ms:6.1f} ms  (status "
          f"{cold_page_status})", file=out)
    rows = [
        ("/api/kpis p50 (ms)", _p(kpi_times, 50), None, dict(kpi_status)),
        ("/api/kpis p95 (ms)", figures["kpis_p95_ms"], "kpis_p95_ms", None),
        ("resident report page p50 (ms)", _p(page_times, 50), None, dict(page_status)),
        ("resident report page p95 (ms)", figures["report_p95_ms"], "report_p95_ms", None),
        ("/api/live p95 during the burst (ms)", figures["live_p95_ms"], "live_p95_ms",
         dict(burst["live_status"])),
        ("memory growth, peak RSS - before (MB)", figures["memory_growth_mb"],
         "memory_growth_mb", None),
    ]
    print(f"  {'figure':42s} {'value':>9s} {'target':>8s} {'ratio':>6s}  statuses", file=out)
    for name, value, key, statuses in rows:
        target = f"{TARGETS[key]:8.0f}" if key else " " * 8
        ratio = f"{value / TARGETS[key]:6.2f}" if key else " " * 6
        print(f"  {name:42s} {value:9.1f} {target} {ratio}  {statuses or ''}", file=out)
    print(f"  login burst: 50 wrong passwords in {burst['burst_s']:.2f} s, answers "
          f"{dict(burst['logins'])}; /api/live requests during it: {len(burst['live'])}; "
          f"RSS before {burst['baseline_mb']:.0f} MB, peak {burst['peak_mb']:.0f} MB, "
          f"after {burst['after_mb']:.0f} MB", file=out)


def _counts(statuses: Counter[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(statuses.items())}


if __name__ == "__main__":
    main()
