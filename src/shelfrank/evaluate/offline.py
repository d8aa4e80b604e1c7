"""The offline evaluation: held-out days, logged metrics, and page value on ground truth.

Policies compared on the same held-out impressions (whole requests):

* ``logged``: the order the old system showed (the baseline every model must beat);
* ``popularity``: by the item's smoothed CTR (a non-personal baseline);
* ``position_feature`` and ``factorized``: the two item rankers (inference at slot 0 / relevance part).

Logged metrics (biased by what the old system chose to show): NDCG@10 and Recall@20 per
collection impression (label: deepest stage; recall counts any engagement), AUC per funnel
stage. Ground truth (the simulator's): every row of a sampled request re-ordered by each
policy and scored by the truth's expected clicks / add-to-carts / purchases with its 2-D
examination and satiation, next to the truth's own best order of the same items (oracle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc

from shelfrank.evaluate.metrics import log_loss, ndcg_at_k, page_dcg, recall_at_k, roc_auc
from shelfrank.evaluate.report import Section, plot_bars, plot_curves, write_report
from shelfrank.features.labels import item_impression_labels
from shelfrank.models.examination import ExaminationCurve
from shelfrank.models.item_ranker import STAGE_CART, STAGE_CLICK, STAGE_PURCHASE, FunnelWeights
from shelfrank.models.training import (
    CANDIDATE_RANKERS,
    RANKERS,
    ImpressionSet,
    TrainedModels,
    TrainOptions,
    impression_set,
    ranker_scores,
    surfaces_of,
)
from shelfrank.progress import SILENT, Progress

_EPSILON = timedelta(microseconds=1)  # the window's end is exclusive; include the last event
STAGES = {"click": STAGE_CLICK, "add_to_cart": STAGE_CART, "purchase": STAGE_PURCHASE}


@dataclass
class Evaluation:
    logged_metrics: dict[str, dict[str, float]]  # policy -> metric -> value
    truth_value: dict[str, dict[str, float]] = field(default_factory=dict)  # policy -> measure -> mean per page
    normalized_value: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # policy -> (v, lo, hi)
    position_curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    n_test_impressions: int = 0
    n_truth_requests: int = 0
    n_truth_users: int = 0
    best_ranker: str = ""
    report_path: Path | None = None
    pages: object | None = None  # evaluate.pages.PageEvaluation when whole pages were evaluated


TRUTH_MEASURES = ("clicks", "add_to_carts", "purchases", "revenue")


def policy_scores(test: ImpressionSet, trained: TrainedModels, seed: int = 0) -> dict[str, np.ndarray]:
    names = list(test.feature_names)
    scores = {
        "logged": -test.position.astype(np.float64),
        "random": np.random.default_rng(seed).random(len(test.position)),
        "popularity": test.features[:, names.index("item_ctr")].astype(np.float64),
    }
    for spec in RANKERS:
        scores[spec.name] = ranker_scores(spec, trained.rankers[spec.name], test)
    return scores


def _page_dcg_by_policy(test: ImpressionSet, scores: dict[str, np.ndarray], gains: np.ndarray) -> dict[str, float]:
    """Mean 2-D page DCG of each request's rows re-ordered by each policy (logged gains, rows kept in place)."""
    labels = test.labels
    request = labels.column("request_id").to_numpy(zero_copy_only=False)
    order = np.lexsort((test.row, request))
    bounds = np.flatnonzero(np.r_[True, request[order][1:] != request[order][:-1], True])
    out = {}
    item_index = np.arange(len(request)).astype(str)  # each impression its own "item": labels are per impression
    for policy, s in scores.items():
        total = 0.0
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            idx = order[lo:hi]
            rows = []
            for r in np.unique(test.row[idx]):
                in_row = idx[test.row[idx] == r]
                rows.append(item_index[in_row[np.argsort(-s[in_row], kind="stable")]].tolist())
            total += page_dcg(rows, dict(zip(item_index[idx], gains[idx], strict=True)))
        out[policy] = total / max(len(bounds) - 1, 1)
    return out


def logged_metrics(test: ImpressionSet, scores: dict[str, np.ndarray], trained: TrainedModels,
                   funnel: FunnelWeights) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    engaged = (test.stage > 0).astype(float)
    gains = funnel.gains(test.stage)
    page = _page_dcg_by_policy(test, scores, gains)
    for policy, s in scores.items():
        metrics = {
            "ndcg_at_10": ndcg_at_k(s, test.stage, test.groups, k=10).value,
            "recall_at_20": recall_at_k(s, engaged, test.groups, k=20).value,
            "page_dcg": page[policy],
        }
        for name, stage in STAGES.items():
            metrics[f"auc_{name}"] = roc_auc(test.stage >= stage, s)
        out[policy] = metrics
    # Calibration where a model predicts the logged outcome: at the slot it was really shown.
    at_logged_slot = trained.rankers["position_feature"].booster_.predict(test.slot_matrix)
    theta = trained.examination.examination(test.row, test.position, surface=surfaces_of(test.labels))
    out["position_feature"]["log_loss_gain"] = log_loss(gains, at_logged_slot)
    out["factorized"]["log_loss_gain"] = log_loss(gains, theta * scores["factorized"])
    return out


