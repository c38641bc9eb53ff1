"""The application factory: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import install_error_handlers
from api.limits import install_perimeter
from api.openapi import install_openapi
from api.routes import cities, feeds, operators, plan, reports, trips
from api.state import AppState
from correspondance.cities import discover_cities, get_city
from correspondance.settings import Settings
from correspondance.store import create_store
from realtime.service import LiveService
from realtime.trips.engine import TripEngine
from realtime.trips.hub import TripHub
from realtime.trips.policy import SwitchPolicy
from realtime.writer import LiveFollower
from routing.base import CityBase, load_or_build

log = logging.getLogger("correspondance.api")
OWNER = f"{socket.gethostname()}:{os.getpid()}"
ENGINE_LOCK_TTL_S = 3600.0


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


@dataclass
class LiveTasks:
    """What the lifespan started for live state: writers, followers, live-trip engines."""

    services: list[LiveService] = field(default_factory=list)
    followers: list[asyncio.Task[None]] = field(default_factory=list)
    engines: list[TripEngine] = field(default_factory=list)
    engine_locks: list[str] = field(default_factory=list)


async def start_live(state: AppState) -> LiveTasks:
    """Start the single writer (embedded or worker role) or followers (API role with Redis)."""
    live = LiveTasks()
    settings = state.settings
    if not settings.live_feeds:
        return live
    for city_id, base in state.bases.items():
        holder = state.overlay(city_id)
        if settings.role in ("all", "worker"):
            service = LiveService(
                base,
                holder,
                state.store,
                replay_speed=settings.replay_speed,
                fusion_k=settings.fusion_k,
                report_ttl_s=settings.report_ttl_s,
                simulated_at=settings.simulated_feeds_at,
            )
            if await service.start():
                live.services.append(service)
                await start_engine(state, live, city_id)
                continue
        if settings.redis_url:  # another process writes: mirror its state from the stream
            live.followers.append(asyncio.create_task(follow(state, city_id)))
    return live


async def start_engine(state: AppState, live: LiveTasks, city_id: str) -> None:
    """The city's live-trip engine, in the process that writes its live state."""
    settings = state.settings
    policy = SwitchPolicy(
        min_saving_s=settings.trip_min_saving_s, min_fraction=settings.trip_min_fraction
    )
    engine = TripEngine(
        state.bases[city_id],
        state.overlay(city_id),
        state.store,
        policy,
        walk_speed_m_s=settings.walk_speed_m_s,
    )
    await engine.start()
    live.engines.append(engine)
    state.engines[city_id] = engine


async def start_trip_engines_without_feeds(state: AppState, live: LiveTasks) -> None:
    """Without live feeds there is no writer: one process still runs each city's engine
    (operator incidents and reports still change congestion), under its own lock."""
    if state.settings.live_feeds or state.settings.role == "api":
        return
    for city_id in state.bases:
        name = f"trips:{city_id}"
        if await state.store.acquire_lock(name, OWNER, ENGINE_LOCK_TTL_S):
            live.engine_locks.append(name)
            await start_engine(state, live, city_id)


async def follow(state: AppState, city_id: str) -> None:
    """Keep this worker's overlay in step with the writer's events."""
    follower = LiveFollower(city_id, state.overlay(city_id), state.store)
    while True:
        try:
            await follower.catch_up()
            async for event in state.store.subscribe(after_seq=None):
                await follower.apply(event)
        except asyncio.CancelledError:
            raise
        except Exception:  # lost events or a Redis outage: reload everything, then resume
            log.warning("live follower for %s restarting", city_id, exc_info=True)
            await asyncio.sleep(1.0)


async def stop_live(live: LiveTasks) -> None:
    """Stop engines, writers and followers."""
    for engine in live.engines:
        await engine.stop()
    for task in live.followers:
        task.cancel()
    for task in live.followers:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for service in live.services:
        await service.stop()


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
        )
        app.state.correspondance = state
        await reports.start_reports(app, state)
        state.trip_hub = TripHub(store)
        state.trip_hub.start()
        live = await start_live(state)
        await start_trip_engines_without_feeds(state, live)
        try:
            yield
        finally:
            await state.trip_hub.stop()
            await stop_live(live)
            await store.aclose()

    app = FastAPI(
        title="Correspondance",
        version="0.1.0",
        summary="Open multimodal trip planning over a live graph.",
        lifespan=lifespan,
    )
    app.add_middleware(GZipLargeResponses, minimum_size=2048)
    install_perimeter(app, settings)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(cities.router)
    app.include_router(plan.router)
    app.include_router(feeds.router)
    app.include_router(operators.router)
    app.include_router(reports.router)
    app.include_router(trips.router)
    frontend = settings.frontend_dir
    if frontend.is_dir():
        app.mount("/static", StaticFiles(directory=frontend), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(frontend / "index.html")

    return app
