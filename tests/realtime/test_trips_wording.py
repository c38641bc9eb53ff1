"""The trip engine's texts are codes with parameters; English is one rendering of them."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from realtime.trips import wording

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "realtime/trips/protocol.schema.json").read_text())
LOCALES = ROOT / "frontend/locales"


def test_phrases_carry_code_params_and_english() -> None:
    why = wording.detail("no_vehicle", station="Estação 3")
    assert why.wire() == {"code": "no_vehicle", "params": {"station": "Estação 3"}}
    assert why.text() == "no vehicle left at Estação 3"
    missed = wording.detail("connection_missed", time="2019-05-15T13:05:00-03:00")
    assert missed.text() == "the 13:05 connection is missed"  # the wall clock the time carries
    with pytest.raises(KeyError, match="unknown detail code 'jammed'"):
        wording.detail("jammed")


def test_suggestion_and_notice_messages() -> None:
    at = dt.datetime(2019, 5, 15, 13, 40, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    text = wording.suggestion_message(
        "congestion",
        None,
        wording.leave("leave_vehicle", vehicle="car", stop="Rua A"),
        wording.action("board", mode="bus", line="T5", stop="Rua A"),
        4.2,
        at,
    )
    assert text == (
        "Traffic is jammed ahead: leave the car at Rua A, take bus T5 at Rua A, "
        "arrive 4 min earlier."
    )
    broken = wording.suggestion_message(
        "vehicle_unavailable",
        wording.detail("no_vehicle", station="S3"),
        None,
        wording.action("walk"),
        None,
        at,
    )
    assert broken == "No vehicle left at S3: walk, arrive 13:40."
    assert wording.no_better_message("congestion", None, None) == (
        "No better way was found: traffic is jammed ahead; your arrival time is unknown."
    )


def _codes(definition: dict[str, object]) -> set[str]:
    text = json.dumps(definition)
    enums = re.findall(r'"code": \{"enum": \[([^\]]*)\]', text)
    return {c.strip().strip('"') for e in enums for c in e.split(",")}


def test_schema_lists_exactly_the_codes_of_wording() -> None:
    defs = SCHEMA["definitions"]
    assert _codes(defs["detail"]) == set(wording.DETAILS)
    reason = defs["suggestion_body"]["properties"]["reason"]["properties"]
    assert _codes(reason["action"]) == set(wording.ACTIONS)
    assert _codes(reason["leave"]) == set(wording.LEAVES)
    assert set(reason["code"]["enum"]) == set(wording.REASONS)
    legs = defs["live_update"]["properties"]["legs"]["items"]["properties"]
    assert _codes(legs["note_code"]) == set(wording.LEG_NOTES)


@pytest.mark.parametrize("lang", ["en", "fr", "pt-BR", "nb"])
def test_every_code_is_worded_in_every_catalogue(lang: str) -> None:
    catalogue = json.loads((LOCALES / f"{lang}.json").read_text())
    wanted = (
        {f"trip.detail.{c}" for c in wording.DETAILS}
        | {f"trip.note.{c}" for c in wording.LEG_NOTES}
        | {f"trip.action.{c}" for c in wording.ACTIONS}
        | {f"trip.leave.{c}" for c in wording.LEAVES}
        | {f"trip.reason.{c}" for c in wording.REASONS}
    )
    missing = sorted(wanted - set(catalogue))
    assert not missing, f"{lang}.json lacks {missing}"
    for key in wanted:  # the client gets the same parameters the English text uses
        table = {
            "detail": wording.DETAILS,
            "note": wording.LEG_NOTES,
            "action": wording.ACTIONS,
            "leave": wording.LEAVES,
            "reason": wording.REASONS,
        }[key.split(".")[1]]
        english = set(re.findall(r"\{(\w+)\}", table[key.split(".")[2]]))
        assert set(re.findall(r"\{(\w+)\}", catalogue[key])) == english, (lang, key)
