"""`shelfrank bench`: its help, and a tiny-scale run (a few pages in process, 2 s of wrk over HTTP)."""

from __future__ import annotations

import io
import shutil

import pytest
from rich.console import Console
from typer.testing import CliRunner

from shelfrank.bench import BenchOptions, run_bench
from shelfrank.cli import app
from shelfrank.config import Settings, StoreConfig
from shelfrank.page.cache import SegmentCache


def test_bench_help_lists_its_options():
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--scale", "--pages", "--repeat", "--duration", "--connections", "--no-http"):
        assert option in result.output


def test_a_cache_of_zero_entries_stores_nothing():
    cache = SegmentCache(max_entries=0)
    cache.put(("k",), object())
    assert cache.get(("k",)) is None


@pytest.fixture
def bench_data_dir(tiny_world, tmp_path):
    """A copy of the session's tiny store with its models, in a data dir of the test's own (the
    service writes its intake log there; a copy, because other tests of this process may hold
    connections to the shared file with another configuration, which DuckDB refuses)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy2(tiny_world["database"], data_dir / "shelfrank.duckdb")
    (data_dir / "models").symlink_to(tiny_world["models_dir"], target_is_directory=True)
    return data_dir


def test_a_tiny_bench_reports_pages_in_process_and_over_http(bench_data_dir):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk): the HTTP part needs a real load generator")
    settings = Settings(store=StoreConfig(data_dir=bench_data_dir))
    options = BenchOptions(pages=4, repeat=1, duration=2, connections=2, workers=(2,), caches=(True,))
    report = run_bench(settings, "tiny", options, Console(file=io.StringIO()))
    assert "reused the store and models" in report
    assert "| known | default | on |" in report and "| new visitor | popularity | off |" in report
    http = [line for line in report.splitlines() if line.startswith("| 2 | on |")]
    assert len(http) == 1, report
    cells = [c.strip() for c in http[0].strip("|").split("|")]
    assert float(cells[2]) > 0  # pages/s
    assert cells[5] == "0" and cells[6] == "0", report  # no non-2xx, no socket errors
    assert "zero errors (all runs) | 0 | yes" in report
