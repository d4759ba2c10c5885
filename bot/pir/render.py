"""PIR rendering. Pure: PirData -> a small document model -> Markdown or HTML (no I/O, no clock).

Both outputs come from one document, so the sections can never drift apart. The HTML is built directly
(every text escaped, links only http(s)), never by feeding Markdown to an HTML converter.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bot.bookkeeping import is_bookkeeping
from bot.event_text import PlainText, render
from bot.pir.data import EventRow, IncidentInfo, PirData
from bot.pir.metrics import (
    DEFINITIONS,
    Measure,
    Stats,
    fmt_duration,
    fmt_rate,
    fmt_target,
    measures,
)
from bot.playbook import SeverityBook

# -- document model --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Strong:
    text: str


@dataclass(frozen=True, slots=True)
class Code:
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    href: str


Inline = str | Strong | Code | Link
Cell = Inline | tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    parts: tuple[Inline, ...]
    muted: bool = False


@dataclass(frozen=True)
class Bullets:
    items: Sequence[tuple[Inline, ...]]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: Sequence[Sequence[Cell]]
    css: str = ""


@dataclass(frozen=True)
class Diagram:
    mermaid: str
    svg: str  # built here from fixed shapes and escaped labels


class _LocalClock:
    """UTC text -> local 'YYYY-MM-DD HH:MM:SS', converting once per distinct minute: zone offsets are whole
    minutes, so the seconds carry over unchanged and 100,000 rows cost a few thousand conversions."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.minutes: dict[str, str] = {}

    def __call__(self, utc: str) -> str:
        minute = utc[:16]
        local = self.minutes.get(minute)
        if local is None:
            at = datetime.fromisoformat(minute).replace(tzinfo=UTC).astimezone(self.zone)
            local = self.minutes[minute] = _ts(at)[:16]
        return local + utc[16:19]


@dataclass(frozen=True)
class Timeline:
    """The timeline table, kept as events rather than cells: it is the one part that can run to 100,000
    rows, so each serializer walks it in one tight loop (see `lines`)."""

    events: Sequence[EventRow]
    names: Mapping[str, str]
    zone: ZoneInfo | None  # None: UTC only
    skip: frozenset[int]  # indexes of repeated 📌 pins

    @property
    def headers(self) -> tuple[str, ...]:
        local = (f"Time ({self.zone.key})",) if self.zone else ()
        return ("Time (UTC)", *local, "Event", "By", "What")

    def __len__(self) -> int:
        return len(self.events) - len(self.skip)

    def lines(
        self, esc: Callable[[str], str], link: Callable[[str], str], start: str, sep: str, end: str
    ) -> Iterator[str]:
        """One finished table row per visible event: `esc` escapes text for the format, `link` renders a
        permalink. Kinds and people repeat, so their escaped forms are cached."""
        names, skip, to_plain = self.names, self.skip, Plain(self.names)
        surface = PlainText(names, to_plain)
        clock = _LocalClock(self.zone) if self.zone else None
        kinds: dict[str, str] = {}
        people: dict[str | None, str] = {}
        for i, (utc, kind, actor, text, data, _id) in enumerate(self.events):
            when = f"{utc[:19]}{sep}{clock(utc)}" if clock else utc[:19]
            if kind == "pinned":
                if i in skip:
                    continue
                data = data or {}
                author = data.get("author") or actor
                body = to_plain(str(data.get("text") or text)).removeprefix(PIN).strip()
                href = str(data.get("permalink") or "")
                what = esc(f"{PIN} {body}") + (f" — {link(href)}" if _safe_href(href) else "")
                pinner = esc(who(str(author) if author else None, names))
                yield f"{start}{when}{sep}pinned{sep}{pinner}{sep}{what}{end}"
                continue
            k = kinds.get(kind)
            if k is None:
                k = kinds[kind] = esc(kind)
            person = people.get(actor)
            if person is None:
                person = people[actor] = esc(who(actor, names))
            text = render(kind, text or "", data, surface)
            yield f"{start}{when}{sep}{k}{sep}{person}{sep}{esc(text)}{end}"


Block = Heading | Para | Bullets | Table | Diagram | Timeline

REVIEW_TOPICS: list[tuple[str, tuple[str, ...]]] = [
    ("What happened?", ("Timeline of events", "Actions taken", "Decisions made")),
    ("Why did it happen?", ("Root cause analysis", "Contributing factors", "Systemic issues")),
    ("How did we respond?", ("What went well", "What didn't go well", "Communication effectiveness")),
    (
        "What can we improve?",
        ("Process improvements", "System changes needed", "Training requirements", "Documentation updates"),
    ),
]
ACTION_HEADERS = ("Item", "Owner", "Due Date", "Status")
PIN = "📌"

# -- text helpers ----------------------------------------------------------------------------------------

_SLACK_MARKUP = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")


