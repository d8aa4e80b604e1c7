"""Fixtures: a fresh store per test, and one holding three items."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_files import ITEM_ROWS, write_csv

from shelfrank.config import StoreConfig
from shelfrank.store.database import Store
from shelfrank.store.ingest import ingest_file


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(data_dir=tmp_path / "data", memory_limit="1GB", threads=2)


@pytest.fixture
def store(config: StoreConfig):
    with Store.open(config) as s:
        yield s


@pytest.fixture
def store_with_items(store: Store, tmp_path: Path) -> Store:
    report = ingest_file(store, write_csv(tmp_path / "in" / "items.csv", ITEM_ROWS))
    assert report.accepted == len(ITEM_ROWS)
    return store
