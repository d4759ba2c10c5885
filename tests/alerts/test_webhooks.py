"""Grafana and Alertmanager webhooks over real HTTP: the bot served by uvicorn, the Slack stand-in, real
SQLite/PostgreSQL. Assertions are on rows, recorded Slack calls, HTTP bodies and the PIR."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.alerts.flows import alerts_all_resolved, alerts_tick, store
from bot.alerts.payload import parse
from bot.clock import ManualClock
from bot.event_text import slack_text
from bot.incidents.flows import DeclareRequest, IncidentFlows
from bot.incidents.lifecycle import LifecycleFlows
from bot.models import Alert, AlertNotification, Incident, TimelineEvent
from bot.pir.flows import pir_url
from bot.worker import Worker
from tests.alerts.payloads import (
    AM_PASSWORD,
    AM_USER,
    GRAFANA_TOKEN,
    basic,
    grafana_alert,
    grafana_body,
    grafana_documented,
)
from tests.support import BotHarness

GRAFANA_AUTH = {"Authorization": f"Bearer {GRAFANA_TOKEN}"}
AM_AUTH = {"Authorization": basic(AM_USER, AM_PASSWORD)}
SERVICE = {"service": "jwt-pizza-service", "severity": "critical"}


async def post(
    bot: BotHarness, source: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(GRAFANA_AUTH if source == "grafana" else AM_AUTH)}
    if headers is not None:
        h = {"Content-Type": "application/json", **headers}
    resp = await bot.http.post(f"{bot.url}/alerts/{source}", content=raw, headers=h)
    await bot.drain()
    return resp


async def count(bot: BotHarness, model: Any) -> int:
    async with bot.svc.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def alert_rows(bot: BotHarness) -> list[Alert]:
    async with bot.svc.db.session() as s:
        return list((await s.execute(select(Alert).order_by(Alert.id))).scalars())


def room_texts(bot: BotHarness, channel: str) -> list[str]:
    return [m.text for m in bot.slack.messages.get(channel, [])]


def alert_posts(bot: BotHarness, channel: str) -> list[str]:
    return [t for t in room_texts(bot, channel) if t.startswith("🚨") or "🚨 *" in t]


async def pir_markdown(bot: BotHarness, incident_id: str) -> str:
    url = pir_url(bot.svc, incident_id).replace("http://bot.test", bot.url)
    resp = await bot.http.get(url)
    assert resp.status_code == 200, resp.text
    return resp.text


async def test_grafana_documented_example_is_stored_recorded_and_listed(bot: BotHarness) -> None:
    resp = await post(bot, "grafana", grafana_documented())
    assert resp.status_code == 202
    assert resp.json()["alerts"] == 2
    assert await count(bot, AlertNotification) == 1
    # team=blue matches no rule: recorded, attached to nothing, and shown, not dropped.
    assert await bot.incidents() == []
    rows = await alert_rows(bot)
    assert [(r.name, r.scope, r.rule) for r in rows] == [
        ("High memory usage", "-", "unmatched"),
        ("High CPU usage", "-", "unmatched"),
    ]
    assert rows[0].values == {"B": 44.23943737541908, "C": 1}
    assert rows[0].links["runbook"] == "https://myrunbook.com/runbook/1234"
    assert rows[0].starts_at is not None and rows[0].starts_at.isoformat().startswith("2021-10-12T07:51:03")
    _, url = await bot.command("alerts")
    listing = json.dumps(bot.replies(url))
    assert "High memory usage" in listing and "High CPU usage" in listing
    metrics = (await bot.http.get(f"{bot.url}/metrics")).text
    assert 'incident_bot_alerts_received_total{source="grafana",status="firing"} 2.0' in metrics
    assert 'incident_bot_alerts_routed_total{action="record",rule="unmatched"} 2.0' in metrics


async def test_critical_alert_declares_once_repeats_count_resolve_says_so(
    bot: BotHarness, clock: ManualClock
) -> None:
    started = clock.now() - timedelta(minutes=3)
    firing = grafana_body(
        [grafana_alert("PizzaServiceErrors", starts=started, labels=SERVICE, summary="5xx above 5%")]
    )
    assert (await post(bot, "grafana", firing)).status_code == 202
    [inc] = await bot.incidents()
    assert (inc.severity, inc.area, inc.source, inc.commander) == ("P1", "app", "grafana", None)
    assert inc.detected_at == started.replace(microsecond=started.microsecond)  # MTTD from startsAt
    assert inc.channel_id
    [msg] = alert_posts(bot, inc.channel_id)
    assert "PizzaServiceErrors" in msg and "5xx above 5%" in msg
    assert "<https://grafana.example/d/pizza|dashboard>" in msg and "|silence>" in msg and "A=0.31" in msg

    # Grafana re-sends while it fires (and retries): only the "still firing" count changes.
    clock.advance(minutes=5)
    await post(bot, "grafana", firing)
    await post(bot, "grafana", firing)
    assert len(await bot.incidents()) == 1
    assert len(alert_posts(bot, inc.channel_id)) == 1
    [row] = await alert_rows(bot)
    assert (row.repeats, row.status, row.incident_id) == (2, "firing", inc.id)
    async with bot.svc.db.session() as s:
        assert not await alerts_all_resolved(s, inc.id)

    clock.advance(minutes=5)
    resolved = grafana_body(
        [
            grafana_alert(
                "PizzaServiceErrors", status="resolved", starts=started, ends=clock.now(), labels=SERVICE
            )
        ]
    )
    await post(bot, "grafana", resolved)
    await post(bot, "grafana", resolved)  # a retry of the resolve: nothing new
    posts = alert_posts(bot, inc.channel_id)
    assert len(posts) == 2 and "All alerts resolved" in posts[1]
    async with bot.svc.db.session() as s:
        assert await alerts_all_resolved(s, inc.id)
        now_inc = await s.get(Incident, inc.id)
        assert now_inc is not None and now_inc.status != "RESOLVED"  # the rule does not auto-resolve
    events = [e for e in await bot.events(inc.id) if e.kind == "alert"]
    assert len(events) == 5  # every notification is on the timeline
    md = await pir_markdown(bot, inc.id)
    assert "## Alerts" in md and "PizzaServiceErrors" in md and "5xx above 5%" in md
    assert "[dashboard](https://grafana.example/d/pizza)" in md

    _, url = await bot.command("alerts", channel=inc.channel_id)
    assert "PizzaServiceErrors" in json.dumps(bot.replies(url))


async def test_firing_again_during_monitoring_goes_back_to_investigating(
    bot: BotHarness, clock: ManualClock
) -> None:
    started = clock.now()
    fp = "aaaabbbbccccdddd"
    await post(
        bot,
        "grafana",
        grafana_body([grafana_alert("Latency", starts=started, labels=SERVICE, fingerprint=fp)]),
    )
    [inc] = await bot.incidents()
    clock.advance(minutes=2)
    await post(
        bot,
        "grafana",
        grafana_body(
            [
                grafana_alert(
                    "Latency",
                    status="resolved",
                    starts=started,
                    ends=clock.now(),
                    labels=SERVICE,
                    fingerprint=fp,
                )
            ]
        ),
    )
    outcome = await LifecycleFlows(bot.svc).set_status(inc.id, "UPRIMARY", "MONITORING")
    assert outcome.ok
    clock.advance(minutes=2)
    await post(
        bot,
        "grafana",
        grafana_body([grafana_alert("Latency", starts=clock.now(), labels=SERVICE, fingerprint=fp)]),
    )
    assert len(await bot.incidents()) == 1
    async with bot.svc.db.session() as s:
        row = await s.get(Incident, inc.id)
        assert row is not None and row.status == "INVESTIGATING" and row.monitoring_at is None
    [alert] = await alert_rows(bot)
    assert (alert.status, alert.flaps) == ("firing", 1)
    statuses = [e.data for e in await bot.events(inc.id) if e.kind == "status"]
    assert statuses[-1]["to"] == "INVESTIGATING" and statuses[-1]["via"] == "alert"
    assert any("INVESTIGATING" in t for t in room_texts(bot, str(inc.channel_id)))


async def test_flapping_after_resolve_opens_no_new_incident_within_damping(
    bot: BotHarness, clock: ManualClock
) -> None:
    fp = "1111222233334444"

    def body(status: str) -> dict[str, Any]:
        ends = clock.now() if status == "resolved" else None
        return grafana_body(
            [
                grafana_alert(
                    "Flappy", status=status, starts=clock.now(), ends=ends, labels=SERVICE, fingerprint=fp
                )
            ]
        )

    await post(bot, "grafana", body("firing"))
    [inc] = await bot.incidents()
    await post(bot, "grafana", body("resolved"))
    await LifecycleFlows(bot.svc).resolve(inc.id, "UPRIMARY", force=True)
    clock.advance(minutes=5)
    await post(bot, "grafana", body("firing"))  # within the 15 min damping
    assert [i.id for i in await bot.incidents()] == [inc.id]
    assert any("no new incident" in t for t in room_texts(bot, str(inc.channel_id)))
    await post(bot, "grafana", body("resolved"))
    clock.advance(minutes=30)
    await post(bot, "grafana", body("firing"))  # long after: a new problem, a new incident
    assert len(await bot.incidents()) == 2


async def test_alert_for_the_monitors_problem_attaches_to_its_incident(
    bot: BotHarness, clock: ManualClock
) -> None:
    result = await IncidentFlows(bot.svc).declare(
        DeclareRequest(
            severity="P0",
            summary="Factory health: order down",
            user="incident-bot",
            source="monitor",
            area="api",
            problem_key="factory-health",
        )
    )
    assert result.incident_id
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="FactoryErrorRate"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incident-bot",
        "groupLabels": {"alertname": "FactoryErrorRate"},
        "commonLabels": {"alertname": "FactoryErrorRate", "service": "jwt-pizza-factory"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "FactoryErrorRate",
                    "service": "jwt-pizza-factory",
                    "severity": "critical",
                },
                "annotations": {"summary": "Factory error rate 40%"},
                "startsAt": "2026-11-23T11:58:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
                "fingerprint": "0f0f0f0f0f0f0f0f",
            }
        ],
    }
    assert (await post(bot, "alertmanager", body)).status_code == 202
    assert [i.id for i in await bot.incidents()] == [result.incident_id]
    [row] = await alert_rows(bot)
    assert row.incident_id == result.incident_id and row.rule == "factory-health"


async def test_500_alerts_in_one_body_one_incident_one_post(bot: BotHarness, clock: ManualClock) -> None:
    alerts = [
        grafana_alert(f"Errors-{i}", starts=clock.now(), labels={**SERVICE, "instance": f"pod-{i}"})
        for i in range(500)
    ]
    resp = await post(bot, "grafana", grafana_body(alerts))
    assert resp.status_code == 202
    [inc] = await bot.incidents()
    assert await count(bot, Alert) == 500
    [msg] = alert_posts(bot, str(inc.channel_id))
    assert "500 new" in msg and "more: `/incident alerts` lists them all" in msg and len(msg) < 4000
    assert inc.summary.startswith("Errors-0 (+499 more)")


async def test_mixed_statuses_and_missing_optional_fields(bot: BotHarness, clock: ManualClock) -> None:
    minimal = {"status": "firing", "labels": {"alertname": "Bare", **SERVICE}}  # no times, no fingerprint
    gone = {
        "status": "resolved",
        "labels": {"alertname": "Gone", **SERVICE},
        "endsAt": "2026-11-23T11:59:00Z",
    }
    body = {"alerts": [minimal, gone]}  # no status, groupKey, receiver, title …
    assert (await post(bot, "grafana", body)).status_code == 202
    [inc] = await bot.incidents()
    rows = {r.name: r for r in await alert_rows(bot)}
    assert rows["Bare"].status == "firing" and len(rows["Bare"].fingerprint) == 16
    assert rows["Gone"].status == "resolved" and rows["Gone"].incident_id == inc.id
    assert inc.detected_at == inc.declared_at  # no startsAt: detection is the declaration


async def test_same_notification_twice_at_once_is_one_incident(bot: BotHarness, clock: ManualClock) -> None:
    body = grafana_body([grafana_alert("Dup", starts=clock.now(), labels=SERVICE)])
    raw = json.dumps(body).encode()
    h = {"Content-Type": "application/json", **GRAFANA_AUTH}
    r1, r2 = await asyncio.gather(
        *(bot.http.post(f"{bot.url}/alerts/grafana", content=raw, headers=h) for _ in range(2))
    )
    await bot.drain()
    assert (r1.status_code, r2.status_code) == (202, 202)
    [inc] = await bot.incidents()
    assert len(alert_posts(bot, str(inc.channel_id))) == 1
    [row] = await alert_rows(bot)
    assert row.repeats == 1


async def test_stored_but_unprocessed_is_picked_up_once_by_the_worker(
    bot: BotHarness, clock: ManualClock
) -> None:
    """A web process that died after the 2xx: the body is in SQL, a worker processes it, once."""
    raw = json.dumps(grafana_body([grafana_alert("Orphan", starts=clock.now(), labels=SERVICE)])).encode()
    await store(bot.svc, parse("grafana", raw), raw)  # what the endpoint commits before answering
    worker = Worker(bot.svc, worker_id="w1", extra_ticks=[alerts_tick])
    await worker.tick()
    assert await bot.incidents() == []  # still inside the web process's grace period
    clock.advance(seconds=11)
    await worker.tick()
    await Worker(bot.svc, worker_id="w2", extra_ticks=[alerts_tick]).tick()
    [inc] = await bot.incidents()
    assert len(alert_posts(bot, str(inc.channel_id))) == 1
    async with bot.svc.db.session() as s:
        [n] = (await s.execute(select(AlertNotification))).scalars()
        assert n.state == "done" and n.attempts == 1


async def test_slack_control_sequences_are_escaped(bot: BotHarness, clock: ManualClock) -> None:
    evil = "<!channel> <@U0BOSS> <https://evil.example|click> & <#C123>"
    a = grafana_alert(
        "<!here> Boom", starts=clock.now(), labels={**SERVICE, "x": "<!everyone>"}, summary=evil
    )
    a["dashboardURL"] = "https://x.example/|<!channel>"
    a["panelURL"] = "javascript:alert(1)"
    await post(bot, "grafana", grafana_body([a]))
    [inc] = await bot.incidents()
    msgs = room_texts(bot, str(inc.channel_id))
    everything = "\n".join(msgs)
    for raw in (
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<@U0BOSS>",
        "<https://evil",
        "<#C123>",
        "javascript:",
    ):
        assert raw not in everything
    assert "&lt;!channel&gt; &lt;@U0BOSS&gt;" in everything and "&amp;" in everything
    assert "<!" not in inc.summary and "&lt;!here&gt; Boom" in inc.summary
    for e in await bot.events(inc.id):
        # Stored as the source sent it (no Slack markup of ours); the Slack timeline view escapes it.
        shown = slack_text(e.kind, e.text, e.data)
        assert "<!" not in shown and "<@U0BOSS>" not in shown, shown


def _huge_labels() -> dict[str, Any]:
    return grafana_body(
        [
            {
                "status": "firing",
                "labels": {f"l{i}": "v" for i in range(200)},
                "startsAt": "2026-11-23T11:00:00Z",
            }
        ]
    )


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("not json", b"{not json", "not JSON"),
    ("not utf-8", b'{"alerts": "\xff"}', "UTF-8"),
    ("array", b"[]", "JSON object"),
    ("alerts missing", b'{"status": "firing"}', "'alerts' must be a list"),
    ("alerts empty", b'{"alerts": []}', "empty"),
    ("status wrong", json.dumps({"alerts": [{"status": "boom", "labels": {}}]}).encode(), "status"),
    (
        "label not string",
        json.dumps({"alerts": [{"status": "firing", "labels": {"a": 1}}]}).encode(),
        "labels.a",
    ),
    ("labels a list", json.dumps({"alerts": [{"status": "firing", "labels": ["a"]}]}).encode(), "labels"),
    ("startsAt number", json.dumps({"alerts": [{"status": "firing", "startsAt": 12}]}).encode(), "startsAt"),
    (
        "startsAt junk",
        json.dumps({"alerts": [{"status": "firing", "startsAt": "yesterday"}]}).encode(),
        "RFC 3339",
    ),
    (
        "values text",
        json.dumps({"alerts": [{"status": "firing", "values": {"B": [1]}}]}).encode(),
        "values.B",
    ),
    (
        "truncated negative",
        json.dumps({"truncatedAlerts": -1, "alerts": [{"status": "firing"}]}).encode(),
        "truncated",
    ),
    ("200 labels", json.dumps(_huge_labels()).encode(), "at most 128"),
    ("deep nesting", b'{"alerts": ' + b"[" * 100000 + b"]" * 100000 + b"}", ""),
]


@pytest.mark.parametrize(("why", "raw", "reason"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_are_400_with_a_reason_and_store_nothing(
    bot: BotHarness, why: str, raw: bytes, reason: str
) -> None:
    resp = await post(bot, "grafana", raw)
    assert resp.status_code == 400, resp.text
    assert reason in resp.json()["reason"]
    assert await count(bot, AlertNotification) == 0 and await count(bot, Alert) == 0


@pytest.mark.parametrize(
    ("source", "headers"),
    [
        ("grafana", {}),
        ("grafana", {"Authorization": "Bearer wrong"}),
        ("grafana", {"Authorization": f"Basic {GRAFANA_TOKEN}"}),
        ("grafana", {"Authorization": "Bearer " + GRAFANA_TOKEN + "x"}),
        ("alertmanager", {"Authorization": basic(AM_USER, "wrong")}),
        ("alertmanager", {"Authorization": f"Bearer {GRAFANA_TOKEN}"}),  # another source's credential
        ("alertmanager", {"Authorization": "Basic !!!notbase64"}),
        ("alertmanager", {"Authorization": "Basic"}),
    ],
)
async def test_wrong_credentials_are_401_and_store_nothing(
    bot: BotHarness, source: str, headers: dict[str, str]
) -> None:
    resp = await post(bot, source, grafana_documented(), headers)
    assert resp.status_code == 401
    assert await count(bot, AlertNotification) == 0
    metrics = (await bot.http.get(f"{bot.url}/metrics")).text
    assert (
        f'incident_bot_alert_notifications_rejected_total{{reason="unauthorized",source="{source}"}} 1.0'
        in metrics
    )


async def test_unconfigured_source_refuses_everything(bot: BotHarness) -> None:
    bot.svc.settings.grafana_credentials = None
    resp = await post(bot, "grafana", grafana_documented())
    assert resp.status_code == 401
    assert await count(bot, AlertNotification) == 0


async def test_body_over_the_limit_is_413(bot: BotHarness) -> None:
    big = json.dumps(
        grafana_body(
            [grafana_alert("Big", starts=bot.svc.clock.now(), labels={"blob": "x" * (5 * 1024 * 1024)})]
        )
    ).encode()
    assert (await post(bot, "grafana", big)).status_code == 413

    async def chunks() -> Any:  # no Content-Length: counted while reading
        for _ in range(6):
            yield b" " * (1024 * 1024)

    h = {"Content-Type": "application/json", **GRAFANA_AUTH}
    resp = await bot.http.post(f"{bot.url}/alerts/grafana", content=chunks(), headers=h)
    assert resp.status_code == 413
    assert await count(bot, AlertNotification) == 0


async def test_huge_label_values_are_stored_whole_and_clipped_in_slack(
    bot: BotHarness, clock: ManualClock
) -> None:
    value = "y" * 200_000
    await post(
        bot,
        "grafana",
        grafana_body(
            [
                grafana_alert(
                    "Wide", starts=clock.now(), labels={**SERVICE, "blob": value}, summary="s" * 50_000
                )
            ]
        ),
    )
    [inc] = await bot.incidents()
    [row] = await alert_rows(bot)
    assert row.labels["blob"] == value  # stored as sent
    [msg] = alert_posts(bot, str(inc.channel_id))
    assert len(msg) < 4000
    ok = [c for c in bot.slack.calls_to("chat.postMessage") if c.ok]
    assert ok and all(len(str(c.args.get("text", ""))) < 4000 for c in ok)
    async with bot.svc.db.session() as s:
        n = (await s.execute(select(func.count()).select_from(TimelineEvent))).scalar_one()
        assert n > 0


async def test_slack_down_at_declare_the_alert_post_follows_the_war_room(
    bot: BotHarness, clock: ManualClock
) -> None:
    bot.slack.fail_always(None, status=500, error="internal_error")
    resp = await post(
        bot, "grafana", grafana_body([grafana_alert("Outage", starts=clock.now(), labels=SERVICE)])
    )
    assert resp.status_code == 202  # stored and accepted whatever Slack does
    [inc] = await bot.incidents()
    assert inc.channel_id is None
    bot.slack.clear_faults()
    worker = Worker(bot.svc, worker_id="w")
    for _ in range(8):
        clock.advance(minutes=1)
        await worker.tick()
    [inc] = await bot.incidents()
    assert inc.provision_state == "ready" and inc.channel_id
    [msg] = alert_posts(bot, inc.channel_id)
    assert "Outage" in msg


async def test_two_replicas_get_the_same_notification_one_incident(
    bot: BotHarness, settings: Any, clock: ManualClock
) -> None:
    """An Alertmanager HA pair (or a load balancer) hands the same group to two bot processes at once."""
    from sandbox.servers import LoopServer
    from wiring.app import create_app

    other = create_app(settings, clock=clock)
    body = json.dumps(grafana_body([grafana_alert("Twice", starts=clock.now(), labels=SERVICE)])).encode()
    h = {"Content-Type": "application/json", **GRAFANA_AUTH}
    async with LoopServer(other) as server:
        r1, r2 = await asyncio.gather(
            bot.http.post(f"{bot.url}/alerts/grafana", content=body, headers=h),
            bot.http.post(f"{server.url}/alerts/grafana", content=body, headers=h),
        )
        await asyncio.gather(bot.drain(), other.state.svc.tasks.drain(timeout=30))
        assert (r1.status_code, r2.status_code) == (202, 202)
        clock.advance(seconds=61)  # a replica whose write lost a race retries through the worker
        await Worker(other.state.svc, worker_id="w", extra_ticks=[alerts_tick]).tick()
    [inc] = await bot.incidents()
    async with bot.svc.db.session() as s:
        states = [n.state for n in (await s.execute(select(AlertNotification))).scalars()]
    assert states == ["done", "done"]
    assert len(alert_posts(bot, str(inc.channel_id))) == 1
    [row] = await alert_rows(bot)
    assert row.repeats == 1


async def test_truncated_alerts_are_said(bot: BotHarness, clock: ManualClock) -> None:
    body = grafana_body([grafana_alert("Many", starts=clock.now(), labels=SERVICE)])
    body["truncatedAlerts"] = 7  # Alertmanager's max_alerts cut the list
    await post(bot, "grafana", body)
    [inc] = await bot.incidents()
    [msg] = alert_posts(bot, str(inc.channel_id))
    assert "7 more alerts were left out by the sender" in msg
    [event] = [e for e in await bot.events(inc.id) if e.kind == "alert"]
    assert event.data["truncated"] == 7


async def test_resolve_waits_for_the_alerts_to_resolve_at_the_source(
    bot: BotHarness, clock: ManualClock
) -> None:
    """An alert still firing is a resolve gate (issue #17): the playbook's MONITORING time alone is not enough,
    the refusal names the alert (escaped), and once the source says resolved the same command resolves."""
    started = clock.now()
    name = "Errors <!channel> *5xx*"  # external text: must reach Slack escaped
    fp = "5555666677778888"
    firing = grafana_body([grafana_alert(name, starts=started, labels=SERVICE, fingerprint=fp)])
    await post(bot, "grafana", firing)
    [inc] = await bot.incidents()
    assert inc.channel_id
    await bot.command("status MONITORING", user="U01PRIMARY", channel=inc.channel_id)
    clock.advance(minutes=31)  # the playbook's MONITORING time is met …
    _, url = await bot.command("resolve", user="U01PRIMARY", channel=inc.channel_id)
    reply = json.dumps(bot.replies(url)[-1])
    assert "not ready to resolve" in reply and "still firing at the source" in reply  # … the alert is not
    assert "<!channel>" not in reply and "&lt;!channel&gt;" in reply
    async with bot.svc.db.session() as s:
        row = await s.get(Incident, inc.id)
        assert row is not None and row.status == "MONITORING"
    refused = [
        e for e in await bot.events(inc.id) if e.kind == "command" and e.data.get("command") == "resolve"
    ]
    assert refused and "still firing" in refused[-1].data["health"]

    ended = grafana_body(
        [
            grafana_alert(
                name, status="resolved", starts=started, ends=clock.now(), labels=SERVICE, fingerprint=fp
            )
        ]
    )
    await post(bot, "grafana", ended)
    await bot.command("resolve", user="U01PRIMARY", channel=inc.channel_id)
    async with bot.svc.db.session() as s:
        row = await s.get(Incident, inc.id)
        assert row is not None and row.status == "RESOLVED"
    [ev] = [e for e in await bot.events(inc.id) if e.kind == "resolved"]
    assert ev.data["forced"] is False and ev.data["health"] == ""