class Plain:
    """Slack markup -> readable text: <@U1> -> @Name, <#C1|x> -> #x, <url|label> -> label (url).

    One instance per document: the same mentions recur on thousands of timeline rows, so each distinct
    token is translated once."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names
        self.memo: dict[str, str] = {}

    def _token(self, m: re.Match[str]) -> str:
        token = m.group(0)
        out = self.memo.get(token)
        if out is None:
            sigil, target, label = m.groups()
            if sigil == "@":
                out = "@" + (self.names.get(target) or label or target)
            elif sigil == "#":
                out = "#" + (label or self.names.get(target) or target)
            elif sigil == "!":
                out = "@" + (label or target.split("^")[0])
            else:
                out = f"{label} ({target})" if label else target
            self.memo[token] = out
        return out

    def __call__(self, text: str) -> str:
        if "<" in text:
            text = _SLACK_MARKUP.sub(self._token, text)
        if "&" in text:  # Slack escapes these three in everything people type
            text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        return text


def plain(text: str, names: Mapping[str, str]) -> str:
    return Plain(names)(text)


def who(user: str | None, names: Mapping[str, str]) -> str:
    if not user:
        return "—"
    return "@" + names.get(user, user)


def zone_of(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _is_utc(zone: ZoneInfo) -> bool:
    return zone.key in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu")


def _ts(dt: datetime) -> str:
    # isoformat is several times faster than strftime, which matters at 100,000 timeline rows.
    return dt.isoformat(" ", "seconds")[:19]


def fmt_utc(dt: datetime | None) -> str:
    return "—" if dt is None else _ts(dt)


def fmt_local(dt: datetime | None, zone: ZoneInfo) -> str:
    if dt is None:
        return "—"
    local = dt.astimezone(zone)
    return f"{_ts(local)} {local.tzname()}"


def _safe_href(href: str) -> bool:
    """Web links and this site's own paths only: never javascript:, data: or protocol-relative URLs."""
    return href.startswith(("https://", "http://")) or (href.startswith("/") and not href.startswith("//"))


def _verdict(m: Measure) -> str:
    return {"met": "✅ met", "missed": "❌ missed", "pending": "⏳ not yet", "no target": "— no target"}[
        m.verdict
    ]


# -- phases and the diagram ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    start: datetime
    end: datetime
    active: bool = False


def phases(inc: IncidentInfo, now: datetime) -> list[Phase]:
    """Detection, waiting for an acknowledgement, investigating, monitoring: each until the next milestone."""
    end = inc.resolved_at or now
    ongoing = inc.resolved_at is None
    out: list[Phase] = []
    detected = inc.detected_at or inc.declared_at
    if detected < inc.declared_at:
        out.append(Phase("Detection", detected, inc.declared_at))
    marks = [
        t
        for t in (inc.acknowledged_at, inc.identified_at, inc.monitoring_at)
        if t is not None and t >= inc.declared_at
    ]
    first = min(marks) if marks else end
    label = "Awaiting acknowledgement" if inc.acknowledged_at else "Unacknowledged response"
    out.append(Phase(label, inc.declared_at, min(first, end)))
    # Every status the incident went through after the acknowledgement, each until the next one.
    steps = [
        ("Investigating", inc.acknowledged_at),
        ("Identified", inc.identified_at),
        ("Monitoring", inc.monitoring_at),
    ]
    started = sorted(((max(t, inc.declared_at), name) for name, t in steps if t is not None and t < end))
    for i, (start, name) in enumerate(started):
        stop = started[i + 1][0] if i + 1 < len(started) else end
        if stop > start or i + 1 == len(started):
            out.append(Phase(name, start, stop))
    if ongoing and out:
        last = out[-1]
        out[-1] = Phase(last.name, last.start, last.end, active=True)
    return out


def milestones(inc: IncidentInfo) -> list[tuple[str, datetime]]:
    got = [
        ("Detected", inc.detected_at if inc.detected_at and inc.detected_at < inc.declared_at else None),
        ("Declared", inc.declared_at),
        ("Acknowledged", inc.acknowledged_at),
        ("Identified", inc.identified_at),
        ("Monitoring", inc.monitoring_at),
        ("Resolved", inc.resolved_at),
    ]
    return [(n, t) for n, t in got if t is not None]


def mermaid_gantt(inc: IncidentInfo, items: list[Phase]) -> str:
    span = (items[-1].end - items[0].start) if items else timedelta(0)
    axis = "%H:%M" if span < timedelta(hours=20) else "%m-%d %H:%M"
    fmt = "%Y-%m-%d %H:%M:%S"
    lines = [
        "gantt",
        f"    title {inc.id} phases (UTC)",
        "    dateFormat YYYY-MM-DD HH:mm:ss",
        f"    axisFormat {axis}",
        "    section Response",
    ]
    for i, p in enumerate(items):
        state = "active" if p.active else "done"
        lines.append(f"    {p.name} :{state}, p{i}, {p.start.strftime(fmt)}, {p.end.strftime(fmt)}")
    lines.append("    section Milestones")
    for i, (name, at) in enumerate(milestones(inc)):
        lines.append(f"    {name} :milestone, m{i}, {at.strftime(fmt)}, 0m")
    return "\n".join(lines)


