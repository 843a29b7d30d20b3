"""`rtc stop`'s JSON without the json package: the same values as `json`, the same refusals."""

from __future__ import annotations

import json

import pytest

from gitrtc.lightjson import dumps, loads

VALUES = [
    None, True, False, 0, -7, 2**70, 1.5, -0.25, 1e300, "", "plain", "caf\u00e9 \u2603 \U0001f600",
    "quote \" backslash \\ newline \n tab \t nul \x00", [], [1, [2, [3]]], {},
    {"message": "Fix: \"x\"", "commit": True, "onto_branch": None, "files": ["a.md", "b/c.py"]},
]


@pytest.mark.parametrize("value", VALUES)
def test_round_trips_and_matches_the_json_package(value: object) -> None:
    text = dumps(value)
    assert json.loads(text) == value
    assert loads(text) == value
    assert loads(json.dumps(value, indent=2)) == value
    assert loads(json.dumps(value).encode()) == value


def test_reads_a_session_file_as_written() -> None:
    written = json.dumps({"pid": 12, "port": 8765, "owner_token": "t0k", "url": "http://h/#t=x"}, indent=2)
    assert loads("\n" + written + "\n") == {"pid": 12, "port": 8765, "owner_token": "t0k", "url": "http://h/#t=x"}


@pytest.mark.parametrize("text", ["", "   ", "{", "[1,", '{"a" 1}', "nul", "{} {}", "NaN", "Infinity",
                                  '"\x01"', b"\xff\xfe{}"])
def test_refuses_what_is_not_json(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "x"}, object(), b"bytes"])
def test_refuses_to_write_what_json_cannot_hold(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        dumps(value)
