from pathlib import Path

import pytest
from pydantic import ValidationError

from shelfrank.config import load_settings


def test_defaults_point_at_the_local_data_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.store.data_dir == Path("shelfrank-data")
    assert settings.store.database_path == Path("shelfrank-data/shelfrank.duckdb")


def test_toml_file_is_read_and_environment_wins_over_it(monkeypatch, tmp_path):
    config = tmp_path / "shelfrank.toml"
    config.write_text('[store]\ndata_dir = "from-toml"\nthreads = 1\n[simulate]\nseed = 11\n')
    monkeypatch.setenv("SHELFRANK_CONFIG", str(config))
    settings = load_settings()
    assert settings.store.data_dir == Path("from-toml")
    assert settings.simulate.seed == 11
    monkeypatch.setenv("SHELFRANK_STORE__DATA_DIR", "from-env")
    assert load_settings().store.data_dir == Path("from-env")
    assert load_settings().store.threads == 1


def test_unknown_keys_and_bad_values_are_refused(monkeypatch, tmp_path):
    config = tmp_path / "shelfrank.toml"
    config.write_text("[store]\nthreads = 0\n")
    monkeypatch.setenv("SHELFRANK_CONFIG", str(config))
    with pytest.raises(ValidationError, match="threads"):
        load_settings()
    config.write_text("[store]\ndata_dri = 'typo'\n")
    with pytest.raises(ValidationError, match="data_dri"):
        load_settings()
