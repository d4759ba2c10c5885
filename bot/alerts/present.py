"""Alerts as Slack mrkdwn. Every string from a sender is escaped here (`&`, `<`, `>`), so an alert cannot
mention @channel, forge a link or a user mention; links are ours, built from URLs that passed a check."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bot.models import Alert

MAX_VALUE = 300  # one label/annotation value shown in Slack
MAX_ALERTS_SHOWN = 10  # per war-room message; the rest are counted and listed by `/incident alerts`
MAX_MESSAGE = 3800
LINK_ORDER = (
    ("generator", "source"),
    ("dashboard", "dashboard"),
    ("panel", "panel"),
    ("silence", "silence"),
    ("runbook", "runbook"),
)
SOURCE_NAMES = {"alertmanager": "Alertmanager", "grafana": "Grafana"}


def esc(text: str) -> str:
    """Slack mrkdwn control characters; also drops the zero-width/bidi controls that hide text."""
    text = "".join(ch for ch in text if ch.isprintable() or ch in "\n\t")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, limit: int = MAX_VALUE) -> str:
    return esc(plain_line(text, limit))


def plain_line(text: str, limit: int = MAX_VALUE) -> str:
    """One line of outside text, clipped, as sent (the timeline stores it so; each surface escapes it)."""
    return clip(" ".join(text.split()), limit)


def safe_url(url: str) -> str | None:
    """Only http(s) URLs become links, and only ones Slack cannot read as markup."""
    url = url.strip()
    if len(url) > 2000 or any(ch in url for ch in "<>| \n\t\"'"):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url.replace("&", "&amp;")


def links_text(links: dict[str, Any]) -> str:
    out = []
    for key, label in LINK_ORDER:
        url = safe_url(str(links.get(key) or ""))
        if url:
            out.append(f"<{url}|{label}>")
    return " · ".join(out)


def _when(dt: datetime | None) -> str:
    return f"{dt:%H:%M:%S} UTC" if dt else "—"


def _values(values: dict[str, Any]) -> str:
    parts = []
    for k, v in list(values.items())[:8]:
        shown = f"{v:.4g}" if isinstance(v, float) else str(v)
        parts.append(f"{one_line(str(k), 40)}={one_line(shown, 80)}")
    return ", ".join(parts)


def alert_block(a: Alert) -> str:
    """One alert: name and status, summary/description, labels, values, links."""
    icon = "🔴" if a.status == "firing" else "✅"
    head = f"{icon} *{one_line(a.name, 200)}* ({a.status}, since {_when(a.starts_at)})"
    if a.status == "resolved" and a.ends_at:
        head += f", ended {_when(a.ends_at)}"
    lines = [head]
    ann = a.annotations or {}
    for key in ("summary", "description"):
        if ann.get(key):
            lines.append(f"> {one_line(str(ann[key]))}")
    labels = {k: v for k, v in (a.labels or {}).items() if k != "alertname"}
    if labels:
        shown = ", ".join(
            f"`{one_line(k, 60)}={one_line(str(v), 120)}`" for k, v in list(labels.items())[:12]
        )
        more = f" +{len(labels) - 12} more" if len(labels) > 12 else ""
        lines.append(f"Labels: {shown}{more}")
    if a.values:
        lines.append(f"Values: {_values(a.values)}")
    if links := links_text(a.links or {}):
        lines.append(links)
    return "\n".join(lines)


def notification_message(
    source: str,
    new: Sequence[Alert],
    refired: Sequence[Alert],
    resolved: Sequence[Alert],
    *,
    all_resolved: bool,
    still_firing: int,
) -> str:
    """The war-room message for one notification's changes (repeats post nothing)."""
    name = SOURCE_NAMES.get(source, source)
    head = []
    if new:
        head.append(f"{len(new)} new")
    if refired:
        head.append(f"{len(refired)} firing again")
    if resolved:
        head.append(f"{len(resolved)} resolved")
    parts = [f"🚨 *{name}*: {', '.join(head) or 'update'} · {still_firing} firing now"]
    shown = 0
    body_len = len(parts[0])
    listed = [*new, *refired, *resolved]
    for a in listed:
        block = alert_block(a)
        if shown >= MAX_ALERTS_SHOWN or body_len + len(block) > MAX_MESSAGE:
            break
        parts.append(block)
        body_len += len(block) + 2
        shown += 1
    if shown < len(listed):
        parts.append(f"…and {len(listed) - shown} more: `/incident alerts` lists them all.")
    if all_resolved:
        parts.append("✅ *All alerts resolved.* The incident stays open until it is resolved.")
    return "\n\n".join(parts)


def alert_line(a: Alert) -> str:
    """One line for `/incident alerts` and the timeline."""
    icon = "🔴" if a.status == "firing" else "✅"
    extra = f", still firing ×{a.repeats}" if a.repeats and a.status == "firing" else ""
    if a.flaps:
        extra += f", flapped ×{a.flaps}"
    summary = (a.annotations or {}).get("summary", "")
    text = f"{icon} *{one_line(a.name, 120)}* ({SOURCE_NAMES.get(a.source, a.source)}, {a.status}{extra}"
    text += f", since {_when(a.starts_at)})"
    if summary:
        text += f" — {one_line(str(summary), 160)}"
    if links := links_text(a.links or {}):
        text += f" {links}"
    return text
