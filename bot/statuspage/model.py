"""The status page as data: states, a snapshot of everything customers may see, and per-day availability.

Pure: no SQL, no HTTP. A Snapshot holds only public fields (titles and messages written for customers,
component states, times) so no renderer can reach internal text even by mistake."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from bot.states import ComponentState, PublicIncidentStatus

STATES: tuple[str, ...] = tuple(ComponentState)
STATE_LABEL = {
    "operational": "Operational",
    "degraded": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
OVERALL_LABEL = {
    "operational": "All systems operational",
    "degraded": "Some systems are degraded",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
INCIDENT_STATUSES: tuple[str, ...] = tuple(PublicIncidentStatus)
INCIDENT_LABEL = {s: s.capitalize() for s in INCIDENT_STATUSES}
# Share of a period counted as unavailable in each state (degraded is slow, not down; a partial outage
# is counted as half down). Documented in the README next to the bars.
DOWNTIME = {"operational": 0.0, "degraded": 0.0, "partial_outage": 0.5, "major_outage": 1.0}


def rank(state: str) -> int:
    return STATES.index(state) if state in STATES else 0


def worst(states: Iterable[str | None]) -> str:
    best = "operational"
    for s in states:
        if s is not None and rank(s) > rank(best):
            best = s
    return best


@dataclass(frozen=True)
class DayBar:
    day: date
    availability: float  # 0..1
    worst: str

    @property
    def label(self) -> str:
        extra = "" if self.worst == "operational" else f", {STATE_LABEL[self.worst].lower()}"
        return f"{self.day:%d %b %Y}: {self.availability * 100:.2f} % available{extra}"


@dataclass(frozen=True)
class ComponentView:
    key: str
    name: str
    description: str
    state: str
    automated: bool = False  # the state shown comes from automatic detection, no human wrote it
    automated_at: datetime | None = None
    days: tuple[DayBar, ...] = ()

    @property
    def uptime(self) -> float:
        return sum(d.availability for d in self.days) / len(self.days) if self.days else 1.0


@dataclass(frozen=True)
class UpdateView:
    id: int
    status: str
    message: str
    at: datetime
    components: tuple[tuple[str, str], ...] = ()  # (component name, state) as this update set them


@dataclass(frozen=True)
class IncidentView:
    id: int
    title: str
    status: str
    impact: str
    started_at: datetime
    resolved_at: datetime | None
    updates: tuple[UpdateView, ...]  # newest first

    @property
    def updated_at(self) -> datetime:
        return self.updates[0].at if self.updates else self.started_at


@dataclass(frozen=True)
class MaintenanceView:
    id: int
    title: str
    message: str
    starts_at: datetime
    ends_at: datetime
    components: tuple[str, ...] = ()  # names

    def phase(self, now: datetime) -> str:
        if now < self.starts_at:
            return "scheduled"
        return "in_progress" if now < self.ends_at else "completed"


@dataclass(frozen=True)
class Snapshot:
    title: str
    url: str
    generated_at: datetime
    components: tuple[ComponentView, ...]
    incidents: tuple[IncidentView, ...]  # open first, then resolved within the history window; newest first
    maintenance: tuple[MaintenanceView, ...] = ()
    support_url: str = ""
    preview: bool = False  # a draft applied for its author: never cached, never indexed
    history_days: int = 90

    @property
    def overall(self) -> str:
        return worst(c.state for c in self.components)

    @property
    def active(self) -> tuple[IncidentView, ...]:
        return tuple(i for i in self.incidents if i.status != "resolved")

    @property
    def past(self) -> tuple[IncidentView, ...]:
        return tuple(i for i in self.incidents if i.status == "resolved")

    @property
    def updated_at(self) -> datetime:
        """Last time anything visible changed: the page's Last-Modified and the feed's <updated>."""
        times = [u.at for i in self.incidents for u in i.updates]
        times += [c.automated_at for c in self.components if c.automated and c.automated_at]
        times += [m.starts_at for m in self.maintenance if m.starts_at <= self.generated_at]
        return max(times) if times else self.generated_at.replace(hour=0, minute=0, second=0, microsecond=0)

    def with_draft(self, draft: IncidentView, states: Mapping[str, str]) -> Snapshot:
        """The page as it will look once `draft` is published: its incident replaced or added, its
        component states applied (automated states still count: the worse one shows)."""
        others = tuple(i for i in self.incidents if i.id != draft.id)
        comps = tuple(
            replace(c, state=worst((states[c.key], c.state if c.automated else None)))
            if c.key in states
            else c
            for c in self.components
        )
        return replace(self, incidents=(draft, *others), components=comps, preview=True)


@dataclass(frozen=True)
class Change:
    at: datetime
    state: str


def day_bars(
    changes: Sequence[Change], days: int, now: datetime, before: str = "operational"
) -> tuple[DayBar, ...]:
    """Per-day availability over the last `days` days (today last) from a component's state changes.

    `before` is the state in force before the first change in `changes` (the caller passes the last
    change before the window). Today counts up to `now` only."""
    ordered = sorted(changes, key=lambda c: c.at)
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    out: list[DayBar] = []
    state, i = before, 0
    for n in range(days):
        d = first + timedelta(days=n)
        start = datetime.combine(d, time(0), tzinfo=UTC)
        end = min(start + timedelta(days=1), now)
        while i < len(ordered) and ordered[i].at <= start:
            state = ordered[i].state
            i += 1
        seen, down, t = {state}, 0.0, start
        j = i
        cur = state
        # Today ends now, and a change made this instant already colours today's bar.
        while j < len(ordered) and (ordered[j].at < end or (end == now and ordered[j].at == now)):
            down += DOWNTIME.get(cur, 0.0) * (ordered[j].at - t).total_seconds()
            t, cur = ordered[j].at, ordered[j].state
            seen.add(cur)
            j += 1
        down += DOWNTIME.get(cur, 0.0) * max((end - t).total_seconds(), 0.0)
        span = max((end - start).total_seconds(), 1.0)
        out.append(DayBar(d, max(0.0, 1.0 - down / span), worst(seen)))
    return tuple(out)


@dataclass(frozen=True)
class Draft:
    """What an author composed, before it is published (validated by `validate_draft`)."""

    title: str
    status: str
    message: str
    states: dict[str, str] = field(default_factory=dict)  # component key -> state


MAX_TITLE = 120
MAX_MESSAGE = 2000


def validate_draft(title: str, status: str, message: str, states: Mapping[str, str | None]) -> dict[str, str]:
    """Errors keyed by field ('title', 'status', 'message', component key); empty when publishable."""
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Give the update a title customers will understand."
    elif len(title) > MAX_TITLE:
        errors["title"] = f"Keep the title under {MAX_TITLE} characters (it is {len(title)})."
    if status not in INCIDENT_STATUSES:
        errors["status"] = "Pick a status."
    if not message.strip():
        errors["message"] = "Write what customers should know: what is affected and what you are doing."
    elif len(message) > MAX_MESSAGE:
        errors["message"] = f"Keep the message under {MAX_MESSAGE} characters (it is {len(message)})."
    for key, st in states.items():
        if st not in STATES:
            errors[key] = "Pick a state."
    return errors
