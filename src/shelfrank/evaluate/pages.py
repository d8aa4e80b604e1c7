"""Whole pages on ground truth: what the engine would have shown, valued by the simulator.

For a sample of held-out requests (the logged requests of the test days: who, when, where,
on what surface), the engine starts from the state at the split and replays the test
days' events in time order, so every page is built with exactly what was known at its
moment. Each pipeline declaration builds its page for the request; the ground truth
values it (expected clicks, add-to-carts, purchases, revenue, with the true 2-D
examination and satiation), next to the popularity pipeline and the truth's own oracle
page. The headline is the normalized value (pipeline - popularity) / (oracle - popularity)
in expected purchases, with a bootstrap interval over users.

Diversity is measured on the shown items: distinct leaf categories per page, and the
intra-row similarity (share of item pairs in a row with the same category).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np

from shelfrank.contracts import PageRequest
from shelfrank.evaluate.offline import TruthSamples, normalized_value
from shelfrank.page.engine import HomepageEngine
from shelfrank.page.pipeline import PIPELINES, PagePipeline
from shelfrank.progress import SILENT, Progress

MEASURES = ("clicks", "add_to_carts", "purchases", "revenue")
NEW_ITEM_DAYS = 14.0


@dataclass
class PageEvaluation:
    pipelines: dict[str, PagePipeline]
    samples: TruthSamples  # values per pipeline name (+ "oracle"), per request
    diversity: dict[str, dict[str, float]]  # pipeline -> distinct categories per page, intra-row similarity
    new_item_share: dict[str, float]  # pipeline -> share of shown items created within NEW_ITEM_DAYS
    explored_share: dict[str, float]  # pipeline -> share of shown items placed by exploration
    latency_ms: dict[str, tuple[float, float]]  # pipeline -> (p50, p99) build time
    normalized: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def mean(self, pipeline: str) -> dict[str, float]:
        v = self.samples.values[pipeline].mean(axis=0)
        return dict(zip(MEASURES, (float(x) for x in v), strict=True))


def paired_difference(samples: TruthSamples, a: str, b: str, measure: int = 2, n_boot: int = 1000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean per-request difference a - b (purchases by default) with a 95% bootstrap interval over users:
    both pipelines built the same requests, so the pairing removes the between-request variance."""
    diff = samples.values[a][:, measure] - samples.values[b][:, measure]
    users, inverse = np.unique(samples.users, return_inverse=True)
    per_user = np.bincount(inverse, weights=diff, minlength=len(users))
    counts = np.bincount(inverse, minlength=len(users)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(users), np.full(len(users), 1.0 / len(users)), size=n_boot).astype(np.float64)
    boot = (draws @ per_user) / np.maximum(draws @ counts, 1e-12)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def held_out_requests(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, n: int,
                      seed: int) -> list[tuple[str, datetime, str, str]]:
    """(user_id, ts, location, surface) of n logged requests in [start, end), in time order."""
    rows = con.sql(
        """
        SELECT request_id, any_value(user_id), min(ts), any_value(location), any_value(surface)
        FROM events WHERE event_type = 'impression' AND ts >= $start AND ts < $end AND request_id IS NOT NULL
        GROUP BY request_id ORDER BY request_id
        """, params={"start": start, "end": end}).fetchall()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False) if rows else []
    chosen = sorted((rows[i] for i in pick), key=lambda r: r[2])
    return [(str(u), ts, loc or "", surf or "web") for _, u, ts, loc, surf in chosen]


