"""Moved to bot.incident_store (a store module below every domain package). This name stays for code written
against it before the move; new code imports bot.incident_store. Remove once no branch uses it."""

from bot.incident_store import (  # noqa: F401
    add_event,
    ago,
    by_channel,
    claim_request,
    declared_since,
    event_kinds,
    events,
    get,
    has_event,
    id_taken,
    open_for_problem,
    request_ref,
    set_request_ref,
)