_COLORS = {
    "Detection": "#b45309",
    "Awaiting acknowledgement": "#b91c1c",
    "Unacknowledged response": "#b91c1c",
    "Investigating": "#1d4ed8",
    "Identified": "#7c3aed",
    "Monitoring": "#047857",
}


def gantt_svg(inc: IncidentInfo, items: list[Phase]) -> str:
    """A small server-side gantt (no JavaScript): one bar per phase on a UTC time axis."""
    if not items:
        return ""
    width, label_w, row_h, top = 760, 200, 28, 28
    plot = width - label_w - 30
    t0, t1 = items[0].start, max(p.end for p in items)
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return label_w + (t - t0).total_seconds() / span * plot

    height = top + row_h * len(items) + 34
    e = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{e(inc.id)} phases">'
    ]
    fmt = "%H:%M:%S" if span < 600 else "%H:%M" if span < 20 * 3600 else "%m-%d %H:%M"
    shown = set()
    for i in range(5):
        t = t0 + timedelta(seconds=span * i / 4)
        if f"{t:{fmt}}" in shown:  # a short incident: two ticks in the same minute would repeat a label
            continue
        shown.add(f"{t:{fmt}}")
        xi = x(t)
        out.append(f'<line x1="{xi:.1f}" y1="{top - 6}" x2="{xi:.1f}" y2="{height - 26}" class="grid"/>')
        out.append(f'<text x="{xi:.1f}" y="{height - 10}" text-anchor="middle" class="tick">{t:{fmt}}</text>')
    for i, p in enumerate(items):
        y = top + i * row_h
        x0, x1 = x(p.start), x(p.end)
        w = max(x1 - x0, 2.0)
        color = _COLORS.get(p.name, "#4b5563")
        dur = fmt_duration(p.end - p.start) + (" so far" if p.active else "")
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="label">{e(p.name)}</text>')
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" rx="3" fill="{color}">'
            f"<title>{e(p.name)}: {fmt_utc(p.start)} → {fmt_utc(p.end)} UTC ({e(dur)})</title></rect>"
        )
        # The duration sits after the bar, or inside its end (in white) when the bar reaches the right edge.
        tx, anchor, css = (x1 + 4, "start", "dur") if x1 < width - 90 else (x1 - 4, "end", "dur in")
        out.append(f'<text x="{tx:.1f}" y="{y + 17}" text-anchor="{anchor}" class="{css}">{e(dur)}</text>')
    out.append(f'<text x="{label_w}" y="14" class="tick">UTC</text></svg>')
    return "".join(out)


# -- building the document -------------------------------------------------------------------------------


def _text_block(text: str, names: Mapping[str, str], empty: str = "Not recorded yet.") -> Para:
    """A field people typed (summary, impact, root cause): stored as typed, so it is shown verbatim and
    escaped by the serializer; never read as Slack markup (that would turn `<script>` into `script`)."""
    text = text.strip()
    return Para((text,)) if text else Para((empty,), muted=True)


def _since(dt: datetime | None, declared: datetime) -> str:
    if dt is None:
        return "—"
    delta = dt - declared
    if delta < timedelta(0):
        return f"{fmt_duration(-delta)} before"
    return "0 s" if delta == timedelta(0) else f"+{fmt_duration(delta)}"


def duration_text(inc: IncidentInfo, now: datetime) -> str:
    if inc.resolved_at is not None:
        return f"{fmt_duration(inc.resolved_at - inc.declared_at)} (declared → resolved)"
    return f"ongoing, {fmt_duration(now - inc.declared_at)} so far"


_SOURCES = {"slash": "slash command", "modal": "form", "monitor": "health monitor"}


def _header(pir: PirData) -> list[Block]:
    inc, n = pir.incident, pir.names
    drill = " [DRILL]" if inc.is_drill else ""
    team = inc.team or "—"
    if inc.area:
        team = f"{team} (area {inc.area})"
    facts: list[tuple[Inline, ...]] = [
        (Strong("Incident:"), f" {inc.id}"),
        (Strong("Severity:"), f" {inc.severity_label}"),
        (Strong("Status:"), f" {inc.status}"),
        (Strong("Commander:"), f" {who(inc.commander, n)}"),
        (Strong("Declared by:"), f" {who(inc.declared_by, n)} (via {_SOURCES.get(inc.source, inc.source)})"),
        (Strong("Team:"), f" {team}"),
        (Strong("War room:"), f" #{inc.channel_name}" if inc.channel_name else " —"),
        (Strong("Duration:"), f" {duration_text(inc, pir.generated_at)}"),
    ]
    if inc.comms_lead:
        facts.insert(4, (Strong("Comms lead:"), f" {who(inc.comms_lead, n)}"))
    if inc.is_drill:
        facts.append((Strong("Drill:"), " yes, not a real incident"))
    return [
        Heading(1, f"Post-Incident Review: {inc.id}{drill}"),
        Para((Strong(inc.summary),)),
        Bullets(facts),
    ]


