"""The ``correspondance`` command line: build, serve, plan, worker, operator.

Bad arguments print a message naming the argument and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correspondance.cities import CityConfig, discover_cities, get_city
from correspondance.errors import CorrespondanceError
from correspondance.settings import Settings

if TYPE_CHECKING:
    from correspondance.store import StateStore
    from crowdsource.accounts import OperatorAccounts
    from realtime.runtime import LiveRuntime
    from routing.base import CityBase

log = logging.getLogger("correspondance")


class CliError(Exception):
    """A user-facing CLI failure (exit status 2)."""


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build (or verify the cache of) a city's base."""
    from routing.base import load_or_build
    from routing.place_index import load_or_build_places

    city = get_city(discover_cities(settings.data_dir), args.city)
    print(f"Building {city.name} ({city.id})", file=sys.stderr)
    started = time.perf_counter()
    base, cached = load_or_build(
        city,
        settings.cache_dir,
        settings.max_transfer_walk_m,
        progress=_progress,
        rebuild=args.force,
    )
    took = time.perf_counter() - started
    tt = base.timetable
    print(
        f"{'Loaded from cache' if cached else 'Built'} in {took:.1f} s: "
        f"{tt.n_stops:,} stops, {len(tt.trip_ids):,} trips, "
        + ", ".join(
            f"{m} {n.n_nodes:,} nodes/{n.n_edges:,} edges" for m, n in base.streets.items()
        ),
        file=sys.stderr,
    )
    index, _ = load_or_build_places(base, settings.cache_dir, rebuild=args.force)
    print(
        f"  place search: {index.count('stop'):,} stops, {index.count('street'):,} streets, "
        f"{index.count('poi'):,} points of interest, {index.count('address'):,} addresses",
        file=sys.stderr,
    )
    streets = base.transit_streets
    if streets is not None:  # buses share the road (routing.transit_streets)
        print(
            f"  buses on streets: {int(streets.running.sum()):,} patterns matched to drive "
            f"edges ({int(streets.from_shape.sum()):,} along shapes.txt), "
            f"{int(streets.exempt.sum()):,} edges with a bus lane",
            file=sys.stderr,
        )
    _build_basemap_tiles(city, settings.cache_dir, rebuild=args.force)
    for warning in base.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    for notice in base.notices:
        print(f"  notice: {notice}", file=sys.stderr)
    _compile_kernels(base)
    return 0


def _compile_kernels(base: Any) -> None:
    """Plan once so numba compiles every kernel into its on-disk cache (``cache=True``) now,
    not on the first plan of ``serve``: the first answer after the URL shows is then quick."""
    from routing.overlay import OverlayHolder
    from routing.warmup import warm_up

    started = time.perf_counter()
    warm_up(base, OverlayHolder(base.streets.get("drive")).current)
    print(f"Kernels compiled and cached in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def _announce(server: Any, banner: str) -> None:
    """Print ``banner`` when ``server`` (a uvicorn.Server) has started, or never if it fails."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    print(banner, flush=True)


def _load_with_tiles(settings: Settings, city: str | None) -> dict[str, CityBase]:
    """Load the named city (or the default one) with its base-map tiles cut; a city whose
    tiles fail only warns: the map falls back to street lines and plans still work."""
    from api.app import load_bases

    bases, _default = load_bases(settings, [city] if city else None)
    configs = discover_cities(settings.data_dir)
    for city_id in bases:
        try:
            _build_basemap_tiles(get_city(configs, city_id), settings.cache_dir)
        except CorrespondanceError as exc:
            print(f"  warning: base map of {city_id}: {exc}", file=sys.stderr)
    return bases


def _build_basemap_tiles(city: CityConfig, cache_dir: Path, rebuild: bool = False) -> None:
    """Cut (or find cached) the city's base-map vector tiles, so the first map view is fast."""
    from feeds.tiles import build_tiles

    started = time.perf_counter()
    path, cached = build_tiles(
        city.resolve(city.osm.path),
        city.bbox,
        cache_dir,
        city.id,
        attribution=" | ".join(city.attribution),
        progress=_progress,
        rebuild=rebuild,
    )
    took = time.perf_counter() - started
    print(
        f"Base map {'loaded from cache' if cached else 'built'} in {took:.1f} s: "
        f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)",
        file=sys.stderr,
    )


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# The city `serve --workers N` hands to its worker processes (each builds its own app).
SERVE_CITY_ENV = "CORRESPONDANCE_SERVE_WORKER_CITY"
MAX_WORKERS = 64


