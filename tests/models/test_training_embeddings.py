"""Training fits item embeddings on the training window and saves them with the models of the run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from shelfrank.config import StoreConfig
from shelfrank.models.artifacts import ArtifactError, read_metadata
from shelfrank.models.training import EMBEDDINGS_KIND, load_embeddings, load_trained
from shelfrank.store.database import Store


def test_embeddings_are_fitted_in_catalog_order_and_feed_the_similarity_features(tiny_world):
    trained = tiny_world["trained"]
    embeddings = trained.embeddings
    with Store.open(StoreConfig(data_dir=tiny_world["data_dir"])) as store:
        ids = sorted(r[0] for r in store.con.execute("SELECT item_id FROM items").fetchall())
    assert embeddings.item_ids_.tolist() == ids  # rows = catalog index (items sorted by item_id)
    assert embeddings.vectors_.shape == (len(ids), 48)
    np.testing.assert_array_equal(trained.space.item_vectors.vectors, embeddings.vectors_)
    names = list(trained.space.names)
    for name in ("user_item_embedding_similarity", "session_item_embedding_similarity"):
        column = trained.train_set.features[:, names.index(name)]
        assert np.isfinite(column).mean() > 0.3, name  # most impressions have a history to compare with
        assert np.nanstd(column) > 0.05, name


def test_the_embeddings_artefact_is_versioned_with_the_run_and_reloads(tiny_world):
    models_dir = tiny_world["models_dir"]
    trained = tiny_world["trained"]
    meta = read_metadata(trained.paths[EMBEDDINGS_KIND])
    assert meta.kind == EMBEDDINGS_KIND
    assert meta.version == read_metadata(trained.paths["examination_curve"]).version
    assert meta.training_window[1] == trained.split.split.isoformat()  # fitted on the training window only
    assert (models_dir / EMBEDDINGS_KIND / "LATEST").read_text().strip() == meta.version
    loaded = load_trained(models_dir)
    np.testing.assert_array_equal(loaded.embeddings.vectors_, trained.embeddings.vectors_)
    np.testing.assert_array_equal(loaded.space.item_vectors.item_ids, trained.embeddings.item_ids_)


def test_a_run_missing_its_embeddings_is_a_clear_error_when_its_rankers_need_them(tiny_world, tmp_path):
    models_dir = tmp_path / "models"
    shutil.copytree(tiny_world["models_dir"], models_dir)
    shutil.rmtree(models_dir / EMBEDDINGS_KIND)
    with pytest.raises(ArtifactError, match="embedding-similarity features.*retrain"):
        load_trained(models_dir)
    # A run from before the embeddings (rankers that do not read them) loads without any.
    version = read_metadata(tiny_world["trained"].paths["examination_curve"]).version
    assert load_embeddings(models_dir, version, required=False) is None
