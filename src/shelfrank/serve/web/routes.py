"""The storefront's pages: `/` (the homepage as a shopper sees it), `/operator` and `/report`.

The pages are Jinja2 templates; the homepage and the operator view call the public API
(`/v1/homepage`, `/v1/events`, the admin endpoints) from a little JavaScript of our own, so
what the browser shows is exactly what the API returns. `/report` renders the latest
evaluation report (`<data_dir>/reports/latest/report.md`) with its plots, served only from
inside that folder.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from shelfrank import __version__
from shelfrank.serve.app import get_service, require_admin
from shelfrank.serve.web.markdown import relative_file, render_markdown, report_image_src
from shelfrank.serve.web.samples import StoreView, describe_store

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC = HERE / "static"
SURFACES = ("web", "ios", "android")
REPORT_FILES = "/report/files/"
REPORT_FILE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                     ".webp": "image/webp", ".csv": "text/csv", ".md": "text/markdown"}
# The pages load only their own scripts, styles and data: nothing leaves the origin.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def mount_web(app: FastAPI) -> None:
    """Add the storefront's pages and static files to the API app."""
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(router)
    if app.state.service is not None:  # a ready service: pick the sample shoppers now, not on the first visit
        threading.Thread(target=_view_of, args=(app.state,), name="storefront-samples", daemon=True).start()


def report_dir(request: Request) -> Path:
    return Path(request.app.state.settings.store.data_dir) / "reports" / "latest"


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    service = request.app.state.service
    model = getattr(service.engine, "model_version", "") if service is not None else ""
    response = TEMPLATES.TemplateResponse(request, template, {"version": __version__, "model_version": model,
                                                              **context}, status_code=status_code)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


_view_lock = threading.Lock()


def _view_of(state: Any) -> StoreView:
    with _view_lock:
        engine = state.service.engine
        cached = getattr(state, "storefront_view", None)
        if cached is None or cached[0] is not engine:
            cached = (engine, describe_store(engine))
            state.storefront_view = cached
        return cached[1]


async def store_view(request: Request) -> StoreView | None:
    """Sample users and the clock, computed once per engine (a scan of the profiles)."""
    state = request.app.state
    if state.service is None:
        return None
    cached = getattr(state, "storefront_view", None)
    if cached is not None and cached[0] is state.service.engine:
        return cached[1]
    return await run_in_threadpool(_view_of, state)


@router.get("/", response_class=HTMLResponse)
async def storefront(request: Request) -> HTMLResponse:
    view = await store_view(request)
    if view is None:
        return _page(request, "starting.html", status_code=503, active="home")
    engine = request.app.state.service.engine
    clock = view.clock or datetime.now(UTC)
    pipelines = [p for p in getattr(engine, "pipelines", ("default",))]
    config = {"clock": clock.isoformat().replace("+00:00", "Z"), "pipelines": pipelines, "rows": 8, "items": 10,
              "samples": [u.user_id for u in view.users]}
    client_key = request.app.state.settings.serve.client_key
    if client_key:
        # The store's own front end sends the client key with its events, as any browser client of
        # the API does: the key tells intake which client posts, it is not a secret (the admin
        # token is, and never reaches a page).
        config["client_key"] = client_key
    return _page(request, "index.html", active="home", view=view, surfaces=SURFACES, config=config,
                 clock=clock, compare=[p for p in pipelines if p != "default"])


@router.get("/operator", response_class=HTMLResponse)
async def operator(request: Request) -> HTMLResponse:
    return _page(request, "operator.html", active="operator")


@router.get("/report", response_class=HTMLResponse)
async def report(request: Request) -> HTMLResponse:
    folder = report_dir(request)
    path = folder / "report.md"
    if not path.is_file():
        return _page(request, "report.html", active="report", body=None, folder=str(folder))
    text = await run_in_threadpool(path.read_text, "utf-8", "replace")
    body = render_markdown(text, report_image_src(REPORT_FILES))
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _page(request, "report.html", active="report", body=body, written=written, folder=str(folder))


@router.get("/report/files/{name:path}")
async def report_file(name: str, request: Request) -> FileResponse:
    """A file of the latest report (its plots): only regular files inside the report folder."""
    folder = report_dir(request).resolve()
    relative = relative_file(name)
    suffix = Path(name).suffix.lower()
    if relative is None or suffix not in REPORT_FILE_TYPES:
        raise HTTPException(404, detail={"message": "no such report file", "detail": None})
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise HTTPException(404, detail={"message": "no such report file", "detail": None})
    return FileResponse(path, media_type=REPORT_FILE_TYPES[suffix], headers={"Cache-Control": "no-cache"})


def _items(engine: Any, query: str, limit: int) -> list[dict]:
    catalog = engine.catalog
    query = query.strip()
    ids = np.asarray(catalog.item_ids, dtype=str)
    if not query:
        picked = np.arange(min(limit, len(ids)))
    else:
        exact = catalog.index_of(np.asarray([query], dtype=object))
        titles = np.char.lower(np.asarray(catalog.titles, dtype=str))
        found = np.flatnonzero((np.char.find(titles, query.lower()) >= 0) | (np.char.find(ids, query) >= 0))
        picked = np.r_[exact[exact >= 0], found[~np.isin(found, exact)]][:limit].astype(np.int64)
    names = catalog.category_names
    rows = []
    for i in picked.tolist():  # at most `limit` rows, for the operator's table
        c = int(catalog.category[i])
        created = catalog.created_t[i]
        rows.append({
            "item_id": str(catalog.item_ids[i]), "title": str(catalog.titles[i]),
            "vertical": str(catalog.verticals[catalog.vertical[i]]),
            "category_id": str(catalog.category_ids[c]) if c >= 0 else "",
            "category": str(names[c]) if c >= 0 else "",
            "brand": str(catalog.brands[catalog.brand[i]]) if catalog.brand[i] >= 0 else None,
            "price": float(catalog.price[i]), "in_stock": bool(catalog.in_stock[i]),
            "has_image": bool(catalog.has_image[i]), "image_url": str(catalog.image_urls[i] or "") or None,
            "created_at": datetime.fromtimestamp(float(created), UTC).isoformat() if np.isfinite(created) else None,
            "tags": list(catalog.tags[i]) if i < len(catalog.tags) else [],
        })
    return rows


@router.get("/web/items")
async def operator_items(request: Request, _: Annotated[None, Depends(require_admin)],
                         q: Annotated[str, Query(max_length=100)] = "",
                         limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
    """Catalog rows for the operator view (admin): by id, or a piece of the id or title."""
    service = get_service(request)
    items = await run_in_threadpool(_items, service.engine, q, limit)
    return Response(orjson.dumps({"items": items}), media_type="application/json")