def worker_app() -> Any:
    """The app of one of the processes of ``serve --workers N`` (a uvicorn factory).

    Settings come from the environment, as in the parent; the city from
    :data:`SERVE_CITY_ENV`. The bases load in the lifespan, from the cache the parent
    filled; the processes share everything else through Redis.
    """
    from api.app import create_app

    city = os.environ.get(SERVE_CITY_ENV) or None
    return create_app(Settings(), city_ids=[city] if city else None)


# websockets' Sans-I/O protocol: no keep-alive and transfer tasks of its own per connection
# (the legacy protocol runs three), so a worker holds many more live-trip sockets.
WS_IMPL = "websockets-sansio"
# Uvicorn options of every worker, for 10,000+ live-trip sockets each:
# * no permessage-deflate: its zlib streams cost ~46 KiB per socket (over half of one) and
#   compressing every frame is most of a fan-out's CPU; trip messages are small JSON;
# * (message size, header size and trusted proxies: settings.limits, api/limits.py);
# * a deep accept backlog, so that thousands of clients reconnecting at once after a
#   restart wait in the kernel rather than being refused (capped by net.core.somaxconn);
# * on SIGTERM, requests still running after GRACEFUL_SHUTDOWN_S are cancelled, so the
#   lifespan's shutdown (stepping down as writer, giving trip leases back) runs within
#   ``docker stop``'s 10 s (uvicorn's default waits for every task, forever).
GRACEFUL_SHUTDOWN_S = 5.0
UVICORN_OPTIONS: dict[str, Any] = {
    "ws": WS_IMPL,
    "ws_per_message_deflate": False,
    "backlog": 4096,
    "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
}


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Build if needed, then serve the API and web app."""
    import uvicorn

    from api.app import create_app
    from api.limits import server_options

    workers = getattr(args, "workers", 1)
    if not 1 <= workers <= MAX_WORKERS:
        raise CliError(f"--workers: {workers} must be between 1 and {MAX_WORKERS}")
    if workers > 1 and not settings.redis_url:
        raise CliError(
            "--workers: several processes need shared state; set REDIS_URL (the in-process "
            "store belongs to one process)"
        )
    if not _port_free(args.host, args.port):
        raise CliError(f"--port: {args.host}:{args.port} is already in use")
    if args.city:
        get_city(discover_cities(settings.data_dir), args.city)  # fail fast on a bad name
    print("Loading city data (the first run builds it: about a minute)…", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll is noise
    bases = _load_with_tiles(settings, args.city)
    # the perimeter's limits and trusted proxies (api/limits.py) over the socket options
    options = {**UVICORN_OPTIONS, **server_options(settings)}
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    backend = f"Redis at {settings.redis_url}" if settings.redis_url else "in-process state"
    banner = (
        f"\n  Correspondance is running ({backend}).\n  Open http://{shown}:{args.port}/ "
        f"— API docs at http://{shown}:{args.port}/docs\n"
    )
    if workers == 1:
        app = create_app(settings, bases=bases)
        server = uvicorn.Server(
            uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", **options)
        )
        # the URL once the server answers: after the start-up (live state, warm-up) is done
        threading.Thread(target=_announce, args=(server, banner), daemon=True).start()
        server.run()
        return 0
    print(banner, flush=True)
    del bases  # built and cached: each worker process loads its own copy
    # each worker process builds its own app; one of them takes the writer lock (role
    # "all"), the others follow its events
    os.environ[SERVE_CITY_ENV] = args.city or ""
    uvicorn.run(
        "api.cli:worker_app",
        factory=True,
        workers=workers,
        host=args.host,
        port=args.port,
        log_level="warning",
        **options,
    )
    return 0


WORKER_STOP_TIMEOUT_S = 15.0  # a worker still stopping after this exits anyway


async def _close_worker(runtime: LiveRuntime, store: StateStore) -> None:
    await runtime.stop()
    await store.aclose()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the live side without HTTP: writer election (feeds, fusion) and trip engines.

    Exactly the composition ``serve`` uses (:class:`realtime.runtime.LiveRuntime`), with
    role ``worker``; any number of workers may run: one writes each city, the others stand
    by, and all of them share the live trips' partitions.
    """
    from correspondance.store import create_store
    from realtime.runtime import LiveRuntime
    from routing.overlay import OverlayHolder

    if not settings.redis_url:
        raise CliError(
            "worker: a worker shares state with API processes; set REDIS_URL (the embedded "
            "`correspondance serve` runs the live side itself)"
        )
    settings = settings.model_copy(update={"role": "worker"})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    bases = _load_with_tiles(settings, args.city)

    async def run() -> None:
        store = create_store(settings.redis_url, prefix=settings.redis_prefix)
        overlays = {c: OverlayHolder(b.streets["drive"]) for c, b in bases.items()}
        runtime = LiveRuntime(settings, store, bases, overlays)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if stop.is_set():  # asked again while stopping: leave now, leases expire
                print("worker: second signal, exiting at once", file=sys.stderr, flush=True)
                os._exit(128 + signum)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await runtime.start()
        print(f"worker {runtime.owner} running for {', '.join(bases)}", file=sys.stderr, flush=True)
        try:
            await stop.wait()
        finally:
            closing = asyncio.ensure_future(_close_worker(runtime, store))
            if not (await asyncio.wait({closing}, timeout=WORKER_STOP_TIMEOUT_S))[0]:
                print("worker: shutdown timed out, exiting", file=sys.stderr, flush=True)
                os._exit(1)
            closing.result()

    asyncio.run(run())
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Serve a city with its recorded GBFS day replayed as live at ``--speed``."""
    if not 0 < args.speed <= 100_000:
        raise CliError(f"--speed: {args.speed} must be > 0 and ≤ 100000")
    settings = settings.model_copy(update={"replay_speed": args.speed, "live_feeds": True})
    return cmd_serve(args, settings)


PASSWORD_ENV = "CORRESPONDANCE_OPERATOR_PASSWORD"


def _read_new_password() -> str:
    """The new operator's password: from the environment, or typed twice at a terminal.

    Never a command-line argument: those show in ``ps`` and shell history.
    """
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise CliError(f"password: set {PASSWORD_ENV} or run in a terminal to type it")
    first = getpass.getpass("Password (at least 12 characters): ")
    if getpass.getpass("Repeat the password: ") != first:
        raise CliError("password: the two entries differ")
    return first


def _run_with_accounts(
    settings: Settings, action: Callable[[OperatorAccounts], Awaitable[None]]
) -> str:
    """Run ``action`` on the deployment's operator accounts; return where they live."""
    from correspondance.store import create_store
    from crowdsource.account_tables import open_operator_accounts

    async def run() -> None:
        async with create_store(settings.redis_url, prefix=settings.redis_prefix) as store:
            await store.ping()  # an unreachable Redis fails here, clearly, not mid-way
            await action(open_operator_accounts(store, settings.operators_file))

    asyncio.run(run())
    # never print the Redis URL: it may carry a password
    return "Redis (REDIS_URL)" if settings.redis_url else str(settings.operators_file)


