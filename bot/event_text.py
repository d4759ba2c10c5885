"""Timeline events: stored without Slack markup, rendered per surface from `kind` + `data`. Pure.

How an event is stored (bot.incident_store.add_event):

- The bot's words for an event are a `Line`: plain strings (the bot's own words, and text people typed or
  outside systems sent, all kept as typed) and references to people (`Person`) and channels (`Room`) by id.
  `data["line"]` keeps it as JSON: strings, `{"user": id}`, `{"channel": id}`. Every new row has one (a
  plain `str` given to add_event is a one-string line), except the four kinds that carry people's text
  (note, declared, pinned, action_item), which are rendered from their own `data` keys.
- The `text` column holds the same line as neutral plain text, people as `@U…` and channels as `#C…`:
  readable in the database and in exports, with no Slack markup. No surface renders a new row from it.
- Other code reads `data`'s semantic keys (`users`, `via`, `level`, …): they stay as they were.

How each surface renders one (`render`, with a `Surface`):

- `SLACK` (the timeline view): strings escaped (bot.slack_text.esc), people `<@U…>` and channels `<#C…>`
  live.
- `PlainText(names, to_plain)` (the PIR's Markdown and HTML, served as the web view): strings as typed,
  people `@Name` and channels `#name` through the PIR's directory; the format escapes the result itself.

Rows written before the line was stored have Slack mrkdwn in `text` and no `data["line"]`: Slack shows that
text as it always did (it was built for Slack), the PIR un-Slacks it through `to_plain`. The four kinds
with people's text keep their own fallback (the column escaped whole for Slack).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.slack_text import esc, from_slack

Plain = Callable[[str], str]  # Slack mrkdwn -> readable text (bot/pir/render.py's Plain)


# -- the stored line ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A person on the line, by Slack user id."""

    id: str


@dataclass(frozen=True, slots=True)
class Room:
    """A channel on the line, by Slack channel id."""

    id: str


Part = str | Person | Room


class Line:
    """The words of one timeline event: `Line("Acknowledged by ", Person(u), " after 3 min")`.

    Strings are plain text (never markup), whatever their source; nested iterables of parts are flattened
    (`people(users)`)."""

    __slots__ = ("parts",)

    def __init__(self, *parts: Part | Line | Iterable[Part]) -> None:
        flat: list[Part] = []
        for p in parts:
            if isinstance(p, str | Person | Room):
                flat.append(p)
            elif isinstance(p, Line):
                flat.extend(p.parts)
            else:
                flat.extend(p)
        self.parts: tuple[Part, ...] = tuple(p for p in flat if p != "")

    def __add__(self, other: Line | Part) -> Line:
        return Line(self.parts, other.parts if isinstance(other, Line) else (other,))

    def __radd__(self, other: Part) -> Line:
        return Line(other, self.parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Line) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"Line{self.parts!r}"

    def plain(self) -> str:
        """The `text` column: neutral text, people as @U… and channels as #C… (no Slack markup)."""
        return render_parts(self.json(), NEUTRAL)

    def json(self) -> list[Any]:
        return [
            p if isinstance(p, str) else {"user": p.id} if isinstance(p, Person) else {"channel": p.id}
            for p in self.parts
        ]


def people(ids: Iterable[str], sep: str = ", ") -> list[Part]:
    """Several people on a line, separated by `sep`."""
    out: list[Part] = []
    for i, u in enumerate(ids):
        if i:
            out.append(sep)
        out.append(Person(u))
    return out


