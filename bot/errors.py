"""One exception for "tell the person why not": `message` is shown to them as it is (already written for
Slack), nothing is logged as a failure. Raised anywhere below the adapters; the handlers turn it into an
ephemeral answer (handlers/app.py run_guarded), the CLIs into a line on stderr."""

from __future__ import annotations


class UserFacingError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
