"""The application factory: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import install_error_handlers
from api.limits import install_perimeter
from api.openapi import install_openapi
from api.query import reject_unknown_query
from api.routes import (
    cities,
    congestion,
    feeds,
    operators,
    pages,
    places,
    plan,
    reports,
    tiles,
    trips,
)
from api.state import AppState
from correspondance.cities import discover_cities, get_city
from correspondance.settings import Settings
from correspondance.store import create_store
from realtime.runtime import LiveRuntime
from routing.base import CityBase, load_or_build
from routing.place_index import load_or_build_places

log = logging.getLogger("correspondance.api")


def load_bases(settings: Settings, city_ids: list[str] | None) -> tuple[dict[str, CityBase], str]:
    """Load (building if needed) the named cities, or the default one."""
    configs = discover_cities(settings.data_dir)
    wanted = city_ids or [get_city(configs, settings.default_city).id]
    bases = {}
    for city_id in wanted:
        city = get_city(configs, city_id)
        bases[city.id], _ = load_or_build(
            city,
            settings.cache_dir,
            settings.max_transfer_walk_m,
            progress=lambda msg: log.info("build: %s", msg),
        )
    # The bases are millions of long-lived objects: move them out of the collector's way so
    # full collections do not pause live updates for ~100 ms (measured in bench_live).
    gc.collect()
    gc.freeze()
    return bases, wanted[0]


UNCOMPRESSED_PATHS = frozenset({"/api/v1/reports"})
"""Routes whose answers are always tiny (a report's ack): no GZip wrapper at all."""


class GZipLargeResponses:
    """:class:`GZipMiddleware`, except for :data:`UNCOMPRESSED_PATHS`.

    Starlette's middleware wraps every request's ``send`` to buffer and inspect the
    response, even when it ends up sending it unchanged; on the report intake (thousands
    of tiny acks per second) that is a measurable share of the CPU per request.
    """

    def __init__(self, app: ASGIApp, minimum_size: int = 2048) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in UNCOMPRESSED_PATHS:
            await self.app(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    city_ids: list[str] | None = None,
    bases: dict[str, CityBase] | None = None,
) -> FastAPI:
    """Build the app. City bases load in the lifespan unless given (tests pass them)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded, default = (bases, next(iter(bases))) if bases else load_bases(settings, city_ids)
        store = create_store(settings.redis_url, prefix=settings.redis_prefix)
        state = AppState(
            settings=settings,
            store=store,
            cities=discover_cities(settings.data_dir),
            bases=loaded,
            default_city=default,
            # the place search index, cached beside the base (built by `correspondance build`)
            places={c: load_or_build_places(b, settings.cache_dir)[0] for c, b in loaded.items()},
        )
        app.state.correspondance = state
        await state.report_desk().start()  # a store outage defers it to the first report
        runtime = LiveRuntime(
            settings, store, state.bases, {c: state.overlay(c) for c in state.bases}
        )
        state.runtime = runtime
        await runtime.start()
        state.trip_hub = runtime.hub
        try:
            yield
        finally:
            await runtime.stop()
            await store.aclose()

    app = FastAPI(
        title="Correspondance",
        version="0.1.0",
        summary="Open multimodal trip planning over a live graph.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: api/routes/pages.py, assets from npm, no CDN
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],  # unknown query parameters: 400
    )
    app.add_middleware(GZipLargeResponses, minimum_size=2048)
    install_perimeter(app, settings)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(cities.router)
    app.include_router(tiles.router)
    app.include_router(plan.router)
    app.include_router(places.router)
    app.include_router(feeds.router)
    app.include_router(operators.router)
    app.include_router(reports.router)
    app.include_router(trips.router)
    app.include_router(congestion.router)
    app.include_router(pages.router)
    frontend = settings.frontend_dir
    if frontend.is_dir():
        app.mount("/static", StaticFiles(directory=frontend), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(frontend / "index.html")

    return app
