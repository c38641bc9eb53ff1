"""The application factory: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.errors import install_error_handlers
from api.routes import cities, plan
from api.state import AppState
from correspondance.cities import discover_cities, get_city
from correspondance.settings import Settings
from correspondance.store import create_store
from routing.base import CityBase, load_or_build

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
    return bases, wanted[0]


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
        store = create_store(settings.redis_url)
        app.state.correspondance = AppState(
            settings=settings,
            store=store,
            cities=discover_cities(settings.data_dir),
            bases=loaded,
            default_city=default,
        )
        try:
            yield
        finally:
            await store.aclose()

    app = FastAPI(
        title="Correspondance",
        version="0.1.0",
        summary="Open multimodal trip planning over a live graph.",
        lifespan=lifespan,
    )
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    install_error_handlers(app)
    app.include_router(cities.router)
    app.include_router(plan.router)
    frontend = settings.frontend_dir
    if frontend.is_dir():
        app.mount("/static", StaticFiles(directory=frontend), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(frontend / "index.html")

    return app
