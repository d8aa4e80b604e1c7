"""`shelfrank bench`: page latency in process and the service's throughput over HTTP.

(a) In process, pinned to one core: pages of `rows` x `items` for known users and new visitors,
through the default pipeline and the popularity baseline in the same run, with the segment cache
on and off for new visitors (the only requests it can serve). p50 / p95 / p99 per stage and end
to end; min and median over `repeat` repeats.

(b) Over HTTP: `shelfrank serve` in a subprocess on a free loopback port, driven by `wrk` (fixed
duration and connections, a Lua script spreading requests over known users and new visitors),
with serve.workers 1 and 2 (one per core) and the cache on and off. Pages/s, p50 / p99 latency,
non-2xx responses, socket errors and fallback pages (from the service's /metrics).

The store is reused when the data dir holds one with trained models, else simulated, ingested
and trained at `scale`. Results are Markdown (machine, versions, date, load average).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from shelfrank.errors import UserFacingError

PERCENTILES = (50, 95, 99)
TARGETS = {"in_process_p50_ms": 15.0, "in_process_p99_ms": 40.0, "http_pages_per_s": 150.0, "http_p99_ms": 100.0}
READY_TIMEOUT_S = 1_800.0


@dataclass
class BenchOptions:
    pages: int = 200          # pages per (user kind, pipeline, cache) per repeat
    repeat: int = 3
    rows: int = 20
    items: int = 20
    duration: float = 20.0    # seconds of wrk load per configuration
    connections: int = 4
    http: bool = True
    new_visitor_share: float = 0.2   # of the HTTP requests
    workers: tuple[int, ...] = (1, 2)      # serve.workers to measure over HTTP
    caches: tuple[bool, ...] = (True, False)  # segment cache on / off over HTTP
    seed: int = 0


@dataclass
class Sample:
    """Pages of one kind of user through one pipeline: per repeat, per stage, the percentiles."""

    label: str
    per_repeat: dict[str, list[dict[int, float]]] = field(default_factory=dict)
    hit_rates: list[float] = field(default_factory=list)

    def add(self, timings: list[dict[str, float]]) -> None:
        stages: dict[str, list[float]] = {}
        for t in timings:
            for stage, ms in t.items():
                stages.setdefault(stage, []).append(ms)
        for stage, values in stages.items():
            self.per_repeat.setdefault(stage, []).append(
                {q: float(np.percentile(values, q)) for q in PERCENTILES})

    def summary(self, stage: str = "total") -> dict[str, float]:
        """min and median over repeats of each percentile, e.g. {'p50_min': .., 'p50_median': ..}."""
        runs = self.per_repeat.get(stage, [])
        out = {}
        for q in PERCENTILES:
            values = [r[q] for r in runs]
            out[f"p{q}_min"] = min(values) if values else float("nan")
            out[f"p{q}_median"] = statistics.median(values) if values else float("nan")
        return out


@dataclass
class HttpResult:
    workers: int
    cache: bool
    requests: int
    seconds: float
    pages_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    fallback_pages: int
    cache_hit_rate: float | None
    load: str


# --- the store -------------------------------------------------------------------------------


def has_models(data_dir: Path) -> bool:
    from shelfrank.models.artifacts import list_versions

    models = data_dir / "models"
    return all(list_versions(models, kind) for kind in ("collection_retrieval", "item_ranker_position_feature"))


def ensure_store(settings, scale: str, seed: int, console) -> str:
    """Reuse the store and models in settings.store.data_dir, or build them at `scale`; says which."""
    from shelfrank.progress import RichProgress

    data_dir = settings.store.data_dir
    db = settings.store.database_path
    if db.is_file() and has_models(data_dir):
        return f"reused the store and models in {data_dir}"
    from shelfrank.store.database import Store
    from shelfrank.training_run import run_training

    built = []
    if not db.is_file():
        from shelfrank.simulate import simulate
        from shelfrank.store.ingest import ingest_folder

        out = data_dir / "simulated" / f"{scale}-{seed}"
        console.print(f"no store in {data_dir}: simulating a {scale} store (seed {seed}), ingesting, training")
        with RichProgress(console) as progress:
            simulate(scale, seed, out, progress=progress)
        with Store.open(settings.store) as store, RichProgress(console) as progress:
            ingest_folder(store, out, progress=progress)
        built.append(f"simulated ({scale}, seed {seed}) and ingested")
    else:
        console.print(f"store in {data_dir} without trained models: training them")
    with Store.open(settings.store) as store, RichProgress(console) as progress:
        run_training(store, settings, progress)
    built.append("trained")
    return f"{' and '.join(built)} the store in {data_dir}"


# --- the machine -----------------------------------------------------------------------------


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": str(os.cpu_count()),
            "cpu": _cpu_model(), "load average (1/5/15 min) at start": load_average(),
            "python": f"{platform.python_version()} ({sys.executable})",
            "python speed: sum(range(10**7)), best of 3": f"{interpreter_seconds():.2f} s",
            "lightgbm": v("lightgbm"), "duckdb": v("duckdb"),
            "shelfrank": v("shelfrank")}


def interpreter_seconds(repeat: int = 3) -> float:
    """Seconds for ``sum(range(10**7))``, best of `repeat`: the interpreter's own speed, so page times
    from different builds (an optimized distribution build runs it ~3x faster than a plain
    from-source one on the same core) can be told apart."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        sum(range(10**7))
        best = min(best, time.perf_counter() - started)
    return best


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "-"


