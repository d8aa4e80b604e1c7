import json

import pytest

from shelfrank.models.artifacts import (
    ArtifactError,
    ArtifactMetadata,
    check_compatible,
    list_versions,
    new_version,
    read_metadata,
    resolve,
    save_artifact,
)

FEATURES = ("user_clicks_7d", "item_ctr", "position")


def _meta(version: str = "20261101T000000-aaaaaa") -> ArtifactMetadata:
    return ArtifactMetadata(
        kind="item_ranker", version=version, features=FEATURES, feature_types=dict.fromkeys(FEATURES, "float"),
        training_window=("2026-10-01T00:00:00+00:00", "2026-10-20T00:00:00+00:00"), data_hash="abc",
        metrics={"ndcg_at_10": 0.41},
    )


def test_saved_artefact_round_trips_and_becomes_latest(tmp_path):
    path = save_artifact(tmp_path, _meta(), lambda d: (d / "model.txt").write_text("trees"))
    assert (path / "model.txt").read_text() == "trees"
    assert resolve(tmp_path, "item_ranker") == path
    meta = read_metadata(path)
    assert meta.features == FEATURES
    assert meta.metrics["ndcg_at_10"] == 0.41
    assert meta.training_window == ("2026-10-01T00:00:00+00:00", "2026-10-20T00:00:00+00:00")
    assert meta.created_at


def test_a_failed_write_leaves_no_artefact_and_keeps_the_previous_latest(tmp_path):
    first = save_artifact(tmp_path, _meta("v1"), lambda d: None)

    def broken(d):
        (d / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_artifact(tmp_path, _meta("v2"), broken)
    assert [m.version for m in list_versions(tmp_path, "item_ranker")] == ["v1"]
    assert resolve(tmp_path, "item_ranker") == first


def test_incompatible_features_are_named(tmp_path):
    meta = _meta()
    check_compatible(meta, "item_ranker", FEATURES)
    with pytest.raises(ArtifactError, match=r"needs \['position'\]"):
        check_compatible(meta, "item_ranker", FEATURES[:2])
    with pytest.raises(ArtifactError, match="different order"):
        check_compatible(meta, "item_ranker", tuple(reversed(FEATURES)))
    with pytest.raises(ArtifactError, match="expected a collection_retrieval"):
        check_compatible(meta, "collection_retrieval")


def test_newer_format_and_missing_models_are_clear_errors(tmp_path):
    path = save_artifact(tmp_path, _meta(), lambda d: None)
    raw = json.loads((path / "metadata.json").read_text())
    raw["format"] = 99
    (path / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="upgrade shelfrank"):
        check_compatible(read_metadata(path), "item_ranker")
    with pytest.raises(ArtifactError, match="run `shelfrank train` first"):
        resolve(tmp_path, "collection_retrieval")
    with pytest.raises(ArtifactError, match="invalid model version"):
        resolve(tmp_path, "item_ranker", "../../etc")


def test_versions_sort_by_time():
    from datetime import UTC, datetime

    a = new_version(datetime(2026, 1, 1, tzinfo=UTC))
    b = new_version(datetime(2026, 1, 2, tzinfo=UTC))
    assert a < b
