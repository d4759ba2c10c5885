"""Signed, expiring links to an incident's PIR: `<expires>.<hmac>` in `?token=`.

The HMAC (SHA-256, server secret) covers a purpose string, the scope (one incident id, or ALL for the list)
and the expiry, so a token cannot be moved to another incident, stretched, or reused for another purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

LINK_TTL = timedelta(days=7)
ALL = "*"  # scope of a token that opens the incident list
_PURPOSE = b"incident-bot/pir-link/v1"
_SIG_LEN = 43  # base64url of 32 bytes, unpadded
_MAX_EXP_DIGITS = 12

Verdict = Literal["ok", "invalid", "expired"]


def _mac(secret: bytes, scope: str, exp: int) -> str:
    msg = b"\n".join((_PURPOSE, scope.encode(), str(exp).encode()))
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(incident_id: str, expires_at: datetime, secret: bytes) -> str:
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    exp = int(expires_at.timestamp())
    return f"{exp}.{_mac(secret, incident_id, exp)}"


def check(token: str | None, incident_id: str, secret: bytes, now: datetime) -> Verdict:
    """'ok', 'invalid' (malformed, tampered, other incident) or 'expired'. The signature is checked first,
    so an attacker learns nothing about expiry from a forged token."""
    if not token or len(token) > _MAX_EXP_DIGITS + 1 + _SIG_LEN:
        return "invalid"
    exp_text, dot, sig = token.partition(".")
    if not dot or not exp_text.isascii() or not exp_text.isdigit() or len(exp_text) > _MAX_EXP_DIGITS:
        return "invalid"
    if not hmac.compare_digest(sig.encode(), _mac(secret, incident_id, int(exp_text)).encode()):
        return "invalid"
    return "ok" if now.timestamp() < int(exp_text) else "expired"


def verify(token: str | None, incident_id: str, secret: bytes, now: datetime) -> bool:
    return check(token, incident_id, secret, now) == "ok"


def expiry(now: datetime, ttl: timedelta = LINK_TTL) -> datetime:
    return (now + ttl).astimezone(UTC).replace(microsecond=0)


def incident_url(
    public_url: str,
    incident_id: str,
    secret: bytes,
    now: datetime,
    *,
    suffix: str = "/pir.md",
    ttl: timedelta = LINK_TTL,
) -> str:
    """PUBLIC_URL/incidents/<id>/pir.md?token=… (suffix "" for the HTML page)."""
    token = sign(incident_id, expiry(now, ttl), secret)
    return f"{public_url.rstrip('/')}/incidents/{quote(incident_id, safe='')}{suffix}?token={token}"


def list_url(public_url: str, secret: bytes, now: datetime, ttl: timedelta = LINK_TTL) -> str:
    return f"{public_url.rstrip('/')}/incidents?token={sign(ALL, expiry(now, ttl), secret)}"