# --- (a) in process --------------------------------------------------------------------------


@dataclass
class Workload:
    end: datetime
    known: list[str]
    locations: list[str]
    n_items: int
    n_categories: int


def workload(con) -> Workload:
    end = con.sql("SELECT max(ts) FROM events").fetchall()[0][0]
    known = [r[0] for r in con.sql(
        "SELECT user_id FROM events WHERE event_type IN ('click', 'add_to_cart', 'purchase') "
        "GROUP BY user_id ORDER BY hash(user_id) LIMIT 5000").fetchall()]
    locations = [r[0] for r in con.sql(
        "SELECT location FROM users WHERE location IS NOT NULL AND location <> '' GROUP BY location "
        "ORDER BY count(*) DESC, location LIMIT 8").fetchall()]
    n_items = con.sql("SELECT count(*) FROM items").fetchall()[0][0]
    n_categories = con.sql("SELECT count(DISTINCT category_id) FROM items").fetchall()[0][0]
    if not known:
        raise UserFacingError("the store has no users with clicks, carts or purchases to benchmark")
    return Workload(end, known, locations or [""], n_items, n_categories)


def in_process(settings, options: BenchOptions, console, say: Callable[[str], None]) -> tuple[dict, Workload]:
    """Samples keyed (user kind, pipeline, cache) -> Sample; pinned to one core meanwhile."""
    import duckdb

    from shelfrank.contracts import PageRequest
    from shelfrank.page.engine import HomepageEngine

    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity is not None:
        os.sched_setaffinity(0, {sorted(affinity)[0]})
    try:
        con = duckdb.connect(str(settings.store.database_path), read_only=True)
        say("building the engine from the store ...")
        started = time.perf_counter()
        engine = HomepageEngine.from_store(con, settings.store.data_dir / "models", page_config=settings.page)
        say(f"engine built in {time.perf_counter() - started:.1f} s (one core)")
        from shelfrank.runtime import settle_after_start

        settle_after_start()  # as `shelfrank serve` does once its engine is built
        work = workload(con)
        con.close()
        rng = np.random.default_rng(options.seed)

        def requests(kind: str, n: int, offset: int) -> list[PageRequest]:
            out = []
            for k in range(n):
                if kind == "known":
                    user, location = work.known[int(rng.integers(len(work.known)))], None
                    at = work.end - timedelta(seconds=float(rng.uniform(0, 86_400)))
                else:  # a visitor of the last hour from one of the common locations
                    user = f"new-visitor-{offset + k}"
                    location = work.locations[int(rng.integers(len(work.locations)))]
                    at = work.end - timedelta(seconds=float(rng.uniform(0, 3_600)))
                out.append(PageRequest(user, at, location=location, rows=options.rows, items=options.items,
                                       seed=offset + k))
            return out

        cache_size = engine.cache.max_entries or 256
        configs = [("known", "default", True), ("known", "popularity", True),
                   ("new visitor", "default", True), ("new visitor", "default", False),
                   ("new visitor", "popularity", True), ("new visitor", "popularity", False)]
        samples = {c: Sample(f"{c[0]}, {c[1]}, cache {'on' if c[2] else 'off'}") for c in configs}
        for kind in ("known", "new visitor"):  # warm-up: lazy packing, first-call allocations
            for request in requests(kind, 10, 10_000_000):
                for pipeline in ("default", "popularity"):
                    engine.build(request, pipeline)
        from shelfrank.progress import RichProgress

        with RichProgress(console) as progress:
            for r in range(options.repeat):
                batches = {kind: requests(kind, options.pages, (r + 1) * 1_000_000)
                           for kind in ("known", "new visitor")}
                with progress.task(f"in process, repeat {r + 1}/{options.repeat}",
                                   total=len(configs) * options.pages) as advance:
                    for kind, pipeline, cache in configs:
                        engine.cache.max_entries = cache_size if cache else 0
                        engine.cache.invalidate()
                        hits, misses = engine.cache.hits, engine.cache.misses
                        timings = []
                        for request in batches[kind]:
                            timings.append(engine.build(request, pipeline).timings_ms)
                            advance(1)
                        sample = samples[(kind, pipeline, cache)]
                        sample.add(timings)
                        looked = engine.cache.hits + engine.cache.misses - hits - misses
                        if kind == "new visitor":
                            sample.hit_rates.append((engine.cache.hits - hits) / looked if looked else 0.0)
        engine.cache.max_entries = cache_size
        del engine
        return samples, work
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