def _key_times(pir: PirData, zone: ZoneInfo) -> list[Block]:
    inc, n = pir.incident, pir.names
    detected_note = (
        "first failing check" if inc.detected_at and inc.detected_at < inc.declared_at else "= declaration"
    )
    rows = [
        ("Detected", inc.detected_at or inc.declared_at, detected_note),
        ("Declared", inc.declared_at, who(inc.declared_by, n)),
        ("Acknowledged", inc.acknowledged_at, who(inc.acknowledged_by, n) if inc.acknowledged_at else ""),
        ("Monitoring", inc.monitoring_at, ""),
        ("Resolved", inc.resolved_at, ""),
    ]
    local = not _is_utc(zone)
    headers = ("Milestone", "UTC", *((zone.key,) if local else ()), "Since declared", "Notes")
    table = [
        (
            name,
            fmt_utc(at),
            *((fmt_local(at, zone),) if local else ()),
            _since(at, inc.declared_at),
            note or "—",
        )
        for name, at, note in rows
    ]
    return [Heading(2, "Key Times"), Table(headers, table)]


def _diagram(pir: PirData) -> list[Block]:
    items = phases(pir.incident, pir.generated_at)
    return [
        Heading(2, "Phases"),
        Diagram(mermaid_gantt(pir.incident, items), gantt_svg(pir.incident, items)),
    ]


def _metrics(pir: PirData, book: SeverityBook) -> list[Block]:
    inc = pir.incident
    rows = [
        (m.name, DEFINITIONS[m.name], fmt_duration(m.value), fmt_target(m.target), _verdict(m))
        for m in measures(pir.times, book)
    ]
    return [
        Heading(2, "Response Metrics"),
        Table(("Metric", "Measured as", "Value", f"Target ({inc.severity})", "Result"), rows),
        Para(
            (
                "MTTR is measured from declaration to resolution; MTTD from the first failing health "
                "check (or the declaration) to the declaration. Targets from the playbook (seed 001): "
                "MTTR P0 < 15 min, P1 < 60 min, P2 < 4 h; MTTD < 5 min for P0/P1; MTTA against the "
                "severity's response time.",
            ),
            muted=True,
        ),
    ]


def _escalation(pir: PirData) -> list[Block]:
    n = pir.names
    if not pir.pages:
        return [Heading(2, "Escalation"), Para(("No pages were sent.",), muted=True)]
    rows = []
    for p in pir.pages:
        late = fmt_duration(p.sent_at - p.due_at) if p.sent_at and p.sent_at > p.due_at else "on time"
        rows.append(
            (
                str(p.cycle),
                f"L{p.level} {p.level_name}",
                ", ".join(who(u, n) for u in p.users) or "nobody on the roster",
                plain(p.reason, n) or "—",
                fmt_utc(p.due_at),
                fmt_utc(p.sent_at) if p.sent_at else "not sent",
                late if p.sent_at else "—",
                p.state,
                who(p.acked_by, n),
                fmt_utc(p.acked_at),
            )
        )
    top = max(p.level for p in pir.pages)
    note = f"Highest level paged: L{top}. " + (
        "Escalated beyond L1." if pir.escalated else "No escalation beyond L1 was needed."
    )
    headers = (
        "Cycle",
        "Level",
        "Who",
        "Why",
        "Due (UTC)",
        "Sent (UTC)",
        "Late by",
        "State",
        "Ack by",
        "Ack at (UTC)",
    )
    return [Heading(2, "Escalation"), Table(headers, rows), Para((note,))]


def _checks(pir: PirData) -> list[Block]:
    if not pir.checks:
        return [
            Heading(2, "Health Checks"),
            Para(("No health-check samples were recorded for this incident.",), muted=True),
        ]
    rows = [
        (
            c.probe,
            str(c.samples),
            str(c.failing),
            fmt_utc(c.first_failure),
            f"{c.last_status}: {c.last_detail}" if c.last_detail else c.last_status,
            f"{c.avg_latency_ms:.0f} ms",
            f"{c.max_latency_ms:.0f} ms",
        )
        for c in pir.checks
    ]
    headers = (
        "Probe",
        "Samples",
        "Failing",
        "First failure (UTC)",
        "Last result",
        "Avg latency",
        "Max latency",
    )
    return [
        Heading(2, "Health Checks"),
        Table(headers, rows),
        Para(
            ("Samples taken from detection to resolution, and any the monitor tied to the incident.",),
            muted=True,
        ),
    ]


_ALERT_LINKS = (
    ("generator", "source"),
    ("dashboard", "dashboard"),
    ("panel", "panel"),
    ("runbook", "runbook"),
)


