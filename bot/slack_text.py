"""The one escaping boundary for Slack text.

People's text (summaries, impact, notes, pinned messages, action items) and outside text (the Factory's
messages, alert payloads) is stored exactly as typed and escaped here, at the moment a Slack text is
built. Slack reads `<…>` as control sequences (`<!channel>`, `<@U…>`, `<#C…>`, `<url|label>`) in mrkdwn,
in the `text` of messages and in channel topics; escaping `&`, `<` and `>` makes all of them inert while
Slack still shows the characters as typed. The bot's own mentions are built around the escaped text, so
they stay live. Pure: no Slack import.
"""

from __future__ import annotations

import re

# Slack sends what people type in slash commands and messages with these three escaped.
_ENTITY = re.compile(r"&(amp|lt|gt);")
_UNENTITY = {"amp": "&", "lt": "<", "gt": ">"}


def esc(text: object) -> str:
    """Text for Slack mrkdwn / message text / topics: every `&`, `<`, `>` escaped, nothing stripped."""
    s = "" if text is None else str(text)
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    return s


def esc_clip(text: object, limit: int) -> str:
    """esc(text), at most `limit` characters, never cutting an entity (`&am…`) in half."""
    out = esc(text)
    if len(out) <= limit:
        return out
    cut = out[: max(limit - 1, 0)]
    amp = cut.rfind("&", max(len(cut) - 5, 0))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def from_slack(text: str) -> str:
    """Slack's encoding of typed text (`&lt;` for a typed `<`) back to the characters as typed, so that
    what we store is what the person typed and esc() escapes it exactly once."""
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda m: _UNENTITY[m.group(1)], text)
