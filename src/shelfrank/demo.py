"""`shelfrank demo`: the main job on the embedded default, end to end, in a few minutes.

It simulates a store, ingests it into the DuckDB store, shows what the logs and the ground
truth say, trains the models, evaluates them (ranked rows and whole pages, on ground
truth), builds the homepages of a few users of contrasting tastes and a brand-new one,
and ends by serving the API (and the storefront) on 127.0.0.1 until interrupted.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table

from shelfrank.config import Settings
from shelfrank.progress import RichProgress

RANDOMIZED_PROPENSITY = 0.5  # the logging policy's shuffled share logs propensities far below this


def run_demo(settings: Settings, scale: str, seed: int, console: Console, serve: bool = True,
             page_requests: int = 150) -> None:
    # The CLI owns how results look on a terminal; the demo prints them the same way.
    from shelfrank.cli import print_evaluation, print_ingest, print_simulation, print_trained
    from shelfrank.simulate import GroundTruth, simulate
    from shelfrank.store.database import Store
    from shelfrank.store.ingest import ingest_folder

    out = settings.store.data_dir / "simulated" / f"{scale}-{seed}"
    console.rule(f"1. simulate a {scale} store (seed {seed})")
    with RichProgress(console) as progress:
        summary = simulate(scale, seed, out, progress=progress)
    print_simulation(summary)

    console.rule("2. ingest it into the embedded store")
    with Store.open(settings.store) as store:
        with RichProgress(console) as progress:
            reports = ingest_folder(store, out, progress=progress)
        print_ingest(reports)
        console.rule("3. what the logs say")
        truth = GroundTruth.load(out / "truth")
        console.print(funnel_table(store))
        console.print(position_table(store, truth))
        console.rule("4. what the ground truth says")
        console.print(oracle_gap_table(store, truth))
        console.rule("5. train the models (held-out last days)")
        from shelfrank.training_run import run_evaluation, run_training

        with RichProgress(console) as progress:
            trained = run_training(store, settings, progress)
        print_trained(trained)
        console.rule("6. evaluate them on the held-out days and on ground truth")
        report_dir = settings.store.data_dir / "reports" / "latest"
        with RichProgress(console) as progress:
            result = run_evaluation(store, settings, report_dir, out / "truth", progress=progress, trained=trained,
                                    page_requests=page_requests)
        print_evaluation(result)
        console.rule("7. homepages of users with contrasting tastes, and of a brand-new user")
        show_pages(store, settings, console)
    console.print(
        f"\nThe store is in [bold]{settings.store.database_path}[/]; try `shelfrank status`, "
        f"`shelfrank page USER_ID` or `shelfrank export events events.parquet`."
    )
    if serve:
        console.rule("8. serve the homepage API (Ctrl-C to stop)")
        from shelfrank.serve import server

        def announce(service) -> None:
            console.print(f"model {service.engine.model_version or 'none: fallback pages'}; try:")
            for name, url in server.urls(settings).items():
                console.print(f"  {name:9} {url}")

        server.run(settings, announce=announce)


def contrasting_users(con, n: int = 3) -> list[tuple[str, str]]:
    """(user_id, vertical): for the n verticals with most buyers, the user who bought most there."""
    rows = con.sql(
        """
        WITH bought AS (
            SELECT e.user_id, i.vertical, count(*) AS n FROM events e JOIN items i USING (item_id)
            WHERE e.event_type = 'purchase' GROUP BY ALL
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY vertical ORDER BY n DESC, user_id) AS r,
                   count(*) OVER (PARTITION BY vertical) AS buyers
            FROM bought
        )
        SELECT user_id, vertical FROM ranked WHERE r = 1 ORDER BY buyers DESC, vertical
        """).fetchall()
    seen: set[str] = set()
    out = []
    for user, vertical in rows:
        if user not in seen:
            seen.add(user)
            out.append((str(user), str(vertical)))
        if len(out) == n:
            break
    return out


def show_pages(store, settings: Settings, console: Console, rows: int = 5) -> None:
    from shelfrank.cli import print_page
    from shelfrank.contracts import PageRequest
    from shelfrank.page.engine import HomepageEngine
    from shelfrank.training_run import models_dir

    engine = HomepageEngine.from_store(store.con, models_dir(settings), page_config=settings.page)
    at = store.con.sql("SELECT max(ts) FROM events").fetchall()[0][0]
    for user, vertical in [*contrasting_users(store.con), ("new-visitor", "")]:
        if vertical:
            console.print(f"[bold]{user}[/] buys most in {vertical}:")
        else:
            console.print("[bold]a visitor never seen before[/] (the new-user page):")
        print_page(engine.build(PageRequest(user, at, rows=rows, items=10)), max_items=4)


def funnel_table(store) -> Table:
    row = store.con.execute(
        """
        SELECT count(*) FILTER (event_type = 'impression'),
               count(*) FILTER (event_type = 'click'),
               count(*) FILTER (event_type = 'add_to_cart'),
               count(*) FILTER (event_type = 'purchase'),
               count(*) FILTER (event_type = 'search'),
               count(DISTINCT request_id), count(DISTINCT session_id), count(DISTINCT user_id)
        FROM events
        """
    ).fetchall()[0]
    impressions, clicks, carts, purchases, searches, requests, sessions, users = row
    table = Table(title="funnel in the event log")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("users", users), ("sessions", sessions), ("homepage requests", requests),
        ("impressions", impressions), ("clicks", clicks), ("add to carts", carts),
        ("purchases", purchases), ("searches", searches),
    ):
        table.add_row(name, f"{value:,}")
    table.add_row("CTR (clicks / impressions)", f"{clicks / max(impressions, 1):.3%}")
    table.add_row("add to cart / click", f"{carts / max(clicks, 1):.2%}")
    table.add_row("purchase / add to cart", f"{purchases / max(carts, 1):.2%}")
    return table


def position_table(store, truth, max_position: int = 10) -> Table:
    """Logged CTR by position, on all traffic and on the randomized share, against the true curve."""
    rows = store.con.execute(
        f"""
        WITH imp AS (
            SELECT request_id, item_id, position, propensity < {RANDOMIZED_PROPENSITY} AS randomized
            FROM events WHERE event_type = 'impression' AND row = 0 AND position < {max_position}
              AND surface = 'web'  -- examination differs by surface: compare like with like
        ), clk AS (
            SELECT DISTINCT request_id, item_id FROM events WHERE event_type = 'click'
        )
        SELECT position,
               avg((clk.item_id IS NOT NULL)::DOUBLE) AS ctr,
               avg((clk.item_id IS NOT NULL)::DOUBLE) FILTER (randomized) AS ctr_randomized,
               count(*) FILTER (randomized) AS n_randomized
        FROM imp LEFT JOIN clk USING (request_id, item_id)
        GROUP BY position ORDER BY position
        """
    ).fetchall()
    import numpy as np

    positions = np.array([r[0] for r in rows])
    true_curve = truth.examination(np.zeros_like(positions), positions)
    base_all = rows[0][1] or 1.0
    base_rand = rows[0][2] or 1.0
    table = Table(title="position bias in the top row (web): CTR relative to position 0")
    for column in ("position", "logged CTR", "randomized CTR", "true examination", "randomized n"):
        table.add_column(column, justify="right")
    for (position, ctr, ctr_rand, n_rand), true in zip(rows, true_curve, strict=True):
        table.add_row(
            str(position), f"{(ctr or 0) / base_all:.2f}",
            "-" if ctr_rand is None else f"{ctr_rand / base_rand:.2f}",
            f"{true / true_curve[0]:.2f}", f"{n_rand:,}",
        )
    return table


def oracle_gap_table(store, truth, n_users: int = 5) -> Table:
    """Expected value of the page the old system served against the truth's best page."""
    requests = store.con.execute(
        f"""
        WITH last AS (
            SELECT user_id, arg_max(request_id, ts) AS request_id, max(ts) AS ts
            FROM events WHERE event_type = 'impression' GROUP BY user_id
            ORDER BY count(*) DESC LIMIT {n_users}
        )
        SELECT e.user_id, e.request_id, any_value(last.ts), any_value(e.location), any_value(e.surface),
               list(e.item_id ORDER BY e.row, e.position), list(e.row ORDER BY e.row, e.position)
        FROM events e JOIN last USING (request_id)
        WHERE e.event_type = 'impression'
        GROUP BY e.user_id, e.request_id ORDER BY e.user_id
        """
    ).fetchall()
    table = Table(title="last logged page vs the ground truth's oracle page of the same size (expected per view)")
    for column in ("user", "logged clicks", "oracle clicks", "logged purchases", "oracle purchases"):
        table.add_column(column, justify="right" if column != "user" else "left")
    for user_id, _request, ts, location, surface, items, item_rows in requests:
        page: dict[int, list[str]] = {}
        for item, row in zip(items, item_rows, strict=True):
            page.setdefault(row, []).append(item)
        at = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
        logged = truth.page_value(user_id, [page[r] for r in sorted(page)], at, location, surface)
        # Impressions stop at the user's scroll depth: give the oracle the same rows and widths.
        oracle_rows = truth.oracle_page(
            user_id, at, location, surface, n_rows=len(page), n_items=max(len(v) for v in page.values())
        )
        oracle = truth.page_value(user_id, oracle_rows, at, location, surface)
        table.add_row(user_id, f"{logged.clicks:.2f}", f"{oracle.clicks:.2f}",
                      f"{logged.purchases:.3f}", f"{oracle.purchases:.3f}")
    return table
