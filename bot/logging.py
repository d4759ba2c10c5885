"""Logging that never prints secrets: every record is redacted when it is created, whatever handler
(console, a log shipper, pytest's capture) later formats it."""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.config import Settings

_TOKEN = re.compile(r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")
_SECRETS: set[str] = set()
_base_factory = logging.getLogRecordFactory()


def redact(text: str) -> str:
    for s in _SECRETS:
        text = text.replace(s, "[redacted]")
    return _TOKEN.sub("xox?-[redacted]", text)


# Routes whose query string is a credential (signed PIR links: `?token=` opens a PIR for 7 days).
SIGNED_PREFIXES = ("/incidents",)


def strip_signed_query(path: str) -> str:
    """`/incidents/X/pir.md?token=…` -> `/incidents/X/pir.md?[redacted]`; other paths unchanged, except
    that any query naming a token is dropped too."""
    base, sep, query = path.partition("?")
    if sep and (base.startswith(SIGNED_PREFIXES) or "token" in query.lower()):
        return f"{base}?[redacted]"
    return path


def _access_line(record: logging.LogRecord) -> None:
    # uvicorn.access logs `'%s - "%s %s HTTP/%s" %d'` with (client, method, path+query, version, status).
    args = record.args
    if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
        record.args = (args[0], args[1], strip_signed_query(args[2]), args[3], args[4])


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    if record.name == "uvicorn.access":
        _access_line(record)
    try:
        msg = record.getMessage()
    except Exception:
        return record
    clean = redact(msg)
    if clean != msg:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def register_secrets(settings: Settings) -> None:
    names = (
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "factory_api_key",
        "server_secret",
        "web_access_token",
    )
    _SECRETS.update(v for v in (settings.secret(n) for n in names) if v and len(v) >= 6)
    if logging.getLogRecordFactory() is not _factory:
        logging.setLogRecordFactory(_factory)


def configure_logging(settings: Settings) -> None:
    register_secrets(settings)
    root = logging.getLogger()
    if not any(getattr(h, "_incident_bot", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._incident_bot = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("incident_bot").setLevel(settings.log_level.upper())
