"""Fixtures: a fresh ten-item catalog per test (stock is mutable), see tiny_catalog.py."""

from __future__ import annotations

import pytest
from tiny_catalog import make_catalog

from shelfrank.store.catalog import Catalog


@pytest.fixture
def catalog() -> Catalog:
    return make_catalog()