def _alerts(pir: PirData) -> list[Block]:
    """Alerts from Grafana/Alertmanager tied to the incident, with start/end and links (bot/alerts)."""
    if not pir.alerts:
        return []
    rows = []
    for a in pir.alerts:
        links: list[Inline] = []
        for key, label in _ALERT_LINKS:
            if a.links.get(key) and _safe_href(a.links[key]):
                links += [" " if links else "", Link(label, a.links[key])]
        rows.append(
            (
                a.name,
                a.source,
                a.status
                + (f", {a.repeats} repeats" if a.repeats else "")
                + (f", flapped {a.flaps}x" if a.flaps else ""),
                fmt_utc(a.starts_at),
                fmt_utc(a.ends_at) if a.ends_at else "—",
                a.summary[:300] or "—",
                tuple(links) if links else "—",
            )
        )
    firing = sum(1 for a in pir.alerts if a.status == "firing")
    note = (
        f"{len(pir.alerts)} alert(s), {firing} still firing."
        if firing
        else f"{len(pir.alerts)} alert(s), all resolved."
    )
    headers = ("Alert", "Source", "Status", "Started (UTC)", "Ended (UTC)", "Summary", "Links")
    return [Heading(2, "Alerts"), Table(headers, rows), Para((note,), muted=True)]


def _review(pir: PirData, book: SeverityBook) -> list[Block]:
    inc, n = pir.incident, pir.names
    mtta, mttr = measures(pir.times, book)[1:]
    ack = (
        f"Acknowledged by {who(inc.acknowledged_by, n)} {fmt_duration(mtta.value)} after declaration "
        f"({_verdict(mtta)})."
        if mtta.value is not None
        else "The page was never acknowledged."
    )
    top = max((p.level for p in pir.pages), default=0)
    facts = {
        "What happened?": [inc.summary, f"{len(pir.events)} timeline events (see Timeline)."],
        "Why did it happen?": [
            f"Root cause: {inc.root_cause.strip() or 'not recorded yet'}.",
        ],
        "How did we respond?": [
            ack,
            f"Escalation reached L{top}." if top else "Nobody was paged.",
            f"Resolved after {fmt_duration(mttr.value)} ({_verdict(mttr)})."
            if mttr.value is not None
            else "Not resolved yet.",
        ],
        "What can we improve?": [f"{len(pir.actions)} action item(s) recorded (see Action Items)."],
    }
    out: list[Block] = [Heading(2, "Review Topics")]
    for title, prompts in REVIEW_TOPICS:
        out.append(Heading(3, title))
        out.append(Bullets([(f,) for f in facts[title]] + [(f"{p}: …",) for p in prompts]))
    return out


def _actions(pir: PirData) -> list[Block]:
    n = pir.names
    rows = [
        (
            f"#{a.number} {a.text}",
            who(a.owner, n),
            a.due_date.isoformat() if a.due_date else "—",
            a.status,
        )
        for a in pir.actions
    ]
    out: list[Block] = [Heading(2, "Action Items"), Table(ACTION_HEADERS, rows)]
    if not rows:
        hint = Code('/incident action add "<text>" @owner YYYY-MM-DD')
        out.append(Para(("No action items yet. Add them in the war room with ", hint, "."), muted=True))
    return out


def _customer_communication(pir: PirData) -> list[Block]:
    """Public status-page updates (bot/statuspage), with their times: what customers were told, and when."""
    rows = [(f"{e[0][:16]} UTC", plain(e[3], pir.names)) for e in pir.events if e[1] == "public_update"]
    if not rows:
        return [Heading(2, "Customer communication"), Para(("No public status-page update was published.",))]
    return [Heading(2, "Customer communication"), Table(("Published", "Public update"), rows)]


def _repeated_pins(events: Sequence[EventRow]) -> frozenset[int]:
    """A message pinned twice (a re-pin, a retried event) is listed once, at its first pin."""
    seen: set[str] = set()
    repeated = set()
    for i, (_utc, kind, _actor, text, data, _id) in enumerate(events):
        if kind != "pinned":
            continue
        data = data or {}
        key = str(data.get("permalink") or data.get("text") or text)
        if key in seen:
            repeated.add(i)
        seen.add(key)
    return frozenset(repeated)


def _timeline(pir: PirData, zone: ZoneInfo) -> list[Block]:
    """The story first; the bot's own bookkeeping (reminders, Slack housekeeping) after it, for audit."""
    local = None if _is_utc(zone) else zone
    story = [e for e in pir.events if not is_bookkeeping(e[1])]
    kept = [e for e in pir.events if is_bookkeeping(e[1])]
    table = Timeline(story, pir.names, local, _repeated_pins(story))
    out: list[Block] = [
        Heading(2, "Timeline"),
        Para((f"{len(table)} events, oldest first.",), muted=True),
        table,
    ]
    if kept:
        out += [
            Heading(3, "Bookkeeping"),
            Para((f"{len(kept)} entries: reminders and the bot's Slack housekeeping.",), muted=True),
            Timeline(kept, pir.names, local, frozenset()),
        ]
    return out


