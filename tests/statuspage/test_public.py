"""The public surfaces over HTTP: /status, /status.json, /status/feed.atom. Conditional GETs, valid Atom
(RFC 4287), escaping, nothing internal on them, and automatic component states from the monitor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest

from bot.clock import ManualClock
from bot.health.monitor import monitor_once
from bot.incidents.lifecycle import LifecycleFlows, TemplateEdit
from bot.statuspage.model import Change, day_bars
from bot.statuspage.store import schedule_maintenance
from bot.statuspage.web import page_config
from sandbox.factory_sim import FactoryServers
from tests.statuspage.support import COMMANDER, buttons, compose_and_preview, declare
from tests.support import BotHarness

A = "{http://www.w3.org/2005/Atom}"
SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "xoxb-1234-5678-SECRETTOKEN",
    "sk_live_51HcInternalOnly",
    "postgres://admin:hunter2@db.internal",
    "INTERNAL-ROOT-CAUSE-bad-deploy-v2.3",
]


async def publish(bot: BotHarness, inc, **kw) -> None:  # type: ignore[no-untyped-def]
    preview = await compose_and_preview(bot, inc, **kw)
    await bot.action(
        "statuspage_publish",
        buttons(preview)["statuspage_publish"],
        user=COMMANDER,
        channel=inc.channel_id or "",
    )


async def surfaces(bot: BotHarness) -> dict[str, str]:
    out = {}
    for path in ("/status", "/status.json", "/status/feed.atom"):
        resp = await bot.http.get(f"{bot.url}{path}")
        assert resp.status_code == 200, path
        out[path] = resp.text
    return out


async def test_internal_text_never_reaches_the_public_surfaces(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot, f"declare P1 Orders failing {SECRETS[0]}")
    room = inc.channel_id or ""
    await bot.command(f"note creds {SECRETS[1]} and {SECRETS[3]}", user=COMMANDER, channel=room)
    await LifecycleFlows(bot.svc).update_template(
        inc.id,
        COMMANDER,
        TemplateEdit(
            summary=f"Orders failing {SECRETS[0]}",
            impact=f"All orders {SECRETS[2]}",
            root_cause=SECRETS[4],
            next_steps=f"rotate {SECRETS[1]}",
            severity="P1",
            status="IDENTIFIED",
        ),
    )
    await bot.command("status MONITORING", user=COMMANDER, channel=room)
    await publish(bot, inc, title="Ordering is slow", message="Some orders take longer than usual.")
    clock.advance(minutes=31)
    await bot.command("resolve", user=COMMANDER, channel=room)
    for path, body in (await surfaces(bot)).items():
        assert "Ordering is slow" in body, path
        for secret in SECRETS:
            assert secret not in body, (path, secret)
        assert inc.id not in body and "Orders failing" not in body, path  # no internal id or summary either


async def test_conditional_get_and_cache_headers(bot: BotHarness, clock: ManualClock) -> None:
    for path in ("/status", "/status.json", "/status/feed.atom"):
        first = await bot.http.get(f"{bot.url}{path}")
        tag = first.headers["etag"]
        assert tag.startswith('"') and first.headers["cache-control"] == "public, max-age=30"
        again = await bot.http.get(f"{bot.url}{path}", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
        other = await bot.http.get(f"{bot.url}{path}", headers={"If-None-Match": '"stale", W/"x"'})
        assert other.status_code == 200
        head = await bot.http.head(f"{bot.url}{path}")
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == tag
        assert first.headers["access-control-allow-origin"] == "*"
    # Time passing changes nothing visible: the same ETag still answers 304 (the page shows the last change,
    # not the time of the request).
    tag = (await bot.http.get(f"{bot.url}/status")).headers["etag"]
    clock.advance(minutes=7)
    assert (await bot.http.get(f"{bot.url}/status", headers={"If-None-Match": tag})).status_code == 304
    inc = await declare(bot)
    old = (await bot.http.get(f"{bot.url}/status.json")).headers["etag"]
    await publish(bot, inc)
    changed = await bot.http.get(f"{bot.url}/status.json", headers={"If-None-Match": old})
    assert changed.status_code == 200 and changed.headers["etag"] != old
    assert (await bot.http.get(f"{bot.url}/status/preview/{'x' * 500}")).status_code == 404


async def test_feed_is_valid_atom_and_everything_is_escaped(bot: BotHarness, clock: ManualClock) -> None:
    inc = await declare(bot)
    evil = '<script>alert(1)</script> & "quotes" <!channel>'
    await publish(bot, inc, title=f"Pizza {evil}", message=f"Line one {evil}\n\nSecond paragraph ]]>")
    clock.advance(minutes=5)
    await publish(
        bot,
        inc,
        title="Pizza orders recovering",
        message="Fix deployed.",
        status="monitoring",
        states={"ordering": "operational"},
    )
    resp = await bot.http.get(f"{bot.url}/status/feed.atom")
    assert resp.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(resp.content)
    assert feed.tag == f"{A}feed"
    # RFC 4287 4.1.1: a feed has exactly one id, title and updated, an author (or every entry has one),
    # and should have a rel="self" link. Each entry has exactly one id, title, updated; content or an
    # alternate link. Dates are RFC 3339.
    for tag in ("id", "title", "updated"):
        assert len(feed.findall(f"{A}{tag}")) == 1, tag
    assert feed.find(f"{A}author/{A}name") is not None
    assert any(link.get("rel") == "self" for link in feed.findall(f"{A}link"))
    entries = feed.findall(f"{A}entry")
    assert len(entries) == 2
    ids = set()
    for e in entries:
        for tag in ("id", "title", "updated"):
            assert len(e.findall(f"{A}{tag}")) == 1, tag
        datetime.fromisoformat(str(e.findtext(f"{A}updated")).replace("Z", "+00:00"))
        ids.add(e.findtext(f"{A}id"))
        assert e.find(f"{A}content") is not None
    assert len(ids) == 2
    assert entries[0].findtext(f"{A}title") == "Pizza orders recovering: Monitoring"  # newest first
    assert evil in str(entries[1].findtext(f"{A}content"))  # the text as typed, escaped by XML itself

    html = (await bot.http.get(f"{bot.url}/status")).text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    data = json.loads((await bot.http.get(f"{bot.url}/status.json")).text)
    assert data["incidents"][0]["incident_updates"][1]["body"].startswith(f"Line one {evil}")


async def test_json_has_components_history_and_maintenance(bot: BotHarness, clock: ManualClock) -> None:
    now = clock.now()
    async with bot.svc.db.session() as s:
        await schedule_maintenance(
            s,
            page_config(bot.svc),
            title="Database upgrade",
            message="Ordering may pause for 5 minutes.",
            starts_at=now + timedelta(hours=2),
            ends_at=now + timedelta(hours=3),
            components=["ordering"],
            by=COMMANDER,
            at=now,
        )
    data = json.loads((await bot.http.get(f"{bot.url}/status.json")).text)
    assert data["status"]["indicator"] == "operational"
    assert [c["id"] for c in data["components"]] == ["ordering", "jwt", "website", "franchise"]
    assert all(len(c["days"]) == 90 and c["uptime_90d"] == 1.0 for c in data["components"])
    [m] = data["scheduled_maintenances"]
    assert m["name"] == "Database upgrade" and m["status"] == "scheduled" and m["components"] == ["Ordering"]
    assert "Database upgrade" in (await bot.http.get(f"{bot.url}/status")).text


async def test_monitor_marks_automated_components_before_anyone_writes(
    hbot: BotHarness, clock: ManualClock, factory: FactoryServers
) -> None:
    factory.sim.set_chaos("fail")
    await monitor_once(hbot.svc)
    data = json.loads((await hbot.http.get(f"{hbot.url}/status.json")).text)
    states = {c["id"]: (c["status"], c["automated"]) for c in data["components"]}
    assert states["ordering"] == ("degraded", True) and states["website"] == ("operational", False)
    html = (await hbot.http.get(f"{hbot.url}/status")).text
    assert "automated" in html and "Degraded performance" in html
    assert "error rate" not in html  # the monitor's internal reason stays internal
    # Still failing: partial outage once the streak is long enough to declare.
    for _ in range(3):
        clock.advance(seconds=60)
        await monitor_once(hbot.svc)
    data = json.loads((await hbot.http.get(f"{hbot.url}/status.json")).text)
    assert data["components"][0]["status"] == "partial_outage"
    # Healthy again: the automated state clears by itself.
    factory.sim.set_chaos(None)
    clock.advance(seconds=60)
    await monitor_once(hbot.svc)
    data = json.loads((await hbot.http.get(f"{hbot.url}/status.json")).text)
    assert data["components"][0]["status"] == "operational" and not data["components"][0]["automated"]
    assert data["components"][0]["days"][-1]["availability"] < 1.0  # the outage shows in today's bar


def test_day_bars_integrate_state_changes() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    day = datetime(2026, 11, 30, tzinfo=UTC)
    bars = day_bars(
        [
            Change(day + timedelta(hours=6), "major_outage"),
            Change(day + timedelta(hours=12), "partial_outage"),
            Change(day + timedelta(hours=18), "operational"),
        ],
        3,
        now,
    )
    assert [b.day.isoformat() for b in bars] == ["2026-11-29", "2026-11-30", "2026-12-01"]
    assert bars[0].availability == 1.0 and bars[0].worst == "operational"
    assert bars[1].availability == pytest.approx(1 - (6 + 3) / 24) and bars[1].worst == "major_outage"
    assert bars[2].availability == 1.0
    # A state in force before the window carries into it; today counts only up to now.
    open_ended = day_bars([], 2, now, before="major_outage")
    assert [b.availability for b in open_ended] == [0.0, 0.0]


def test_a_change_made_now_colours_todays_bar() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    [bar] = day_bars([Change(now, "partial_outage")], 1, now)
    assert bar.worst == "partial_outage" and bar.availability == 1.0
