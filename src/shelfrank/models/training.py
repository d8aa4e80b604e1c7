"""Training: from the event log to versioned model artefacts.

Steps (each a function, composed by :func:`train`):

1. **Split by time.** The last `test_days` of impressions are held out for evaluation;
   everything trains on what came before.
2. **Labels** (features/labels.py): each impression's deepest funnel stage. Requests are
   sampled whole (by a hash of request_id, so the sample is stable) to bound cost.
3. **Examination curve** (models/examination.py), EM over all training impressions.
3b. **Item embeddings** (models/embeddings.py): ALS on the training window's sessions, in
   catalog order (items sorted by item_id); their vectors are an input of the feature space
   (the user x item and session x item embedding similarities).
4. **Features** (features/offline.py), point-in-time at each impression's time.
5. **Item rankers**: (a) position as a feature, scored at the inference slot; (b) factorized
   with the examination curve. Labels are funnel gains (FunnelWeights).
6. **Collection retrieval**: one example per collection impression; its features are the
   mean of its shown items' feature rows (what the user x collection affinity amounts to
   with item-level features), its size, and the row (scored at row 0).
7. **Artefacts**: models/<kind>/<version>/ with features, window, data hash and metrics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.errors import UserFacingError
from shelfrank.features.definitions import FeatureSpace, ItemVectors
from shelfrank.features.labels import item_impression_labels
from shelfrank.features.offline import OfflineFeatures, fit_vocabularies
from shelfrank.models.artifacts import ArtifactMetadata, new_version, save_artifact
from shelfrank.models.collection_retrieval import CollectionRetrievalModel
from shelfrank.models.embeddings import EngagementWeights, ItemEmbeddings
from shelfrank.models.examination import ExaminationCurve
from shelfrank.models.item_ranker import (
    CLICKS_ONLY,
    BoostingParams,
    FactorizedRanker,
    FunnelWeights,
    PositionFeatureRanker,
)
from shelfrank.progress import SILENT, Progress

SLOT_FEATURES = ("row", "position")


@dataclass(frozen=True)
class RankerSpec:
    """One item ranker trained on every run: the two candidates and the baselines they must beat."""

    name: str
    position: str  # "feature": row/position are features, scored at (0, 0); "factorized"; "none"
    labels: str  # "funnel": deepest-stage gains; "clicks": any engagement counts 1
    description: str

    @property
    def uses_slot_features(self) -> bool:
        return self.position == "feature"


RANKERS = (
    RankerSpec("position_feature", "feature", "funnel", "funnel labels, position as a feature, scored at slot 0"),
    RankerSpec("factorized", "factorized", "funnel", "funnel labels, examination x relevance likelihood"),
    RankerSpec("clicks_only", "feature", "clicks", "baseline: click labels (CTR ranker), position as a feature"),
    RankerSpec("no_debiasing", "none", "funnel", "baseline: funnel labels, no position information at all"),
)
CANDIDATE_RANKERS = ("position_feature", "factorized")  # the evaluation picks the default among these


@dataclass(frozen=True)
class TrainOptions:
    test_days: float = 3.0
    max_train_requests: int = 4_000
    max_test_requests: int = 2_000
    funnel: FunnelWeights = FunnelWeights()
    ranker: BoostingParams = BoostingParams(n_estimators=120, num_leaves=31, learning_rate=0.08)
    examination_method: str = "em"
    seed: int = 0
    embeddings: bool = True  # fit (and save) item embeddings on the training window
    embedding_features: bool = True  # rankers read the embedding-similarity features (needs embeddings)
    # Training rows' similarities use embeddings fitted without their user's events (k folds of
    # users), so the vectors never saw the row's own session; 1 = in-sample (leaks, see training.md).
    embedding_folds: int = 3
    embedding_dim: int = 48
    embedding_weights: EngagementWeights = EngagementWeights()

    @classmethod
    def from_config(cls, config) -> TrainOptions:
        """From the [train] section of the configuration (config.TrainConfig)."""
        return cls(
            test_days=config.test_days, max_train_requests=config.max_train_requests,
            max_test_requests=config.max_test_requests,
            funnel=FunnelWeights(config.click_weight, config.add_to_cart_weight, config.purchase_weight),
            ranker=BoostingParams(n_estimators=config.n_estimators, num_leaves=config.num_leaves,
                                  learning_rate=config.learning_rate, seed=config.seed),
            seed=config.seed,
        )


@dataclass(frozen=True)
class TimeSplit:
    start: datetime
    split: datetime
    end: datetime


@dataclass
class ImpressionSet:
    """Impressions of sampled requests with labels and point-in-time features, aligned by row."""

    labels: pa.Table  # from item_impression_labels, filtered to the sampled requests
    features: np.ndarray  # (n, d) float32
    feature_names: tuple[str, ...]
    stage: np.ndarray  # int8
    row: np.ndarray
    position: np.ndarray
    groups: np.ndarray  # int64: one id per (request, row): a ranked list

    @property
    def slot_matrix(self) -> np.ndarray:
        return np.column_stack([self.features, self.row, self.position]).astype(np.float32)

    @property
    def slot_feature_names(self) -> tuple[str, ...]:
        return (*self.feature_names, *SLOT_FEATURES)


@dataclass
class TrainedModels:
    split: TimeSplit
    space: FeatureSpace
    examination: ExaminationCurve
    rankers: dict[str, PositionFeatureRanker | FactorizedRanker]
    retrieval: CollectionRetrievalModel
    train_set: ImpressionSet | None  # None when loaded from artefacts
    data_hash: str
    paths: dict[str, Path] = field(default_factory=dict)
    # Fitted on the training window, rows in catalog order (items sorted by item_id; item_ids_
    # names them); space.item_vectors holds the same vectors. None: trained without them.
    embeddings: ItemEmbeddings | None = None


def time_split(con: duckdb.DuckDBPyConnection, test_days: float) -> TimeSplit:
    start, end = con.execute("SELECT min(ts), max(ts) FROM events WHERE event_type = 'impression'").fetchall()[0]
    if start is None:
        raise UserFacingError("the store has no impressions to train on; ingest events first (`shelfrank ingest`)")
    split = end - timedelta(days=test_days)
    if split <= start:
        raise UserFacingError(
            f"the log spans {(end - start).total_seconds() / 86400:.1f} days, too short to hold out {test_days} "
            "days for evaluation; lower train.test_days"
        )
    return TimeSplit(start, split, end)


def sample_requests(labels: pa.Table, max_requests: int, seed: int) -> pa.Table:
    """Keep whole requests, chosen by a seeded hash of request_id (stable across runs and machines)."""
    requests = pc.unique(labels.column("request_id"))
    if len(requests) <= max_requests:
        return labels
    keys = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{r}".encode(), digest_size=8).digest(), "little")
                     for r in requests.to_pylist()], dtype=np.uint64)
    keep = requests.take(pa.array(np.argsort(keys)[:max_requests]))
    return labels.filter(pc.is_in(labels.column("request_id"), value_set=keep))


def impression_set(
    con: duckdb.DuckDBPyConnection, space: FeatureSpace, start: datetime, end: datetime, max_requests: int,
    seed: int, labels: pa.Table | None = None,
) -> ImpressionSet:
    """`labels`: the window's item_impression_labels when the caller already has them (not re-read)."""
    if labels is None:
        labels = item_impression_labels(con, start, end)
    labels = sample_requests(labels, max_requests, seed)
    if labels.num_rows == 0:
        raise UserFacingError(f"no impressions between {start} and {end}")
    examples = labels.select(["user_id", "item_id", "ts", "surface", "location", "session_id", "collection_id"])
    table = OfflineFeatures(con, space).compute(examples)
    features = np.column_stack([table.column(n).to_numpy() for n in space.names]).astype(np.float32)
    request = labels.column("request_id").to_numpy(zero_copy_only=False)
    row = labels.column("row").to_numpy(zero_copy_only=False).astype(np.int64)
    _, groups = np.unique(np.char.add(request.astype(str), "#" + row.astype(str)), return_inverse=True)
    return ImpressionSet(
        labels=labels, features=features, feature_names=space.names,
        stage=labels.column("stage").to_numpy().astype(np.int8), row=row,
        position=labels.column("position").to_numpy(zero_copy_only=False).astype(np.int64), groups=groups,
    )


