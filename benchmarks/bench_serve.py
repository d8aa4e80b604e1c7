"""Benchmark: the HTTP service end to end on loopback (`shelfrank serve` in a subprocess).

Measures, on a copy of an existing store (default: the tiny store of the demo workspace):
startup (engine build), sequential page latency p50 / p95 / p99 as the client sees it,
throughput and latency with N concurrent clients for a fixed time, event intake latency
(batch of 50, fsync'ed), and the startup replay time of an intake log of E events.
There is no page cache yet, so "with cache" is not measured.

    python benchmarks/bench_serve.py --data-dir /work/tinyws/data --requests 300 --seconds 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx

ADMIN = "bench-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen, str, float, dict]:
    port = free_port()
    env = {**os.environ, "SHELFRANK_SERVE__ADMIN_TOKEN": ADMIN, "SHELFRANK_SERVE__LATENCY_BUDGET_MS": "2000"}
    began = time.perf_counter()
    with log.open("ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "shelfrank.cli", "--data-dir", str(data_dir), "serve",
                                 "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            r = httpx.get(f"{url}/readyz", timeout=5)
            if r.status_code == 200:
                return proc, url, time.perf_counter() - began, r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99), "mean": statistics.fmean(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/tinyws/data"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--replay-events", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--items", type=int, default=10)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shelfrank-bench-serve-"))
    data = work / "data"
    data.mkdir()
    shutil.copyfile(args.data_dir / "shelfrank.duckdb", data / "shelfrank.duckdb")
    (data / "models").symlink_to(args.data_dir.resolve() / "models", target_is_directory=True)
    con = duckdb.connect(str(data / "shelfrank.duckdb"), read_only=True)
    at = con.execute("SELECT max(ts) FROM events").fetchone()[0] + timedelta(hours=1)
    users = [r[0] for r in con.execute("SELECT DISTINCT user_id FROM events ORDER BY 1 LIMIT 500").fetchall()]
    items = [r[0] for r in con.execute("SELECT item_id FROM items ORDER BY 1 LIMIT 200").fetchall()]
    con.close()
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                     "date": time.strftime("%Y-%m-%d"), "store": str(args.data_dir),
                     "page": f"{args.rows} x {args.items}"}
    proc, url, startup_s, ready = start(data, work / "server.log")
    results["startup_s"] = startup_s
    results["engine_s"] = ready["startup"]["engine_seconds"]
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            params = {"at": at.isoformat(), "rows": args.rows, "items": args.items}
            for u in users[:20]:  # warm up
                client.get("/v1/homepage", params={**params, "user_id": u})
            seq, server = [], []
            fallbacks = 0
            for n in range(args.requests):
                t = time.perf_counter()
                r = client.get("/v1/homepage", params={**params, "user_id": users[n % len(users)]})
                seq.append((time.perf_counter() - t) * 1000)
                body = r.json()
                server.append(body["timings_ms"].get("total", 0.0))
                fallbacks += body["fallback"]
            results["sequential_ms"] = summary(seq)
            results["engine_build_ms"] = summary(server)
            results["sequential_fallbacks"] = fallbacks

            # Concurrent clients for a fixed time.
            latencies: list[float] = []
            errors = [0]
            stop = time.perf_counter() + args.seconds

            def worker(k: int) -> None:
                with httpx.Client(base_url=url, timeout=30) as c:
                    n = k
                    while time.perf_counter() < stop:
                        t = time.perf_counter()
                        r = c.get("/v1/homepage", params={**params, "user_id": users[n % len(users)]})
                        latencies.append((time.perf_counter() - t) * 1000)
                        errors[0] += r.status_code != 200
                        n += args.clients

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
            began = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - began
            results["concurrent"] = {"clients": args.clients, "seconds": elapsed,
                                     "pages_per_s": len(latencies) / elapsed, "errors": errors[0],
                                     **summary(latencies)}

            # Event intake: batches of 50, each fsync'ed before the answer.
            intake, sent = [], 0
            batch = 50
            while sent < args.replay_events:
                events = [{"ts": (at - timedelta(seconds=sent + j)).isoformat(), "user_id": users[(sent + j) % 50],
                           "session_id": f"bench-{(sent + j) // 20}", "event_type": "click",
                           "item_id": items[(sent + j) % len(items)]} for j in range(batch)]
                t = time.perf_counter()
                r = client.post("/v1/events", json={"events": events})
                intake.append((time.perf_counter() - t) * 1000)
                assert r.json()["accepted"] == batch, r.text
                sent += batch
            results["intake_batch50_ms"] = summary(intake)
            results["intake_events_per_s"] = sent / (sum(intake) / 1000)
    finally:
        proc.kill()
        proc.wait()
    # Restart: the intake log is replayed into the engine.
    proc, url, restart_s, ready = start(data, work / "server.log")
    proc.terminate()
    proc.wait()
    results["restart"] = {"events_in_log": args.replay_events, "startup_s": restart_s,
                          "replay_s": ready["startup"]["replay_seconds"],
                          "intake_changes": ready["startup"]["intake_changes"]}
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