def build(pir: PirData, book: SeverityBook, tz: str | ZoneInfo = "UTC") -> list[Block]:
    """The PIR as blocks; the timeline is last because it can run to many thousands of rows."""
    zone = zone_of(tz)
    inc, n = pir.incident, pir.names
    blocks: list[Block] = _header(pir)
    blocks += [Heading(2, "Summary"), _text_block(inc.summary, n)]
    blocks += [Heading(2, "Impact"), _text_block(inc.impact, n)]
    blocks += [Heading(2, "Root Cause"), _text_block(inc.root_cause, n)]
    blocks += _key_times(pir, zone)
    blocks += _diagram(pir)
    blocks += _metrics(pir, book)
    blocks += _escalation(pir)
    blocks += _checks(pir)
    blocks += _alerts(pir)
    blocks += _review(pir, book)
    blocks += _actions(pir)
    blocks += _customer_communication(pir)
    blocks += _timeline(pir, zone)
    zone_note = "UTC" if _is_utc(zone) else f"UTC, with {zone.key} alongside"
    blocks.append(
        Para(
            (f"Generated by incident-bot at {fmt_utc(pir.generated_at)} UTC. Times in {zone_note}.",),
            muted=True,
        )
    )
    return blocks


# -- Markdown --------------------------------------------------------------------------------------------

# Escaping modes: running text keeps its line breaks; bullets and table cells are one line; cells also
# escape pipes. (Chained replace after cheap `in` tests: str.translate with a dict is slow per character.)
_MD_TEXT, _MD_INLINE, _MD_CELL = "text", "inline", "cell"
# Only "<" before a letter, "/", "!" or "?" can open raw HTML in CommonMark; "< 5 min" stays readable.
_MD_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def _md(text: str, mode: str) -> str:
    if "[" in text or "]" in text:
        text = text.replace("[", "\\[").replace("]", "\\]")
    if mode != _MD_TEXT and ("\n" in text or "\r" in text):
        text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if mode == _MD_CELL and "|" in text:
        text = text.replace("|", "\\|")
    if "<" in text:
        text = _MD_TAG.sub("&lt;", text)
    return text


def _md_line(text: str) -> str:
    text = _md(text, _MD_TEXT)
    # People's text must not become headings, quotes, list items or fences inside the PIR's own structure.
    return "\\" + text if text[:1] in ("#", ">", "=", "+", "-", "*", "`", "~") else text


def _md_href(href: str) -> str:
    return quote(href, safe=":/?#&=%@+,;~!$'*.-_")


def _md_inline(part: Inline, table: str) -> str:
    if isinstance(part, str):
        return _md(part, table)
    if isinstance(part, Strong):
        return f"**{_md(part.text, table)}**"
    if isinstance(part, Code):
        return f"`{part.text.replace('`', 'ˋ')}`"
    if _safe_href(part.href):
        return f"[{_md(part.text, table)}]({_md_href(part.href)})"
    return _md(part.text, table)


def _md_str(cell: str) -> str:
    return _md(cell, _MD_CELL)


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, str):
        return _md_str(cell)
    if isinstance(cell, tuple):
        return "".join(_md_inline(p, _MD_CELL) for p in cell)
    return _md_inline(cell, _MD_CELL)


def _md_para(parts: tuple[Inline, ...], muted: bool) -> str:
    if len(parts) == 1 and isinstance(parts[0], str):
        text = "\n".join(_md_line(line) for line in parts[0].splitlines())
    else:
        text = "".join(_md_inline(p, _MD_TEXT) for p in parts).replace("\n", " ")
    return f"_{text}_" if muted and "\n" not in text and text else text


def markdown_parts(blocks: Iterable[Block]) -> Iterator[str]:
    for b in blocks:
        if isinstance(b, Heading):
            yield f"{'#' * b.level} {b.text.replace(chr(10), ' ')}\n\n"
        elif isinstance(b, Para):
            yield _md_para(b.parts, b.muted) + "\n\n"
        elif isinstance(b, Bullets):
            yield (
                "".join(f"- {''.join(_md_inline(p, _MD_INLINE) for p in item)}\n" for item in b.items) + "\n"
            )
        elif isinstance(b, Table):
            yield "| " + " | ".join(_md(h, _MD_CELL) for h in b.headers) + " |\n"
            yield "|" + "---|" * len(b.headers) + "\n"
            yield "".join("| " + " | ".join(map(_md_cell, row)) + " |\n" for row in b.rows)
            yield "\n"
        elif isinstance(b, Diagram):
            yield f"```mermaid\n{b.mermaid}\n```\n\n"
        elif isinstance(b, Timeline):
            yield "| " + " | ".join(b.headers) + " |\n"
            yield "|" + "---|" * len(b.headers) + "\n"
            yield "".join(b.lines(_md_str, _md_link, "| ", " | ", " |\n"))
            yield "\n"


