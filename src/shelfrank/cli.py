"""The `shelfrank` command line: thin Typer commands over the library."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shelfrank import __version__
from shelfrank.config import Settings, load_settings

app = typer.Typer(
    name="shelfrank",
    help="A personalized homepage engine for online stores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class _State:
    settings: Settings | None = None
    data_dir: Path | None = None
    config_file: Path | None = None

    def resolve(self) -> Settings:
        if self.settings is None:
            overrides: dict[str, Any] = {}
            settings = load_settings(config_file=self.config_file)
            if self.data_dir is not None:
                overrides["store"] = settings.store.model_copy(update={"data_dir": self.data_dir})
                settings = settings.model_copy(update=overrides)
            self.settings = settings
        return self.settings


state = _State()


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's user-facing errors into one red line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from shelfrank.errors import UserFacingError

        try:
            return command(*args, **kwargs)
        except UserFacingError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            err_console.print(f"[bold red]error:[/] configuration {where}: {first['msg']}")
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"shelfrank {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", "-d", help="Data folder (default: store.data_dir, ./shelfrank-data)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration file (default ./shelfrank.toml).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """shelfrank decides, per user and moment, which collections a homepage shows and in what order."""
    if config is not None and not config.is_file():
        err_console.print(f"[bold red]error:[/] configuration file {config} does not exist")
        raise typer.Exit(2)
    state.settings = None
    state.data_dir = data_dir
    state.config_file = config


@app.command("config")
@user_errors
def show_config() -> None:
    """Show the effective configuration (defaults < TOML file < environment < flags)."""
    settings = state.resolve()
    table = Table(title="shelfrank configuration", show_lines=False)
    table.add_column("key")
    table.add_column("value")
    for section_name, section in settings:
        for key, value in section:
            table.add_row(f"{section_name}.{key}", str(value))
    console.print(table)


@app.command()
@user_errors
def simulate(
    scale: Annotated[str | None, typer.Option(help="tiny, small or standard (default: simulate.scale).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: simulate.seed).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: DATA_DIR/simulated/SCALE-SEED).")
    ] = None,
) -> None:
    """Generate a synthetic store (catalog, users, logged homepages, events) with its ground truth."""
    from shelfrank.progress import RichProgress
    from shelfrank.simulate import SCALES
    from shelfrank.simulate import simulate as run_simulation

    settings = state.resolve()
    scale = scale or settings.simulate.scale
    seed = settings.simulate.seed if seed is None else seed
    if scale not in SCALES:
        from shelfrank.errors import UserFacingError

        raise UserFacingError(f"unknown scale {scale!r}; expected one of: {', '.join(SCALES)}")
    out = out or settings.store.data_dir / "simulated" / f"{scale}-{seed}"
    with RichProgress(console) as progress:
        summary = run_simulation(scale, seed, out, progress=progress)
    print_simulation(summary)


def print_simulation(summary: Any) -> None:
    table = Table(title=f"simulated store in {summary.out_dir}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.counts.items():
        table.add_row(key, f"{value:,}")
    for key, value in getattr(summary, "facts", {}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("peak RSS (MB)", f"{summary.peak_rss_mb:,.0f}")
    console.print(table)


@app.command()
@user_errors
def ingest(
    path: Annotated[Path, typer.Argument(help="A .parquet/.csv file, a folder of part files, or a folder of kinds.")],
    kind: Annotated[
        str | None,
        typer.Option(help="categories, items, users, collections, inventory or events (default: from the name)."),
    ] = None,
) -> None:
    """Load data files into the store; bad rows go to a rejects file, good rows are kept."""
    from shelfrank.errors import UserFacingError
    from shelfrank.progress import RichProgress
    from shelfrank.store.database import Store
    from shelfrank.store.ingest import detect_kind, ingest_file, ingest_folder

    if not path.exists():
        raise UserFacingError(f"{path} does not exist")
    settings = state.resolve()
    with Store.open(settings.store) as store, RichProgress(console) as progress:
        if kind is None and path.is_dir() and not _is_part_folder(path, detect_kind):
            reports = ingest_folder(store, path, progress=progress)
        else:
            reports = [ingest_file(store, path, kind=kind, progress=progress)]
    print_ingest(reports)


def _is_part_folder(path: Path, detect_kind: Callable[[Path], str]) -> bool:
    """A folder named after a kind (events/) holds parts of one file; any other folder holds kinds."""
    try:
        detect_kind(path)
    except Exception:
        return False
    return True


def print_ingest(reports: list[Any]) -> None:
    table = Table(title="ingest")
    for column in ("kind", "file", "read", "accepted", "rejected", "duplicates", "top reasons"):
        numeric = column in {"read", "accepted", "rejected", "duplicates"}
        table.add_column(column, justify="right" if numeric else "left")
    for r in reports:
        top = sorted(r.reasons.items(), key=lambda kv: -kv[1])[:3]
        reasons = ", ".join(f"{reason} ({n:,})" for reason, n in top)
        table.add_row(r.kind, r.path.name, f"{r.rows_read:,}", f"{r.accepted:,}", f"{r.rejected:,}",
                      f"{r.duplicates:,}", reasons)
    console.print(table)
    for r in reports:
        if r.rejects_path is not None:
            console.print(f"rejected rows of {r.path.name}: {r.rejects_path}")


@app.command()
@user_errors
def export(
    table: Annotated[str, typer.Argument(help="Table to export (items, events, ...).")],
    path: Annotated[Path, typer.Argument(help="Output file; .parquet or .csv.")],
) -> None:
    """Write a store table to Parquet or CSV."""
    from shelfrank.store.database import Store

    with Store.open(state.resolve().store) as store:
        n = store.export(table, path)
    console.print(f"wrote {n:,} rows of {table} to {path}")


@app.command()
@user_errors
def status() -> None:
    """Show what the store holds."""
    from shelfrank.store.database import Store

    settings = state.resolve()
    with Store.open(settings.store) as store:
        counts = store.table_counts()
    table = Table(title=f"store {settings.store.database_path}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


@app.command("train")
@user_errors
def train_command(
    test_days: Annotated[float | None, typer.Option(help="Days held out at the end (default: train.test_days).")]
    = None,
) -> None:
    """Train the examination curve, both item rankers and the collection retrieval model from the store."""
    from shelfrank.progress import RichProgress
    from shelfrank.store.database import Store
    from shelfrank.training_run import run_training

    settings = state.resolve()
    if test_days is not None:
        settings = settings.model_copy(update={"train": settings.train.model_copy(update={"test_days": test_days})})
    with Store.open(settings.store) as store, RichProgress(console) as progress:
        trained = run_training(store, settings, progress)
    print_trained(trained)


def print_trained(trained: Any) -> None:
    table = Table(title="trained models")
    table.add_column("artefact")
    table.add_column("folder")
    for kind, path in trained.paths.items():
        table.add_row(kind, str(path))
    console.print(table)
    console.print(f"training window {trained.split.start:%Y-%m-%d %H:%M} .. {trained.split.split:%Y-%m-%d %H:%M} UTC; "
                  f"{len(trained.train_set.stage):,} impressions")


@app.command("evaluate")
@user_errors
def evaluate_command(
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth folder of simulated data (e.g. DATA_DIR/simulated/small-7/truth).")
    ] = None,
    report_dir: Annotated[Path, typer.Option(help="Where the Markdown report and plots go.")] = Path("reports"),
    version: Annotated[str | None, typer.Option(help="Model version (default: the latest).")] = None,
    pages: Annotated[int, typer.Option(help="Held-out requests whose whole pages every pipeline builds and the "
                                            "ground truth values (needs --truth; 0 = skip).")] = 150,
    tradeoff: Annotated[bool, typer.Option(help="Also sweep MMR / DPP strength for the trade-off curve.")] = True,
) -> None:
    """Evaluate the latest models on the held-out days: logged metrics, ground truth, position curves, whole pages."""
    from shelfrank.progress import RichProgress
    from shelfrank.store.database import Store
    from shelfrank.training_run import run_evaluation

    settings = state.resolve()
    with Store.open(settings.store) as store, RichProgress(console) as progress:
        result = run_evaluation(store, settings, report_dir, truth, version, progress, page_requests=pages,
                                tradeoff=tradeoff)
    print_evaluation(result)


def print_evaluation(result: Any) -> None:
    metrics = ["ndcg_at_10", "page_dcg", "auc_click", "auc_add_to_cart", "auc_purchase"]
    table = Table(title="held-out days: logged metrics (biased by the old system's choices)")
    table.add_column("policy")
    for m in metrics:
        table.add_column(m, justify="right")
    for policy, values in result.logged_metrics.items():
        table.add_row(policy, *[f"{values[m]:.4f}" for m in metrics])
    console.print(table)
    if result.truth_value:
        truth_table = Table(title=f"ground truth: expected per page ({result.n_truth_requests} requests)")
        for column in ("policy", "clicks", "add_to_carts", "purchases", "normalized [95% CI]"):
            truth_table.add_column(column, justify="left" if column == "policy" else "right")
        for policy, v in result.truth_value.items():
            norm = result.normalized_value.get(policy)
            norm_text = f"{norm[0]:+.2f} [{norm[1]:+.2f}, {norm[2]:+.2f}]" if norm else ""
            truth_table.add_row(policy, f"{v['clicks']:.3f}", f"{v['add_to_carts']:.3f}", f"{v['purchases']:.3f}",
                                norm_text)
        console.print(truth_table)
    if getattr(result, "pages", None) is not None:
        print_page_evaluation(result.pages)
    console.print(f"default ranker by measurement: [bold]{result.best_ranker}[/]; report: {result.report_path}")


def print_page_evaluation(pages: Any) -> None:
    n = len(pages.samples.users)
    table = Table(title=f"ground truth: whole pages per pipeline ({n} held-out requests)")
    for column in ("pipeline", "purch.", "clicks", "normalized [95% CI]", "cats", "new", "expl.", "ms p50"):
        table.add_column(column, justify="left" if column == "pipeline" else "right", no_wrap=True)
    for name in (*pages.pipelines, "oracle"):
        m = pages.mean(name)
        norm = pages.normalized.get(name)
        norm_text = f"{norm[0]:+.2f} [{norm[1]:+.2f},{norm[2]:+.2f}]" if norm else ""
        if name in pages.pipelines:
            extra = [f"{pages.diversity[name]['distinct_categories']:.1f}", f"{pages.new_item_share[name]:.1%}",
                     f"{pages.explored_share[name]:.1%}", f"{pages.latency_ms[name][0]:.0f}"]
        else:
            extra = ["", "", "", ""]
        table.add_row(name, f"{m['purchases']:.4f}", f"{m['clicks']:.3f}", norm_text, *extra)
    console.print(table)


@app.command()
@user_errors
def page(
    user_id: Annotated[str, typer.Argument(help="The user to build the homepage for (unknown ids get the new-user "
                                                "page).")],
    at: Annotated[str | None, typer.Option(help="ISO time of the request, or 'now' (default: the newest event in "
                                                "the store, so a simulated or replayed log is served as of its end).")]
    = None,
    location: Annotated[str | None, typer.Option(help="Region code (default: the user's home location).")] = None,
    surface: Annotated[str, typer.Option(help="web, ios, android, ...")] = "web",
    rows: Annotated[int, typer.Option(min=1, max=100, help="Collections on the page.")] = 8,
    items: Annotated[int, typer.Option(min=1, max=100, help="Items per collection.")] = 10,
    pipeline: Annotated[str, typer.Option(help="Pipeline declaration: default, no_diversity, dpp, marginal_gain, "
                                               "no_exploration, no_debiasing, popularity.")] = "default",
    seed: Annotated[int, typer.Option(help="Seed of the page's random choices (exploration).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as JSON (the API's shape).")] = False,
) -> None:
    """Build one user's homepage with the trained models and print it."""
    from shelfrank.page.engine import HomepageEngine
    from shelfrank.page.pipeline import PIPELINES
    from shelfrank.store.database import Store
    from shelfrank.training_run import models_dir

    if pipeline not in PIPELINES:
        from shelfrank.errors import UserFacingError

        raise UserFacingError(f"unknown pipeline {pipeline!r}; expected one of: {', '.join(PIPELINES)}")
    settings = state.resolve()
    with Store.open(settings.store) as store:
        when = _request_time(store.con, at)
        engine = HomepageEngine.from_store(store.con, models_dir(settings), page_config=settings.page)
    request = _page_request(user_id, when, location, surface, rows, items, seed)
    built = engine.build(request, pipeline)
    if as_json:
        import orjson

        typer.echo(orjson.dumps(built.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    print_page(built)


def _request_time(con: Any, at: str | None) -> Any:
    from datetime import UTC, datetime

    from shelfrank.errors import UserFacingError

    if at == "now":
        return datetime.now(UTC)
    if at is None:
        newest = con.sql("SELECT max(ts) FROM events").fetchall()[0][0]
        return newest if newest is not None else datetime.now(UTC)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise UserFacingError(f"--at {at!r} is not an ISO time (e.g. 2026-10-07T12:00:00Z) or 'now'") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _page_request(user_id: str, when: Any, location: str | None, surface: str, rows: int, items: int,
                  seed: int) -> Any:
    from shelfrank.contracts import PageRequest
    from shelfrank.errors import UserFacingError

    try:
        return PageRequest(user_id=user_id, at=when, location=location, surface=surface, rows=rows, items=items,
                           seed=seed)
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None


def print_page(built: Any, max_items: int = 6) -> None:
    who = f"{built.user_id} (new user)" if built.new_user else built.user_id
    title = f"homepage of {who} at {built.at[:16]} UTC, {built.surface}, {built.location or 'no location'}"
    if built.fallback:
        title += f" - FALLBACK: {built.fallback_reason}"
    table = Table(title=title, show_lines=False)
    table.add_column("row", justify="right")
    table.add_column("collection")
    table.add_column("why")
    table.add_column("first items (score)")
    for r in built.rows:
        flags = " [yellow]explore[/]" if r.explore else (" [cyan]pinned[/]" if r.pinned else "")
        shown = ", ".join(f"{s.title}{' [yellow]*[/]' if s.explore else ''} ({s.score:.3f})"
                          for s in r.items[:max_items])
        table.add_row(str(r.row), f"{r.title}\n[dim]{r.source}/{r.generator}[/]{flags}", r.reason,
                      shown + (" ..." if len(r.items) > max_items else ""))
    console.print(table)
    total = built.timings_ms.get("total", 0.0)
    rules = ", ".join(f"{k} {v}" for k, v in built.rule_counts.items()) or "none"
    console.print(f"pipeline {built.pipeline}, model {built.model_version or '-'}, built in {total:.1f} ms; "
                  f"rules: {rules}; [yellow]*[/] = exploration slot")


@app.command()
@user_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port, 8000).")] = None,
    redis: Annotated[
        str | None, typer.Option("--redis", help="redis://host:port/db shared by replicas (default: in process).")
    ] = None,
    replica_id: Annotated[
        str | None, typer.Option(help="This replica's name: its intake log and Redis entries (default: main).")
    ] = None,
    compact: Annotated[
        bool, typer.Option("--compact", help="Move the intake log into the store and exit (server stopped).")
    ] = False,
) -> None:
    """Serve homepages over HTTP (FastAPI; OpenAPI at /docs). See docs/serving.md."""
    from shelfrank.serve import server

    settings = state.resolve()
    changes = {k: v for k, v in {"host": host, "port": port, "redis_url": redis, "replica_id": replica_id}.items()
               if v is not None}
    settings = settings.model_copy(update={"serve": settings.serve.model_validate(
        {**settings.serve.model_dump(), **changes})})
    if compact:
        report = server.compact(settings)
        console.print(f"compacted {report.segments} intake segment(s), {report.changes} change(s) into the store: "
                      f"{report.accepted or 'nothing new'}")
        return
    console.print("building the engine from the store and replaying the intake log ...")

    def announce(service) -> None:
        stats = service.startup_stats
        console.print(f"ready in {stats['engine_seconds']:.1f} s (intake replay {stats['replay_seconds']:.2f} s), "
                      f"model {service.engine.model_version or 'none: fallback pages'}")
        for name, url in server.urls(settings).items():
            console.print(f"  {name:9} {url}")

    server.run(settings, announce=announce)


