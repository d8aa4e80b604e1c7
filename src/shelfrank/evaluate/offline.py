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

from shelfrank.evaluate.metrics import log_loss, ndcg_at_k, recall_at_k, roc_auc
from shelfrank.evaluate.report import Section, plot_bars, plot_curves, write_report
from shelfrank.features.labels import item_impression_labels
from shelfrank.models.examination import ExaminationCurve
from shelfrank.models.item_ranker import STAGE_CART, STAGE_CLICK, STAGE_PURCHASE, FunnelWeights
from shelfrank.models.training import ImpressionSet, TrainedModels, TrainOptions, impression_set, surfaces_of
from shelfrank.progress import SILENT, Progress

_EPSILON = timedelta(microseconds=1)  # the window's end is exclusive; include the last event
STAGES = {"click": STAGE_CLICK, "add_to_cart": STAGE_CART, "purchase": STAGE_PURCHASE}


@dataclass
class Evaluation:
    logged_metrics: dict[str, dict[str, float]]  # policy -> metric -> value
    truth_value: dict[str, dict[str, float]] = field(default_factory=dict)  # policy -> clicks/carts/purchases
    position_curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    n_test_impressions: int = 0
    n_truth_requests: int = 0
    best_ranker: str = ""
    report_path: Path | None = None


def policy_scores(test: ImpressionSet, trained: TrainedModels) -> dict[str, np.ndarray]:
    names = list(test.feature_names)
    return {
        "logged": -test.position.astype(np.float64),
        "popularity": test.features[:, names.index("item_ctr")].astype(np.float64),
        "position_feature": trained.rankers["position_feature"].predict(test.slot_matrix),
        "factorized": trained.rankers["factorized"].predict(test.features),
    }


def logged_metrics(test: ImpressionSet, scores: dict[str, np.ndarray], trained: TrainedModels,
                   funnel: FunnelWeights) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    engaged = (test.stage > 0).astype(float)
    for policy, s in scores.items():
        metrics = {
            "ndcg_at_10": ndcg_at_k(s, test.stage, test.groups, k=10).value,
            "recall_at_20": recall_at_k(s, engaged, test.groups, k=20).value,
        }
        for name, stage in STAGES.items():
            metrics[f"auc_{name}"] = roc_auc(test.stage >= stage, s)
        out[policy] = metrics
    # Calibration where a model predicts the logged outcome: at the slot it was really shown.
    gains = funnel.gains(test.stage)
    at_logged_slot = trained.rankers["position_feature"].booster_.predict(test.slot_matrix)
    theta = trained.examination.examination(test.row, test.position, surface=surfaces_of(test.labels))
    out["position_feature"]["log_loss_gain"] = log_loss(gains, at_logged_slot)
    out["factorized"]["log_loss_gain"] = log_loss(gains, theta * scores["factorized"])
    return out


def truth_page_values(test: ImpressionSet, scores: dict[str, np.ndarray], truth, max_requests: int,
                      seed: int) -> tuple[dict[str, dict[str, float]], int]:
    """Mean expected clicks / add-to-carts / purchases per page when each row is ordered by each policy."""
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
    totals: dict[str, np.ndarray] = {p: np.zeros(3) for p in (*scores, "oracle")}
    done = 0
    for lo, hi in zip(starts, ends, strict=True):
        idx = order[lo:hi]
        user, at = str(users[idx[0]]), ts[idx[0]]
        loc, surf = location[idx[0]], surface[idx[0]] or "web"
        try:
            probabilities = truth.item_probabilities(user, items[idx].tolist(), at, loc, surf)
        except ValueError:
            continue  # a user or item the truth does not know (not simulated data)
        p = probabilities
        value = p["p_click_if_examined"] * (1 + p["p_cart_given_click"] * (3 + 10 * p["p_purchase_given_cart"]))
        policy_keys = {**scores, "oracle": None}
        for policy, s in policy_keys.items():
            key = value if s is None else s[idx]
            rows = []
            for r in np.unique(test.row[idx]):
                in_row = np.flatnonzero(test.row[idx] == r)
                ranked = in_row[np.argsort(-key[in_row], kind="stable")]
                rows.append(items[idx][ranked].tolist())
            v = truth.page_value(user, rows, at, loc, surf)
            totals[policy] += (v.clicks, v.add_to_carts, v.purchases)
        done += 1
    if done == 0:
        return {}, 0
    return ({p: dict(zip(("clicks", "add_to_carts", "purchases"), (t / done).tolist(), strict=True))
             for p, t in totals.items()}, done)


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
    scores = policy_scores(test, trained)
    result = Evaluation(logged_metrics(test, scores, trained, options.funnel), n_test_impressions=len(test.stage))
    if truth is not None:
        with progress.task("page value on ground truth", total=1) as advance:
            result.truth_value, result.n_truth_requests = truth_page_values(
                test, scores, truth, truth_requests, options.seed)
            advance(1)
    result.position_curves = position_curves(con, trained, truth)
    rankers = ("position_feature", "factorized")
    if result.truth_value:
        result.best_ranker = max(rankers, key=lambda r: _utility(result.truth_value[r]))
    else:
        result.best_ranker = max(rankers, key=lambda r: result.logged_metrics[r]["ndcg_at_10"])
    result.report_path = write_evaluation_report(result, trained, report_dir)
    return result


def _utility(value: dict[str, float]) -> float:
    return value["clicks"] + 3 * value["add_to_carts"] + 10 * value["purchases"]


def write_evaluation_report(result: Evaluation, trained: TrainedModels, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metric_names = ["ndcg_at_10", "recall_at_20", "auc_click", "auc_add_to_cart", "auc_purchase", "log_loss_gain"]
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
        t = [["policy", "clicks", "add_to_carts", "purchases", "utility (1/3/10)", "vs logged"]]
        for policy, v in result.truth_value.items():
            t.append([policy, v["clicks"], v["add_to_carts"], v["purchases"], _utility(v),
                      f"{_utility(v) / _utility(logged) - 1:+.1%}"])
        plot_bars({p: _utility(v) for p, v in result.truth_value.items()}, folder / "page_value.png",
                  "expected utility per page (ground truth)", "clicks + 3 carts + 10 purchases")
        sections.append(Section(
            "Page value on ground truth",
            f"{result.n_truth_requests} held-out requests; each row re-ordered by the policy, scored by the "
            "simulator's expected engagement (2-D examination, satiation). `oracle` orders by the truth itself.",
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
