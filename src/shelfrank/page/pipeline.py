"""Page pipelines as declarations: which sources, how many candidates, which ranker, which
diversity, which ordering, which rules, how much exploration.

A variant (no diversity, DPP, marginal-gain ordering, the popularity baseline) is another
declaration, never an ``if`` deep inside a stage; the evaluation builds the same requests
with each and compares them on ground truth. The runner is ``page/builder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal


@dataclass(frozen=True)
class PagePipeline:
    name: str
    description: str
    sources: tuple[str, ...] | None = None  # source names; None = every source the engine has
    # Measured on ground truth (small scale, paired, docs/page.md): a pool of 30 items per collection,
    # retrieval on 5 leading items and 150 first-pass candidates sell more than 60 / 10 / 300 (+0.004
    # purchases per page [+0.0004, +0.0082]) and cost less: deeper pool items were ones the ranker over-scored.
    # Then a pool of 24 and 1.5 collections kept per row were within noise of 30 / 2.0 on pages of 8 x 10
    # and 20 x 20 (-0.001 [-0.005, +0.003] purchases per page) for 9% less page-building time; and a
    # pool of 20 sold more than 24 at both sizes (+0.0036 [+0.0008, +0.0061] at 8 x 10, +0.0043
    # [+0.0016, +0.0070] at 20 x 20), though 20-item rows then refill less after the page-wide dedupe.
    max_candidates: int = 150  # collections kept by the first pass
    retrieval: bool = True  # score collections with the retrieval model (else: first-pass order)
    keep_per_row: float = 1.5  # collections kept after retrieval, per requested row (rules drop some)
    retrieval_items: int = 5  # leading items per collection the retrieval model sees
    item_pool: int = 20  # candidate items per collection the ranker scores
    ranker: str = "default"  # a trained ranker's name, "default" (the evaluation's pick) or "popularity"
    # Measured on ground truth (docs/page.md): in-row MMR or DPP at any strength from 0.9 to 0.4 cost
    # about 3% of expected purchases (paired, significant) for +30% distinct categories, so rows keep
    # the ranker's order by default; variety across rows comes from the page rules.
    diversity: Literal["mmr", "dpp", "none"] = "none"
    diversity_strength: float = 0.7  # MMR lambda / DPP theta: 1 = pure relevance
    similarity: Literal["attributes", "embeddings"] = "attributes"
    ordering: Literal["top_k_mean", "marginal_gain"] = "top_k_mean"
    top_k: int = 5
    remove_no_image: bool = False  # False: demote items without an image; True: remove them
    dedupe_items: bool = True  # an item appears at most once per page
    min_items: int = 4  # collections left with fewer items are dropped
    max_collection_similarity: float = 0.95  # category-histogram cosine above which a lower row is dropped
    explore_items: float = 0.05  # probability per row of one exploration slot for a new item
    explore_collections: float = 0.05  # probability per page of one new collection inserted
    explore_first_position: int = 1
    explore_first_row: int = 1
    new_item_days: float = 14.0

    def with_(self, **changes: object) -> PagePipeline:
        return replace(self, **changes)


DEFAULT = PagePipeline("default", "all sources, retrieval model, default ranker, top-K-mean order, rules, "
                       "exploration")


def pipelines_from(default: PagePipeline) -> dict[str, PagePipeline]:
    """The named variants of a default declaration (each differs from it in one choice), plus the
    popularity baseline and the fallback."""
    popularity = default.with_(name="popularity", description="baseline: popular categories and curated rows, "
                               "items by popularity, no models, no diversity, no exploration",
                               sources=("curated", "popular_categories"), retrieval=False, ranker="popularity",
                               diversity="none", explore_items=0.0, explore_collections=0.0)
    return {p.name: p for p in (
        default,
        default.with_(name="no_diversity", description="default without in-row diversity", diversity="none"),
        default.with_(name="mmr", description="default with MMR in rows (lambda 0.7 unless configured)",
                      diversity="mmr"),
        default.with_(name="dpp", description="default with a greedy DPP in rows (theta 0.7 unless configured)",
                      diversity="dpp"),
        default.with_(name="top_k_mean", description="default with rows ordered by their top-K mean",
                      ordering="top_k_mean"),
        default.with_(name="marginal_gain", description="default with rows ordered by greedy marginal gain",
                      ordering="marginal_gain"),
        default.with_(name="no_exploration", description="default without exploration", explore_items=0.0,
                      explore_collections=0.0),
        default.with_(name="no_debiasing", description="default with the ranker trained without position "
                      "information", ranker="no_debiasing"),
        popularity,
        popularity.with_(name="fallback", description="fallback: curated and popular collections"),
    )}


def configured_default(config=None) -> PagePipeline:
    """DEFAULT with the `[page]` configuration applied (config.PageConfig)."""
    if config is None:
        return DEFAULT
    # The [page] keys that are not pipeline choices (how trees are scored) belong to the engine.
    declared = {f.name for f in fields(PagePipeline)}
    return DEFAULT.with_(**{k: v for k, v in config.model_dump().items() if k in declared})


PIPELINES: dict[str, PagePipeline] = pipelines_from(DEFAULT)
FALLBACK = PIPELINES["fallback"]


def pipeline_named(name: str) -> PagePipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}; expected one of: {', '.join(PIPELINES)}") from None
