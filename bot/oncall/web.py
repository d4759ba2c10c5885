"""`GET /schedules/<name>.ics?token=…`: a schedule as iCalendar, behind a signed link (bot.pir.links).

Calendar apps poll a subscription for months, so these links live a year (not the PIR's 7 days); the
signature's scope is `schedule:<name>`, so a PIR token never opens a calendar and the other way round."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import icalendar
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from bot.context import Services
from bot.oncall import service
from bot.oncall.schedule import OnCall, handoffs
from bot.pir import links

router = APIRouter()

ICS_TTL = timedelta(days=365)
PAST, AHEAD = timedelta(days=7), timedelta(days=35)


def _scope(name: str) -> str:
    return f"schedule:{name}"


def schedule_url(svc: Services, name: str, now: datetime) -> str:
    token = links.sign(_scope(name), links.expiry(now, ICS_TTL), svc.settings.link_secret())
    return f"{svc.settings.public_url.rstrip('/')}/schedules/{quote(name, safe='')}.ics?token={token}"


def render_ics(
    svc: Services, name: str, start: datetime, end: datetime, shifts: list[tuple[datetime, datetime, OnCall]]
) -> bytes:
    names = svc.playbook.roster.names
    cal = icalendar.Calendar()
    cal.add("prodid", "-//incident-bot//on-call//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"On call: {name}")
    for s, e, oc in shifts:
        ev = icalendar.Event()
        people = ", ".join(names.get(u, u) for u in oc.users)
        ev.add("uid", f"{name}-{int(s.timestamp())}-{'-'.join(oc.users)}@incident-bot")
        ev.add("dtstamp", start)
        ev.add("dtstart", s)
        ev.add("dtend", e)
        ev.add("summary", f"On call ({name}): {people}")
        ev.add("description", f"{oc.reason}. Slack: {' '.join(oc.users)}")
        cal.add_component(ev)
    return bytes(cal.to_ical())


@router.get("/schedules/{filename}")
async def schedule_ics(filename: str, request: Request, token: str | None = None) -> Response:
    svc: Services = request.app.state.svc
    name = filename.removesuffix(".ics")
    now = svc.clock.now()
    sched = service.config_of(svc).book.schedules.get(name)
    verdict = links.check(token, _scope(name), svc.settings.link_secret(), now)
    if verdict != "ok" or sched is None or not filename.endswith(".ics"):
        # One answer for a bad token and an unknown schedule: no probing which schedules exist.
        msg = (
            "This calendar link has expired; run /incident oncall again."
            if verdict == "expired"
            else "Forbidden"
        )
        return PlainTextResponse(msg, status_code=403)
    start, end = now - PAST, now + AHEAD
    async with svc.db.session() as s:
        r = await service.resolve(svc, s, sched, start)
    shifts: list[tuple[datetime, datetime, OnCall]] = []
    cur, since = r.at(start), start
    for h in handoffs(r.schedule, start, end, r.overrides):
        if cur.users:
            shifts.append((since, h.at, cur))
        cur, since = h.after, h.at
    if cur.users:
        shifts.append((since, end, cur))
    body = render_ics(svc, name, now.astimezone(UTC), end, shifts)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "Referrer-Policy": "no-referrer"},
    )
