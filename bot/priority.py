"""How urgent the Slack calls made in the current task are. The rate gate (handlers/rate_gate.py) serves
lower numbers first when a method's tokens are short; a context variable keeps the ChatPort's signatures."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

PAGE, NORMAL, BACKGROUND = 0, 5, 9
priority: contextvars.ContextVar[int] = contextvars.ContextVar("slack_priority", default=NORMAL)


@contextlib.contextmanager
def with_priority(level: int) -> Iterator[None]:
    token = priority.set(level)
    try:
        yield
    finally:
        priority.reset(token)