# --- (b) over HTTP ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_wrk(say: Callable[[str], None]) -> str | None:
    """The wrk binary; installed with apt-get when missing and running as root, else None."""
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say("wrk is missing: apt-get install -y wrk ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, env=env)
        return shutil.which("wrk")
    return None


LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format('BENCH {"requests": %%d, "duration_us": %%d, "status": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def request_paths(work: Workload, options: BenchOptions, n: int = 2_000) -> list[str]:
    """Homepage paths over known users and new visitors (new_visitor_share of them), as of the log's end."""
    rng = np.random.default_rng(options.seed + 1)
    paths = []
    for k in range(n):
        at = (work.end - timedelta(seconds=float(rng.uniform(0, 3_600)))).replace(microsecond=0)
        query = {"rows": options.rows, "items": options.items, "at": at.isoformat() + ("" if at.tzinfo else "Z")}
        if rng.random() < options.new_visitor_share:
            query |= {"user_id": f"new-visitor-{k}", "location": work.locations[int(rng.integers(len(work.locations)))]}
        else:
            query["user_id"] = work.known[int(rng.integers(len(work.known)))]
        paths.append("/v1/homepage?" + urllib.parse.urlencode(query))
    return paths


def _metrics(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("shelfrank_page_cache_total", "shelfrank_pages_total")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _counter(metrics: dict[str, float], prefix: str, needle: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix) and needle in k)


def start_server(data_dir: Path, workers: int, cache: bool, log: Path, say) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "SHELFRANK_SERVE__WORKERS": str(workers),
           "SHELFRANK_SERVE__CACHE_ENTRIES": "256" if cache else "0"}
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "shelfrank.cli", "--data-dir", str(data_dir), "serve",
                                 "--port", str(port), "--replica-id", "bench"], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if proc.poll() is not None:
            raise UserFacingError(f"`shelfrank serve` exited with {proc.returncode}: see {log}")
        try:
            if urllib.request.urlopen(f"{url}/readyz", timeout=5).status == 200:
                say(f"service up in {time.monotonic() - started:.0f} s (workers {workers}, "
                    f"cache {'on' if cache else 'off'})")
                return proc, url
        except OSError:
            pass
        time.sleep(1.0)
    stop_server(proc)
    raise UserFacingError(f"`shelfrank serve` not ready within {READY_TIMEOUT_S:.0f} s: see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def over_http(settings, work: Workload, options: BenchOptions, wrk: str, say) -> list[HttpResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="shelfrank-bench-") as tmp:
        script = Path(tmp) / "homepage.lua"
        paths = request_paths(work, options)
        script.write_text(LUA % ", ".join(json.dumps(p) for p in paths))
        for workers in options.workers:
            for cache in options.caches:
                proc, url = start_server(settings.store.data_dir, workers, cache,
                                         Path(tmp) / f"serve-{workers}-{cache}.log", say)
                try:
                    for path in paths[:20]:  # warm-up
                        urllib.request.urlopen(url + path, timeout=60).read()
                    before = _metrics(url)
                    done = subprocess.run([wrk, "-t", "1", "-c", str(options.connections), "-d",
                                           f"{options.duration:g}s", "--timeout", "10s", "-s", str(script), url],
                                          capture_output=True, text=True)
                    load = load_average()
                    after = _metrics(url)
                finally:
                    stop_server(proc)
                line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
                if line is None:
                    raise UserFacingError(f"wrk gave no summary: {done.stderr.strip() or done.stdout.strip()}")
                s = json.loads(line[len("BENCH "):])
                delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
                hits = _counter(delta, "shelfrank_page_cache_total", 'outcome="hit"')
                misses = _counter(delta, "shelfrank_page_cache_total", 'outcome="miss"')
                seconds = s["duration_us"] / 1e6
                results.append(HttpResult(
                    workers, cache, s["requests"], seconds, s["requests"] / seconds, s["p50_us"] / 1e3,
                    s["p99_us"] / 1e3, s["status"], s["connect"] + s["read"] + s["write"] + s["timeout"],
                    int(_counter(delta, "shelfrank_pages_total", 'fallback="true"')),
                    hits / (hits + misses) if hits + misses else None, load))
                r = results[-1]
                say(f"workers {workers}, cache {'on' if cache else 'off'}: {r.pages_per_s:.1f} pages/s, "
                    f"p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms, non-2xx {r.non_2xx}, fallbacks {r.fallback_pages}")
    return results


# --- the report ------------------------------------------------------------------------------


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def report(info: dict[str, str], provenance: str, work: Workload | None, options: BenchOptions,
           samples: dict | None, http: list[HttpResult] | None, http_note: str, scale_note: str) -> str:
    lines = ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()]
    size = f"; {work.n_items:,} items, {work.n_categories:,} categories" if work else ""
    lines += [f"| store | {provenance}{size} |", ""]
    if samples:
        lines += [f"**(a) In process, one core**: {options.rows} x {options.items} pages, {options.pages} pages per "
                  f"line per repeat, {options.repeat} repeats; ms, min / median over repeats. Known users: active "
                  "users of the store, at moments of the log's last day; new visitors: unknown ids from the 8 "
                  "commonest locations in its last hour.", "",
                  "| requests | pipeline | cache | hit rate | p50 | p95 | p99 |", "|---|---|---|---:|---:|---:|---:|"]
        for (kind, pipeline, cache), s in samples.items():
            t = s.summary()
            hit = _f(statistics.median(s.hit_rates), 2) if s.hit_rates else "-"
            lines.append(f"| {kind} | {pipeline} | {'on' if cache else 'off'} | {hit} | "
                         + " | ".join(f"{_f(t[f'p{q}_min'])} / {_f(t[f'p{q}_median'])}" for q in PERCENTILES) + " |")
        lines.append("")
        for key in [("known", "default", True), ("known", "popularity", True), ("new visitor", "default", False)]:
            s = samples[key]
            lines += [f"Per stage, {s.label} (median over repeats, ms):", "",
                      "| stage | p50 | p95 | p99 |", "|---|---:|---:|---:|"]
            for stage in s.per_repeat:
                t = s.summary(stage)
                lines.append(f"| {stage} | " + " | ".join(_f(t[f'p{q}_median']) for q in PERCENTILES) + " |")
            lines.append("")
    if http:
        lines += [f"**(b) Over HTTP** (`shelfrank serve` on loopback, `wrk -t 1 -c {options.connections} "
                  f"-d {options.duration:g}s`, {options.rows} x {options.items} pages, "
                  f"{options.new_visitor_share:.0%} new visitors; latency budget "
                  f"{settings_budget()} ms, a page over it is a fallback page):", "",
                  "| serve.workers | cache | pages/s | p50 ms | p99 ms | non-2xx | socket errors | fallback pages "
                  "| cache hit rate | load after |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in http:
            lines.append(f"| {r.workers} | {'on' if r.cache else 'off'} | {r.pages_per_s:.1f} | {r.p50_ms:.1f} | "
                         f"{r.p99_ms:.1f} | {r.non_2xx} | {r.socket_errors} | {r.fallback_pages} | "
                         f"{_f(r.cache_hit_rate)} | {r.load} |")
        lines.append("")
    elif http_note:
        lines += [f"**(b) Over HTTP**: {http_note}", ""]
    lines += targets(samples, http, scale_note)
    lines.append(f"Load average (1/5/15 min) at the end: {load_average()}.")
    return "\n".join(lines) + "\n"


def settings_budget() -> str:
    from shelfrank.config import load_settings

    return f"{load_settings().serve.latency_budget_ms:g}"


def targets(samples: dict | None, http: list[HttpResult] | None, scale_note: str) -> list[str]:
    rows = ["| target | measured | met |", "|---|---:|---|"]
    if samples:
        t = samples[("known", "default", True)].summary()
        for q, limit in ((50, TARGETS["in_process_p50_ms"]), (99, TARGETS["in_process_p99_ms"])):
            v = t[f"p{q}_median"]
            rows.append(f"| in process p{q} < {limit:g} ms (known users, default) | {v:.1f} ms | "
                        f"{'yes' if v < limit else f'no ({v / limit:.1f}x)'} |")
    if http:
        two = [r for r in http if r.workers == max(x.workers for x in http)]
        best = max(two, key=lambda r: r.pages_per_s)
        label = f"workers {best.workers}, cache {'on' if best.cache else 'off'}"
        rows.append(f"| HTTP >= {TARGETS['http_pages_per_s']:g} pages/s ({label}) | {best.pages_per_s:.1f} | "
                    f"{'yes' if best.pages_per_s >= TARGETS['http_pages_per_s'] else 'no'} |")
        rows.append(f"| HTTP p99 < {TARGETS['http_p99_ms']:g} ms ({label}) | {best.p99_ms:.1f} ms | "
                    f"{'yes' if best.p99_ms < TARGETS['http_p99_ms'] else 'no'} |")
        errors = sum(r.non_2xx + r.socket_errors for r in http)
        rows.append(f"| zero errors (all runs) | {errors} | {'yes' if errors == 0 else 'no'} |")
    return [f"Targets (set for standard scale, 20 x 20; {scale_note}):", ""] + rows + [""]


def run_bench(settings, scale: str, options: BenchOptions, console, seed: int = 7) -> str:
    """Build or reuse the store, measure (a) and (b), and return the Markdown report."""
    def say(text: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text} [dim](load {load_average()})[/]")

    info = machine()
    provenance = ensure_store(settings, scale, seed, console)
    say(provenance)
    samples, work = in_process(settings, options, console, say)
    http, http_note = None, ""
    if options.http:
        wrk = find_wrk(say)
        if wrk is None:
            http_note = "skipped: `wrk` is not installed and this is not root (install it: apt-get install wrk)."
            say(http_note)
        else:
            http = over_http(settings, work, options, wrk, say)
    else:
        http_note = "skipped (--no-http)."
    is_standard = work.n_items >= 400_000
    scale_note = ("this store is standard scale" if is_standard
                  else f"this store has {work.n_items:,} items, not standard scale: indicative only")
    return report(info, provenance, work, options, samples, http, http_note, scale_note)
