"""End-to-end fixtures: the storefront served by uvicorn (a thread of this process, a free
loopback port) over the session's tiny store, and Debian's headless chromium driven by
Playwright (never a downloaded browser).

Screenshots go to SHELFRANK_SCREENSHOTS_DIR (default: a temporary artefact folder);
SHELFRANK_UPDATE_SCREENSHOTS=1 also copies them to docs/screenshots/ at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path(os.environ.get("SHELFRANK_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags chromium keeps trying to reach Google on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ADMIN = "e2e-admin-token-0123456789"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Storefront:
    url: str
    client: httpx.Client  # the same server, for API checks next to the browser's view
    service: object
    report_dir: Path
    admin_token: str = ADMIN


def write_sample_report(folder: Path) -> None:
    """A small evaluation report through the report module: a table and two plots."""
    from shelfrank.evaluate.report import Section, plot_curves, write_report

    folder.mkdir(parents=True, exist_ok=True)
    positions = list(range(8))
    plot_curves({"learned": (positions, [1 / (1 + 0.45 * p) for p in positions]),
                 "true": (positions, [1 / (1 + 0.5 * p) for p in positions])},
                folder / "examination_curve.png", "Examination by position", "position", "relative examination")
    plot_curves({"default": ([0.2, 0.4, 0.6], [1.0, 0.97, 0.9]), "popularity": ([0.1], [0.6])},
                folder / "relevance_diversity.png", "Relevance and diversity", "diversity", "normalized purchases")
    table = [["pipeline", "normalized purchases", "diversity"], ["default", 1.0, 0.61],
             ["popularity", 0.62, 0.12], ["oracle", 1.41, 0.4]]
    write_report(folder, "shelfrank evaluation (e2e sample)", [
        Section("Page value", "Purchases per page on ground truth, normalized to the default pipeline.", table,
                ["relevance_diversity.png"]),
        Section("Position curve", "The learned examination curve against the simulator's.",
                figures=["examination_curve.png"]),
    ])


@pytest.fixture(scope="module")
def storefront(request, tmp_path_factory):
    """The real engine over the tiny store, served over HTTP for the module. SHELFRANK_SERVE_TEST_WORLD=<root>
    reuses a world built before (as in tests/serve)."""
    import uvicorn

    from shelfrank.config import load_settings
    from shelfrank.serve.app import create_app
    from shelfrank.serve.metrics import ServiceMetrics
    from shelfrank.serve.service import open_engine, start_service

    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (make test installs it: apt-get install chromium)")
    reuse = os.environ.get("SHELFRANK_SERVE_TEST_WORLD")
    if reuse:
        world = {"database": Path(reuse) / "data" / "shelfrank.duckdb", "models_dir": Path(reuse) / "data" / "models"}
    else:
        world = request.getfixturevalue("tiny_world")
    data_dir = tmp_path_factory.mktemp("storefront") / "data"
    data_dir.mkdir()
    (data_dir / "shelfrank.duckdb").symlink_to(world["database"])
    (data_dir / "models").symlink_to(world["models_dir"], target_is_directory=True)
    report_dir = data_dir / "reports" / "latest"
    write_sample_report(report_dir)
    # Same DuckDB configuration as the service tests (one process may not open a file two ways);
    # a generous budget: a slow shared machine must not turn pages into fallbacks here.
    settings = load_settings(store={"data_dir": data_dir, "memory_limit": "1GB", "threads": 1},
                             serve={"admin_token": ADMIN, "latency_budget_ms": 20_000})
    service = start_service(settings, open_engine, ServiceMetrics())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, service=service), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=60.0)
    yield Storefront(url, client, service, report_dir)
    client.close()
    server.should_exit = True
    thread.join(timeout=30)
    service.close()


@pytest.fixture(scope="module")
def browser():
    """Closed with the module: Playwright's event loop never outlives the browser tests."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (make test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, storefront):
    """A fresh browser tab (desktop size); the test fails on any console error or page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=storefront.url)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    yield tab
    context.close()
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """save(page, name): a PNG in the artefact folder (copied to docs/screenshots/ on request)."""
    folder = Path(os.environ.get("SHELFRANK_SCREENSHOTS_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def save(tab, name: str, full_page: bool = False) -> Path:
        path = folder / f"{name}.png"
        tab.screenshot(path=str(path), full_page=full_page)
        saved.append(path)
        return path

    yield save
    if os.environ.get("SHELFRANK_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for path in saved:
            shutil.copy2(path, DOCS_SCREENSHOTS / path.name)
