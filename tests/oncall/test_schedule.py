"""Rotation maths (pure): DST in two zones, layers and restrictions, overrides, gaps; and a property test
against a brute-force oracle written independently of bot.oncall.schedule's shift arithmetic."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.clock import ManualClock
from bot.oncall.config import load_oncall
from bot.oncall.schedule import (
    Layer,
    Override,
    Schedule,
    Window,
    gaps,
    handoffs,
    parse_day_list,
    who_is_on,
)
from bot.playbook import PlaybookError, Roster, load_roster

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
ROSTER = load_roster(Path(__file__).resolve().parents[2] / "playbook_content" / "oncall.example.yaml")


def weekly(users: tuple[str, ...], start: datetime, zone: str, **kw: object) -> Layer:
    return Layer("weekly", users, "weekly", timedelta(days=7), start.astimezone(UTC), zone, **kw)  # type: ignore[arg-type]


def test_weekly_handoff_keeps_wall_clock_across_dst_in_berlin_and_new_york() -> None:
    # Berlin springs forward on 2026-03-29, New York on 2026-03-08; both fall back in autumn.
    for zone, tz, before_change in (
        ("Europe/Berlin", BERLIN, date(2026, 3, 23)),
        ("America/New_York", NEW_YORK, date(2026, 3, 2)),
    ):
        start = datetime.combine(before_change, time(9), tz)
        sched = Schedule("s", 1, layers=(weekly(("A", "B"), start, zone),))
        clock = ManualClock(start.astimezone(UTC) + timedelta(hours=1))
        first = who_is_on(sched, clock.now())
        assert first.users == ("A",) and first.until is not None
        # The hand-off after the change is at 09:00 local again, so this shift was 167 h, not 168 h.
        assert first.until.astimezone(tz).time() == time(9)
        assert first.until - start.astimezone(UTC) == timedelta(hours=167)
        clock.set(first.until - timedelta(seconds=1))
        assert who_is_on(sched, clock.now()).users == ("A",)
        clock.advance(1)
        assert who_is_on(sched, clock.now()).users == ("B",)
        # Autumn: every hand-off still at 09:00 local, one 169 h shift.
        hs = handoffs(sched, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
        assert all(h.at.astimezone(tz).time() == time(9) for h in hs)
        lengths = {(b.at - a.at) for a, b in itertools.pairwise(hs)}
        assert lengths == {timedelta(hours=168), timedelta(hours=169)}


def test_twelve_hour_custom_rotation_counts_absolute_time_across_dst() -> None:
    start = datetime(2026, 3, 28, 20, tzinfo=BERLIN)
    layer = Layer("12h", ("N", "D"), "custom", timedelta(hours=12), start.astimezone(UTC), "Europe/Berlin")
    sched = Schedule("s", 1, layers=(layer,))
    oc = who_is_on(sched, start.astimezone(UTC))
    assert oc.users == ("N",)
    assert oc.until == start.astimezone(UTC) + timedelta(hours=12)  # 09:00 CEST after the change
    assert oc.until.astimezone(BERLIN).hour == 9


def test_before_the_rotation_starts_nobody_is_on_and_that_is_a_gap() -> None:
    start = datetime(2026, 12, 7, 9, tzinfo=BERLIN)
    sched = Schedule("s", 1, layers=(weekly(("A",), start, "Europe/Berlin"),))
    oc = who_is_on(sched, datetime(2026, 12, 1, tzinfo=UTC))
    assert oc.users == () and oc.layer is None and oc.until == start.astimezone(UTC)
    [gap] = gaps(sched, datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC))
    assert gap.end == start.astimezone(UTC)


def test_follow_the_sun_top_layer_wins_and_restrictions_hand_back() -> None:
    # A daytime layer in Berlin (Mon–Fri 08–18) sits above a 24/7 New York weekly rotation.
    day = Layer(
        "EU day",
        ("EU1", "EU2"),
        "daily",
        timedelta(days=1),
        datetime(2026, 11, 2, 8, tzinfo=BERLIN).astimezone(UTC),
        "Europe/Berlin",
        (Window(parse_day_list("mon-fri"), time(8), time(18)),),
    )
    night = weekly(("US1", "US2"), datetime(2026, 11, 2, 9, tzinfo=NEW_YORK), "America/New_York")
    sched = Schedule("s", 1, layers=(day, night))
    tue_noon = datetime(2026, 11, 24, 12, tzinfo=BERLIN).astimezone(UTC)
    oc = who_is_on(sched, tue_noon)
    assert oc.layer == "EU day" and oc.users == ("EU1",)  # day 22 of a two-person daily rotation
    assert oc.until == datetime(2026, 11, 24, 18, tzinfo=BERLIN).astimezone(UTC)
    evening = who_is_on(sched, oc.until)
    assert evening.layer == "weekly" and evening.users == ("US2",)
    saturday = who_is_on(sched, datetime(2026, 11, 28, 12, tzinfo=BERLIN).astimezone(UTC))
    assert saturday.layer == "weekly"


def test_window_past_midnight() -> None:
    w = Window(parse_day_list(["fri"]), time(22), time(6))
    assert w.contains(datetime(2026, 11, 28, 3, tzinfo=BERLIN).astimezone(UTC), BERLIN)  # Sat 03:00
    assert not w.contains(datetime(2026, 11, 28, 7, tzinfo=BERLIN).astimezone(UTC), BERLIN)
    assert parse_day_list("sat-mon") == {5, 6, 0}


def test_override_beats_layers_newest_wins_and_ends_back_on_schedule() -> None:
    sched = Schedule("s", 1, layers=(Layer("roster", ("A",)),))
    t0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
    ovs = [
        Override(1, "B", t0, t0 + timedelta(hours=4), "A"),
        Override(2, "C", t0 + timedelta(hours=1), t0 + timedelta(hours=2), "A"),
    ]
    assert who_is_on(sched, t0 - timedelta(minutes=1), ovs).until == t0
    first = who_is_on(sched, t0, ovs)
    assert first.users == ("B",) and first.override_id == 1 and first.until == t0 + timedelta(hours=1)
    assert who_is_on(sched, t0 + timedelta(hours=1, minutes=30), ovs).users == ("C",)
    assert who_is_on(sched, t0 + timedelta(hours=2), ovs).users == ("B",)
    back = who_is_on(sched, t0 + timedelta(hours=4), ovs)
    assert back.users == ("A",) and back.layer == "roster"


def test_yaml_schedules_and_the_old_roster_stay_valid(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        """
zone: Europe/Berlin
schedules:
  primary:
    level: 1
    layers:
      - name: EU day
        users: [U01PRIMARY, U08SRE]
        rotation: weekly
        start: 2026-11-23
        handoff: "09:00"
        restrictions: [{days: mon-fri, from: "08:00", to: "18:00"}]
      - {name: backstop, users: [U03LEAD]}
  dba:
    team: dba
    layers: [{name: dba, users: [U06DBA, U01PRIMARY], rotation: custom, length: 3d, zone: America/New_York}]
