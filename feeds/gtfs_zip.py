"""Reading a GTFS zip safely: every member is expanded and CRC-checked once, counting what
it really expands to, so a zip bomb or a corrupt archive is refused before gtfs-kit reads it."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import gtfs_kit as gk

from feeds.errors import FeedError

MAX_UNCOMPRESSED_BYTES = 4 << 30
"""Largest total a GTFS zip may expand to (the largest public feeds are well under)."""
MAX_EXPANSION_RATIO = 100
"""Largest expansion over the zip's size: GTFS text compresses 5–15× (NYC subway 10×);
300 MB of zeros in a 397 KB zip is 750×."""
EXPANSION_SLACK_BYTES = 16 << 20
"""Allowed on top of the ratio, so that tiny, very regular feeds are never refused."""


def expansion_limit(zip_size: int) -> int:
    """How many bytes a GTFS zip of ``zip_size`` bytes may expand to.

    Parameters
    ----------
    zip_size : int
        Size of the zip file.

    Returns
    -------
    int
        ``min(MAX_UNCOMPRESSED_BYTES, MAX_EXPANSION_RATIO × zip_size + 16 MiB)``.
    """
    return min(MAX_UNCOMPRESSED_BYTES, MAX_EXPANSION_RATIO * zip_size + EXPANSION_SLACK_BYTES)


def _too_large(path: Path, limit: int, what: str) -> FeedError:
    return FeedError(
        f"{path}: refused: {what} more than {limit:,} bytes uncompressed (at most "
        f"{MAX_EXPANSION_RATIO}× the zip's size plus {EXPANSION_SLACK_BYTES >> 20} MiB, and "
        f"{MAX_UNCOMPRESSED_BYTES >> 30} GiB in all): a zip bomb, or not a GTFS feed"
    )


def _check_declared(path: Path, members: list[zipfile.ZipInfo], limit: int) -> None:
    """Refuse a zip whose members declare more than ``limit`` bytes, before expanding any."""
    if sum(m.file_size for m in members) > limit:
        raise _too_large(path, limit, "its members declare")


def read_feed_zip(feed_id: str, path: Path) -> gk.Feed:
    if not path.is_file():
        raise FeedError(f"{path}: GTFS file not found")
    limit = expansion_limit(path.stat().st_size)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_declared(path, members, limit)
            expanded = 0
            for member in members:
                # ZipFile.testzip() swallows CRC errors (returning the name) and lets a
                # damaged deflate stream escape as zlib.error; read each member ourselves,
                # counting what it really expands to (declared sizes may lie)
                try:
                    with archive.open(member) as handle:
                        while chunk := handle.read(1 << 20):
                            expanded += len(chunk)
                            if expanded > limit:
                                raise _too_large(path, limit, "it expands to")
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise FeedError(
                        f"{path}: not a readable GTFS zip ({member.filename} is corrupt: {exc})"
                    ) from exc
    except zipfile.BadZipFile as exc:
        raise FeedError(f"{path}: not a readable GTFS zip ({exc})") from exc
    try:
        return gk.read_feed(path, dist_units="km")
    except Exception as exc:  # gtfs-kit raises many kinds on malformed CSV
        raise FeedError(f"{path}: cannot read GTFS feed ({type(exc).__name__}: {exc})") from exc