def _md_link(href: str) -> str:
    return f"[message]({_md_href(href)})"


def _joined(parts: Iterable[str]) -> str:
    """One trailing newline; trimmed on the last part, not by copying a many-megabyte result."""
    out = list(parts)
    if out:
        out[-1] = out[-1].rstrip("\n") + "\n"
    return "".join(out)


def render_markdown(pir: PirData, book: SeverityBook, tz: str | ZoneInfo = "UTC") -> str:
    return _joined(markdown_parts(build(pir, book, tz)))


# -- HTML ------------------------------------------------------------------------------------------------

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#111827;margin:0;
background:#f9fafb}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem;background:#fff}
nav{max-width:1100px;margin:0 auto;padding:.6rem 1.5rem;font-size:.9rem}
h1{font-size:1.6rem;margin:.4rem 0}h2{border-bottom:1px solid #e5e7eb;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f6}tr:nth-child(even) td{background:#fafafa}
table.timeline td:first-child,table.timeline td:nth-child(2){white-space:nowrap;
font-variant-numeric:tabular-nums}
.muted{color:#6b7280}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#f3f4f6;padding:.6rem;overflow:auto}
svg.gantt{max-width:100%;height:auto}svg .grid{stroke:#e5e7eb}svg .tick{font-size:11px;fill:#6b7280}
svg .label{font-size:12px;fill:#111827}svg .dur{font-size:11px;fill:#374151}svg .in{fill:#fff}
"""


def _h(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return html.escape(text, quote=False)
    return text


def _html_inline(part: Inline) -> str:
    if isinstance(part, str):
        return _h(part)
    if isinstance(part, Strong):
        return f"<strong>{_h(part.text)}</strong>"
    if isinstance(part, Code):
        return f"<code>{_h(part.text)}</code>"
    if _safe_href(part.href):
        return f'<a href="{html.escape(part.href)}" rel="noopener noreferrer">{_h(part.text)}</a>'
    return _h(part.text)


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, str):
        return _h(cell)
    if isinstance(cell, tuple):
        return "".join(_html_inline(p) for p in cell)
    return _html_inline(cell)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def html_parts(blocks: Iterable[Block]) -> Iterator[str]:
    for b in blocks:
        if isinstance(b, Heading):
            yield f'<h{b.level} id="{_slug(b.text)}">{_h(b.text)}</h{b.level}>\n'
        elif isinstance(b, Para):
            body = "".join(_html_inline(p) for p in b.parts).replace("\n", "<br>\n")
            yield f'<p class="muted">{body}</p>\n' if b.muted else f"<p>{body}</p>\n"
        elif isinstance(b, Bullets):
            yield "<ul>" + "".join(f"<li>{''.join(map(_html_inline, i))}</li>" for i in b.items) + "</ul>\n"
        elif isinstance(b, Table):
            css = f' class="{_h(b.css)}"' if b.css else ""
            yield (
                f"<table{css}><thead><tr>"
                + "".join(f"<th>{_h(h)}</th>" for h in b.headers)
                + "</tr></thead><tbody>\n"
            )
            yield "".join(
                "<tr><td>" + "</td><td>".join(map(_html_cell, row)) + "</td></tr>\n" for row in b.rows
            )
            yield "</tbody></table>\n"
        elif isinstance(b, Diagram):
            yield f"<figure>{b.svg}</figure>\n"
            source = f'<pre class="mermaid">{_h(b.mermaid)}</pre>'
            yield f"<details><summary>Mermaid source</summary>{source}</details>\n"
        elif isinstance(b, Timeline):
            head = "".join(f"<th>{_h(h)}</th>" for h in b.headers)
            yield f'<table class="timeline"><thead><tr>{head}</tr></thead><tbody>\n'
            yield "".join(b.lines(_h, _html_link, "<tr><td>", "</td><td>", "</td></tr>\n"))
            yield "</tbody></table>\n"


def _html_link(href: str) -> str:
    return f'<a href="{html.escape(href)}" rel="noopener noreferrer">message</a>'


def page(title: str, body: Iterable[str], nav: Sequence[tuple[str, str]] = ()) -> str:
    links = " · ".join(f'<a href="{html.escape(href)}">{_h(text)}</a>' for text, href in nav)
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_h(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><nav>{links}</nav><main>\n"
    )
    return head + "".join(body) + "</main></body></html>\n"


def render_html(
    pir: PirData, book: SeverityBook, tz: str | ZoneInfo = "UTC", nav: Sequence[tuple[str, str]] = ()
) -> str:
    return page(f"PIR {pir.incident.id}", html_parts(build(pir, book, tz)), nav)


@dataclass(frozen=True)
class ListRow:
    id: str
    severity: str
    status: str
    summary: str
    declared_at: datetime
    resolved_at: datetime | None
    href: str
    is_drill: bool = False


def render_list_html(rows: Sequence[ListRow], tz: str | ZoneInfo = "UTC", now: datetime | None = None) -> str:
    zone = zone_of(tz)
    local = not _is_utc(zone)
    headers = (
        "Incident",
        "Severity",
        "Status",
        "Summary",
        "Declared (UTC)",
        *((zone.key,) if local else ()),
        "Duration",
    )
    table = [
        (
            Link(r.id + (" [DRILL]" if r.is_drill else ""), r.href),
            r.severity,
            r.status,
            r.summary,
            fmt_utc(r.declared_at),
            *((fmt_local(r.declared_at, zone),) if local else ()),
            fmt_duration(r.resolved_at - r.declared_at) if r.resolved_at else "ongoing",
        )
        for r in rows
    ]
    blocks: list[Block] = [
        Heading(1, "Incidents"),
        Para((f"{len(rows)} most recent, newest first.",), muted=True),
    ]
    blocks.append(Table(headers, table) if rows else Para(("No incidents recorded.",), muted=True))
    return page("Incidents", html_parts(blocks))


# -- stats -----------------------------------------------------------------------------------------------


def _cell(m: Measure) -> str:
    if m.value is None:
        return "—"
    mark = {"met": " ✅", "missed": " ❌"}.get(m.verdict, "")
    target = f" ({fmt_target(m.target)})" if m.target is not None else ""
    return f"{fmt_duration(m.value)}{mark}{target}"


def stats_blocks(stats: Stats, days: int) -> list[Block]:
    by = stats.by_severity
    counts = " · ".join(f"{s} {by[s].count}" for s in by)
    rows = [(s.severity, str(s.count), *(_cell(m) for m in s.measures)) for s in by.values()]
    rows.append(("All", str(stats.total), *(_cell(m) for m in stats.overall)))
    esc = stats.escalation_met
    esc_mark = "" if esc is None else (" ✅ met" if esc else " ❌ missed")
    trend = {"up": "↑ increasing (good)", "down": "↓ decreasing", "flat": "→ flat"}.get(
        stats.mttf_trend or "", ""
    )
    prev = (
        f"; previous {days} d: {fmt_duration(stats.previous_mttf)}"
        if stats.previous_total is not None
        else ""
    )
    return [
        Heading(1, f"Incident metrics: last {days} days"),
        Para((f"{fmt_utc(stats.start)} → {fmt_utc(stats.end)} UTC. Drills are not counted.",), muted=True),
        Para((f"Incidents: {stats.total} ({counts}), {stats.open} still open.",)),
        Table(("Severity", "Incidents", "MTTD", "MTTA", "MTTR"), rows),
        Bullets(
            [
                (
                    Strong("Escalation rate:"),
                    f" {fmt_rate(stats.escalation_rate)} ({stats.escalated} of {stats.total}"
                    " escalated beyond their first page)"
                    f", target < {stats.escalation_target * 100:.0f} %{esc_mark}",
                ),
                (
                    Strong("MTTF:"),
                    f" {fmt_duration(stats.mttf) if stats.mttf else 'no incidents'}"
                    f" (uptime {fmt_duration(stats.uptime)} / {stats.total} incidents){prev}"
                    + (f", trend {trend}" if trend else ""),
                ),
                (
                    Strong("Downtime:"),
                    f" {fmt_duration(stats.downtime)} (declared → resolved, overlaps once)",
                ),
            ]
        ),
        Para(
            (
                "MTTD = declared − detected; MTTA = acknowledged − declared; MTTR = resolved − declared; "
                "means per severity against the targets (MTTR P0 < 15 min, P1 < 60 min, P2 < 4 h; "
                "MTTD < 5 min for P0/P1).",
            ),
            muted=True,
        ),
    ]


def render_stats_markdown(stats: Stats, days: int) -> str:
    return _joined(markdown_parts(stats_blocks(stats, days)))


def stats_dict(stats: Stats) -> dict[str, Any]:
    def secs(td: timedelta | None) -> float | None:
        return None if td is None else td.total_seconds()

    def ms(items: list[Measure]) -> dict[str, Any]:
        return {
            m.name: {"seconds": secs(m.value), "target": secs(m.target), "verdict": m.verdict} for m in items
        }

    return {
        "start": stats.start.isoformat(),
        "end": stats.end.isoformat(),
        "total": stats.total,
        "open": stats.open,
        "by_severity": {k: {"count": v.count, **ms(v.measures)} for k, v in stats.by_severity.items()},
        "overall": ms(stats.overall),
        "escalated": stats.escalated,
        "escalation_rate": stats.escalation_rate,
        "escalation_target": stats.escalation_target,
        "escalation_met": stats.escalation_met,
        "downtime_seconds": secs(stats.downtime),
        "uptime_seconds": secs(stats.uptime),
        "mttf_seconds": secs(stats.mttf),
        "previous_mttf_seconds": secs(stats.previous_mttf),
        "mttf_trend": stats.mttf_trend,
    }
