"""Sender authentication as Grafana and Alertmanager can send it: HTTP Basic (`basic_auth`, Grafana's
username/password) or a whole Authorization header (`authorization: {type, credentials}`). Constant time."""

from __future__ import annotations

import base64
import hmac
import re

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*) (.+)$", re.S)


def expected_header(credential: str) -> tuple[str, str] | None:
    """(scheme lower-cased, credentials) the sender must present, from the configured value."""
    if not credential:
        return None
    m = _SCHEME.match(credential)
    if m and ":" not in m.group(1):
        return m.group(1).lower(), m.group(2).strip()
    return "basic", base64.b64encode(credential.encode()).decode()


def authorized(header: str | None, credential: str) -> bool:
    want = expected_header(credential)
    if want is None or not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    ok_scheme = hmac.compare_digest(scheme.lower().encode(), want[0].encode())
    ok_value = hmac.compare_digest(given.strip().encode(), want[1].encode())
    return ok_scheme and ok_value
