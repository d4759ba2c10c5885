"""Durations and time zones, written once: the one duration grammar of playbook_content ('30s', '10m', '1h',
'2d', '250ms', bare numbers as seconds), the formatters every surface uses, and the zone lookup.

Formatters, by what they show:
- `format_duration`: a configured period, exactly ('10 min', '24 h', '2 d', '90 s').
- `fmt_duration`: a measured span, to `units` units ('1 h 23 min', '4 min 12 s', '45 s').
- `fmt_elapsed`: time since something, to the minute ('45 s' under a minute, '12 min', '3 h 5 min', '4 h')."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | int | float | None) -> timedelta | None:
    """'10m' -> 10 minutes; numbers (and unitless strings) are seconds; None stays None. ValueError if bad."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"bad duration {value!r}: use forms like 30s, 10m, 1h, 2d")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


def format_duration(td: timedelta | None) -> str:
    if td is None:
        return "—"
    s = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0 and (unit != "d" or s >= 2 * 86400):  # "24 h" reads better than "1 d"
            return f"{s // size} {unit}"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


def fmt_duration(td: timedelta | None, *, units: int = 2) -> str:
    """Human duration: '1 h 23 min', '4 min 12 s', '45 s', '2 d 3 h'. None -> '—'.

    Shows `units` consecutive units from the largest non-zero one, so 1 h 0 min 5 s reads '1 h'."""
    if td is None:
        return "—"
    secs = round(td.total_seconds())
    if secs < 0:
        return "-" + fmt_duration(-td, units=units)
    amounts = []
    for name, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        n, secs = divmod(secs, size)
        amounts.append((n, name))
    first = next((i for i, (n, _) in enumerate(amounts) if n), len(amounts) - 1)
    shown = [f"{n} {name}" for n, name in amounts[first : first + units] if n]
    return " ".join(shown) or "0 s"


def fmt_elapsed(td: timedelta | None) -> str:
    """To the minute; seconds under a minute (scaled ladders in the fast sandbox run in seconds)."""
    if td is None:
        return "—"
    secs = max(int(td.total_seconds()), 0)
    if secs < 60:
        return f"{secs} s"
    mins = secs // 60
    if mins < 120:
        return f"{mins} min"
    return f"{mins // 60} h" if mins % 60 == 0 else f"{mins // 60} h {mins % 60} min"


def zone(name: str | ZoneInfo | None) -> ZoneInfo | None:
    """The zone called `name` (an Area/City), or None for no name or an unknown one."""
    if isinstance(name, ZoneInfo):
        return name
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
