"""A zip bomb for the feed-limit tests: a real GTFS zip whose shapes.txt is megabytes of
zeros, deflated to almost nothing."""

from __future__ import annotations

import zipfile
from pathlib import Path

ZEROS = 300 * 1024 * 1024


def write_zip_bomb(real_zip: Path, path: Path, zeros: int = ZEROS) -> Path:
    """Write to ``path`` the members of ``real_zip`` with shapes.txt replaced by ``zeros``
    bytes of zeros (a whole number of MiB); return ``path``."""
    with zipfile.ZipFile(real_zip) as real, zipfile.ZipFile(path, "w") as out:
        for member in real.infolist():
            if member.filename != "shapes.txt":
                out.writestr(member, real.read(member))
        shapes = zipfile.ZipInfo("shapes.txt")
        shapes.compress_type = zipfile.ZIP_DEFLATED
        with out.open(shapes, "w", force_zip64=True) as handle:
            chunk = bytes(1 << 20)
            for _ in range(zeros >> 20):
                handle.write(chunk)
    return path
