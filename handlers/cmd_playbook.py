"""`/incident playbook [section]`: the section list as buttons; each section as native Block Kit."""

from __future__ import annotations

from typing import Any

from bot.health.playbook_doc import sections
from bot.ports import Reply
from handlers.blocks import MAX_BLOCKS, Blocks, actions, button, context, header
from handlers.markdown_blocks import markdown_blocks
from handlers.parse import Command, UsageError
from handlers.registry import Ctx, action, command

TITLE = "JWT Pizza Factory playbook"
SECTION_ACTION = "playbook_section"
PER_ROW = 5  # buttons per actions block: readable on a phone


def menu() -> tuple[str, Blocks]:
    parts = sections()
    buttons = [button(title, f"{SECTION_ACTION}_{i}", str(i)) for i, (title, _) in enumerate(parts)]
    blocks: Blocks = [header(f"📖 {TITLE}")]
    blocks += [actions(*buttons[i : i + PER_ROW]) for i in range(0, len(buttons), PER_ROW)]
    blocks.append(context("Pick a section, or type `/incident playbook <section>`, e.g. `recovery`"))
    return f"{TITLE}: {len(parts)} sections", blocks


def section_blocks(index: int) -> tuple[str, Blocks]:
    title, body = sections()[index]
    head: Blocks = [header(f"📖 {title}")]
    foot = context(f"{TITLE} · `/incident playbook` for all sections")
    return f"{TITLE}: {title}", [*head, *markdown_blocks(body, most=MAX_BLOCKS - 2), foot]


def find(wanted: str) -> int:
    parts = sections()
    for i, (title, _) in enumerate(parts):
        if wanted in title.lower():
            return i
    names = ", ".join(t for t, _ in parts)
    raise UsageError(f"No section matches `{wanted[:40]}`. Sections: {names}")


@command("playbook")
async def playbook(ctx: Ctx, cmd: Command) -> Reply:
    wanted = cmd.args.get("section")
    text, blocks = section_blocks(find(str(wanted))) if wanted else menu()
    return Reply(text, blocks)


def _section_action_ids() -> list[str]:
    return [f"{SECTION_ACTION}_{i}" for i in range(len(sections()))]


async def _section_button(ctx: Ctx, body: dict[str, Any]) -> Reply:
    raw = str(body["actions"][0].get("value", ""))
    if not raw.isdigit() or int(raw) >= len(sections()):
        raise UsageError("That playbook button is out of date; run `/incident playbook` again.")
    text, blocks = section_blocks(int(raw))
    return Reply(text, blocks)


# Action ids must be unique within a message, so each section's button has its own id.
action(*_section_action_ids())(_section_button)