@app.command("bench")
@user_errors
def bench_command(
    scale: Annotated[str, typer.Option(help="Scale to simulate when the data dir holds no store.")] = "standard",
    pages: Annotated[int, typer.Option(min=1, help="In process: pages per line of the table per repeat.")] = 200,
    repeat: Annotated[int, typer.Option(min=1, help="In process: repeats (min and median reported).")] = 3,
    duration: Annotated[float, typer.Option(min=1, help="HTTP: seconds of wrk load per configuration.")] = 20.0,
    connections: Annotated[int, typer.Option(min=1, help="HTTP: wrk's open connections.")] = 4,
    http: Annotated[bool, typer.Option("--http/--no-http", help="Also measure over HTTP with wrk.")] = True,
    rows: Annotated[int, typer.Option(min=1, max=50, help="Collections per page.")] = 20,
    items: Annotated[int, typer.Option(min=1, max=50, help="Items per collection.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Also write the Markdown report to this file.")] = None,
) -> None:
    """Benchmark pages: in process per stage on one core, and over HTTP with wrk. See docs/benchmarks.md.

    Reuses the store and models in the data dir (--data-dir), else simulates, ingests and trains one at --scale."""
    from shelfrank.bench import BenchOptions, run_bench

    options = BenchOptions(pages=pages, repeat=repeat, rows=rows, items=items, duration=duration,
                           connections=connections, http=http)
    markdown = run_bench(state.resolve(), scale, options, err_console)
    print(markdown)
    if out is not None:
        out.write_text(markdown)


@app.command()
@user_errors
def demo(
    scale: Annotated[str, typer.Option(help="Simulator scale for the demo.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    serve: Annotated[bool, typer.Option(help="End by serving the API on serve.host:serve.port.")] = True,
    pages: Annotated[int, typer.Option(help="Held-out requests for the whole-page evaluation.")] = 150,
) -> None:
    """Simulate, ingest, train, evaluate (rows and whole pages), show a few homepages, then serve the API."""
    from shelfrank.demo import run_demo

    run_demo(state.resolve(), scale=scale, seed=seed, console=console, serve=serve, page_requests=pages)


if __name__ == "__main__":  # pragma: no cover
    app()
