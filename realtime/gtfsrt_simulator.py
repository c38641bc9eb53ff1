"""A deterministic GTFS-Realtime simulator: trip delays, cancellations and service alerts over
one static GTFS feed of a city with no real-time feed (Porto Alegre's EPTC buses). Every
alert says it is simulated, and the feed is labelled simulated wherever it shows.

**The simulated clock and the service day.** The bundled timetables are dated (2019), so the
feed describes one *service day* of the static feed (``service_date``, the city's
``default_date`` unless set): every trip of that feed running that day gets exactly one
``TripUpdate`` (the spec's "at most one per scheduled trip", and on-time trips say so with a
delay of 0 instead of leaving "no data"), with ``start_date`` = the service day. The simulated
clock (the wall clock, or ``frozen_at``: ``CORRESPONDANCE_SIMULATED_FEEDS_AT``) only says
*which* situation is served: it is cut into ticks of ``tick_s``; each trip keeps its situation
for ``episode_ticks`` ticks, its episodes staggered by a seeded phase, so a few trips change
every tick. A trip's situation in an episode is a pure function of ``(seed, trip_id,
episode)``: on time, late by 1..``max_delay_s`` minutes (whole half minutes), or cancelled.
Same seed and clock, same feed, byte for byte (the header's timestamp is the wall clock cut
to the tick, so the feed is always fresh; pass ``clock`` to fix it too).

**What a trip update says (GTFS-Realtime 2.0).** A late trip: one ``StopTimeUpdate`` at its
first stop (``stop_sequence`` and ``stop_id`` of the static feed, SCHEDULED) with arrival and
departure ``delay``; by the spec the delay propagates to every later stop, which is also
routing's model (one delay per trip). A cancelled trip: ``TripDescriptor.schedule_relationship
= CANCELED`` and no stop time updates.

**Alerts.** Up to three, changing every ``2 × episode_ticks`` ticks, each with one informed
entity (selectors with several fields mean *all of them*, so single-field selectors say
exactly what is touched): significant delays on the route with the most late trips now
(``route_id``), a detour on a seeded route (``route_id``), a stop moved by works (``stop_id``).
No ``active_period``: an alert is active while it is in the feed. Texts in English and
Brazilian Portuguese; the description says the alert is simulated (the app shows its own
"simulated" label beside the header).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from google.transit import gtfs_realtime_pb2

from correspondance.cities import RealtimeSimulatorConfig
from feeds.gtfs import TransitData
from realtime.feed_server import FeedServer

FEED_PATH = "/gtfs-rt.pb"
CONTENT_TYPE = "application/x-protobuf"
SIMULATED_NOTE = {
    "en": "Simulated by Correspondance: not a real service announcement.",
    "pt": "Simulado pelo Correspondance: não é um aviso real do serviço.",
}


@dataclass(frozen=True)
class SimulatedTrip:
    """One trip of the service day, as the feed needs it."""

    trip_id: str
    route_id: str
    route_name: str
    direction_id: int | None
    start_time: str  # HH:MM:SS of its first departure (may pass 24:00:00)
    first_sequence: int
    first_stop_id: str


@dataclass(frozen=True)
class TripSituation:
    """What the simulator says of one trip at one tick."""

    trip_id: str
    cancelled: bool
    delay_s: int  # 0 when on time or cancelled


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) that is a pure function of ``parts``."""
    key = ":".join(str(p) for p in parts).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def service_trips(transit: TransitData, feed_id: str, service_date: dt.date) -> list[SimulatedTrip]:
    """Every trip of static feed ``feed_id`` running on ``service_date``, by trip id.

    Raises
    ------
    ValueError
        When no trip of that feed runs that day (a simulator over nothing is a config error).
    """
    active = transit.active_service_keys(service_date)
    trips = transit.trips
    trips = trips[(trips["feed_id"] == feed_id) & trips["service_key"].isin(list(active))]
    if trips.empty:
        raise ValueError(f"no trip of GTFS feed {feed_id!r} runs on {service_date.isoformat()}")
    names: dict[str, str] = {}
    for route_id, short, long in zip(
        transit.routes["route_id"].astype(str),
        transit.routes["route_short_name"].fillna("").astype(str),
        transit.routes["route_long_name"].fillna("").astype(str),
        strict=True,
    ):
        names[route_id] = short or long
    times = transit.stop_times
    firsts = times[times["trip_id"].isin(trips["trip_id"])].groupby("trip_id", sort=False).first()
    first_of = {
        str(trip_id): (int(seq), str(stop_id), int(dep))
        for trip_id, seq, stop_id, dep in zip(
            firsts.index,
            firsts["stop_sequence"],
            firsts["stop_id"],
            firsts["departure_s"],
            strict=True,
        )
    }
    out = []
    for trip_id, route_id, direction in zip(
        trips["trip_id"].astype(str),
        trips["route_id"].astype(str),
        trips["direction_id"].astype("Int64"),
        strict=True,
    ):
        sequence, stop_id, departs = first_of[trip_id]
        out.append(
            SimulatedTrip(
                trip_id=trip_id,
                route_id=route_id,
                route_name=names.get(route_id, route_id),
                direction_id=None if pd.isna(direction) else int(direction),
                start_time=_hms(departs),
                first_sequence=sequence,
                first_stop_id=stop_id,
            )
        )
    return sorted(out, key=lambda t: t.trip_id)