def cmd_operator_add(args: argparse.Namespace, settings: Settings) -> int:
    """Create an operator account (Redis with REDIS_URL, else the operators file)."""
    from crowdsource.accounts import check_password, check_username

    check_username(args.username)  # before asking for a password
    password = _read_new_password()
    check_password(password)
    where = _run_with_accounts(settings, lambda accounts: accounts.add(args.username, password))
    print(f"operator {args.username!r} added to {where}", file=sys.stderr)
    return 0


def cmd_operator_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print every operator's username, one per line."""
    names: list[str] = []

    async def collect(accounts: OperatorAccounts) -> None:
        names.extend(await accounts.usernames())

    _run_with_accounts(settings, collect)
    for name in names:
        print(name)
    return 0


def cmd_operator_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Delete an operator account; its tokens stop working at once."""
    removed: list[bool] = []

    async def remove(accounts: OperatorAccounts) -> None:
        removed.append(await accounts.remove(args.username))

    where = _run_with_accounts(settings, remove)
    if not removed[0]:
        raise CliError(f"no operator named {args.username[:40]!r} in {where}")
    print(f"operator {args.username!r} removed from {where}", file=sys.stderr)
    return 0


def cmd_operator_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    """Set a new password; every token issued before stops working."""
    from crowdsource.accounts import check_password, check_username

    check_username(args.username)
    password = _read_new_password()
    check_password(password)
    where = _run_with_accounts(
        settings, lambda accounts: accounts.reset_password(args.username, password)
    )
    print(f"operator {args.username!r}: password reset in {where}", file=sys.stderr)
    return 0


def add_operator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``operator`` command: ``add``, ``list``, ``remove`` and ``reset-password``."""
    operator = sub.add_parser("operator", help="manage operator accounts")
    actions = operator.add_subparsers(dest="operator_command", required=True)
    add = actions.add_parser(
        "add", help=f"create an operator; the password comes from {PASSWORD_ENV} or a prompt"
    )
    add.add_argument("--username", required=True, help="3–32 characters of a-z 0-9 . _ -")
    add.set_defaults(func=cmd_operator_add)
    actions.add_parser("list", help="print operator usernames").set_defaults(func=cmd_operator_list)
    remove = actions.add_parser("remove", help="delete an operator; its tokens stop working")
    remove.add_argument("--username", required=True)
    remove.set_defaults(func=cmd_operator_remove)
    reset = actions.add_parser(
        "reset-password",
        help=f"set a new password (from {PASSWORD_ENV} or a prompt); old tokens stop working",
    )
    reset.add_argument("--username", required=True)
    reset.set_defaults(func=cmd_operator_reset_password)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="correspondance", description="Open multimodal mobility platform."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a city's base from its feeds and cache it")
    build.add_argument("--city", help="city id (a folder of data/); default: the default city")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(func=cmd_build)
    serve = sub.add_parser("serve", help="serve the API and the web app")
    serve.add_argument("--city", help="city id; default: the default city")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes sharing the port (more than 1 needs REDIS_URL); default 1",
    )
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run the single writer of live state")
    worker.add_argument("--city", help="city id; default: the default city")
    worker.set_defaults(func=cmd_worker)
    replay = sub.add_parser("replay", help="serve with recorded GBFS days replayed as live")
    replay.add_argument("--city", default=None, help="city id (e.g. oslo)")
    replay.add_argument("--speed", type=float, default=60.0, help="× real time (default 60)")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--port", type=int, default=8000)
    replay.set_defaults(func=cmd_replay)
    from api.plan_cli import add_plan_parser

    add_plan_parser(sub)
    add_operator_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``correspondance`` command."""
    from api.plan_cli import join_coordinate_values

    parser = build_parser()
    args = parser.parse_args(join_coordinate_values(sys.argv[1:] if argv is None else argv))
    try:
        settings = Settings()
        if getattr(args, "port", 1) is not None and not 0 < getattr(args, "port", 1) < 65536:
            raise CliError(f"--port: {args.port} is not a TCP port")
        code: int = args.func(args, settings)
        return code
    except (CliError, CorrespondanceError) as exc:
        print(f"correspondance {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
