"""Snapshot -> HTML (no JavaScript), JSON and Atom. Every string is escaped for its surface here."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from html import escape
from typing import Any
from xml.etree import ElementTree as ET

from bot.statuspage.model import (
    INCIDENT_LABEL,
    OVERALL_LABEL,
    STATE_LABEL,
    ComponentView,
    IncidentView,
    MaintenanceView,
    Snapshot,
    UpdateView,
)

ATOM_NS = "http://www.w3.org/2005/Atom"


def _t(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _h(text: str) -> str:
    return escape(text, quote=True)


def _para(text: str) -> str:
    """Customer text as typed: escaped, paragraphs on blank lines, line breaks kept."""
    parts = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{'<br>'.join(_h(line) for line in p.split(chr(10)))}</p>" for p in parts)


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


CSS = """
:root{--ok:#1b7f3b;--deg:#8a6d00;--part:#b34700;--maj:#b71c1c;--ink:#1d1d1f;--muted:#55595f;--line:#d9dce1;
--bg:#f6f7f9;--card:#fff;--bar-ok:#2e9e55;--bar-deg:#e0b000;--bar-part:#f07c1b;--bar-maj:#d32f2f}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}a{color:#0b57d0}a:focus,summary:focus{outline:3px solid #0b57d0;
outline-offset:2px}.wrap{max-width:880px;margin:0 auto;padding:16px}header.top{display:flex;
justify-content:space-between;align-items:center;flex-wrap:wrap;gap:8px}h1{font-size:1.5rem;margin:8px 0}
h2{font-size:1.15rem;margin:28px 0 10px}h3{font-size:1rem;margin:0}.card{background:var(--card);
border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:0 0 12px}
.banner{border-radius:10px;padding:16px;color:#fff;font-weight:600;font-size:1.15rem;margin:12px 0}
.s-operational{background:var(--ok)}.s-degraded{background:var(--deg)}.s-partial_outage{background:var(--part)}
.s-major_outage{background:var(--maj)}.preview{background:#fff4ce;border:2px dashed #8a6d00;color:#3d3000;
padding:10px 14px;border-radius:8px;font-weight:600}.comp{padding:12px 0;border-top:1px solid var(--line)}
.comp:first-child{border-top:0}.comp-head{display:flex;justify-content:space-between;gap:8px;flex-wrap:wrap}
.state{font-weight:600}.t-operational{color:var(--ok)}.t-degraded{color:var(--deg)}
.t-partial_outage{color:var(--part)}.t-major_outage{color:var(--maj)}.desc,.muted{color:var(--muted);
font-size:.9rem}.auto{display:inline-block;font-size:.75rem;font-weight:600;border:1px solid currentColor;
border-radius:4px;padding:0 5px;margin-left:6px;vertical-align:1px}.bars{display:flex;gap:2px;height:34px;
margin:8px 0 2px}.bar{flex:1;border-radius:2px;background:var(--bar-ok);min-width:2px}
.b-degraded{background:var(--bar-deg)}.b-partial_outage{background:var(--bar-part)}
.b-major_outage{background:var(--bar-maj)}.axis{display:flex;justify-content:space-between;
color:var(--muted);font-size:.8rem}.update{border-left:3px solid var(--line);padding:2px 0 2px 12px;
margin:10px 0}.update p{margin:4px 0}.upd-status{font-weight:700}.sr{position:absolute;width:1px;height:1px;
overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}footer{margin:32px 0 8px;color:var(--muted);
font-size:.9rem}.days-short{display:none}
@media (max-width:600px){.wrap{padding:10px}h1{font-size:1.25rem}.bar:nth-child(-n+60){display:none}
.days-long{display:none}.days-short{display:inline}.banner{font-size:1rem}}
@media (prefers-color-scheme:dark){:root{--ink:#eceef1;--muted:#a9afb8;--line:#3a3f47;--bg:#15171a;
--card:#1e2125;--ok:#5fd38a;--deg:#f2cc4d;--part:#ff9d52;--maj:#ff6b6b}a{color:#8ab4ff}
.s-operational{background:#1b7f3b}.s-degraded{background:#8a6d00}.s-partial_outage{background:#b34700}
.s-major_outage{background:#b71c1c}}
"""


def _component(c: ComponentView) -> str:
    auto = (
        f'<span class="auto" title="Set by automatic monitoring at {_h(_t(c.automated_at))}">automated</span>'
        if c.automated and c.automated_at
        else ""
    )
    bars = "".join(f'<span class="bar b-{d.worst}" title="{_h(d.label)}"></span>' for d in c.days)
    n = len(c.days)
    desc = f'<div class="desc">{_h(c.description)}</div>' if c.description else ""
    history = ""
    if c.days:
        history = (
            f'<div class="bars" role="img" aria-label="{_h(c.name)}: {c.uptime * 100:.2f} % available over '
            f'the last {n} days">{bars}</div>'
            f'<div class="axis" aria-hidden="true"><span><span class="days-long">{n} days ago</span>'
            f'<span class="days-short">{min(n, 30)} days ago</span></span>'
            f"<span>{c.uptime * 100:.2f} % uptime</span><span>Today</span></div>"
        )
    return (
        f'<li class="comp" id="component-{_h(c.key)}"><div class="comp-head"><h3>{_h(c.name)}</h3>'
        f'<span class="state t-{c.state}">{STATE_LABEL[c.state]}{auto}</span></div>{desc}{history}</li>'
    )


def _update(u: UpdateView) -> str:
    affected = ", ".join(f"{_h(name)} ({STATE_LABEL[st].lower()})" for name, st in u.components)
    comps = f'<p class="muted">Affected: {affected}</p>' if affected else ""
    return (
        f'<div class="update"><span class="upd-status">{INCIDENT_LABEL[u.status]}</span> '
        f'<time class="muted" datetime="{_iso(u.at)}">{_t(u.at)}</time>{_para(u.message)}{comps}</div>'
    )


def _incident(i: IncidentView, level: int = 3) -> str:
    when = f"{_t(i.started_at)}" + (f" – resolved {_t(i.resolved_at)}" if i.resolved_at else "")
    updates = "".join(_update(u) for u in i.updates)
    return (
        f'<article class="card" id="incident-{i.id}"><h{level}>{_h(i.title)}</h{level}>'
        f'<p class="muted">{_h(when)}</p>{updates}</article>'
    )


def _maintenance(m: MaintenanceView, now: datetime) -> str:
    phase = {"scheduled": "Scheduled", "in_progress": "In progress", "completed": "Completed"}[m.phase(now)]
    comps = f'<p class="muted">Affects: {_h(", ".join(m.components))}</p>' if m.components else ""
    return (
        f'<article class="card" id="maintenance-{m.id}"><h3>{_h(m.title)}</h3>'
        f'<p><strong>{phase}</strong> · <time datetime="{_iso(m.starts_at)}">{_t(m.starts_at)}</time> to '
        f'<time datetime="{_iso(m.ends_at)}">{_t(m.ends_at)}</time></p>{_para(m.message)}{comps}</article>'
    )


def render_html(snap: Snapshot) -> str:
    now = snap.generated_at
    overall = snap.overall
    robots = '<meta name="robots" content="noindex">' if snap.preview else ""
    preview = (
        '<p class="preview" role="note">Preview: this is how the page will look once you publish. '
        "Nothing here is public yet.</p>"
        if snap.preview
        else ""
    )
    active = "".join(_incident(i) for i in snap.active)
    maint = [m for m in snap.maintenance if m.phase(now) != "completed"]
    past = "".join(_incident(i) for i in snap.past) or '<p class="muted">No incidents in this period.</p>'
    sections = [
        preview,
        f'<div class="banner s-{overall}" role="status">{OVERALL_LABEL[overall]}</div>',
    ]
    if active:
        sections.append(
            f'<section aria-labelledby="h-active"><h2 id="h-active">Current incidents</h2>{active}'
        )
        sections.append("</section>")
    if maint:
        body = "".join(_maintenance(m, now) for m in maint)
        sections.append(
            f'<section aria-labelledby="h-maint"><h2 id="h-maint">Scheduled maintenance</h2>{body}</section>'
        )
    comps = "".join(_component(c) for c in snap.components)
    sections.append(
        f'<section aria-labelledby="h-comp"><h2 id="h-comp">Components</h2>'
        f'<ul class="card" style="list-style:none;margin:0;padding:4px 16px">{comps}</ul></section>'
    )
    sections.append(
        f'<section aria-labelledby="h-past"><h2 id="h-past">Past incidents ({snap.history_days} days)</h2>'
        f"{past}</section>"
    )
    support = f' · <a href="{_h(snap.support_url)}">Support</a>' if snap.support_url else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{robots}<title>{_h(snap.title)}</title>"
        f'<link rel="alternate" type="application/atom+xml" title="{_h(snap.title)}" href="/status/feed.atom">'
        f'<style>{CSS}</style></head><body><div class="wrap">'
        f'<header class="top"><h1>{_h(snap.title)}</h1>'
        '<nav aria-label="Subscribe"><a href="/status/feed.atom">Atom feed</a> · '
        '<a href="/status.json">JSON</a></nav></header>'
        f"<main>{''.join(sections)}</main>"
        # The last visible change, not the time of the request: the body (and so its ETag) stays the same
        # until something changes, so conditional GETs and CDNs can do their job.
        f'<footer><p>Last change <time datetime="{_iso(snap.updated_at)}">{_t(snap.updated_at)}</time>. '
        "Availability counts a partial outage as half down; degraded performance counts as up."
        f"{support}</p></footer>"
        "</div></body></html>"
    )


def _update_json(u: UpdateView) -> dict[str, Any]:
    return {
        "id": u.id,
        "status": u.status,
        "body": u.message,
        "created_at": _iso(u.at),
        "affected_components": [{"name": n, "status": s} for n, s in u.components],
    }


def _incident_json(i: IncidentView) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.title,
        "status": i.status,
        "impact": i.impact,
        "started_at": _iso(i.started_at),
        "updated_at": _iso(i.updated_at),
        "resolved_at": _iso(i.resolved_at) if i.resolved_at else None,
        "incident_updates": [_update_json(u) for u in i.updates],
    }


def render_json(snap: Snapshot) -> dict[str, Any]:
    now = snap.generated_at
    return {
        "page": {"name": snap.title, "url": snap.url, "updated_at": _iso(snap.updated_at)},
        "status": {"indicator": snap.overall, "description": OVERALL_LABEL[snap.overall]},
        "components": [
            {
                "id": c.key,
                "name": c.name,
                "description": c.description,
                "status": c.state,
                "automated": c.automated,
                "uptime_90d": round(c.uptime, 6),
                "days": [
                    {"date": d.day.isoformat(), "availability": round(d.availability, 6)} for d in c.days
                ],
            }
            for c in snap.components
        ],
        "incidents": [_incident_json(i) for i in snap.active],
        "past_incidents": [_incident_json(i) for i in snap.past],
        "scheduled_maintenances": [
            {
                "id": m.id,
                "name": m.title,
                "body": m.message,
                "status": m.phase(now),
                "scheduled_for": _iso(m.starts_at),
                "scheduled_until": _iso(m.ends_at),
                "components": list(m.components),
            }
            for m in snap.maintenance
        ],
    }


def json_bytes(snap: Snapshot) -> bytes:
    return json.dumps(render_json(snap), ensure_ascii=False, separators=(",", ":")).encode()


def _entry_text(i: IncidentView, u: UpdateView) -> str:
    lines = [f"{INCIDENT_LABEL[u.status]}: {u.message}"]
    if u.components:
        lines.append("Affected: " + ", ".join(f"{n} ({STATE_LABEL[s].lower()})" for n, s in u.components))
    return "\n\n".join(lines)


def render_atom(snap: Snapshot, limit: int = 50) -> bytes:
    """RFC 4287 feed: one entry per published update, newest first. ElementTree escapes every string."""
    ET.register_namespace("", ATOM_NS)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        e = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            e.text = text
        return e

    base = snap.url.rstrip("/")
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    el(feed, "id", f"{base}/status/feed.atom")
    el(feed, "title", snap.title)
    el(feed, "updated", _iso(snap.updated_at))
    el(feed, "link", rel="self", type="application/atom+xml", href=f"{base}/status/feed.atom")
    el(feed, "link", rel="alternate", type="text/html", href=f"{base}/status")
    author = el(feed, "author")
    el(author, "name", snap.title)
    pairs = sorted(((i, u) for i in snap.incidents for u in i.updates), key=lambda p: p[1].at, reverse=True)
    for i, u in pairs[:limit]:
        entry = el(feed, "entry")
        el(entry, "id", f"{base}/status/updates/{u.id}")
        el(entry, "title", f"{i.title}: {INCIDENT_LABEL[u.status]}")
        el(entry, "updated", _iso(u.at))
        el(entry, "published", _iso(u.at))
        el(entry, "link", rel="alternate", type="text/html", href=f"{base}/status#incident-{i.id}")
        el(entry, "content", _entry_text(i, u), type="text")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


def update_text(title: str, u: UpdateView) -> str:
    """Plain text of one update exactly as the page and feed word it (webhooks, Slack preview)."""
    affected = ", ".join(f"{n} ({STATE_LABEL[s].lower()})" for n, s in u.components)
    tail = f"\nAffected: {affected}" if affected else ""
    return f"{title}\n{INCIDENT_LABEL[u.status]} · {_t(u.at)}\n{u.message}{tail}"
