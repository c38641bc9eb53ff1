"""GBFS 2.3 documents for poller tests (three stations)."""

from __future__ import annotations

from typing import Any


def gbfs_docs(base_url: str, now: int, bikes_at_b: int = 0) -> dict[str, Any]:
    names = ["system_information", "station_information", "station_status"]

    def wrap(data: dict[str, Any]) -> dict[str, Any]:
        return {"last_updated": now, "ttl": 10, "version": "2.3", "data": data}

    stations = [
        ("a", -30.0335, -51.2165, 10),
        ("b", -30.0300, -51.2000, 10),
        ("c", -30.0280, -51.1800, 5),
    ]
    bikes = {"a": 3, "b": bikes_at_b, "c": 5}
    return {
        "gbfs": wrap(
            {"en": {"feeds": [{"name": n, "url": f"{base_url}/{n}.json"} for n in names]}}
        ),
        "system_information": wrap(
            {
                "system_id": "test-bikes",
                "language": "en",
                "name": "Test bikes",
                "timezone": "America/Sao_Paulo",
            }
        ),
        "station_information": wrap(
            {
                "stations": [
                    {
                        "station_id": sid,
                        "name": f"Station {sid}",
                        "lat": lat,
                        "lon": lon,
                        "capacity": cap,
                    }
                    for sid, lat, lon, cap in stations
                ]
            }
        ),
        "station_status": wrap(
            {
                "stations": [
                    {
                        "station_id": sid,
                        "num_bikes_available": bikes[sid],
                        "num_docks_available": cap - bikes[sid],
                        "is_installed": True,
                        "is_renting": True,
                        "is_returning": True,
                        "last_reported": now,
                    }
                    for sid, _lat, _lon, cap in stations
                ]
            }
        ),
    }
