"""The HTTP API (FastAPI): pages, event intake, catalog and collection updates, models, health.

``create_app(settings)`` builds the app; the engine, the change feed and the service come in
through factories and FastAPI dependencies (``get_service``, ``require_admin``,
``require_client``), so tests swap any of them. Pages are built on a thread pool, off the event
loop, within ``serve.latency_budget_ms``; anything that goes wrong there gives the engine's
fallback page, marked and counted. Responses are orjson bytes (FastAPI's own encoder costs
milliseconds on a 400-item page). docs/serving.md documents the API as a client sees it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shelfrank import __version__
from shelfrank.config import Settings
from shelfrank.contracts import PageRequest
from shelfrank.errors import UserFacingError
from shelfrank.page.result import plain_value
from shelfrank.serve.changes import Change
from shelfrank.serve.metrics import ServiceMetrics
from shelfrank.serve.replication import ChangeFeed
from shelfrank.serve.schemas import (
    COLLECTION_VALIDATOR,
    EVENT_VALIDATOR,
    ID_PATTERN,
    INVENTORY_VALIDATOR,
    ITEM_VALIDATOR,
    CollectionBody,
    CollectionOut,
    CollectionsResponse,
    EventsResponse,
    HomepageQuery,
    HomepageResponse,
    InventoryBody,
    ItemsBody,
    ModelsResponse,
    Problem,
    SwapBody,
    SwapResponse,
    WriteResponse,
    event_batch_schema,
)
from shelfrank.serve.service import EngineSource, Service, make_feed, open_engine, start_service
from shelfrank.serve.validation import RowError

log = logging.getLogger("shelfrank.serve")

JSON = "application/json"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong token"},
    403: {"model": Problem, "description": "Write endpoints disabled (no serve.admin_token)"},
    413: {"model": Problem, "description": "Body or batch too large"},
    422: {"model": Problem, "description": "Invalid input: detail names each field and why"},
    503: {"model": Problem, "description": "Not ready yet"},
}


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=plain_value),
                    status_code=status_code, media_type=JSON)


def _problem(status: int, message: str, detail: Any = None) -> HTTPException:
    return HTTPException(status_code=status, detail={"message": message, "detail": detail})


def _row_problem(errors: list[RowError], what: str) -> HTTPException:
    detail = [{"loc": ["body", what, e.index, *([e.field] if e.field else [])], "msg": e.reason,
               "type": "value_error"} for e in errors]
    first = errors[0]
    return _problem(422, f"{what}[{first.index}].{first.field or '*'}: {first.reason}", detail)


# --- middleware -------------------------------------------------------------------------------


class BodyLimitMiddleware:
    """413 for request bodies above `max_bytes`, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send, declared)
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send, size)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, size: int) -> None:
        body = orjson.dumps({"message": f"request body of {size} bytes exceeds serve.max_body_bytes="
                                        f"{self.max_bytes}; send smaller batches", "detail": None})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Request count and latency per endpoint (the route's path template, not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - began)


# --- dependencies -----------------------------------------------------------------------------

_admin_header = APIKeyHeader(name="X-Admin-Token", auto_error=False, description="serve.admin_token")
_client_header = APIKeyHeader(name="X-Client-Key", auto_error=False, description="serve.client_key (if set)")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        error = request.app.state.startup_error
        raise _problem(503, f"not ready: {error}" if error else "starting: the engine is being built; retry shortly")
    return service


def require_admin(settings: Annotated[Settings, Depends(get_settings)],
                  token: Annotated[str | None, Depends(_admin_header)]) -> None:
    expected = settings.serve.admin_token
    if not expected:
        raise _problem(403, "write endpoints are disabled: set serve.admin_token (SHELFRANK_SERVE__ADMIN_TOKEN)")
    if not token or not secrets.compare_digest(token.encode(), expected.encode()):
        raise _problem(401, "missing or wrong X-Admin-Token header")


def require_client(settings: Annotated[Settings, Depends(get_settings)],
                   key: Annotated[str | None, Depends(_client_header)]) -> None:
    expected = settings.serve.client_key
    if expected and (not key or not secrets.compare_digest(key.encode(), expected.encode())):
        raise _problem(401, "missing or wrong X-Client-Key header")


ServiceDep = Annotated[Service, Depends(get_service)]
CollectionIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="The collection's id.")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def known_items(engine: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """The engine's catalog lookup (ids -> known), used to reject events about unknown items."""
    lookup = getattr(engine, "known_items", None)
    if callable(lookup):
        return lookup
    catalog = getattr(engine, "catalog", None)
    if catalog is not None and hasattr(catalog, "index_of"):
        return lambda ids: np.asarray(catalog.index_of(ids)) >= 0
    return None


def _iso(seconds: float) -> str | None:
    return None if not math.isfinite(seconds) else datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def _collection_out(d: Any) -> CollectionOut:
    return CollectionOut(
        collection_id=d.collection_id, title=d.title, source=d.source, item_ids=list(d.item_ids),
        rule_categories=list(d.rule_categories), rule_brands=list(d.rule_brands), rule_tags=list(d.rule_tags),
        rule_price_min=d.rule_price_min, rule_price_max=d.rule_price_max,
        starts_at=_iso(d.starts_t), ends_at=_iso(d.ends_t), pinned_row=d.pinned_row if d.pinned_row >= 0 else None,
    )


# --- the app ----------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    engine_factory: Callable[[Settings], EngineSource] = open_engine,
    feed_factory: Callable[[Settings], ChangeFeed] = make_feed,
    service: Service | None = None,
    durable: bool = True,
) -> FastAPI:
    """The service. Without `service`, the engine is built in the background at startup (/readyz
    answers 503 until it is ready); `durable=False` runs without an intake log (tests only)."""
    metrics = service.metrics if service is not None else ServiceMetrics()
    budget_s = settings.serve.latency_budget_ms / 1000.0

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        starter = None
        if app.state.service is None:
            def start() -> None:
                try:
                    app.state.service = start_service(settings, engine_factory, metrics, feed_factory, durable)
                    metrics.ready.set(1)
                except Exception as exc:  # noqa: BLE001 - reported by /readyz and the log
                    log.exception("the service could not start")
                    app.state.startup_error = str(exc) if isinstance(exc, UserFacingError) else repr(exc)

            starter = threading.Thread(target=start, name="shelfrank-startup", daemon=True)
            starter.start()
        else:
            metrics.ready.set(1)
        try:
            yield
        finally:
            # A service passed in belongs to the caller, who closes it; one built here is closed here.
            if starter is not None:
                starter.join(timeout=60)
                app.state.pages.shutdown(wait=False, cancel_futures=True)
                if app.state.service is not None:
                    app.state.service.close()
                    app.state.service = None
                metrics.ready.set(0)

    app = FastAPI(
        title="shelfrank",
        version=__version__,
        summary="Personalized homepages: which collections, in what order, with which items.",
        description=("See docs/serving.md. Write endpoints need the X-Admin-Token header; "
                     "POST /v1/events needs X-Client-Key when serve.client_key is set."),
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Created here, not in the lifespan, so clients that skip the lifespan (schemathesis) work.
    app.state.pages = ThreadPoolExecutor(settings.serve.workers, thread_name_prefix="shelfrank-page")
    app.state.service = service
    app.state.startup_error = None
    app.state.metrics = metrics
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.serve.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc.detail, dict) and "message" in exc.detail:
            content = exc.detail
        else:
            content = {"message": str(exc.detail), "detail": None}
        return _json(content, exc.status_code)

    @app.exception_handler(UserFacingError)
    async def refused(request: Request, exc: UserFacingError) -> Response:
        return _json({"message": str(exc), "detail": None}, 422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return _json({"message": f"{where}: {first['msg']}{more}", "detail": errors}, 422)

    # --- pages --------------------------------------------------------------------------------

    def build_page(service: Service, request: PageRequest, pipeline: str):
        service.sync()
        return service.engine.build(request, pipeline=pipeline)

    @app.get("/v1/homepage", response_model=HomepageResponse, tags=["pages"],
             responses={k: v for k, v in _ERRORS.items() if k in (422, 503)})
    async def homepage(query: Annotated[HomepageQuery, Query()], service: ServiceDep) -> Response:
        """The user's homepage. Unknown users get the new-user page (`new_user: true`); when the
        page cannot be built in time or at all, the fallback page (`fallback: true`)."""
        began = time.perf_counter()
        engine = service.engine
        pipelines = tuple(getattr(engine, "pipelines", ("default",)))
        if query.pipeline not in pipelines:
            raise _problem(422, f"unknown pipeline {query.pipeline!r}; expected one of: {', '.join(pipelines)}",
                           [{"loc": ["query", "pipeline"], "msg": "unknown pipeline", "type": "value_error"}])
        at = query.at or datetime.now(UTC)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        request = PageRequest(user_id=query.user_id, at=at, location=query.location, surface=query.surface,
                              rows=query.rows, items=query.items, session_id=query.session_id,
                              seed=query.seed if query.seed is not None else secrets.randbelow(2**31))
        loop = asyncio.get_running_loop()
        reason = ""
        try:
            page = await asyncio.wait_for(
                loop.run_in_executor(app.state.pages, build_page, service, request, query.pipeline), budget_s)
        except TimeoutError:
            reason = f"latency budget exceeded ({settings.serve.latency_budget_ms:g} ms)"
        except Exception as exc:  # noqa: BLE001 - never a broken page
            log.exception("page build failed; serving the fallback page")
            reason = f"error: {type(exc).__name__}: {exc}"[:300]
        if reason:
            try:
                page = await loop.run_in_executor(app.state.pages, engine.fallback_page, request, reason)
            except Exception as exc:  # noqa: BLE001
                log.exception("the fallback page failed too")
                metrics.fallbacks.labels("fallback_failed").inc()
                raise _problem(503, f"no page could be built: {type(exc).__name__}") from None
        metrics.observe_page(page.pipeline, page.fallback, page.fallback_reason, page.timings_ms, page.rule_counts,
                             page.new_user)
        # msgspec writes the Page Struct directly (the JSON of Page.to_dict(), without building the
        # dicts); the service's own fields are appended to the object.
        body = page.to_json()
        extra = orjson.dumps({"replica": service.replica_id,
                              "server_ms": round((time.perf_counter() - began) * 1000.0, 3)})
        return Response(body[:-1] + b"," + extra[1:], media_type=JSON)

    # --- event intake -------------------------------------------------------------------------

    @app.post("/v1/events", response_model=EventsResponse, tags=["events"],
              dependencies=[Depends(require_client)],
              openapi_extra={"requestBody": event_batch_schema(settings.serve.max_batch_events)},
              responses={k: v for k, v in _ERRORS.items() if k in (401, 413, 422, 503)})
    async def post_events(request: Request, service: ServiceDep) -> Response:
        """A batch of events (the EVENTS contract, as in ingest). Each event is checked on its
        own: valid ones are durably logged (fsync) and applied before this answers; invalid ones
        are listed in `errors` with their index, field and reason."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise _problem(422, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise _problem(422, 'the body must be a JSON object {"events": [...]}',
                           [{"loc": ["body", "events"], "msg": "a list of events is required", "type": "missing"}])
        extra = sorted(set(body) - {"events"})
        if extra:
            raise _problem(422, f"unknown field(s) {', '.join(map(repr, extra))} in the body; only 'events'",
                           [{"loc": ["body", k], "msg": "extra fields not permitted", "type": "extra_forbidden"}
                            for k in extra])
        events = body["events"]
        limit = settings.serve.max_batch_events
        if len(events) > limit:
            raise _problem(413, f"batch of {len(events)} events exceeds serve.max_batch_events={limit}; "
                                "split it into smaller batches")

        def intake() -> tuple[int, int, list[RowError]]:
            service.sync()  # items another replica added are known here too
            checked = EVENT_VALIDATOR.check(events, known_items(service.engine))
            new = service.accept(Change("events", checked.rows)) if checked.rows else 0
            return new, len(checked.rows) - new, checked.errors

        accepted, duplicates, errors = await run_in_threadpool(intake)
        rejected = len({e.index for e in errors})
        metrics.events.labels("accepted").inc(accepted)
        metrics.events.labels("rejected").inc(rejected)
        metrics.events.labels("duplicate").inc(duplicates)
        return _json({"accepted": accepted, "rejected": rejected, "duplicates": duplicates,
                      "errors": [e.model_dump() for e in errors]})

    # --- catalog and collections (admin) ------------------------------------------------------

    admin = [Depends(require_admin)]
    admin_errors = {k: v for k, v in _ERRORS.items() if k in (401, 403, 413, 422, 503)}

    @app.put("/v1/items", response_model=WriteResponse, tags=["admin"], dependencies=admin,
             responses=admin_errors)
    async def put_items(body: ItemsBody, service: ServiceDep) -> Response:
        """New items, or new values for existing ones (price, image, stock): whole ITEMS rows."""
        checked = ITEM_VALIDATOR.check([r.model_dump() for r in body.items])
        if checked.errors:
            raise _row_problem(checked.errors, "items")
        accepted = await run_in_threadpool(service.accept, Change("items", checked.rows))
        return _json({"accepted": accepted})

    @app.post("/v1/inventory", response_model=WriteResponse, tags=["admin"], dependencies=admin,
              responses=admin_errors)
    async def post_inventory(body: InventoryBody, service: ServiceDep) -> Response:
        """Stock and price updates (the INVENTORY contract); effective for the next page."""

        def write() -> int:
            service.sync()
            checked = INVENTORY_VALIDATOR.check([r.model_dump() for r in body.updates], known_items(service.engine))
            if checked.errors:
                raise _row_problem(checked.errors, "updates")
            return service.accept(Change("inventory", checked.rows))

        return _json({"accepted": await run_in_threadpool(write)})

    @app.get("/v1/collections", response_model=CollectionsResponse, tags=["admin"], dependencies=admin,
             responses=admin_errors)
    async def get_collections(service: ServiceDep) -> Response:
        """Every curated collection definition the engine holds."""
        definitions = await run_in_threadpool(service.engine.collections)
        return _json({"collections": [_collection_out(d).model_dump() for d in definitions]})

    @app.put("/v1/collections/{collection_id}", response_model=CollectionOut, tags=["admin"], dependencies=admin,
             responses=admin_errors)
    async def put_collection(collection_id: CollectionIdPath, body: CollectionBody,  # type: ignore[valid-type]
                             service: ServiceDep) -> Response:
        """Create or replace a curated collection: explicit items and/or catalog rules."""
        row = {**body.model_dump(), "collection_id": collection_id}
        row["source"] = row.get("source") or "curated"

        def write() -> CollectionOut:
            service.sync()
            checked = COLLECTION_VALIDATOR.check([row], known_items(service.engine))
            if checked.errors:
                raise _row_problem(checked.errors, "collection")
            service.accept(Change("collection", checked.rows))
            from shelfrank.serve.changes import collection_definition

            return _collection_out(collection_definition(checked.rows[0]))

        return _json((await run_in_threadpool(write)).model_dump())

    @app.delete("/v1/collections/{collection_id}", status_code=204, tags=["admin"], dependencies=admin,
                responses={**admin_errors, 404: {"model": Problem, "description": "No such collection"}})
    async def delete_collection(collection_id: CollectionIdPath, service: ServiceDep) -> Response:
        """Delete a curated collection; pages built after this answer no longer show it."""

        def write() -> bool:
            service.sync()
            if not any(d.collection_id == collection_id for d in service.engine.collections()):
                return False
            service.accept(Change("collection_delete", [{"collection_id": collection_id}]))
            return True

        if not await run_in_threadpool(write):
            raise _problem(404, f"no collection {collection_id!r}")
        return Response(status_code=204)

    # --- models (admin) -----------------------------------------------------------------------

    @app.get("/v1/models", response_model=ModelsResponse, tags=["admin"], dependencies=admin,
             responses=admin_errors)
    async def get_models(service: ServiceDep) -> Response:
        """The serving model version, the saved versions and the page pipelines."""
        engine = service.engine
        available = await run_in_threadpool(engine.available_model_versions)
        return _json({"serving": engine.model_version, "available": list(available),
                      "pipelines": list(getattr(engine, "pipelines", ("default",)))})

    @app.post("/v1/models/swap", response_model=SwapResponse, tags=["admin"], dependencies=admin,
              responses={**admin_errors, 409: {"model": Problem, "description": "The load failed; old models serve"}})
    async def swap_models(body: SwapBody, service: ServiceDep) -> Response:
        """Load a saved model version (null: the newest) without dropping a request. If the load
        fails, the models serving before keep serving and this answers 409."""
        engine = service.engine
        available = list(await run_in_threadpool(engine.available_model_versions))
        if body.version is not None and body.version not in available:
            raise _problem(422, f"unknown model version {body.version!r}; available: {', '.join(available) or 'none'}",
                           [{"loc": ["body", "version"], "msg": "unknown model version", "type": "value_error"}])
        previous = engine.model_version
        try:
            serving = await run_in_threadpool(engine.load_models, body.version)
        except Exception as exc:  # noqa: BLE001 - the old models keep serving
            log.exception("model swap failed")
            metrics.model_swaps.labels("failed").inc()
            message = str(exc) if isinstance(exc, UserFacingError) else f"{type(exc).__name__}: {exc}"
            raise _problem(409, f"could not load models {body.version or 'LATEST'}: {message}; "
                                f"still serving {engine.model_version}") from None
        metrics.model_swaps.labels("ok").inc()
        metrics.set_model(serving)
        await run_in_threadpool(service.publish_models, serving)
        return _json({"serving": serving, "previous": previous})

    # --- operations ---------------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive (answers even while the engine is being built)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"model": Problem}})
    async def readyz(request: Request) -> Response:
        """Ready to serve pages: the engine is built and the intake log replayed."""
        service = request.app.state.service
        if service is None:
            error = request.app.state.startup_error
            return _json({"message": f"failed to start: {error}" if error else "starting", "detail": None}, 503)
        return _json({"status": "ready", "replica": service.replica_id,
                      "model_version": getattr(service.engine, "model_version", ""),
                      "startup": service.startup_stats})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format; see docs/serving.md for the list."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # --- the storefront (web pages over this API: docs/storefront.md) -------------------------
    from shelfrank.serve.web import mount_web

    mount_web(app)
    return app
