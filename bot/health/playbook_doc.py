"""The JWT Pizza Factory playbook (playbook_content/jwtFactory.md), split into sections for Slack."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.config import CONTENT_DIR

PATH = CONTENT_DIR / "jwtFactory.md"


@lru_cache(maxsize=1)
def sections() -> list[tuple[str, str]]:
    """[(title, body)] per `## ` heading, Markdown converted to Slack mrkdwn where it differs."""
    text = PATH.read_text(encoding="utf-8")
    out: list[tuple[str, str]] = []
    for chunk in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = chunk.partition("\n")
        body = re.sub(r"\*\*(.+?)\*\*", r"*\1*", body.strip())
        body = re.sub(r"^### (.+)$", r"*\1*", body, flags=re.M)
        out.append((title.strip(), body))
    return out