def stored(kind: str, text: str | Line, data: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """What add_event writes: the `text` column (neutral) and `data` with the line (see the docstring)."""
    out = dict(data or {})
    if kind in PEOPLES_TEXT and isinstance(text, str):
        return text, out  # as typed; rendered from its own data keys (a Line is kept: the PIR reads it)
    line = text if isinstance(text, Line) else Line(text)
    out["line"] = line.json()
    return line.plain(), out


# -- surfaces ----------------------------------------------------------------------------------------------


class Surface(Protocol):
    def text(self, s: str) -> str:
        """Plain text (the bot's words, typed or outside text) as this surface shows it."""
        ...

    def person(self, user: str) -> str: ...

    def channel(self, channel: str) -> str: ...

    def legacy(self, text: str) -> str:
        """A row from before `data["line"]`: its text is Slack mrkdwn built by the bot."""
        ...

    def message(self, text: str) -> str:
        """Slack's own mrkdwn of a message (a pin) or an old row's typed text: shown as typed, inert."""
        ...


_USER_ID = re.compile(r"[UW][A-Z0-9]{1,40}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{1,40}")


class SlackSurface:
    """Slack mrkdwn: every string escaped, our mentions and channel links live."""

    def text(self, s: str) -> str:
        return esc(s)

    def person(self, user: str) -> str:
        return f"<@{user}>" if _USER_ID.fullmatch(user) else esc(f"@{user}")

    def channel(self, channel: str) -> str:
        return f"<#{channel}>" if _CHANNEL_ID.fullmatch(channel) else esc(f"#{channel}")

    def legacy(self, text: str) -> str:
        return text

    def message(self, text: str) -> str:
        return esc(from_slack(text))


class _Neutral:
    """The `text` column's form: as typed, people and channels by id."""

    def text(self, s: str) -> str:
        return s

    def person(self, user: str) -> str:
        return f"@{user}"

    def channel(self, channel: str) -> str:
        return f"#{channel}"

    def legacy(self, text: str) -> str:
        return text

    def message(self, text: str) -> str:
        return text


class PlainText:
    """Readable text before a format's own escaping (the PIR's Markdown and HTML): strings as typed, people
    and channels by name from `names` (ids last); old rows' mrkdwn through `to_plain`."""

    def __init__(self, names: Mapping[str, str], to_plain: Plain) -> None:
        self.names, self.to_plain = names, to_plain

    def text(self, s: str) -> str:
        return s

    def person(self, user: str) -> str:
        return "@" + (self.names.get(user) or user)

    def channel(self, channel: str) -> str:
        return "#" + (self.names.get(channel) or channel)

    def legacy(self, text: str) -> str:
        return self.to_plain(text) if ("<" in text or "&" in text) else text

    def message(self, text: str) -> str:
        return self.legacy(text)


SLACK = SlackSurface()
NEUTRAL = _Neutral()


# -- rendering ---------------------------------------------------------------------------------------------


def render_parts(parts: list[Any], surface: Surface) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(surface.text(p))
        elif isinstance(p, dict) and isinstance(p.get("user"), str):
            out.append(surface.person(p["user"]))
        elif isinstance(p, dict) and isinstance(p.get("channel"), str):
            out.append(surface.channel(p["channel"]))
    return "".join(out)


def people_in(data: Mapping[str, Any] | None) -> list[str]:
    """The user ids a stored line names (the PIR looks their names up)."""
    parts = (data or {}).get("line")
    if not isinstance(parts, list):
        return []
    return [p["user"] for p in parts if isinstance(p, dict) and isinstance(p.get("user"), str)]


def render_line(line: Line, surface: Surface) -> str:
    """A line built now (a Slack message that says the same as its timeline event)."""
    return render_parts(line.json(), surface)


def render(kind: str, text: str, data: Mapping[str, Any] | None, surface: Surface) -> str:
    """One timeline event as `surface` shows it."""
    d = data or {}
    if kind in PEOPLES_TEXT and _structured(kind, d):
        return _peoples_text(kind, d, text, surface)
    parts = d.get("line")
    if isinstance(parts, list):
        return render_parts(parts, surface)
    if kind in PEOPLES_TEXT:
        # A row from before `data` kept the text: its column is what Slack sent (mrkdwn), shown inert.
        return surface.message(text)
    return surface.legacy(text)


def slack_text(kind: str, text: str, data: Mapping[str, Any] | None) -> str:
    """The event as a Slack mrkdwn line (the timeline view): people's text escaped, our mentions live."""
    return render(kind, text, data, SLACK)


# -- the kinds that carry people's text --------------------------------------------------------------------

PEOPLES_TEXT = frozenset({"note", "declared", "pinned", "action_item"})


def _typed(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _structured(kind: str, d: Mapping[str, Any]) -> bool:
    if kind == "declared":
        return _typed(d, "summary") is not None and _typed(d, "label") is not None
    return kind == "pinned" or _typed(d, "text") is not None


def _peoples_text(kind: str, d: Mapping[str, Any], text: str, s: Surface) -> str:
    if kind == "note":
        return s.text(d["text"])
    if kind == "declared":
        return f"Declared {s.text(d['label'])}: {s.text(d['summary'])}"
    if kind == "pinned":
        # Slack's own mrkdwn of the message: shown as typed, its mentions and @channel inert.
        return s.message(str(d.get("text") or text))
    item = str(d["text"])  # action_item
    number = d.get("number")
    if d.get("status") == "Done":
        return f"Action item #{number} done: {s.text(item)}"
    owner = d.get("owner")
    who = s.person(owner) if isinstance(owner, str) and owner else "none"
    due = d.get("due") or "no due date"
    return f"Action item #{number} added: {s.text(item)} (owner {who}, due {s.text(str(due))})"
