"""An unauthenticated client on the internet: whatever bytes, headers and content types it sends to
/slack/events, the answer is 401, 400 or 413, never a 500, never a traceback, and nothing is stored or sent."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.support import BotHarness, sign

ALLOWED = {400, 401, 413}

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/json",
            "application/JSON",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
).map(str.strip)  # a client cannot send leading/trailing blanks in a header value
# Header values as a client can put them on the wire (latin-1 bytes), including `²`, spaces, huge numbers.
HEADER_VALUES = st.one_of(
    st.sampled_from(["", "²", "1e9", "-1", "99999999999999999999999", "v0=", "v0=" + "0" * 64, "1 1"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=80),
).map(str.strip)
BODIES = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from(
        [
            b"{",
            b"[]",
            b"null",
            b'"x"',
            b"\xff\xfe\x00",
            b"payload=notjson",
            b"payload=%7B",
            b"payload=%FF",
            b"command=/incident&text=declare+P1+x",
            b"ssl_check=1",
            b'{"type":"url_verification","challenge":"c"}',
            b"&" * 5000,
        ]
    ),
    st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=8).map(
        lambda d: urlencode(d).encode()
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
        max_leaves=12,
    ).map(lambda v: json.dumps(v).encode()),
)


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


@hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=BODIES,
    content_type=CONTENT_TYPES,
    ts=st.one_of(st.none(), HEADER_VALUES),
    sig=st.one_of(st.none(), HEADER_VALUES),
)
async def test_unsigned_anything_is_401_400_or_413(
    lite_bot: BotHarness,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    ts: str | None,
    sig: str | None,
) -> None:
    headers = {"Content-Type": content_type}
    if ts is not None:
        headers["X-Slack-Request-Timestamp"] = ts
    if sig is not None:
        headers["X-Slack-Signature"] = sig
    resp = await lite_bot.http.post(
        f"{lite_bot.url}/slack/events",
        content=body,
        headers={k: v.encode("latin-1") for k, v in headers.items()},
    )
    assert resp.status_code in ALLOWED, (resp.status_code, resp.text)
    await lite_bot.drain()
    _no_tracebacks(caplog)
    assert await lite_bot.incidents() == []
    assert lite_bot.slack.calls == []


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{", "application/json"),
        (b"[]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"payload=notjson", "application/x-www-form-urlencoded"),
        (b'{"type":"url_verification","challenge":"c"}', "application/json"),
        (
            b"command=%2Fincident&text=declare+P1+x&user_id=U1&channel_id=C1",
            "application/x-www-form-urlencoded",
        ),
    ],
)
@pytest.mark.parametrize("timestamp", ["²", "", "12abc", None])
async def test_issue_examples_unsigned_are_401_with_one_warning_line(
    lite_bot: BotHarness,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    timestamp: str | None,
) -> None:
    headers: dict[str, bytes] = {"Content-Type": content_type.encode()}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp.encode()
        headers["X-Slack-Signature"] = b"v0=" + b"a" * 64
    caplog.set_level(logging.WARNING)
    resp = await lite_bot.http.post(f"{lite_bot.url}/slack/events", content=body, headers=headers)
    assert resp.status_code == 401
    _no_tracebacks(caplog)
    ours = [r for r in caplog.records if r.name.startswith("incident_bot") or r.name.startswith("slack_bolt")]
    assert len(ours) == 1 and ours[0].levelno == logging.WARNING, [r.getMessage() for r in ours]


async def test_oversized_body_is_413_before_the_signature(lite_bot: BotHarness) -> None:
    body = b"command=%2Fincident&text=" + b"x" * 1_100_000
    resp = await lite_bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 413
    await lite_bot.drain()
    assert await lite_bot.incidents() == []


async def test_oversized_chunked_body_is_413(lite_bot: BotHarness) -> None:
    """No Content-Length (chunked): the body is counted as it arrives."""

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    resp = await lite_bot.http.post(
        f"{lite_bot.url}/slack/events",
        content=chunks(),
        headers={"Content-Type": "application/json", **sign(b"")},
    )
    assert resp.status_code == 413


async def test_million_field_unsigned_form_is_401_and_signed_is_400(lite_bot: BotHarness) -> None:
    """The signature comes before any parse: an unsigned 1,000,000-field form costs one HMAC (401); signed, the
    field count is refused on the bytes before parse_qs runs (400)."""
    body = b"&" * 999_999  # 1,000,000 empty fields, under the 1 MB limit
    unsigned = await lite_bot.http.post(
        f"{lite_bot.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsigned.status_code == 401
    signed = await lite_bot.post_signed(body, "application/x-www-form-urlencoded")
    assert signed.status_code == 400 and "too many" in signed.json()["error"]
