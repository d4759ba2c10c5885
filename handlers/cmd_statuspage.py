"""`/incident statuspage`: compose a public update in a modal, get a preview exactly as customers will see
it, publish (or have it approved) with a button. Only the commander, the comms lead or admins publish."""

from __future__ import annotations

from typing import Any

from bot.models import Incident, StatusUpdate
from bot.ports import Reply
from bot.statuspage import publish as sp
from bot.statuspage.model import (
    INCIDENT_LABEL,
    INCIDENT_STATUSES,
    MAX_MESSAGE,
    MAX_TITLE,
    STATE_LABEL,
    STATES,
    Draft,
    validate_draft,
)
from bot.statuspage.render import update_text
from bot.statuspage.store import update_view
from handlers import lifecycle_blocks as lb
from handlers.blocks import Blocks, actions, button, context, header, section
from handlers.cmd_lifecycle import _open_form, _tell, incident_by_id, war_room_incident
from handlers.parse import Command, UsageError
from handlers.registry import VIEWS, Ctx, ViewHandler, action, command

COMPOSE_CALLBACK = "statuspage_compose"
COMPONENT_PREFIX = "c:"


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def compose_modal(
    inc: Incident, current: sp.Current, components: list[tuple[str, str]], *, resolved: bool
) -> dict[str, Any]:
    status = (
        "resolved"
        if resolved
        else (current.status if current.status not in (None, "resolved") else "investigating")
    )
    blocks: Blocks = [
        section(
            f"*{inc.id}* · Customers see only what you write here: nothing from the template, notes or "
            "timeline is copied. Next you get a preview exactly as customers will see it."
        ),
        lb.input_block(
            "title",
            "Public title",
            lb.text_input(current.title, MAX_TITLE, placeholder="e.g. Some pizza orders are failing"),
            hint="Shown on the status page and in the feed. Plain words for customers.",
        ),
        lb.input_block(
            "status",
            "Status",
            lb.select([(INCIDENT_LABEL[s], s) for s in INCIDENT_STATUSES], status, "Status"),
        ),
    ]
    for key, name in components:
        initial = "operational" if resolved else current.states.get(key, "operational")
        blocks.append(
            lb.input_block(
                f"{COMPONENT_PREFIX}{key}",
                name,
                lb.select([(STATE_LABEL[s], s) for s in STATES], initial, "State"),
            )
        )
    blocks.append(
        lb.input_block(
            "message",
            "Message to customers",
            lb.text_input(
                "",
                MAX_MESSAGE,
                multiline=True,
                placeholder="What is affected, what we are doing, when we will update next.",
            ),
        )
    )
    return lb.modal(COMPOSE_CALLBACK, "Status page update", blocks, submit="Preview", metadata=inc.id)


def _parts(values: dict[str, Any]) -> tuple[str, str, str, dict[str, str | None]]:
    states = {
        k.removeprefix(COMPONENT_PREFIX): v for k, v in values.items() if k.startswith(COMPONENT_PREFIX)
    }
    return (
        " ".join(str(values.get("title") or "").split()),
        str(values.get("status") or ""),
        str(values.get("message") or "").strip(),
        states,
    )


def validate_compose(values: dict[str, Any]) -> dict[str, str]:
    title, status, message, states = _parts(values)
    errors = validate_draft(title, status, message, states)
    return {
        (k if k in ("title", "status", "message") else f"{COMPONENT_PREFIX}{k}"): v for k, v in errors.items()
    }


