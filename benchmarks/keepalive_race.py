"""The keep-alive race behind the soak's lone ``ReadError`` (issue #11), alone.

uvicorn closes a keep-alive connection that stayed idle ``timeout_keep_alive`` seconds
(5 s by default); httpx keeps an idle pooled connection ``keepalive_expiry`` seconds (5 s by
default too). A client that reuses such a connection at about that moment sends its request
on a socket the server is closing: the server's kernel answers with a reset, and the client
sees ``httpx.ReadError`` although the server logged nothing and never saw the request.

This script serves a minimal ASGI app with uvicorn on loopback, opens ``--width`` pooled
connections, leaves them idle for just under the server's timeout (0 to 10 ms less), then
reuses them all at once, ``--rounds`` times; then the same with the client's expiry below
the server's.
Bounded: 2 × rounds × (timeout + a little) seconds, loopback only::

    .venv/bin/python -m benchmarks.keepalive_race --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
from collections import Counter
from typing import Any

import httpx
import uvicorn


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def one_run(
    client_expiry_s: float, server_keepalive_s: float, rounds: int, width: int
) -> Counter[str]:
    """Transport errors of ``rounds × width`` requests reusing connections idle for the
    server's keep-alive timeout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _app, port=port, log_level="warning", timeout_keep_alive=int(server_keepalive_s)
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    errors: Counter[str] = Counter()
    rng = random.Random(7)
    limits = httpx.Limits(
        max_connections=width, max_keepalive_connections=width, keepalive_expiry=client_expiry_s
    )
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one() -> None:
            try:
                await client.get(f"http://127.0.0.1:{port}/")
            except httpx.HTTPError as exc:
                errors[f"{type(exc).__name__}({exc!s})"] += 1

        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(width)))
            # idle for just under the server's timeout (the client's pool still holds
            # the connections when its expiry is the server's): the race's window
            await asyncio.sleep(server_keepalive_s - rng.uniform(0.0, 0.01))
        await asyncio.gather(*(one() for _ in range(width)))
    server.should_exit = True
    await serving
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--width", type=int, default=20, help="connections reused at once")
    parser.add_argument("--server-keepalive", type=float, default=5.0, help="uvicorn's default")
    parser.add_argument("--client-keepalive", type=float, default=2.0, help="the soak's")
    args = parser.parse_args()
    for expiry in (args.server_keepalive, args.client_keepalive):
        errors = asyncio.run(one_run(expiry, args.server_keepalive, args.rounds, args.width))
        total = (args.rounds + 1) * args.width
        print(
            f"client keepalive_expiry {expiry:g} s, server timeout_keep_alive "
            f"{args.server_keepalive:g} s: {sum(errors.values())} transport errors of {total} "
            f"requests {dict(errors)}"
        )


if __name__ == "__main__":
    main()
