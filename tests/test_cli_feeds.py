"""`correspondance build` on hostile or unfetched GTFS feeds (issue 11, finding 8): a zip
bomb and a URL feed each stop the build with exit 2 and a message saying what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from correspondance.settings import REPO_ROOT
from tests.zip_bomb import write_zip_bomb

POA = REPO_ROOT / "data" / "porto-alegre"


def run_build(data_dir: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env["CORRESPONDANCE_CACHE_DIR"] = str(cache_dir)
    env["CORRESPONDANCE_DATA_DIR"] = str(data_dir)
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "build", "--city", "porto-alegre"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def city_copy(tmp_path: Path) -> Path:
    city_dir = tmp_path / "data" / "porto-alegre"
    city_dir.mkdir(parents=True)
    shutil.copy(POA / "city.toml", city_dir / "city.toml")
    for name in ("poa_osm.pbf", "poa_eptc.zip", "poa_trensurb.zip"):
        (city_dir / name).symlink_to(POA / name)
    return city_dir


def test_a_url_gtfs_feed_stops_build_saying_how_to_download_it(tmp_path: Path) -> None:
    city_dir = city_copy(tmp_path)
    toml = city_dir / "city.toml"
    url = "https://example.org/feeds/trensurb.zip"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('path = "poa_trensurb.zip"', f'url = "{url}"'),
        encoding="utf-8",
    )
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()

    result = run_build(tmp_path / "data", cache_dir)

    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "build fetches them" not in result.stderr  # the old, wrong promise
    assert last == (
        "correspondance build: error: feed 'trensurb': GTFS feeds are read from files, and "
        "`correspondance build` does not download URLs. Download it first, e.g. `curl -fL -o "
        f"{city_dir.resolve() / 'trensurb.zip'} '{url}'`, then replace its `url = ...` with "
        f'`path = "trensurb.zip"` in {city_dir.resolve() / "city.toml"}'
    )
    assert list(cache_dir.iterdir()) == []


def test_a_zip_bomb_stops_build_with_exit_2(tmp_path: Path) -> None:
    city_dir = city_copy(tmp_path)
    bomb = city_dir / "poa_trensurb.zip"
    bomb.unlink()
    write_zip_bomb(POA / "poa_trensurb.zip", bomb, 300 << 20)
    assert bomb.stat().st_size < 1_000_000  # a 300 MB expansion in under a megabyte
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()

    result = run_build(tmp_path / "data", cache_dir)

    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"correspondance build: error: {bomb}: refused: its members declare")
    assert last.endswith("a zip bomb, or not a GTFS feed")
    assert "Traceback" not in result.stderr
    assert list(cache_dir.iterdir()) == []
