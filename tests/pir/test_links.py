"""Signed PIR links: valid, tampered, expired, moved to another incident, malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.pir import links

SECRET = b"test-server-secret"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
INC = "INC-20261123-120000"


def test_valid_token_until_it_expires() -> None:
    token = links.sign(INC, NOW + timedelta(days=7), SECRET)
    assert links.check(token, INC, SECRET, NOW) == "ok"
    assert links.verify(token, INC, SECRET, NOW + timedelta(days=7) - timedelta(seconds=1))
    assert links.check(token, INC, SECRET, NOW + timedelta(days=7)) == "expired"
    assert not links.verify(token, INC, SECRET, NOW + timedelta(days=30))


def test_tampered_tokens_are_refused() -> None:
    token = links.sign(INC, NOW + timedelta(days=7), SECRET)
    exp, sig = token.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    stretched = f"{int(exp) + 86400 * 365}.{sig}"  # a longer life without the secret
    for bad in (f"{exp}.{flipped}", stretched, f"{exp}.{sig[:-2]}", f"{exp}.", f".{sig}", token + "x"):
        assert links.check(bad, INC, SECRET, NOW) == "invalid", bad
    assert links.check(token, "INC-20261123-120001", SECRET, NOW) == "invalid"  # another incident
    assert links.check(token, links.ALL, SECRET, NOW) == "invalid"  # not a list token
    assert links.check(token, INC, b"another-secret", NOW) == "invalid"


@pytest.mark.parametrize(
    "junk", ["", "abc", "123", "１２３.abc", "-5.abc", "9" * 40 + ".x", "1." + "a" * 500]
)
def test_malformed_tokens_are_invalid(junk: str) -> None:
    assert links.check(junk, INC, SECRET, NOW) == "invalid"
    assert links.check(None, INC, SECRET, NOW) == "invalid"


def test_forged_expired_token_reports_invalid_not_expired() -> None:
    forged = f"{int((NOW - timedelta(days=1)).timestamp())}.{'A' * 43}"
    assert links.check(forged, INC, SECRET, NOW) == "invalid"


def test_urls_carry_a_seven_day_token() -> None:
    url = links.incident_url("https://bot.example.com/", INC, SECRET, NOW)
    assert url.startswith(f"https://bot.example.com/incidents/{INC}/pir.md?token=")
    token = url.split("token=")[1]
    assert links.verify(token, INC, SECRET, NOW + timedelta(days=6, hours=23))
    assert not links.verify(token, INC, SECRET, NOW + timedelta(days=7, seconds=1))
    page = links.incident_url("https://bot.example.com", INC, SECRET, NOW, suffix="")
    assert page.startswith(f"https://bot.example.com/incidents/{INC}?token=")
    listing = links.list_url("https://bot.example.com", SECRET, NOW)
    assert links.verify(listing.split("token=")[1], links.ALL, SECRET, NOW)


def test_naive_expiry_is_a_bug() -> None:
    with pytest.raises(ValueError):
        links.sign(INC, datetime(2026, 11, 30), SECRET)
