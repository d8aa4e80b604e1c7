"""Fixtures: a fresh store per test, and one holding three items."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from store_files import ITEM_ROWS, write_csv

from shelfrank.config import StoreConfig
from shelfrank.store.database import Store
from shelfrank.store.ingest import ingest_file


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(data_dir=tmp_path / "data", memory_limit="1GB", threads=2)


@pytest.fixture(scope="session")
def template_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """DuckDB files built once (empty; with ITEM_ROWS) and copied per test: opening a copy is
    several times faster than creating and filling a store."""
    root = tmp_path_factory.mktemp("templates")
    empty = StoreConfig(data_dir=root / "empty")
    with Store.open(empty):
        pass
    with_items = StoreConfig(data_dir=root / "items")
    with Store.open(with_items) as store:
        report = ingest_file(store, write_csv(root / "items.csv", ITEM_ROWS))
        assert report.accepted == len(ITEM_ROWS)
    return {"empty": empty.database_path, "items": with_items.database_path}


def _open_copy(template: Path, config: StoreConfig) -> Store:
    config.data_dir.mkdir(parents=True)
    shutil.copyfile(template, config.database_path)
    return Store.open(config)


@pytest.fixture
def store(config: StoreConfig, template_stores: dict[str, Path]):
    with _open_copy(template_stores["empty"], config) as s:
        yield s


@pytest.fixture
def store_with_items(config: StoreConfig, template_stores: dict[str, Path]):
    with _open_copy(template_stores["items"], config) as s:
        yield s