@dataclass
class GtfsRtSimulator:
    """A simulated GTFS-Realtime feed over ``trips`` (see the module docstring)."""

    config: RealtimeSimulatorConfig
    trips: list[SimulatedTrip]
    service_date: dt.date
    stop_names: dict[str, str]  # stop_id → name, for the stop alert's text
    clock: Callable[[], float] = time.time
    frozen_at: float | None = None  # the simulated situation frozen at this Unix time

    def __post_init__(self) -> None:
        seed, n = self.config.seed, self.config.episode_ticks
        self._phase = [int(_unit(seed, t.trip_id, "phase") * n) for t in self.trips]
        served = sorted({t.first_stop_id for t in self.trips} & self.stop_names.keys())
        self._stops = served
        self._cached: tuple[tuple[int, int], bytes] | None = None

    @classmethod
    def for_transit(
        cls,
        config: RealtimeSimulatorConfig,
        transit: TransitData,
        service_date: dt.date,
        clock: Callable[[], float] = time.time,
        frozen_at: float | None = None,
    ) -> GtfsRtSimulator:
        """The simulator of ``config`` over a city's merged static transit data."""
        trips = service_trips(transit, config.feed, service_date)
        stops = transit.stops
        names = dict(zip(stops["stop_id"].astype(str), stops["stop_name"].astype(str), strict=True))
        return cls(config, trips, service_date, names, clock=clock, frozen_at=frozen_at)

    # -- the situation -------------------------------------------------------------------

    def tick(self) -> int:
        """The simulation step in force now (or at ``frozen_at``)."""
        at = self.frozen_at if self.frozen_at is not None else self.clock()
        return int(at // self.config.tick_s)

    def situation(self, tick: int) -> list[TripSituation]:
        """Every trip's situation at ``tick``, in trip id order."""
        c = self.config
        out = []
        for trip, phase in zip(self.trips, self._phase, strict=True):
            episode = (tick + phase) // c.episode_ticks
            u = _unit(c.seed, trip.trip_id, episode)
            if u < c.cancel_share:
                out.append(TripSituation(trip.trip_id, True, 0))
            elif u < c.cancel_share + c.late_share:
                half_minutes = (c.max_delay_s - 60) // 30
                step = int(_unit(c.seed, trip.trip_id, episode, "delay") * (half_minutes + 1))
                out.append(TripSituation(trip.trip_id, False, 60 + 30 * step))
            else:
                out.append(TripSituation(trip.trip_id, False, 0))
        return out

    def change_tick(self, trip_id: str, after: int, cancelled: bool, within: int) -> int | None:
        """The first tick in ``(after, after + within]`` at which ``trip_id`` turns cancelled
        (``cancelled``) or late, from on time at ``after``; None if it does not. For tests and
        demos that need to know what the feed will say (it is deterministic)."""
        index = next(i for i, t in enumerate(self.trips) if t.trip_id == trip_id)
        c = self.config

        def state(tick: int) -> tuple[bool, int]:
            episode = (tick + self._phase[index]) // c.episode_ticks
            u = _unit(c.seed, trip_id, episode)
            return (u < c.cancel_share, int(c.cancel_share <= u < c.cancel_share + c.late_share))

        if state(after) != (False, 0):
            return None
        for tick in range(after + 1, after + within + 1):
            is_cancelled, late = state(tick)
            if (cancelled and is_cancelled) or (not cancelled and late):
                return tick
            if is_cancelled or late:
                return None
        return None

    # -- the feed ------------------------------------------------------------------------

    def message(self) -> Any:
        """The ``FeedMessage`` of the current tick."""
        tick = self.tick()
        c = self.config
        feed = gtfs_realtime_pb2.FeedMessage()
        feed.header.gtfs_realtime_version = "2.0"
        feed.header.incrementality = gtfs_realtime_pb2.FeedHeader.FULL_DATASET
        now = int(self.clock() // c.tick_s * c.tick_s)  # fresh, and stable within a tick
        feed.header.timestamp = now
        start_date = self.service_date.strftime("%Y%m%d")
        situations = self.situation(tick)
        for trip, sit in zip(self.trips, situations, strict=True):
            entity = feed.entity.add()
            entity.id = f"trip:{trip.trip_id}"
            update = entity.trip_update
            update.trip.trip_id = trip.trip_id
            update.trip.route_id = trip.route_id
            if trip.direction_id is not None:
                update.trip.direction_id = trip.direction_id
            update.trip.start_time = trip.start_time
            update.trip.start_date = start_date
            if sit.cancelled:
                update.trip.schedule_relationship = gtfs_realtime_pb2.TripDescriptor.CANCELED
                continue
            update.trip.schedule_relationship = gtfs_realtime_pb2.TripDescriptor.SCHEDULED
            stu = update.stop_time_update.add()
            stu.stop_sequence = trip.first_sequence
            stu.stop_id = trip.first_stop_id
            stu.schedule_relationship = gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.SCHEDULED
            stu.arrival.delay = sit.delay_s  # both, as the static stop time has both
            stu.departure.delay = sit.delay_s
        for alert_id, alert in self._alerts(tick, situations):
            entity = feed.entity.add()
            entity.id = alert_id
            entity.alert.CopyFrom(alert)
        return feed

    def feed_bytes(self) -> bytes:
        """The serialized ``FeedMessage`` of the current tick (built once per tick)."""
        key = (self.tick(), int(self.clock() // self.config.tick_s))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.message().SerializeToString())
        return self._cached[1]

    def _alerts(self, tick: int, situations: list[TripSituation]) -> list[tuple[str, Any]]:
        c = self.config
        if not c.alerts or not self.trips:
            return []
        epoch = tick // (2 * c.episode_ticks)
        routes = sorted({(t.route_id, t.route_name) for t in self.trips})
        out: list[tuple[str, Any]] = []
        # 1. significant delays on the route with the most late trips now
        late: dict[str, list[int]] = {}
        for trip, sit in zip(self.trips, situations, strict=True):
            if sit.delay_s:
                late.setdefault(trip.route_id, []).append(sit.delay_s)
        if late:
            route_id = min(late, key=lambda r: (-len(late[r]), r))
            name = dict(routes)[route_id]
            worst = max(late[route_id]) // 60
            out.append(
                (
                    f"alert:{epoch}:delays",
                    _alert(
                        "SIGNIFICANT_DELAYS",
                        "TECHNICAL_PROBLEM" if _unit(c.seed, epoch, "cause") < 0.5 else "ACCIDENT",
                        {"route_id": route_id},
                        {
                            "en": f"Line {name}: delays of up to {worst} min",
                            "pt": f"Linha {name}: atrasos de até {worst} min",
                        },
                    ),
                )
            )
        # 2. a detour on a seeded route
        if c.alerts >= 2:
            route_id, name = routes[int(_unit(c.seed, epoch, "detour") * len(routes))]
            out.append(
                (
                    f"alert:{epoch}:detour",
                    _alert(
                        "DETOUR",
                        "CONSTRUCTION",
                        {"route_id": route_id},
                        {
                            "en": f"Line {name}: detour because of road works",
                            "pt": f"Linha {name}: desvio por causa de obras",
                        },
                    ),
                )
            )
        # 3. a stop moved by works
        if c.alerts >= 3 and self._stops:
            stop_id = self._stops[int(_unit(c.seed, epoch, "stop") * len(self._stops))]
            name = self.stop_names[stop_id]
            out.append(
                (
                    f"alert:{epoch}:stop",
                    _alert(
                        "STOP_MOVED",
                        "MAINTENANCE",
                        {"stop_id": stop_id},
                        {
                            "en": f"Stop {name} moved about 50 m during works",
                            "pt": f"Parada {name} deslocada cerca de 50 m durante obras",
                        },
                    ),
                )
            )
        return out[: c.alerts]


def _alert(effect: str, cause: str, selector: dict[str, str], header: dict[str, str]) -> Any:
    alert = gtfs_realtime_pb2.Alert()
    alert.effect = gtfs_realtime_pb2.Alert.Effect.Value(effect)
    alert.cause = gtfs_realtime_pb2.Alert.Cause.Value(cause)
    entity = alert.informed_entity.add()
    for name, value in selector.items():
        setattr(entity, name, value)
    for lang, text in header.items():
        translation = alert.header_text.translation.add()
        translation.text = text
        translation.language = lang
    for lang, text in SIMULATED_NOTE.items():
        translation = alert.description_text.translation.add()
        translation.text = text
        translation.language = lang
    return alert


class GtfsRtServer(FeedServer):
    """Serves one simulator's feed at ``FEED_PATH`` on 127.0.0.1 (ETag: a tick's feed is
    fetched once, later polls in the same tick get 304)."""

    def __init__(self, feed: Callable[[], bytes], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            lambda path: (feed(), CONTENT_TYPE) if path == FEED_PATH else None, host, port
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/gtfs-rt.pb``."""
        return f"{self.base_url}{FEED_PATH}"
