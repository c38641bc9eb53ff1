"""``correspondance plan``: earliest-arrival itineraries straight from GTFS files.

A thin adapter over the planner's GTFS-only stages (:func:`routing.plan.answer` on a
:mod:`routing.gtfs_network`): parse arguments, load the network once,
answer one query (or every line of ``--queries``), print JSON. Bad input raises a
:class:`~correspondance.errors.CorrespondanceError`, which ``api.cli.main`` prints with
exit status 2.

The routing stack is imported inside the functions, only when ``plan`` runs: every other
subcommand (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correspondance.errors import InputError
from correspondance.geo import WALK_SPEED_M_S
from correspondance.settings import Settings

if TYPE_CHECKING:
    from routing.gtfs_network import Endpoint, StopQuery, TransitNetwork
    from routing.itinerary import Itinerary

# routing.gtfs_network's defaults, repeated so the parser needs no routing import
# (tests/routing/test_plan_cli.py keeps them equal)
DEFAULT_WALK_SPEED_M_S = WALK_SPEED_M_S
DEFAULT_MAX_TRANSFER_WALK_M = 400.0

# Options whose value is a coordinate and so may start with "-" (southern and western
# hemispheres). argparse reads "-30.03,-51.21" as an option (only a bare negative number
# passes its negative-number test), so :func:`join_coordinate_values` glues such a value
# to its option ("--from=-30.03,-51.21") before parsing.
COORDINATE_OPTIONS = ("--from", "--to")
_OPTION_LIKE_VALUE = re.compile(r"^-[\d.]")

USAGE = (
    "%(prog)s --gtfs FEED.zip [--gtfs FEED.zip ...] (--from LAT,LON | --from-stop STOP_ID)\n"
    "       (--to LAT,LON | --to-stop STOP_ID) (--depart | --arrive) YYYY-MM-DDTHH:MM:SS\n"
    "       [options]\n"
    "   or: %(prog)s --gtfs FEED.zip [--gtfs FEED.zip ...] --queries FILE.csv [options]"
)


def join_coordinate_values(argv: Sequence[str]) -> list[str]:
    """Glue a negative coordinate to its option: ``--from -30.03,-51.21`` → ``--from=…``.

    Parameters
    ----------
    argv
        Command-line arguments (without the program name).

    Returns
    -------
    list[str]
        The same arguments, with each :data:`COORDINATE_OPTIONS` followed by a value that
        starts with ``-`` and a digit or point joined into one ``--option=value`` token.
        Everything after a bare ``--`` is left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (
            token in COORDINATE_OPTIONS
            and following is not None
            and _OPTION_LIKE_VALUE.match(following)
        ):
            out.append(f"{token}={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def add_plan_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``plan`` subcommand on the CLI's subparsers.

    Parameters
    ----------
    subparsers
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``plan`` parser (``func`` defaults to :func:`cmd_plan`).
    """
    plan = subparsers.add_parser(
        "plan",
        # abbreviations ("--fr") would slip past join_coordinate_values
        allow_abbrev=False,
        usage=USAGE,
        help="earliest-arrival itineraries from GTFS files (no city build needed)",
        description=(
            "Plan with walk and transit straight from GTFS feeds. Footpaths join stops at "
            "most --max-transfer-walk metres apart, as the crow flies or, with --osm, over "
            "the walk network. --depart (leave at) and --arrive (arrive by) are local time in "
            "the feed's agency timezone."
        ),
    )
    plan.add_argument(
        "--gtfs", action="append", required=True, type=Path, metavar="FEED.zip", help="repeatable"
    )
    plan.add_argument("--osm", type=Path, metavar="CITY.osm.pbf", help="walk over OSM streets")
    origin = plan.add_mutually_exclusive_group()
    origin.add_argument("--from", dest="from_point", metavar="LAT,LON")
    origin.add_argument("--from-stop", metavar="STOP_ID")
    destination = plan.add_mutually_exclusive_group()
    destination.add_argument("--to", dest="to_point", metavar="LAT,LON")
    destination.add_argument("--to-stop", metavar="STOP_ID")
    when = plan.add_mutually_exclusive_group()
    when.add_argument(
        "--depart",
        metavar="YYYY-MM-DDTHH:MM:SS",
        help="leave at (local time); this or --arrive, unless --queries gives the departures",
    )
    when.add_argument(
        "--arrive",
        metavar="YYYY-MM-DDTHH:MM:SS",
        help="arrive by (local time): the latest departures that make it",
    )
    plan.add_argument(
        "--queries",
        type=Path,
        metavar="FILE.csv",
        help="answer every row (from_stop,to_stop,depart); one JSON object per line",
    )
    plan.add_argument("--modes", default="walk,transit", help="walk,transit (default both)")
    plan.add_argument(
        "--max-transfer-walk",
        type=float,
        default=DEFAULT_MAX_TRANSFER_WALK_M,
        metavar="METRES",
        help=f"longest footpath (default {DEFAULT_MAX_TRANSFER_WALK_M:g})",
    )
    plan.add_argument(
        "--walk-speed",
        type=float,
        default=DEFAULT_WALK_SPEED_M_S,
        metavar="M_PER_S",
        help=f"default {DEFAULT_WALK_SPEED_M_S:g}",
    )
    plan.add_argument("--json", action="store_true", help="print JSON (else a short summary)")
    plan.set_defaults(func=cmd_plan)
    parser: argparse.ArgumentParser = plan
    return parser


def _endpoint(point: str | None, stop: str | None, flag: str) -> Endpoint:
    from routing.gtfs_network import StopPoint
    from routing.plan_queries import parse_lat_lon

    if stop is not None:
        return StopPoint(stop)
    if point is not None:
        return parse_lat_lon(point, f"--{flag}")
    raise InputError(f"give --{flag} LAT,LON or --{flag}-stop STOP_ID (or --queries FILE.csv)")


def _single_query(args: argparse.Namespace, network: TransitNetwork | None) -> StopQuery:
    from routing.gtfs_network import StopQuery
    from routing.plan_queries import check_endpoint, parse_depart

    origin = _endpoint(args.from_point, args.from_stop, "from")
    destination = _endpoint(args.to_point, args.to_stop, "to")
    if args.depart is None and args.arrive is None:
        raise InputError("--depart or --arrive is required (YYYY-MM-DDTHH:MM:SS, local time)")
    arrive_by = args.arrive is not None
    when = parse_depart(args.arrive, "--arrive") if arrive_by else parse_depart(args.depart)
    if network is not None:
        check_endpoint(network, origin, "--from-stop")
        check_endpoint(network, destination, "--to-stop")
    return StopQuery(origin, destination, when, arrive_by)


def _summary(itineraries: list[Itinerary]) -> str:
    if not itineraries:
        return "no itinerary"
    from routing.codec import compact_answer

    lines = []
    for it in compact_answer(itineraries)["itineraries"]:
        lines.append(f"{it['departure']} → {it['arrival']}  ({it['transfers']} transfer(s))")
        for leg in it["legs"]:
            via = f" {leg['route_short_name'] or leg['route_id']}" if leg["route_id"] else ""
            lines.append(
                f"  {leg['departure'][11:19]} {leg['mode']}{via}: "
                f"{leg['from']['name']} → {leg['to']['name']} ({leg['arrival'][11:19]})"
            )
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Answer one query, or every row of ``--queries``, printing to stdout.

    Returns
    -------
    int
        0, also when no itinerary exists (``{"itineraries": []}``).

    Raises
    ------
    InputError
        Malformed coordinates, times, modes, numbers, or a --queries file.
    routing.errors.UnknownStopError
        A stop_id the feeds do not have.
    feeds.errors.FeedError
        A feed or extract that is missing, unreadable or invalid.
    """
    from routing.codec import compact_answer
    from routing.gtfs_network import load_or_build_network
    from routing.plan import answer
    from routing.plan_queries import parse_modes, read_queries

    modes = parse_modes(args.modes)
    if args.queries is not None:
        given = [
            name
            for name, value in (
                ("--from", args.from_point),
                ("--from-stop", args.from_stop),
                ("--to", args.to_point),
                ("--to-stop", args.to_stop),
                ("--depart", args.depart),
                ("--arrive", args.arrive),
            )
            if value is not None
        ]
        if given:
            raise InputError(f"--queries replaces {', '.join(given)}: give one or the other")
    else:
        _single_query(args, None)  # malformed input fails before the feeds are read
    network, _cached = load_or_build_network(
        args.gtfs,
        args.osm,
        args.walk_speed,
        args.max_transfer_walk,
        settings.cache_dir,
        progress=lambda message: print(f"  … {message}", file=sys.stderr, flush=True),
    )
    for notice in network.timetable.transit.notices:
        print(f"  notice: {notice}", file=sys.stderr, flush=True)
    queries = (
        read_queries(network, args.queries)
        if args.queries is not None
        else [_single_query(args, network)]
    )
    out = sys.stdout
    for query in queries:
        itineraries = answer(network, query, modes)
        if args.json or args.queries is not None:
            out.write(json.dumps(compact_answer(itineraries), ensure_ascii=False) + "\n")
        else:
            out.write(_summary(itineraries) + "\n")
        out.flush()
    return 0