@dataclass
class TruthSamples:
    users: np.ndarray  # (n_requests,) user of each evaluated request
    values: dict[str, np.ndarray]  # policy -> (n_requests, 4): clicks, add_to_carts, purchases, revenue


def truth_page_values(test: ImpressionSet, scores: dict[str, np.ndarray], truth, max_requests: int,
                      seed: int) -> TruthSamples:
    """Expected engagement of each sampled request's page when each row is ordered by each policy."""
    labels = test.labels
    request = labels.column("request_id").to_numpy(zero_copy_only=False)
    users = labels.column("user_id").to_numpy(zero_copy_only=False)
    items = labels.column("item_id").to_numpy(zero_copy_only=False)
    ts = labels.column("ts").to_pylist()
    location = labels.column("location").to_numpy(zero_copy_only=False)
    surface = labels.column("surface").to_numpy(zero_copy_only=False)
    unique = np.unique(request)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(unique, size=min(max_requests, len(unique)), replace=False)
    order = np.argsort(request, kind="stable")
    starts = np.searchsorted(request[order], chosen)
    ends = np.searchsorted(request[order], chosen, side="right")
    values: dict[str, list[tuple[float, ...]]] = {p: [] for p in (*scores, "oracle")}
    evaluated_users = []
    for lo, hi in zip(starts, ends, strict=True):
        idx = order[lo:hi]
        user, at = str(users[idx[0]]), ts[idx[0]]
        loc, surf = location[idx[0]], surface[idx[0]] or "web"
        try:
            p = truth.item_probabilities(user, items[idx].tolist(), at, loc, surf)
        except ValueError:
            continue  # a user or item the truth does not know (not simulated data)
        oracle_key = p["p_click_if_examined"] * (1 + p["p_cart_given_click"] * (3 + 10 * p["p_purchase_given_cart"]))
        for policy in values:
            key = oracle_key if policy == "oracle" else scores[policy][idx]
            rows = []
            for r in np.unique(test.row[idx]):
                in_row = np.flatnonzero(test.row[idx] == r)
                rows.append(items[idx][in_row[np.argsort(-key[in_row], kind="stable")]].tolist())
            v = truth.page_value(user, rows, at, loc, surf)
            values[policy].append((v.clicks, v.add_to_carts, v.purchases, v.revenue))
        evaluated_users.append(user)
    return TruthSamples(np.asarray(evaluated_users), {p: np.asarray(v, dtype=np.float64).reshape(-1, 4)
                                                      for p, v in values.items()})


