"""The OSRM half of ``bench_street_engines``: runs in its own Python ≥ 3.12 venv.

``osrm-bindings`` (PyPI) ships wheels only for Python ≥ 3.12, the project runs on 3.11, so
the benchmark starts this script with the venv's interpreter and talks JSON lines over its
stdin/stdout. It imports nothing from the project. Commands:

* ``{"cmd": "open", "ch": PATH, "mld": PATH}``: load the engines (either may be null);
* ``{"cmd": "pairs", "pairs": [[o_lat, o_lon, d_lat, d_lon], ...]}``;
* ``{"cmd": "run", "algo": "ch"|"mld", "lo": i, "hi": j}``: route pairs i..j-1 once each,
  answers ``{"seconds": [...], "duration_s": [...]}`` (time per query measured here, around
  ``Route`` alone, as the other side times its own searches; a failed route is null);
* ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def main() -> int:
    import osrm  # type: ignore[import-not-found]  # only in the OSRM venv

    engines: dict[str, Any] = {}
    pairs: list[list[float]] = []
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        reply: dict[str, Any] = {"ok": True}
        if cmd == "open":
            for algo in ("ch", "mld"):
                if msg.get(algo):
                    engines[algo] = osrm.OSRM(
                        storage_config=msg[algo], algorithm=algo.upper(), use_shared_memory=False
                    )
        elif cmd == "pairs":
            pairs = msg["pairs"]
        elif cmd == "run":
            engine = engines[msg["algo"]]
            seconds: list[float] = []
            durations: list[float | None] = []
            for o_lat, o_lon, d_lat, d_lon in pairs[msg["lo"] : msg["hi"]]:
                params = osrm.RouteParameters(
                    coordinates=[(o_lon, o_lat), (d_lon, d_lat)],
                    overview="false",
                    generate_hints=False,
                )
                start = time.perf_counter()
                try:
                    result = engine.Route(params)
                    duration: float | None = float(result["routes"][0]["duration"])
                except RuntimeError:
                    duration = None
                seconds.append(time.perf_counter() - start)
                durations.append(duration)
            reply = {"seconds": seconds, "duration_s": durations}
        elif cmd == "quit":
            return 0
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
