"""GTFS zips get a decompression limit (issue 11, finding 8): a zip bomb is refused with a
clear error before anything expands it; real feeds are far below the limit."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from correspondance.settings import REPO_ROOT
from feeds.errors import FeedError
from feeds.gtfs import load_gtfs
from feeds.gtfs_zip import MAX_EXPANSION_RATIO, expansion_limit
from tests.zip_bomb import write_zip_bomb

TRENSURB_ZIP = REPO_ROOT / "data" / "porto-alegre" / "poa_trensurb.zip"
ZEROS = 300 * 1024 * 1024


def bomb(tmp_path: Path) -> Path:
    """The real Trensurb feed plus 300 MB of zeros as shapes.txt: a ~0.4 MB zip."""
    return write_zip_bomb(TRENSURB_ZIP, tmp_path / "bomb.zip", ZEROS)


def test_a_zip_bomb_is_refused_at_once_naming_the_limit(tmp_path: Path) -> None:
    path = bomb(tmp_path)
    size = path.stat().st_size
    assert size < 2_000_000  # 300 MB of zeros deflate to a few hundred kB
    started = time.perf_counter()
    with pytest.raises(
        FeedError, match=r"bomb\.zip: refused: its members declare more than"
    ) as caught:
        load_gtfs([("bomb", path)])
    assert time.perf_counter() - started < 2.0  # nothing was expanded
    assert f"at most {MAX_EXPANSION_RATIO}× the zip's size" in caught.value.message
    assert "a zip bomb, or not a GTFS feed" in caught.value.message


def test_sizes_are_counted_as_read_not_only_as_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with the declared-size check out of the way (as if the headers lied), the count of
    # what is really read still stops the expansion at the limit
    path = bomb(tmp_path)
    monkeypatch.setattr("feeds.gtfs_zip._check_declared", lambda *_: None)
    started = time.perf_counter()
    with pytest.raises(FeedError, match=r"bomb\.zip: refused: it expands to more than"):
        load_gtfs([("bomb", path)])
    assert time.perf_counter() - started < 10.0


def test_real_feeds_are_far_below_the_limit() -> None:
    with zipfile.ZipFile(TRENSURB_ZIP) as real:
        expanded = sum(m.file_size for m in real.infolist())
    assert expanded * 5 < expansion_limit(TRENSURB_ZIP.stat().st_size)
    assert load_gtfs([("trensurb", TRENSURB_ZIP)]).feeds