def evaluate_pages(con: duckdb.DuckDBPyConnection, models_dir: Path, truth, split: datetime, end: datetime,
                   pipelines: Mapping[str, PagePipeline] | None = None, n_requests: int = 200, rows: int = 8,
                   items: int = 10, seed: int = 0, progress: Progress = SILENT) -> PageEvaluation:
    pipelines = dict(pipelines or PIPELINES)
    if "popularity" not in pipelines:
        pipelines["popularity"] = PIPELINES["popularity"]
    engine = HomepageEngine.from_store(con, models_dir, as_of=split)
    requests = held_out_requests(con, split, end, n_requests, seed)
    events = con.sql("SELECT * FROM events WHERE ts >= $start AND ts < $end ORDER BY ts",
                     params={"start": split, "end": end}).to_arrow_table()
    event_ts = events.column("ts").to_numpy() if events.num_rows else np.zeros(0, dtype="datetime64[us]")
    applied = 0
    values: dict[str, list[tuple[float, ...]]] = {name: [] for name in (*pipelines, "oracle")}
    users: list[str] = []
    categories = engine.catalog.category
    distinct: dict[str, list[float]] = {name: [] for name in pipelines}
    same_cat: dict[str, list[float]] = {name: [] for name in pipelines}
    new_items: dict[str, list[float]] = {name: [] for name in pipelines}
    explored: dict[str, list[float]] = {name: [] for name in pipelines}
    latency: dict[str, list[float]] = {name: [] for name in pipelines}
    with progress.task(f"pages for {len(requests)} held-out requests x {len(pipelines)} pipelines",
                       total=len(requests)) as advance:
        for k, (user, at, location, surface) in enumerate(requests):
            upto = int(np.searchsorted(event_ts, np.datetime64(at.replace(tzinfo=None), "us"), side="left"))
            if upto > applied:
                engine.apply_events(events.slice(applied, upto - applied))
                applied = upto
            try:
                oracle = truth.oracle_page(user, at, location or None, surface, rows, items)
            except ValueError:
                advance(1)
                continue  # a user the truth does not know
            v = truth.page_value(user, oracle, at, location or None, surface)
            values["oracle"].append((v.clicks, v.add_to_carts, v.purchases, v.revenue))
            for name, spec in pipelines.items():
                request = PageRequest(user, at, location or None, surface, rows, items, seed=seed * 100_003 + k)
                page = engine.build(request, spec)
                latency[name].append(page.timings_ms.get("total", np.nan))
                v = truth.page_value(user, page.item_ids(), at, location or None, surface)
                values[name].append((v.clicks, v.add_to_carts, v.purchases, v.revenue))
                shown = engine.catalog.index_of(np.asarray([s.item_id for r in page.rows for s in r.items],
                                                           dtype=object))
                distinct[name].append(len(np.unique(categories[shown])))
                same_cat[name].append(_intra_row_similarity(page, engine, categories))
                created = engine.catalog.created_t[shown]
                new_items[name].append(float(np.mean(at.timestamp() - created < NEW_ITEM_DAYS * 86_400))
                                       if len(shown) else 0.0)
                explored[name].append(float(np.mean([s.explore for r in page.rows for s in r.items]))
                                      if len(shown) else 0.0)
            users.append(user)
            advance(1)
    samples = TruthSamples(np.asarray(users), {p: np.asarray(v, dtype=np.float64).reshape(-1, 4)
                                               for p, v in values.items()})
    result = PageEvaluation(
        pipelines=pipelines, samples=samples,
        diversity={n: {"distinct_categories": float(np.mean(distinct[n])) if distinct[n] else 0.0,
                       "intra_row_similarity": float(np.nanmean(same_cat[n])) if same_cat[n] else 0.0}
                   for n in pipelines},
        new_item_share={n: float(np.mean(new_items[n])) if new_items[n] else 0.0 for n in pipelines},
        explored_share={n: float(np.mean(explored[n])) if explored[n] else 0.0 for n in pipelines},
        latency_ms={n: (float(np.nanpercentile(latency[n], 50)), float(np.nanpercentile(latency[n], 99)))
                    if latency[n] else (np.nan, np.nan) for n in pipelines},
    )
    if len(users):
        result.normalized = {n: normalized_value(samples, n) for n in (*pipelines, "oracle")}
    return result


def _intra_row_similarity(page, engine: HomepageEngine, categories: np.ndarray) -> float:
    shares = []
    for row in page.rows:
        idx = engine.catalog.index_of(np.asarray([s.item_id for s in row.items], dtype=object))
        c = categories[idx]
        n = len(c)
        if n < 2:
            continue
        same = (c[:, None] == c[None, :]).sum() - n
        shares.append(same / (n * (n - 1)))
    return float(np.mean(shares)) if shares else float("nan")


def tradeoff_pipelines(strengths: Sequence[float] = (1.0, 0.85, 0.7, 0.5, 0.3),
                       base: PagePipeline | None = None) -> dict[str, PagePipeline]:
    """MMR and DPP at several relevance weights, for the relevance-diversity trade-off curve."""
    base = (base or PIPELINES["default"]).with_(explore_items=0.0, explore_collections=0.0)
    out = {}
    for kind in ("mmr", "dpp"):
        for s in strengths:
            out[f"{kind}@{s:g}"] = base.with_(name=f"{kind}@{s:g}", diversity=kind, diversity_strength=s)
    return out




