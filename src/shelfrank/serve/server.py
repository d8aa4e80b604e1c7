"""Running the service: build the engine (fail fast with one clear line), then uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shelfrank.config import Settings
from shelfrank.serve.intake import CompactReport, compact_intake, intake_dir
from shelfrank.serve.metrics import ServiceMetrics
from shelfrank.serve.service import Service, open_engine, start_service


def urls(settings: Settings) -> dict[str, str]:
    base = f"http://{settings.serve.host}:{settings.serve.port}"
    return {"storefront": f"{base}/", "operator": f"{base}/operator", "report": f"{base}/report",
            "docs": f"{base}/docs", "homepage": f"{base}/v1/homepage?user_id=<user>", "ready": f"{base}/readyz",
            "metrics": f"{base}/metrics"}


def prepare(settings: Settings) -> Service:
    """The ready service (engine built, intake replayed); raises UserFacingError when it cannot start."""
    return start_service(settings, open_engine, ServiceMetrics())


def run(settings: Settings, service: Service | None = None, announce: Callable[[Service], None] | None = None) -> None:
    """Serve until interrupted (one worker process; replicas are separate processes sharing Redis)."""
    import uvicorn

    from shelfrank.serve.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = service or prepare(settings)
    if announce is not None:
        announce(service)
    app = create_app(settings, service=service)
    try:
        uvicorn.run(app, host=settings.serve.host, port=settings.serve.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=5)
    finally:
        service.close()


def compact(settings: Settings) -> CompactReport:
    """Move this replica's intake log into the store (the server must be stopped)."""
    from shelfrank.store.database import Store

    with Store.open(settings.store) as store:
        return compact_intake(store, intake_dir(settings.store.data_dir, settings.serve.replica_id))