def preview_blocks(svc: Any, result: sp.DraftResult, draft: Draft, inc: Incident) -> tuple[str, Blocks]:
    fake = StatusUpdate(
        id=result.update_id,
        title=draft.title,
        status=draft.status,
        message=draft.message,
        components=draft.states,
        created_at=svc.clock.now(),
    )
    view = update_view(fake, sp.config_of(svc), at=svc.clock.now())
    text = update_text(draft.title, view)
    quoted = "\n".join(f"> {_mrkdwn(line)}" if line else ">" for line in text.splitlines())
    url = f"{svc.settings.public_url.rstrip('/')}/status/preview/{result.token}"
    approval = (
        "P0: after you press Publish, a second person (commander, comms lead or admin) must approve."
        if sp.needs_approval(svc, inc)
        else "Publishing is immediate: the page, the Atom feed and webhook subscribers get it."
    )
    blocks: Blocks = [
        header("Preview: public status-page update"),
        section(f"Exactly as customers will read it (the time becomes the time you publish):\n{quoted}"),
        section(f"<{url}|Open the whole status page with this update> (unlisted; expires when published)"),
        actions(
            button("Publish", sp.PUBLISH_ACTION, str(result.update_id), "primary"),
            button("Discard", sp.DISCARD_ACTION, str(result.update_id)),
        ),
        context(approval),
    ]
    return f"Preview of the public update for {inc.id}", blocks


async def _compose(ctx: Ctx, inc: Incident, *, resolved: bool) -> None:
    if inc.is_drill:
        raise UsageError(f"{inc.id} is a drill: drills never reach the public status page.")
    if not sp.may_publish(ctx.svc, inc, ctx.user):
        raise UsageError(
            f"Only {sp.who_may(inc)} (or a status-page admin) can publish for {inc.id}. "
            f"Ask them, or have them make you comms lead with `/incident comms @you`."
        )
    current = await sp.current_public(ctx.svc, inc.id)
    comps = [(c.key, c.name) for c in sp.config_of(ctx.svc).components]
    await _open_form(
        ctx, compose_modal(inc, current, comps, resolved=resolved), "Run `/incident statuspage` again."
    )


@command("statuspage")
async def statuspage(ctx: Ctx, cmd: Command) -> Reply | None:
    inc = await war_room_incident(ctx, change=False)
    await _compose(ctx, inc, resolved=bool(cmd.args.get("resolved")))
    return None


@action(sp.OPEN_ACTION)
async def open_button(ctx: Ctx, body: dict[str, Any]) -> Reply | None:
    value = str(body["actions"][0].get("value", ""))
    incident_id, _, flag = value.partition("|")
    inc = await incident_by_id(ctx, incident_id, change=False)
    await _compose(ctx, inc, resolved=flag == "resolved")
    return None


def _update_id(body: dict[str, Any]) -> int:
    value = str(body["actions"][0].get("value", ""))
    if not value.isdigit() or len(value) > 18:
        raise UsageError("That button is out of date; run `/incident statuspage` again.")
    return int(value)


@action(sp.PUBLISH_ACTION)
async def publish_button(ctx: Ctx, body: dict[str, Any]) -> Reply:
    result = await sp.publish(ctx.svc, _update_id(body), ctx.user)
    return Reply(result.text, ok=result.state in ("published", "awaiting_approval", "already"))


@action(sp.DISCARD_ACTION)
async def discard_button(ctx: Ctx, body: dict[str, Any]) -> Reply:
    return Reply(await sp.discard(ctx.svc, _update_id(body), ctx.user))


async def submit_compose(ctx: Ctx, view: dict[str, Any], values: dict[str, Any]) -> None:
    try:
        inc = await incident_by_id(ctx, str(view.get("private_metadata") or ""), change=False)
    except UsageError as exc:
        await _tell(ctx, Reply(exc.message, ok=False))
        return
    title, status, message, states = _parts(values)
    draft = Draft(title, status, message, {k: str(v) for k, v in states.items()})
    result = await sp.create_draft(
        ctx.svc,
        inc.id,
        ctx.user,
        draft,
        request_key=f"statuspage-view:{view['id']}" if view.get("id") else None,
    )
    if result.state == "duplicate":
        return
    if result.state != "created":
        await _tell(ctx, Reply(result.text, ok=False))
        return
    text, blocks = preview_blocks(ctx.svc, result, draft, inc)
    await _tell(ctx, Reply(text, blocks))


VIEWS[COMPOSE_CALLBACK] = ViewHandler(validate_compose, submit_compose)