# Each differs from the default in one choice: diversity on/off, MMR vs DPP, top-K mean vs marginal gain,
# exploration on/off, debiasing; a variant equal to the default (e.g. `mmr` when the default is MMR) is skipped.
PAGE_VARIANTS = ("default", "no_diversity", "mmr", "dpp", "top_k_mean", "marginal_gain", "no_exploration",
                 "no_debiasing", "popularity")


def page_variants(pipelines: Mapping[str, PagePipeline]) -> dict[str, PagePipeline]:
    default = pipelines["default"]
    out = {}
    for name in PAGE_VARIANTS:
        spec = pipelines[name]
        if name != "default" and spec.with_(name="default", description=default.description) == default:
            continue
        out[name] = spec
    return out


def page_report_sections(result: PageEvaluation, folder: Path) -> list:
    """Report sections: the full-page comparison table, and the relevance-diversity trade-off plot."""
    import matplotlib.pyplot as plt

    from shelfrank.evaluate.report import Section

    header = ["pipeline", "clicks", "add_to_carts", "purchases", "revenue", "normalized purchases [95% CI]",
              "purchases vs default [95% CI]", "distinct categories", "intra-row similarity", "new-item share",
              "explored share", "build p50 ms"]
    table = [header]
    for name in (*result.pipelines, "oracle"):
        m = result.mean(name)
        norm = result.normalized.get(name)
        row = [name, m["clicks"], m["add_to_carts"], m["purchases"], m["revenue"],
               f"{norm[0]:+.3f} [{norm[1]:+.3f}, {norm[2]:+.3f}]" if norm else ""]
        if "default" in result.pipelines and name != "default":
            d, lo, hi = paired_difference(result.samples, name, "default")
            row.append(f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        else:
            row.append("")
        if name in result.pipelines:
            d = result.diversity[name]
            row += [d["distinct_categories"], d["intra_row_similarity"], result.new_item_share[name],
                    result.explored_share[name], result.latency_ms[name][0]]
        else:
            row += ["", "", "", "", ""]
        table.append(row)
    sections = [Section(
        "Whole pages on ground truth",
        f"{len(result.samples.users)} held-out requests of {len(np.unique(result.samples.users))} users, each "
        "built by every pipeline from the state at its moment (the engine replays the held-out days' events in "
        "time order) and valued by the simulator (true 2-D examination and satiation, which reward variety). "
        "`oracle` is the truth's own greedy page with no collection constraints. Normalized purchases = "
        "(pipeline - popularity) / (oracle - popularity), 95% bootstrap interval over users. The pipelines are "
        "declared in `shelfrank.page.pipeline`.",
        table=table,
    )]
    curve = {n: p for n, p in result.pipelines.items() if "@" in n}
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for kind, marker in (("mmr", "o"), ("dpp", "s")):
            names = sorted((n for n in curve if n.startswith(kind)), key=lambda n: -curve[n].diversity_strength)
            if not names:
                continue
            x = [result.diversity[n]["distinct_categories"] for n in names]
            y = [result.mean(n)["purchases"] for n in names]
            ax.plot(x, y, marker=marker, label=kind.upper())
            for n, xi, yi in zip(names, x, y, strict=True):
                ax.annotate(n.split("@")[1], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for name in ("popularity", "default"):
            if name in result.pipelines:
                ax.scatter([result.diversity[name]["distinct_categories"]], [result.mean(name)["purchases"]],
                           marker="x", s=60, label=name)
        ax.set(title="relevance-diversity trade-off (ground truth)", xlabel="distinct categories per page",
               ylabel="expected purchases per page")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "diversity_tradeoff.png")
        plt.close(fig)
        best = max(curve, key=lambda n: result.mean(n)["purchases"])
        sections.append(Section(
            "Relevance-diversity trade-off",
            "MMR (lambda) and DPP (theta) at several relevance weights (1 = no diversity), exploration off. "
            f"Highest expected purchases: `{best}`. The default pipeline's setting is chosen from this curve.",
            figures=["diversity_tradeoff.png"],
        ))
    return sections
