"""Markdown (our playbooks) to native Block Kit: paragraphs unwrapped, tables as lists, within Slack's limits.

Pure. Slack's mrkdwn has no tables and treats every newline as a line break, so text hard-wrapped at 120
columns in the source would show ragged; a table would show as pipes."""

from __future__ import annotations

import re

from handlers.blocks import MAX_BLOCKS, SECTION_MAX, Blocks, section

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")
_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline(text: str) -> str:
    """One line of Markdown as mrkdwn: escaped first, then our own markup (links, bold) added."""
    out = _escape(text)
    out = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", out)
    return _BOLD.sub(r"*\1*", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> list[str]:
    """A Markdown table as one bullet per row: first cell bold, the others 'Header: value'."""
    rows = [_cells(x) for x in lines if not _RULE.match(x.strip())]
    if not rows:
        return []
    head, body = rows[0], rows[1:]
    out = []
    for row in body:
        first = inline(row[0]) if row else ""
        rest = [f"{inline(h)}: {inline(v)}" for h, v in zip(head[1:], row[1:], strict=False) if v]
        out.append(f"• *{first}*" + (" — " + " · ".join(rest) if rest else ""))
    return out


def to_mrkdwn(md: str) -> list[str]:
    """Paragraph-sized pieces of mrkdwn, in order."""
    pieces: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            pieces.append("```" + "\n".join(lines[i + 1 : j]) + "```")
            i = j + 1
            continue
        if stripped.startswith("|"):
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            pieces.append("\n".join(_table(lines[i:j])))
            i = j
            continue
        if stripped.startswith("#"):
            pieces.append(f"*{inline(stripped.lstrip('#').strip())}*")
            i += 1
            continue
        if _ITEM.match(line):
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                m = _ITEM.match(lines[i])
                if m:
                    marker = "•" if m.group(2) in "-*" else m.group(2)
                    indent = "    " if m.group(1) else ""
                    items.append(f"{indent}{marker} {inline(m.group(3))}")
                elif items:  # a continuation line of the item above
                    items[-1] += " " + inline(lines[i].strip())
                i += 1
            pieces.append("\n".join(items))
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not _ITEM.match(lines[i]):
            if lines[i].strip().startswith(("|", "#", "```")):
                break
            para.append(lines[i].strip())
            i += 1
        pieces.append(inline(" ".join(para)))
    return [p for p in pieces if p]


def markdown_blocks(md: str, *, most: int = MAX_BLOCKS) -> Blocks:
    """Sections of at most SECTION_MAX characters, packing small pieces together."""
    blocks: Blocks = []
    chunk = ""
    for piece in to_mrkdwn(md):
        while len(piece) > SECTION_MAX:  # one huge piece: split on a line break where possible
            cut = piece.rfind("\n", 0, SECTION_MAX)
            cut = cut if cut > 0 else SECTION_MAX
            if chunk:
                blocks.append(section(chunk))
                chunk = ""
            blocks.append(section(piece[:cut]))
            piece = piece[cut:].lstrip("\n")
        if chunk and len(chunk) + 2 + len(piece) > SECTION_MAX:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n\n{piece}" if chunk else piece
    if chunk:
        blocks.append(section(chunk))
    return blocks[:most]
