"""``correspondance build`` builds the place search index beside the city's base."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_cli import CACHE_DIR, run_cli

from routing.base import CityBase, cache_path
from routing.place_index import places_cache_path


def test_build_caches_the_place_index_beside_the_base(poa_base: CityBase, tmp_path: Path) -> None:
    # a warm base in a cache of its own, without a place index yet
    base_file = cache_path(tmp_path, poa_base.city)
    base_file.parent.mkdir(parents=True)
    shutil.copy(cache_path(CACHE_DIR, poa_base.city), base_file)
    result = run_cli("build", "--city", "porto-alegre", cache_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(s for s in result.stderr.splitlines() if "place search:" in s)
    assert line.startswith("  place search: ")
    for kind in ("stops", "streets", "points of interest", "addresses"):
        assert f" {kind}" in line
    index_file = places_cache_path(tmp_path, poa_base)
    assert index_file.is_file()
    assert index_file.parent == base_file.parent
    built = index_file.stat().st_mtime_ns
    again = run_cli("build", "--city", "porto-alegre", cache_dir=tmp_path)
    assert again.returncode == 0, again.stderr
    assert line in again.stderr
    assert index_file.stat().st_mtime_ns == built  # loaded, not rebuilt
