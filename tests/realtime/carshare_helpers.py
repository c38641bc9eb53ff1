"""The car-share city of the live-trip tests: two stations of one simulated system in Porto
Alegre (a pick-up near the centre, a drop-off in the east) and trips between those places."""

from __future__ import annotations

import numpy as np

from routing.base import CityBase
from routing.overlay import OverlayHolder, SharedStation, SharedSystem

SYSTEM_ID = "test-car"
POA_CENTRE = (-30.0277, -51.2287)
POA_EAST = (-30.0587, -51.1734)
# (station, lat, lon, cars, docks): a pick-up near the centre, a drop-off in the east
STATIONS = [("ok", -30.0300, -51.2250, 2, 5), ("dock", -30.0570, -51.1770, 0, 4)]


def stations(base: CityBase, cars: int = 2, docks: int = 4) -> list[SharedStation]:
    drive = base.streets["drive"]
    out = []
    for station_id, lat, lon, n_cars, n_docks in STATIONS:
        node = int(np.argmin((drive.node_lat - lat) ** 2 + (drive.node_lon - lon) ** 2))
        out.append(
            SharedStation(
                SYSTEM_ID,
                station_id,
                f"Car station {station_id}",
                float(drive.node_lat[node]),
                float(drive.node_lon[node]),
                "car",
                cars if station_id == "ok" else n_cars,
                docks if station_id == "dock" else n_docks,
            )
        )
    return out


def live(base: CityBase, cars: int = 2, docks: int = 4) -> OverlayHolder:
    holder = OverlayHolder(base.streets["drive"])
    system = SharedSystem(SYSTEM_ID, "Test car-share", "car", False, simulated=True)
    holder.set_shared_mobility([system], stations(base, cars, docks))
    return holder
