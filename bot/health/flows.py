"""Health checks as the bot runs them: probes -> samples in SQL -> timeline; and the recovery action."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import incident_store as service
from bot.context import Services
from bot.event_text import Line, Person
from bot.health.probes import CheckReport, ProbeResult, RecoveryResult, probe_names, run_probes, run_recovery
from bot.health.report import redact_report_url
from bot.models import CheckSample

OnResult = Callable[[ProbeResult], Awaitable[None]]


def diner(svc: Services) -> tuple[str, str] | None:
    """The diner credentials for the service-path probe, when configured."""
    s_ = svc.settings
    email, password = s_.pizza_diner_email, s_.secret("pizza_diner_password")
    return (email, password) if email and password else None


def check_count(svc: Services) -> int:
    return len(probe_names(svc.settings.pizza_service_url or None, diner(svc)))


async def run_check(
    svc: Services,
    *,
    incident_id: str | None = None,
    on_result: OnResult | None = None,
    kind: str = "check",
    actor: str | None = None,
    timeout: float | None = None,
) -> CheckReport:
    """Run every probe concurrently, store one sample per probe, and (in a war room) a timeline event."""
    s_ = svc.settings
    report = await run_probes(
        s_.factory_url,
        s_.secret("factory_api_key"),
        s_.pizza_service_url or None,
        timeout=timeout if timeout is not None else s_.check_timeout,
        on_result=on_result,
        client=svc.http,
        diner=diner(svc),
    )
    run_id = f"{kind}-{uuid.uuid4().hex[:12]}"
    report.run_id = run_id
    now = svc.clock.now()
    async with svc.db.session() as s:
        for r in report.results:
            s.add(
                CheckSample(
                    run_id=run_id,
                    at=now,
                    probe=r.name,
                    status=r.status,
                    http_status=r.http_status,
                    latency_ms=r.latency_ms,
                    detail=redact_report_url(r.detail)[:2000],
                    incident_id=incident_id,
                )
            )
            svc.metrics.check_latency.labels(probe=r.name).observe(r.latency_ms / 1000)
        if incident_id:
            await service.add_event(
                s,
                incident_id,
                kind,
                f"Health check: {report.verdict}"
                + (f", suggests {report.suggested_severity}" if report.suggested_severity else ""),
                at=now,
                actor=actor,
                data=figures(report),
            )
    return report


def figures(report: CheckReport) -> dict[str, object]:
    """The figures the timeline and the PIR keep (the reportUrl's API key masked)."""
    data = report.to_dict()
    data["report_url"] = redact_report_url(report.report_url) if report.report_url else None
    for r in data["results"]:  # type: ignore[union-attr]
        r["detail"] = redact_report_url(r["detail"])
        r["report_url"] = redact_report_url(r["report_url"]) if r.get("report_url") else None
        r.get("data", {}).pop("jwt", None)
    return data


@dataclass
class RecoveryRun:
    before: CheckReport
    recovery: RecoveryResult
    after: CheckReport


async def claim_recovery(svc: Services, incident_id: str, report_key: str, user: str) -> str | None:
    """Run recovery once per check report: None when this press is the first (it may run), else who pressed
    first. The claim is a row, so a double click or a second process sees it too."""
    key = f"recovery:{incident_id}:{report_key}"
    async with svc.db.session() as s:
        if await service.claim_request(s, key, svc.clock.now(), user):
            return None
        return await service.request_ref(s, key) or "someone"


async def recover(svc: Services, incident_id: str, user: str, *, timeout: float = 40.0) -> RecoveryRun:
    """Seed 000's self-healing step: follow the Factory's reportUrl to end chaos, then check again.

    The URL is fetched afresh (an order with a long timeout: throttle hides it for 32 s) rather than kept
    anywhere, because it carries the vendor API key."""
    before = await run_check(svc, incident_id=incident_id, kind="check", actor=user)
    s_ = svc.settings
    result = await run_recovery(
        s_.factory_url, s_.secret("factory_api_key"), before.report_url, timeout=timeout
    )
    async with svc.db.session() as s:
        await service.add_event(
            s,
            incident_id,
            "recovery",
            Line(
                "Recovery action by ",
                Person(user),
                f": {'chaos ended' if result.resolved else 'not resolved'} ({result.status}: {result.body[:120]})",
            ),  # the Factory's words as sent: each surface escapes them
            at=svc.clock.now(),
            actor=user,
            data={
                "resolved": result.resolved,
                "status": result.status,
                "body": result.body[:500],
                "urls": [redact_report_url(u) for u in result.urls_tried],
            },
        )
    after = await run_check(svc, incident_id=incident_id, kind="check", actor=user)
    return RecoveryRun(before, result, after)