"""
    )
    cfg = load_oncall(path, ROSTER)
    primary = cfg.book.for_level(1)
    assert primary is not None and primary.layers[0].zone == "Europe/Berlin"
    assert primary.layers[0].start == datetime(2026, 11, 23, 8, tzinfo=UTC)
    # Levels without a schedule keep the roster's users, always on.
    l2 = cfg.book.for_level(2)
    assert l2 is not None and who_is_on(l2, datetime(2030, 1, 1, tzinfo=UTC)).users == ("U02SECOND",)
    team = cfg.book.for_team("dba")
    assert team is not None and team.layers[0].length == timedelta(days=3)
    assert cfg.book.for_team("sre") is not None  # from the roster
    # No file at all: the roster alone.
    assert who_is_on(
        load_oncall(tmp_path / "nope.yaml", ROSTER).book.for_level(1), datetime.now(UTC)
    ).users == (  # type: ignore[arg-type]
        "U01PRIMARY",
    )
    for bad in (
        "schedules: {x: {level: 1, layers: [{users: [U1], rotation: hourly}]}}",
        "schedules: {x: {level: 1, zone: Mars/Olympus, layers: []}}",
        "schedules: {x: {level: 9, layers: []}}",
        "schedules: {x: {level: 1, layers: [{users: [U1], rotation: custom}]}}",
        "schedules: {x: {level: 1, layers: [{users: [U1], restrictions: [{days: funday}]}]}}",
    ):
        path.write_text(bad)
        with pytest.raises(PlaybookError):
            load_oncall(path, Roster({}))


# -- the property: an independent oracle ----------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]


def oracle_layer(layer: Layer, at: datetime) -> tuple[str, ...]:
    """Walk shifts one by one from the start and enumerate restriction windows day by day."""
    tz = ZoneInfo(layer.zone)
    if layer.restrictions:
        inside = False
        local_day = at.astimezone(tz).date()
        for w in layer.restrictions:
            for offset in range(-3, 2):
                d = local_day + timedelta(days=offset)
                if d.weekday() not in w.days:
                    continue
                s = datetime.combine(d, w.start, tz)
                e = datetime.combine(d if w.start < w.end else d + timedelta(days=1), w.end, tz)
                inside |= s.astimezone(UTC) <= at < e.astimezone(UTC)
        if not inside:
            return ()
    if layer.rotation == "always":
        return layer.users
    local0 = layer.start.astimezone(tz)
    whole_days = layer.length.total_seconds() % 86400 == 0
    k, prev = 0, None
    while True:
        if whole_days:
            d = local0.date() + timedelta(days=(k + 1) * int(layer.length.total_seconds() // 86400))
            nxt = datetime.combine(d, local0.time(), tz).astimezone(UTC)
        else:
            nxt = layer.start + (k + 1) * layer.length
        if k == 0 and at < layer.start:
            return ()
        if at < nxt:
            break
        k, prev = k + 1, nxt
    del prev
    n = min(layer.per_shift, len(layer.users))
    picked: list[str] = []
    for i in range(n):
        u = layer.users[(k * n + i) % len(layer.users)]
        if u not in picked:
            picked.append(u)
    return tuple(picked)


def oracle(sched: Schedule, overrides: list[Override], at: datetime) -> tuple[str, ...]:
    live = sorted((o for o in overrides if o.start <= at < o.end), key=lambda o: -o.id)
    if live:
        return (live[0].user,)
    for layer in sched.layers:
        users = oracle_layer(layer, at)
        if users:
            return users
    return ()


BASE = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[Schedule, list[Override]]:
    layers = []
    for i in range(draw(st.integers(1, 3))):
        zone = draw(st.sampled_from(ZONES))
        rotation = draw(st.sampled_from(["always", "daily", "weekly", "custom"]))
        length = {
            "daily": timedelta(days=1),
            "weekly": timedelta(days=7),
            "always": timedelta(days=7),
            "custom": draw(st.sampled_from([timedelta(hours=8), timedelta(hours=12), timedelta(days=3)])),
        }[rotation]
        start_local = datetime.combine(
            BASE.date() + timedelta(days=draw(st.integers(0, 300))),
            time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30]))),
            ZoneInfo(zone),
        )
        restrictions = tuple(
            Window(
                frozenset(draw(st.sets(st.integers(0, 6), min_size=1))),
                time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30]))),
                time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 45]))),
            )
            for _ in range(draw(st.integers(0, 2)))
        )
        users = tuple(draw(st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=0, max_size=4)))
        layers.append(
            Layer(
                f"L{i}",
                users,
                rotation,
                length,
                start_local.astimezone(UTC),
                zone,
                restrictions,
                draw(st.integers(1, 2)),
            )
        )
    overrides = []
    for j in range(draw(st.integers(0, 3))):
        s = BASE + timedelta(hours=draw(st.integers(0, 24 * 400)))
        overrides.append(
            Override(
                j + 1, draw(st.sampled_from(["X", "Y"])), s, s + timedelta(hours=draw(st.integers(1, 72)))
            )
        )
    return Schedule("p", 1, layers=tuple(layers)), overrides


@settings(max_examples=150, deadline=None)
@given(schedules(), st.integers(0, 400 * 24 * 60))
def test_exactly_the_users_the_definition_implies(
    sched_ovs: tuple[Schedule, list[Override]], minute: int
) -> None:
    sched, ovs = sched_ovs
    at = BASE + timedelta(minutes=minute)
    got = who_is_on(sched, at, ovs, horizon=timedelta(days=10))
    assert got.users == oracle(sched, ovs, at)
    if got.until is not None:
        # The answer holds until `until` (sampled) and is different right at it.
        assert got.until > at
        assert (
            oracle(sched, ovs, got.until) != got.users or who_is_on(sched, got.until, ovs).layer != got.layer
        )
        span = got.until - at
        for frac in (0.25, 0.5, 0.9999):
            assert oracle(sched, ovs, at + span * frac) == got.users


def test_the_shipped_files_load_and_the_readme_shows_the_example() -> None:
    root = Path(__file__).resolve().parents[2]
    example = root / "playbook_content" / "schedules.example.yaml"
    cfg = load_oncall(example, ROSTER)
    primary = cfg.book.for_level(1)
    assert primary is not None and [ly.name for ly in primary.layers] == ["EU daytime", "US"]
    assert [f.layer for f in cfg.feeds] == ["team calendar"]
    # Monday 2026-11-30 12:00 Berlin: the EU layer (second week: U08SRE); 20:00 Berlin: the US layer.
    noon = datetime(2026, 11, 30, 12, tzinfo=BERLIN).astimezone(UTC)
    assert who_is_on(primary, noon).users == ("U08SRE",)
    assert who_is_on(primary, noon + timedelta(hours=8)).layer == "US"
    default = load_oncall(root / "playbook_content" / "schedules.yaml", ROSTER)
    assert who_is_on(default.book.for_level(1), noon).users == ("U01PRIMARY",)  # type: ignore[arg-type]
    readme = (root / "README.md").read_text()
    body = example.read_text().split("schedules:\n", 1)[1].split("# Levels and teams")[0]
    assert body in readme
