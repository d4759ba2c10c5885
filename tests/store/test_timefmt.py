"""One duration grammar and the formatters, pure: what either old grammar accepted still parses the same."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import timefmt
from bot.health.thresholds import parse_duration as threshold_seconds
from bot.playbook import PlaybookError
from bot.playbook import parse_duration as playbook_duration


@given(n=st.integers(min_value=0, max_value=10**6), unit=st.sampled_from(["s", "m", "h", "d", ""]))
def test_both_callers_share_one_grammar(n: int, unit: str) -> None:
    text = f"{n}{unit}"
    seconds = n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}[unit]
    assert threshold_seconds(text) == seconds
    assert playbook_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "ten minutes", "5 weeks", "-3m", "1.2.3s", "True"])
def test_a_bad_duration_is_refused_in_the_callers_terms(bad: str) -> None:
    with pytest.raises(PlaybookError):
        playbook_duration(bad)
    with pytest.raises(ValueError):
        threshold_seconds(bad)


@given(secs=st.integers(min_value=0, max_value=59))
def test_under_a_minute_reads_in_seconds(secs: int) -> None:
    assert timefmt.fmt_elapsed(timedelta(seconds=secs)) == f"{secs} s"


def test_elapsed_and_measured_spans() -> None:
    assert timefmt.fmt_elapsed(timedelta(minutes=12, seconds=30)) == "12 min"
    assert timefmt.fmt_elapsed(timedelta(hours=3, minutes=5)) == "3 h 5 min"
    assert timefmt.fmt_elapsed(timedelta(hours=4)) == "4 h"
    assert timefmt.fmt_duration(timedelta(minutes=4, seconds=12)) == "4 min 12 s"
    assert timefmt.format_duration(timedelta(hours=24)) == "24 h"


def test_zone_lookup_is_forgiving() -> None:
    assert timefmt.zone(None) is None and timefmt.zone("Mars/Olympus") is None
    zone = timefmt.zone("America/Denver")
    assert zone is not None and timefmt.zone(zone) is zone