def normalized_value(samples: TruthSamples, policy: str, measure: int = 2, n_boot: int = 1000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(policy - popularity) / (oracle - popularity) in expected purchases, with a 95% bootstrap
    interval over users (requests of one user are resampled together)."""
    users, inverse = np.unique(samples.users, return_inverse=True)

    def ratio(weights: np.ndarray) -> float:
        w = weights[inverse]
        pol, pop, ora = (float(w @ samples.values[k][:, measure]) for k in (policy, "popularity", "oracle"))
        return (pol - pop) / (ora - pop) if ora != pop else float("nan")

    point = ratio(np.ones(len(users)))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(users), np.full(len(users), 1.0 / len(users)), size=n_boot).astype(np.float64)
    boot = np.array([ratio(d) for d in draws])
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return point, float(lo), float(hi)


def position_curves(con: duckdb.DuckDBPyConnection, trained: TrainedModels, truth, surface: str = "web",
                    positions: int = 10) -> dict[str, tuple[list[int], list[float]]]:
    """Row-0 examination by position on one surface: learned (EM), randomized-share, naive, and true."""
    labels = item_impression_labels(con, trained.split.start, trained.split.split)
    on_surface = pc.equal(pc.fill_null(labels.column("surface"), ""), surface)
    labels = labels.filter(on_surface)
    x = list(range(positions))
    zeros = np.zeros(positions, dtype=np.int64)
    known = surface in trained.examination.surfaces_
    learned = trained.examination.examination(zeros, np.arange(positions), surface=surface if known else None)
    curves = {"learned (EM)": (x, learned.tolist())}
    if labels.num_rows:
        rows = labels.column("row").to_numpy(zero_copy_only=False).astype(np.int64)
        pos = labels.column("position").to_numpy(zero_copy_only=False).astype(np.int64)
        clicked = labels.column("stage").to_numpy() > 0
        propensity = np.nan_to_num(labels.column("propensity").to_numpy(zero_copy_only=False).astype(float), nan=1.0)
        for method in ("randomized", "naive"):
            try:
                fitted = ExaminationCurve(method=method).fit(rows, pos, clicked, propensity=propensity)
            except ValueError:
                continue  # no randomized traffic in these logs
            curves[method] = (x, fitted.examination(zeros, np.arange(positions)).tolist())
    if truth is not None:
        true = truth.examination(zeros, np.arange(positions), surface)
        curves["true"] = (x, (true / true[0]).tolist())
    return curves


def evaluate(con: duckdb.DuckDBPyConnection, trained: TrainedModels, report_dir: Path, truth=None,
             options: TrainOptions = TrainOptions(), truth_requests: int = 300,
             progress: Progress = SILENT) -> Evaluation:
    split = trained.split
    with progress.task("features for held-out impressions", total=1) as advance:
        test = impression_set(con, trained.space, split.split, split.end + _EPSILON, options.max_test_requests,
                              options.seed + 1)
        advance(1)
    scores = policy_scores(test, trained, options.seed)
    result = Evaluation(logged_metrics(test, scores, trained, options.funnel), n_test_impressions=len(test.stage))
    if truth is not None:
        with progress.task("page value on ground truth", total=1) as advance:
            samples = truth_page_values(test, scores, truth, truth_requests, options.seed)
            advance(1)
        if len(samples.users):
            result.n_truth_requests, result.n_truth_users = len(samples.users), len(np.unique(samples.users))
            result.truth_value = {p: dict(zip(TRUTH_MEASURES, v.mean(axis=0).tolist(), strict=True))
                                  for p, v in samples.values.items()}
            result.normalized_value = {p: normalized_value(samples, p, seed=options.seed)
                                       for p in samples.values if p not in ("popularity", "oracle")}
    result.position_curves = position_curves(con, trained, truth)
    if result.truth_value:
        result.best_ranker = max(CANDIDATE_RANKERS, key=lambda r: _utility(result.truth_value[r]))
    else:
        result.best_ranker = max(CANDIDATE_RANKERS, key=lambda r: result.logged_metrics[r]["ndcg_at_10"])
    result.report_path = write_evaluation_report(result, trained, report_dir)
    return result


def _utility(value: dict[str, float]) -> float:
    return value["clicks"] + 3 * value["add_to_carts"] + 10 * value["purchases"]


def write_evaluation_report(result: Evaluation, trained: TrainedModels, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metric_names = ["ndcg_at_10", "recall_at_20", "page_dcg", "auc_click", "auc_add_to_cart", "auc_purchase",
                    "log_loss_gain"]
    table = [["policy", *metric_names]]
    for policy, metrics in result.logged_metrics.items():
        table.append([policy, *[metrics.get(m, "") for m in metric_names]])
    sections = [Section(
        "Logged metrics on the held-out days",
        f"{result.n_test_impressions:,} impressions of whole sampled requests after "
        f"{trained.split.split:%Y-%m-%d %H:%M} UTC. Logged labels are biased by what the old system "
        "showed: prefer the ground-truth section.",
        table=table,
    )]
    figures = []
    plot_curves(result.position_curves, folder / "position_curve.png", "examination by position (row 0, web)",
                "position", "P(examined) relative to position 0")
    figures.append("position_curve.png")
    if result.truth_value:
        logged = result.truth_value["logged"]
        t = [["policy", "clicks", "add_to_carts", "purchases", "revenue", "utility (1/3/10)", "vs logged",
              "normalized purchases [95% CI]"]]
        for policy, v in result.truth_value.items():
            norm = result.normalized_value.get(policy)
            norm_text = f"{norm[0]:.3f} [{norm[1]:.3f}, {norm[2]:.3f}]" if norm else ""
            t.append([policy, v["clicks"], v["add_to_carts"], v["purchases"], v["revenue"], _utility(v),
                      f"{_utility(v) / _utility(logged) - 1:+.1%}", norm_text])
        plot_bars({p: _utility(v) for p, v in result.truth_value.items()}, folder / "page_value.png",
                  "expected utility per page (ground truth)", "clicks + 3 carts + 10 purchases")
        sections.append(Section(
            "Page value on ground truth",
            f"{result.n_truth_requests} held-out requests of {result.n_truth_users} users; each row re-ordered by "
            "the policy, scored by the simulator's expected engagement (2-D examination, satiation). `oracle` "
            "orders by the truth itself. Normalized purchases = (policy - popularity) / (oracle - popularity), "
            "95% bootstrap interval over users.",
            table=t, figures=["page_value.png"],
        ))
    sections.append(Section(
        "Position bias",
        "The examination curve learned by EM against the randomized-share estimate, the naive CTR-by-position "
        "curve and (on simulated data) the truth.", figures=figures,
    ))
    sections.append(Section("Default ranker", f"Better on {'ground truth' if result.truth_value else 'NDCG@10'}: "
                            f"`{result.best_ranker}`."))
    return write_report(folder, "shelfrank evaluation", sections)