def surfaces_of(labels: pa.Table) -> np.ndarray:
    return pc.fill_null(labels.column("surface"), "unknown").to_numpy(zero_copy_only=False).astype(str)


def fit_examination(labels: pa.Table, method: str) -> ExaminationCurve:
    """One curve per surface, from every training impression: phones examine fewer positions than the web."""
    item = labels.column("item_id").to_numpy(zero_copy_only=False)
    _, item_codes = np.unique(item, return_inverse=True)
    propensity = labels.column("propensity").to_numpy(zero_copy_only=False).astype(float)
    return ExaminationCurve(method=method).fit(
        rows=labels.column("row").to_numpy(zero_copy_only=False).astype(np.int64),
        positions=labels.column("position").to_numpy(zero_copy_only=False).astype(np.int64),
        clicked=labels.column("stage").to_numpy() > 0,
        groups=item_codes,
        propensity=np.nan_to_num(propensity, nan=1.0),
        surface=surfaces_of(labels),
    )


def main_surface_grid(examination: ExaminationCurve, con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """The grid the debiased-rate features use: the most common surface's curve (one grid for all)."""
    top = con.execute(
        "SELECT coalesce(surface, 'unknown') FROM events WHERE event_type = 'impression' "
        "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()[0][0]
    return examination.grid(surface=top if top in examination.surfaces_ else None)


def collection_examples(impressions: ImpressionSet) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """One row per (request, row) collection impression: mean item features, size, row; label engaged."""
    g = impressions.groups
    n_groups = int(g.max()) + 1
    counts = np.bincount(g, minlength=n_groups).astype(np.float64)
    sums = np.zeros((n_groups, impressions.features.shape[1]))
    np.add.at(sums, g, impressions.features)
    means = sums / counts[:, None]
    row = np.zeros(n_groups)
    row[g] = impressions.row
    engaged = np.zeros(n_groups)
    np.maximum.at(engaged, g, (impressions.stage > 0).astype(float))
    X = np.column_stack([means, counts, row]).astype(np.float32)
    names = (*(f"mean_{n}" for n in impressions.feature_names), "n_items", "row")
    return X, engaged, names


def user_fold_sql(column: str, folds: int, seed: int) -> str:
    """SQL for a user's fold, 0..folds-1: a seeded hash of the user id (stable across runs)."""
    return f"CAST(hash(coalesce({column}, '') || ':{int(seed)}') % {int(folds)} AS BIGINT)"


def fit_item_embeddings(con: duckdb.DuckDBPyConnection, before: datetime, options: TrainOptions,
                        without_fold: int | None = None) -> ItemEmbeddings:
    """ALS item embeddings from the engagement events before `before`, sessions as groups.

    Rows are the catalog sorted by item_id (the order of InMemoryFeatureState.item_ids and
    Catalog.item_ids); content: category, brand, vertical codes and the catalog price.
    `without_fold`: leave out the events of the users in that fold (of options.embedding_folds).
    """
    items = con.sql("SELECT item_id, category_id, brand, vertical, price FROM items").to_arrow_table()
    ids = np.asarray(pc.fill_null(items.column("item_id"), "").to_pylist(), dtype=str)
    order = np.argsort(ids, kind="stable")
    items, ids = items.take(pa.array(order)), ids[order]

    def codes(name: str) -> np.ndarray:
        raw = np.asarray(pc.fill_null(items.column(name), "").to_pylist(), dtype=str)
        _, inverse = np.unique(raw, return_inverse=True)
        return np.where(raw == "", -1, inverse).astype(np.int64)

    content = {"category": codes("category_id"), "brand": codes("brand"), "vertical": codes("vertical"),
               "price": items.column("price").to_numpy(zero_copy_only=False).astype(np.float64)}
    con.register("_sr_catalog_in", pa.table({"item_id": pa.array(ids), "idx": np.arange(len(ids), dtype=np.int64)}))
    try:
        keep = ("true" if without_fold is None else
                f"{user_fold_sql('e.user_id', options.embedding_folds, options.seed)} <> {int(without_fold)}")
        events = con.execute(f"""
            SELECT c.idx, dense_rank() OVER (ORDER BY e.user_id, e.session_id) - 1 AS session, e.event_type
            FROM events e JOIN _sr_catalog_in c ON c.item_id = e.item_id
            WHERE e.event_type IN ('click', 'add_to_cart', 'purchase') AND e.ts < ? AND {keep}""",
            [before]).fetchnumpy()
    finally:
        con.unregister("_sr_catalog_in")
    model = ItemEmbeddings(dim=options.embedding_dim, seed=options.seed, threads=2)
    return model.fit(events["idx"].astype(np.int64), events["session"].astype(np.int64),
                     options.embedding_weights.of(events["event_type"]), content, item_ids=ids)


def out_of_fold_similarities(con: duckdb.DuckDBPyConnection, train_set: ImpressionSet, space: FeatureSpace,
                             before: datetime, options: TrainOptions, advance=lambda n: None) -> None:
    """Recompute the training rows' embedding similarities with embeddings that never saw their user.

    In-sample, the vectors are fitted on the very sessions whose clicks are the labels: items a
    session engaged together sit close *because of* that session, so the session's taste points
    at its own later clicks and the ranker learns to trust the feature far more than it earns on
    new days. Like out-of-fold target encoding: users are split in `embedding_folds` folds by a
    seeded hash; rows of fold k read embeddings fitted without fold k's events. Serving and the
    evaluation use the embeddings fitted on every training event (the saved artefact).
    """
    embedding_space = FeatureSpace(features=tuple(f for f in space.features if f.tastes),
                                   vocabularies=space.vocabularies, examination_curve=space.examination_curve)
    columns = [train_set.feature_names.index(name) for name in embedding_space.names]
    users = pa.table({"user_id": train_set.labels.column("user_id")})
    con.register("_sr_fold_users", users)
    try:
        fold = con.execute(f"SELECT {user_fold_sql('user_id', options.embedding_folds, options.seed)} "
                           "FROM _sr_fold_users").fetchnumpy()
    finally:
        con.unregister("_sr_fold_users")
    fold = next(iter(fold.values())).astype(np.int64)
    examples = train_set.labels.select(["user_id", "item_id", "ts", "surface", "location", "session_id",
                                        "collection_id"])
    for k in range(options.embedding_folds):
        rows = np.flatnonzero(fold == k)
        if len(rows):
            model = fit_item_embeddings(con, before, options, without_fold=k)
            fold_space = embedding_space.with_item_vectors(ItemVectors(model.item_ids_, model.vectors_))
            table = OfflineFeatures(con, fold_space).compute(examples.take(pa.array(rows)))
            for j, name in zip(columns, fold_space.names, strict=True):
                train_set.features[rows, j] = table.column(name).to_numpy().astype(np.float32)
        advance(1)


def train(con: duckdb.DuckDBPyConnection, models_dir: Path, options: TrainOptions = TrainOptions(),
          progress: Progress = SILENT) -> TrainedModels:
    split = time_split(con, options.test_days)
    with progress.task("examination curve (EM over training impressions)", total=1) as advance:
        # Read once: the curve uses every training impression, the rankers a sample of them.
        train_labels = item_impression_labels(con, split.start, split.split)
        examination = fit_examination(train_labels, options.examination_method)
        advance(1)
    space = FeatureSpace(vocabularies=fit_vocabularies(con), examination_curve=main_surface_grid(examination, con))
    embeddings = None
    if options.embeddings:
        with progress.task("item embeddings (ALS on the training window's sessions)", total=1) as advance:
            # Fitted before the features: their vectors are an input of the similarity features.
            embeddings = fit_item_embeddings(con, split.split, options)
            space = space.with_item_vectors(ItemVectors(embeddings.item_ids_, embeddings.vectors_))
            advance(1)
    if embeddings is None or not options.embedding_features:
        space = space.without_embedding_features().with_item_vectors(space.item_vectors)
    with progress.task("point-in-time features for training impressions", total=1) as advance:
        train_set = impression_set(con, space, split.start, split.split, options.max_train_requests, options.seed,
                                   labels=train_labels)
        del train_labels  # every training impression: not kept alive through the model fits
        advance(1)
    if space.tastes and options.embedding_folds > 1:
        with progress.task("embedding similarities out of fold", total=options.embedding_folds) as advance:
            out_of_fold_similarities(con, train_set, space, split.split, options, advance)
    theta = examination.examination(train_set.row, train_set.position, surface=surfaces_of(train_set.labels))
    rankers: dict[str, PositionFeatureRanker | FactorizedRanker] = {}
    labels = {"funnel": options.funnel.gains(train_set.stage), "clicks": CLICKS_ONLY.gains(train_set.stage)}
    with progress.task("item rankers and baselines, collection retrieval", total=len(RANKERS) + 1) as advance:
        for spec in RANKERS:
            rankers[spec.name] = fit_ranker(spec, train_set, labels[spec.labels], theta, options.ranker)
            advance(1)
        X_c, y_c, names_c = collection_examples(train_set)
        retrieval = CollectionRetrievalModel().fit(X_c, y_c, names_c)
        advance(1)
    data_hash = _data_hash(con, split)
    trained = TrainedModels(split, space, examination, rankers, retrieval, train_set, data_hash,
                            embeddings=embeddings)
    trained.paths = save_models(trained, models_dir, options)
    return trained


def fit_ranker(spec: RankerSpec, train_set: ImpressionSet, gains: np.ndarray, theta: np.ndarray,
               params: BoostingParams) -> PositionFeatureRanker | FactorizedRanker:
    if spec.position == "feature":
        return PositionFeatureRanker(params).fit(train_set.slot_matrix, gains, train_set.slot_feature_names)
    # "none" is the factorized likelihood with examination 1 everywhere: plain cross-entropy.
    examination = theta if spec.position == "factorized" else np.ones_like(theta)
    return FactorizedRanker(params).fit(train_set.features, gains, examination, train_set.feature_names)


def ranker_scores(spec: RankerSpec, ranker: PositionFeatureRanker | FactorizedRanker,
                  impressions: ImpressionSet) -> np.ndarray:
    """Scores at inference: the slot-aware ranker at its inference slot, the others on features alone."""
    if spec.uses_slot_features:
        return ranker.predict(impressions.slot_matrix)
    return ranker.predict(impressions.features)


def _data_hash(con: duckdb.DuckDBPyConnection, split: TimeSplit) -> str:
    n, checksum = con.execute(
        "SELECT count(*), coalesce(sum(hash(event_id)), 0) FROM events WHERE ts < ?", [split.split]
    ).fetchall()[0]
    return hashlib.sha256(f"{n}:{checksum}".encode()).hexdigest()[:16]


def _ranker_writer(ranker: PositionFeatureRanker | FactorizedRanker, space: FeatureSpace):
    def write(folder: Path) -> None:
        ranker.save(folder)
        # Feature names, categorical codes and the debiasing curve: serving must compute the same.
        (folder / "feature_space.json").write_text(json.dumps(space.to_dict()))

    return write


def save_models(trained: TrainedModels, models_dir: Path, options: TrainOptions) -> dict[str, Path]:
    window = (trained.split.start.isoformat(), trained.split.split.isoformat())
    version = new_version(salt=trained.data_hash)
    paths: dict[str, Path] = {}
    by_name = {spec.name: spec for spec in RANKERS}
    space_names = trained.space.names
    for name, ranker in trained.rankers.items():
        spec = by_name[name]
        names = (*space_names, *SLOT_FEATURES) if spec.uses_slot_features else space_names
        meta = ArtifactMetadata(
            kind=f"item_ranker_{name}", version=version, features=names,
            feature_types=dict.fromkeys(names, "float32"), training_window=window, data_hash=trained.data_hash,
            params={"labels": spec.labels, "position": spec.position, "funnel": vars(options.funnel),
                    "boosting": vars(options.ranker)},
        )
        paths[meta.kind] = save_artifact(models_dir, meta, _ranker_writer(ranker, trained.space))
    meta = ArtifactMetadata(kind="collection_retrieval", version=version, features=trained.retrieval.feature_names_,
                            training_window=window, data_hash=trained.data_hash)
    paths[meta.kind] = save_artifact(models_dir, meta, trained.retrieval.save)
    meta = ArtifactMetadata(kind="examination_curve", version=version, training_window=window,
                            data_hash=trained.data_hash, params={"method": options.examination_method})
    paths[meta.kind] = save_artifact(models_dir, meta, trained.examination.save)
    if trained.embeddings is not None:
        emb = trained.embeddings
        meta = ArtifactMetadata(
            kind=EMBEDDINGS_KIND, version=version, training_window=window, data_hash=trained.data_hash,
            metrics={"n_items": len(emb.vectors_), "n_with_history": int(emb.has_history_.sum()),
                     "fit_seconds": emb.fit_seconds_},
            params={**emb.get_params(), "engagement_weights": vars(options.embedding_weights),
                    "groups": "sessions", "row_order": "items sorted by item_id"},
        )
        paths[meta.kind] = save_artifact(models_dir, meta, emb.save)
    return paths


EMBEDDINGS_KIND = "item_embeddings"


def load_embeddings(models_dir: Path, version: str, required: bool) -> ItemEmbeddings | None:
    """The item embeddings of one training run; None when that run has none and nothing needs them."""
    from shelfrank.models.artifacts import ArtifactError, check_compatible, read_metadata, resolve

    try:
        folder = resolve(models_dir, EMBEDDINGS_KIND, version)
    except ArtifactError:
        if not required:
            return None  # a run from before the embeddings were trained: its rankers do not read them
        raise ArtifactError(
            f"the item rankers of version {version} read the embedding-similarity features, but "
            f"{Path(models_dir) / EMBEDDINGS_KIND / version} is missing; retrain (`shelfrank train`)") from None
    check_compatible(read_metadata(folder), EMBEDDINGS_KIND)
    embeddings = ItemEmbeddings.load(folder)
    if embeddings.item_ids_ is None:
        raise ArtifactError(f"{folder} holds embeddings without item ids; retrain (`shelfrank train`)")
    return embeddings


def load_trained(models_dir: Path, version: str | None = None) -> TrainedModels:
    """The models of one training run (LATEST by default), checked against what they were saved with."""
    from shelfrank.models.artifacts import check_compatible, read_metadata, resolve

    kinds = (*(f"item_ranker_{spec.name}" for spec in RANKERS), "collection_retrieval", "examination_curve")
    folders = {kind: resolve(models_dir, kind, version) for kind in kinds}
    metas = {kind: read_metadata(path) for kind, path in folders.items()}
    examination = ExaminationCurve.load(folders["examination_curve"])
    try:
        saved = json.loads((folders["item_ranker_factorized"] / "feature_space.json").read_text())
        space = FeatureSpace.from_dict(saved)
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None
    rankers: dict[str, PositionFeatureRanker | FactorizedRanker] = {}
    for spec in RANKERS:
        kind = f"item_ranker_{spec.name}"
        names = (*space.names, *SLOT_FEATURES) if spec.uses_slot_features else space.names
        check_compatible(metas[kind], kind, names)
        cls = PositionFeatureRanker if spec.uses_slot_features else FactorizedRanker
        rankers[spec.name] = cls.load(folders[kind])
    # The embeddings of the same run (the version of its examination curve), attached to the space.
    embeddings = load_embeddings(models_dir, metas["examination_curve"].version, required=bool(space.tastes))
    if embeddings is not None:
        space = space.with_item_vectors(ItemVectors(embeddings.item_ids_, embeddings.vectors_))
        folders[EMBEDDINGS_KIND] = Path(embeddings_folder(models_dir, metas["examination_curve"].version))
    start, split = metas["examination_curve"].training_window
    con_end = datetime.fromisoformat(split)  # refined by the caller's log end
    return TrainedModels(
        split=TimeSplit(datetime.fromisoformat(start), datetime.fromisoformat(split), con_end),
        space=space, examination=examination,
        rankers=rankers,
        retrieval=CollectionRetrievalModel.load(folders["collection_retrieval"]),
        train_set=None, data_hash=metas["examination_curve"].data_hash, paths=folders, embeddings=embeddings,
    )


def embeddings_folder(models_dir: Path, version: str) -> Path:
    return Path(models_dir) / EMBEDDINGS_KIND / version
