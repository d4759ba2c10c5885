"""Smoke test of `make bench`'s escalation benchmark (bench/escalation_lateness.py) with a tiny N.

The real thing, small: a throwaway PostgreSQL database, the Slack stand-in over HTTP, two bot `Worker`
processes per phase and two claim-send-mark baseline processes. Asserts only what is not a timing: every
scheduled step paged exactly once (stand-in DMs against the pages table and the baseline's timers), nothing
paged that was not scheduled, and the report's figures present. No timed assertions: speeds and ratios are
what `make bench` reports, not what a test on a shared machine can promise.
"""

from __future__ import annotations

import math

import pytest

from bench import common, escalation_lateness
from tests.conftest import PG_SKIP, PG_URL

pytestmark = [pytest.mark.postgres, pytest.mark.serial, pytest.mark.timeout(300)]

FIGURES = (
    "pages_per_s",
    "cpu_ms_per_page",
    "db_round_trips_per_page",
    "lateness",
    "baseline_cpu_ms_per_page",
    "baseline_db_round_trips_per_page",
    "cpu_ratio",
    "round_trip_ratio",
    "duplicates",
    "misses",
    "strays",
)


@pytest.fixture
def pg_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    monkeypatch.setattr(common, "PG_ADMIN_URL", PG_URL)  # the bench creates and drops its own database


def test_tiny_run_pages_every_step_once_and_reports_every_figure(pg_admin: None) -> None:
    res = escalation_lateness.run(incidents=6, window=1.0, lateness_seconds=1.0, deadline_s=60)

    d = res.data
    assert [k for k in FIGURES if k not in d] == []
    assert (d["duplicates"], d["misses"], d["strays"]) == (0, 0, 0), d["phases"]
    phases = d["phases"]
    assert set(phases) == {"throughput", "lateness", "baseline"}
    for name, ph in phases.items():
        # Every scheduled step reached Slack once, as one DM and one war-room line, and was counted as fired.
        assert ph["dms"] == ph["war_room_lines"] == ph["n"], name
        assert ph["fired"] == ph["n"], name
        assert ph["lateness"]["n"] == ph["n"], name
    assert phases["throughput"]["n"] == phases["baseline"]["n"] == 6
    # The figures are measured, not placeholders: the workers ran SQL and used CPU for these pages.
    for key in ("cpu_ms_per_page", "baseline_cpu_ms_per_page", "db_round_trips_per_page"):
        assert d[key] > 0 and math.isfinite(d[key]), key
    assert d["slack_failures"] == 0
    assert [r.figure for r in res.rows if r.ok is False and "duplicate" in r.figure] == []
