"""The Slack stand-in, exercised over real loopback HTTP (httpx and the official slack_sdk client)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from sandbox import slack_standin
from sandbox.servers import LoopServer, ServerThread
from sandbox.slack_standin import GENERIC_ERRORS, METHODS, SlackStandin

TOKEN = "xoxb-test"
USERS = [
    {"id": "U1", "name": "alice", "tz": "America/New_York", "real_name": "Alice A"},
    {"id": "U2", "name": "bob", "email": "bob@corp.example"},
    {"id": "U3", "name": "carol"},
]
MODAL = {
    "type": "modal",
    "callback_id": "declare",
    "title": {"type": "plain_text", "text": "Declare incident"},
    "submit": {"type": "plain_text", "text": "Declare"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}
HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Incidents*"}}]}

Api = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def server() -> Iterator[SlackStandin]:
    standin = SlackStandin(TOKEN, users=USERS)
    thread = ServerThread(standin.app)
    standin.base_url = thread.start()
    yield standin
    thread.stop()


@pytest.fixture
def slack(server: SlackStandin) -> SlackStandin:
    server.reset()
    server.listeners.clear()
    return server


@pytest.fixture
def http(slack: SlackStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=slack.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
        yield c


@pytest.fixture
def api(http: httpx.Client) -> Api:
    """POST a method with form args (or a JSON body via json=...); returns the decoded answer."""

    def call(method: str, json: dict[str, Any] | None = None, **form: Any) -> dict[str, Any]:
        if json is not None:
            return http.post(f"/api/{method}", json=json).json()
        data = {k: v if isinstance(v, str) else _dumps(v) for k, v in form.items()}
        return http.post(f"/api/{method}", data=data).json()

    return call


def _dumps(value: Any) -> str:
    return json.dumps(value)


def _channel(api: Api, name: str = "inc-1") -> str:
    answer = api("conversations.create", name=name)
    assert answer["ok"], answer
    return answer["channel"]["id"]


def _post(api: Api, channel: str, text: str = "hello") -> str:
    answer = api("chat.postMessage", channel=channel, text=text)
    assert answer["ok"], answer
    return answer["ts"]


def _error(answer: dict[str, Any]) -> str | None:
    assert answer["ok"] is False, answer
    return answer["error"]


# ---- transport and auth -----------------------------------------------------------------------------------


def test_auth_errors(slack: SlackStandin, http: httpx.Client) -> None:
    url = f"{slack.base_url}/api/auth.test"
    assert httpx.post(url).json() == {"ok": False, "error": "not_authed"}
    assert httpx.post(url, headers={"Authorization": "Bearer xoxb-wrong"}).json()["error"] == "invalid_auth"
    assert httpx.post(url, data={"token": "xoxb-wrong"}).json()["error"] == "invalid_auth"
    # Tokens are refused in the query string (new apps) and inside a JSON body (must be the header).
    assert httpx.post(url, params={"token": TOKEN}).json()["error"] == "not_authed"
    assert httpx.post(url, json={"token": TOKEN}).json()["error"] == "not_authed"
    form = httpx.post(url, data={"token": TOKEN}).json()
    assert form["ok"] and form["user_id"] == "UBOT" and form["team_id"] == "T0STANDIN" and form["bot_id"]
    assert http.get("/api/auth.test").json()["ok"]


def test_transport_rules(slack: SlackStandin, http: httpx.Client) -> None:
    # users.info is not JSON-capable in Slack's reference; conversations.history is.
    assert http.post("/api/users.info", json={"user": "U1"}).json()["error"] == "invalid_post_type"
    assert (
        http.post("/api/conversations.history", json={"channel": "CNOPE"}).json()["error"]
        == "channel_not_found"
    )
    assert http.get("/api/users.info", params={"user": "U1"}).json()["user"]["id"] == "U1"
    r = http.post("/api/users.info", content=b"user=U1", headers={"Content-Type": ""})
    assert r.json()["error"] == "missing_post_type"
    r = http.post("/api/users.info", content=b"user=U1", headers={"Content-Type": "application/xml"})
    assert r.json()["error"] == "invalid_post_type"
    ctype = "application/x-www-form-urlencoded; charset=koi8-r"
    assert http.post("/api/users.info", content=b"user=U1", headers={"Content-Type": ctype}).json()[
        "error"
    ] == ("invalid_charset")
    assert (
        http.post("/api/users.info", files={"user": (None, "U2")}).json()["user"]["name"] == "bob"
    )  # multipart
    r = http.post("/api/chat.fly", data={"channel": "C1"})
    assert r.status_code == 404 and r.json() == {"ok": False, "error": "unknown_method"}
    assert http.post("/api/users.info", data={}).json()["error"] == "missing_argument"


# ---- conversations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "invalid_name_required"),
        ("x" * 81, "invalid_name_maxlength"),
        ("Inc-1", "invalid_name_specials"),
        ("inc 1", "invalid_name_specials"),
        ("inc.1", "invalid_name_specials"),
        ("--_", "invalid_name_punctuation"),
    ],
)
def test_create_rejects_bad_names(api: Api, name: str, error: str) -> None:
    assert _error(api("conversations.create", name=name)) == error


def test_create_name_taken_and_state(slack: SlackStandin, api: Api) -> None:
    assert _error(api("conversations.create")) == "invalid_name_required"
    created = api("conversations.create", name="inc-" + "x" * 76)  # exactly 80 is fine
    assert created["ok"] and created["channel"]["is_member"] and created["channel"]["creator"] == "UBOT"
    assert _error(api("conversations.create", name="inc-" + "x" * 76)) == "name_taken"
    channel = slack.channel_by_name("inc-" + "x" * 76)
    assert channel is not None and channel.members == {"UBOT"} and channel.created > 0
    assert api("conversations.info", channel=channel.id)["channel"]["name"] == channel.name
    assert _error(api("conversations.info", channel="CNOPE")) == "channel_not_found"


def test_invite_errors(slack: SlackStandin, api: Api) -> None:
    cid = _channel(api)
    assert _error(api("conversations.invite", channel=cid)) == "no_user"
    assert _error(api("conversations.invite", channel=cid, users="")) == "no_user"
    assert _error(api("conversations.invite", channel="CNOPE", users="U1")) == "channel_not_found"
    assert _error(api("conversations.invite", channel=cid, users="UBOT")) == "cant_invite_self"
    failed = api("conversations.invite", channel=cid, users="U1,UNOBODY")
    assert failed["error"] == "user_not_found" and failed["errors"][0]["user"] == "UNOBODY"
    assert slack.channels[cid].members == {"UBOT"}  # nothing invited without force
    assert _error(api("conversations.invite", channel=cid, users=",".join(f"U{i}" for i in range(101)))) == (
        "cant_invite"
    )
    assert api("conversations.invite", channel=cid, users="U1,U2")["ok"]
    assert _error(api("conversations.invite", channel=cid, users="U1")) == "already_in_channel"
    forced = api("conversations.invite", channel=cid, users="U1,U3", force="true")
    assert forced["ok"] and forced["errors"] == [{"user": "U1", "ok": False, "error": "already_in_channel"}]
    assert slack.channels[cid].members == {"UBOT", "U1", "U2", "U3"}
    assert api("conversations.members", channel=cid, limit="2")["response_metadata"]["next_cursor"]
    # A channel someone else made: the bot must join first.
    other = slack.add_channel("general", members=["U1"])
    assert _error(api("conversations.invite", channel=other.id, users="U2")) == "not_in_channel"
    assert _error(api("conversations.setTopic", channel=other.id, topic="x")) == "not_in_channel"
    assert _error(api("chat.postMessage", channel=other.id, text="hi")) == "not_in_channel"
    assert api("conversations.join", channel=other.id)["ok"]
    assert api("conversations.join", channel=other.id)["warning"] == "already_in_channel"
    assert api("chat.postMessage", channel="#general", text="hi")["channel"] == other.id
    secret = slack.add_channel("secret", members=["U1"], is_private=True)
    assert _error(api("conversations.join", channel=secret.id)) == "channel_not_found"


def test_topic_purpose_open(slack: SlackStandin, api: Api) -> None:
    cid = _channel(api)
    assert (
        api("conversations.setTopic", channel=cid, topic="t" * 250)["channel"]["topic"]["value"] == "t" * 250
    )
    assert _error(api("conversations.setTopic", channel=cid, topic="t" * 251)) == "too_long"
    assert _error(api("conversations.setPurpose", channel=cid, purpose="p" * 251)) == "too_long"
    assert api("conversations.setPurpose", channel=cid, purpose="Fix checkout")["ok"]
    assert slack.channels[cid].topic == "t" * 250 and slack.channels[cid].purpose == "Fix checkout"
    assert _error(api("conversations.setTopic", channel=cid)) == "missing_argument"
    opened = api("conversations.open", users="U1")
    assert opened["channel"]["id"] == "DU1" == api("conversations.open", users="U1")["channel"]["id"]
    assert api("conversations.open", users="U1", return_im="true")["channel"]["is_im"]
    assert _error(api("conversations.open")) == "users_list_not_supplied"
    assert _error(api("conversations.open", users=",".join(f"U{i}" for i in range(9)))) == "too_many_users"
    assert _error(api("conversations.open", users="UNOBODY")) == "user_not_found"
    assert _error(api("conversations.open", channel=cid)) == "method_not_supported_for_channel_type"
    assert api("chat.postMessage", channel="DU1", text="hi")["ok"]
    assert api("chat.postMessage", channel="U2", text="hi")["channel"] == "DU2"  # a user id posts to the DM


# ---- messages ---------------------------------------------------------------------------------------------


def test_post_update_pin_flow(slack: SlackStandin, api: Api) -> None:
    cid = _channel(api)
    first = api("chat.postMessage", channel=cid, text="Incident declared")
    assert first["ok"] and first["channel"] == cid and first["message"]["text"] == "Incident declared"
    second, third = _post(api, cid, "two"), _post(api, cid, "three")
    assert first["ts"] < second < third and len({first["ts"], second, third}) == 3
    assert _error(api("chat.postMessage", channel=cid)) == "no_text"
    assert _error(api("chat.postMessage", channel="CNOPE", text="x")) == "channel_not_found"
    reply = api("chat.postMessage", channel=cid, text="in thread", thread_ts=first["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]

    updated = api("chat.update", channel=cid, ts=first["ts"], text="Incident resolved")
    assert updated["ok"] and updated["text"] == "Incident resolved"
    message = slack.message(cid, first["ts"])
    assert message is not None and message.edited and message.text == "Incident resolved"
    assert _error(api("chat.update", channel=cid, ts="1.000001", text="x")) == "message_not_found"
    human = slack.add_message(cid, "U1", "I'm on it")
    assert _error(api("chat.update", channel=cid, ts=human.ts, text="x")) == "cant_update_message"

    link = api("chat.getPermalink", channel=cid, message_ts=first["ts"])["permalink"]
    assert link == f"{slack.base_url}/archives/{cid}/p{first['ts'].replace('.', '')}"
    thread_link = api("chat.getPermalink", channel=cid, message_ts=reply["ts"])["permalink"]
    assert thread_link.endswith(f"?thread_ts={first['ts']}&cid={cid}")

    assert _error(api("pins.add", channel=cid)) == "no_item_specified"
    assert _error(api("pins.add", channel=cid, timestamp="yesterday")) == "bad_timestamp"
    assert api("pins.add", channel=cid, timestamp=first["ts"]) == {"ok": True}
    assert _error(api("pins.add", channel=cid, timestamp=first["ts"])) == "already_pinned"
    assert api("pins.remove", channel=cid, timestamp=first["ts"])["ok"]
    assert _error(api("pins.remove", channel=cid, timestamp=first["ts"])) == "no_pin"
    assert api("pins.add", channel=cid, timestamp=first["ts"])["ok"]

    assert api("reactions.add", channel=cid, timestamp=second, name=":eyes:")["ok"]
    assert _error(api("reactions.add", channel=cid, timestamp=second, name="eyes")) == "already_reacted"
    assert _error(api("reactions.add", channel=cid, timestamp=second, name="no way")) == "invalid_name"
    assert _error(api("reactions.add", channel=cid, name="eyes")) == "no_item_specified"

    history = api("conversations.history", channel=cid, limit="2")
    assert [m["ts"] for m in history["messages"]] == [human.ts, third] and history["has_more"]
    rest = api("conversations.history", channel=cid, cursor=history["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["three", "two", "Incident resolved"][1:]
    assert rest["messages"][0]["reactions"] == [{"name": "eyes", "users": ["UBOT"], "count": 1}]
    assert rest["messages"][1]["pinned_to"] == [cid] and rest["pin_count"] == 1
    assert _error(api("conversations.history", channel=cid, cursor="garbage!")) == "invalid_cursor"

    assert api("conversations.archive", channel=cid)["ok"]
    assert _error(api("conversations.archive", channel=cid)) == "already_archived"
    assert _error(api("chat.postMessage", channel=cid, text="x")) == "is_archived"
    assert (
        _error(api("chat.update", channel=cid, ts=second, text="x")) == "is_inactive"
    )  # per chat.update's docs
    assert _error(api("conversations.setTopic", channel=cid, topic="x")) == "is_archived"


def test_message_metadata(slack: SlackStandin, api: Api) -> None:
    """chat.postMessage `metadata` (a JSON object; a string in a form) comes back from conversations.history:
    its event_type always, its event_payload only with include_all_metadata (the methods' reference)."""
    cid = _channel(api)
    meta = {"event_type": "incident_bot_effect", "event_payload": {"key": "outbox:7", "room": True}}
    form = api("chat.postMessage", channel=cid, text="one", metadata=json.dumps(meta))
    assert form["ok"] and form["message"]["metadata"] == meta
    assert api(
        "chat.postMessage", json={"channel": cid, "text": "two", "metadata": meta | {"event_payload": {}}}
    )["ok"]
    plain = api("conversations.history", channel=cid)["messages"]
    assert [m.get("metadata") for m in plain] == [{"event_type": "incident_bot_effect"}] * 2
    full = api("conversations.history", channel=cid, include_all_metadata="true")["messages"]
    assert [m["metadata"]["event_payload"] for m in full] == [{}, {"key": "outbox:7", "room": True}]
    assert _error(api("chat.postMessage", channel=cid, text="x", metadata="{not json")) == (
        "invalid_metadata_format"
    )
    assert _error(api("chat.postMessage", channel=cid, text="x", metadata='{"event_type": 3}')) == (
        "invalid_metadata_schema"
    )
    assert len(api("conversations.history", channel=cid)["messages"]) == 2, "a refused post leaves nothing"


def test_ephemeral(slack: SlackStandin, api: Api) -> None:
    cid = _channel(api)
    api("conversations.invite", channel=cid, users="U1")
    answer = api("chat.postEphemeral", channel=cid, user="U1", text="only you")
    assert answer["ok"] and set(answer) == {"ok", "message_ts"}
    stored = slack.message(cid, answer["message_ts"])
    assert stored is not None and stored.ephemeral_to == "U1" and stored.text == "only you"
    assert api("conversations.history", channel=cid)["messages"] == []  # ephemeral messages are not history
    assert _error(api("chat.postEphemeral", channel=cid, user="U2", text="x")) == "user_not_in_channel"
    assert _error(api("chat.postEphemeral", channel=cid, user="U1")) == "no_text"
    assert _error(api("chat.postEphemeral", channel=cid, text="x")) == "missing_argument"
    assert _error(api("chat.update", channel=cid, ts=answer["message_ts"], text="x")) == "message_not_found"


def test_block_limits(api: Api) -> None:
    cid = _channel(api)
    divider = {"type": "divider"}
    assert api("chat.postMessage", channel=cid, blocks=[divider] * 50)["ok"]
    too_many = api("chat.postMessage", channel=cid, blocks=[divider] * 51, text="fallback")
    assert too_many["error"] == "invalid_blocks"
    assert too_many["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]
    header: dict[str, Any] = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    bad_header = api("chat.postMessage", channel=cid, blocks=[header])
    assert bad_header["error"] == "invalid_blocks"
    assert "[json-pointer:/blocks/0/text/text]" in bad_header["response_metadata"]["messages"][0]
    header["text"]["text"] = "h" * 150
    assert api("chat.postMessage", channel=cid, blocks=[header])["ok"]
    mrkdwn_header = {"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}
    assert _error(api("chat.postMessage", channel=cid, blocks=[mrkdwn_header])) == "invalid_blocks"

    def section(**kw: Any) -> dict[str, Any]:
        return {"type": "section", **kw}

    def txt(n: int) -> dict[str, str]:
        return {"type": "mrkdwn", "text": "x" * n}

    def button(**kw: Any) -> dict[str, Any]:
        return {"type": "button", "text": {"type": "plain_text", "text": "Ack"}, "action_id": "ack", **kw}

    bad = [
        [section(text=txt(3001))],
        [section(fields=[txt(1)] * 11)],
        [section(fields=[txt(2001)])],
        [{"type": "context", "elements": [txt(1)] * 11}],
        [{"type": "actions", "elements": [button()] * 26}],
        [{"type": "actions", "elements": [button(text={"type": "plain_text", "text": "b" * 76})]}],
        [{"type": "actions", "elements": [button(value="v" * 2001)]}],
        [{"type": "actions", "elements": [button(url="https://x/" + "u" * 3000)]}],
        [{"type": "actions", "elements": [button(action_id="a" * 256)]}],
        [section(text=txt(1), block_id="b" * 256)],
        [section(text=txt(1), block_id="same"), section(text=txt(1), block_id="same")],
        [{"type": "marquee"}],
    ]
    for blocks in bad:
        assert _error(api("chat.postMessage", channel=cid, blocks=blocks)) == "invalid_blocks", blocks
    good = [
        section(text=txt(3000), fields=[txt(2000)] * 10, accessory=button()),
        {"type": "context", "elements": [txt(1)] * 10},
        {"type": "actions", "elements": [button(action_id=f"a{i}", value="v" * 2000) for i in range(25)]},
    ]
    assert api("chat.postMessage", channel=cid, blocks=good)["ok"]
    assert _error(api("chat.postMessage", channel=cid, blocks="[not json")) == "invalid_blocks_format"
    assert _error(api("chat.postMessage", channel=cid, blocks={"type": "divider"})) == "invalid_blocks_format"
    assert (
        _error(api("chat.postMessage", channel=cid, text="x", markdown_text="y")) == "markdown_text_conflict"
    )
    long = api("chat.postMessage", channel=cid, text="x" * 40_001)
    assert long["ok"] and long["warning"] == "message_truncated" and len(long["message"]["text"]) == 40_000


# ---- views ------------------------------------------------------------------------------------------------


def test_views_open_trigger_rules(slack: SlackStandin, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = slack.issue_trigger_id("U1")
    opened = api("views.open", json={"trigger_id": trigger, "view": MODAL})
    assert (
        opened["ok"] and opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "declare"
    )
    stored = slack.views[opened["view"]["id"]]
    assert (
        stored["user"] == "U1"
        and stored["trigger_id"] == trigger
        and stored["view"]["blocks"] == MODAL["blocks"]
    )
    assert _error(api("views.open", json={"trigger_id": trigger, "view": MODAL})) == "exchanged_trigger_id"
    assert (
        _error(api("views.open", json={"trigger_id": "12345.98765.abcd", "view": MODAL}))
        == "invalid_trigger_id"
    )
    assert api("views.open", json={"trigger_id": "standin-made-up", "view": MODAL})["ok"]  # made-up: once
    assert (
        _error(api("views.open", json={"trigger_id": "standin-made-up", "view": MODAL}))
        == "exchanged_trigger_id"
    )
    assert _error(api("views.open", json={"view": MODAL})) == "missing_argument"
    both = {"trigger_id": "standin-a", "interactivity_pointer": "standin-b", "view": MODAL}
    assert _error(api("views.open", json=both)) == "invalid_arguments"
    assert api("views.open", json={"interactivity_pointer": "standin-c", "view": MODAL})["ok"]
    monkeypatch.setattr(slack_standin, "TRIGGER_TTL", 0.05)
    stale = slack.issue_trigger_id()
    time.sleep(0.1)
    assert _error(api("views.open", json={"trigger_id": stale, "view": MODAL})) == "expired_trigger_id"


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"title": {"type": "plain_text", "text": "t" * 25}}, "/view/title/text"),
        ({"title": {"type": "mrkdwn", "text": "t"}}, "/view/title"),
        ({"submit": {"type": "plain_text", "text": "s" * 25}}, "/view/submit/text"),
        ({"close": {"type": "plain_text", "text": "c" * 25}}, "/view/close/text"),
        ({"submit": None}, "/view/submit"),  # an input block needs a submit button
        ({"private_metadata": "m" * 3001}, "/view/private_metadata"),
        ({"callback_id": "c" * 256}, "/view/callback_id"),
        ({"blocks": [{"type": "divider"}] * 101}, "/view/blocks"),
    ],
)
def test_view_limits(api: Api, change: dict[str, Any], pointer: str) -> None:
    answer = api("views.open", json={"trigger_id": "standin-limits", "view": MODAL | change})
    assert answer["error"] == "invalid_arguments"
    assert any(f"[json-pointer:{pointer}]" in m for m in answer["response_metadata"]["messages"]), answer


def test_views_update_and_publish(slack: SlackStandin, api: Api) -> None:
    assert api(
        "views.open",
        json={"trigger_id": "standin-1", "view": MODAL | {"blocks": [{"type": "divider"}] * 100}},
    )["ok"]
    view = api("views.open", json={"trigger_id": "standin-2", "view": MODAL | {"external_id": "inc-42"}})[
        "view"
    ]
    assert _error(
        api("views.open", json={"trigger_id": "standin-3", "view": MODAL | {"external_id": "inc-42"}})
    ) == ("duplicate_external_id")
    new = MODAL | {"title": {"type": "plain_text", "text": "Updated"}}
    assert (
        _error(api("views.update", json={"view_id": view["id"], "hash": "stale", "view": new}))
        == "hash_conflict"
    )
    updated = api("views.update", json={"view_id": view["id"], "hash": view["hash"], "view": new})
    assert (
        updated["ok"]
        and updated["view"]["title"]["text"] == "Updated"
        and updated["view"]["id"] == view["id"]
    )
    assert api("views.update", json={"external_id": "inc-42", "view": new})["ok"]
    assert _error(api("views.update", json={"view_id": "VNOPE", "view": new})) == "not_found"
    other = api("views.open", json={"trigger_id": "standin-4", "view": MODAL | {"external_id": "inc-43"}})[
        "view"
    ]
    clash = {"view_id": other["id"], "view": new | {"external_id": "inc-42"}}
    assert _error(api("views.update", json=clash)) == "duplicate_external_id"
    assert _error(api("views.update", json={"view": new})) == "missing_argument"
    home = api("views.publish", json={"user_id": "U1", "view": HOME})
    assert home["ok"] and home["view"]["type"] == "home"
    again = api("views.publish", json={"user_id": "U1", "view": HOME, "hash": home["view"]["hash"]})
    assert again["view"]["id"] == home["view"]["id"]
    assert (
        _error(api("views.publish", json={"user_id": "U1", "view": HOME, "hash": "old"})) == "hash_conflict"
    )
    assert _error(api("views.publish", json={"user_id": "UNOBODY", "view": HOME})) == "invalid_arguments"
    assert _error(api("views.publish", json={"user_id": "U1", "view": MODAL})) == "invalid_arguments"
    assert slack.views[home["view"]["id"]]["user"] == "U1"


# ---- user groups ------------------------------------------------------------------------------------------


def test_usergroup_members_are_read_and_replaced_as_slack_documents(slack: SlackStandin, api: Api) -> None:
    slack.add_usergroup("S0ONCALL", "oncall-primary", ["U1"])
    assert api("usergroups.users.list", usergroup="S0ONCALL") == {"ok": True, "users": ["U1"]}
    assert _error(api("usergroups.users.list", usergroup="S0NOPE")) == "no_such_subteam"
    assert _error(api("usergroups.users.list")) == "missing_argument"
    # A JSON body is refused for the list (../shared: not JSON-capable) but accepted for the update.
    assert _error(api("usergroups.users.list", json={"usergroup": "S0ONCALL"})) == "invalid_post_type"
    got = api(
        "usergroups.users.update", json={"usergroup": "S0ONCALL", "users": "U2,U1", "include_count": True}
    )
    assert got["ok"] and got["usergroup"]["users"] == ["U2", "U1"] and got["usergroup"]["user_count"] == 2
    assert slack.usergroup_users("S0ONCALL") == ["U2", "U1"]  # the list replaces every member
    assert api("usergroups.users.update", usergroup="S0ONCALL", users="U1")["usergroup"]["users"] == ["U1"]
    for args, code in (
        ({"usergroup": "S0NOPE", "users": "U1"}, "no_such_subteam"),
        ({"usergroup": "S0ONCALL", "users": ""}, "no_users_provided"),  # emptying a group is not allowed
        ({"usergroup": "S0ONCALL"}, "no_users_provided"),
        ({"usergroup": "S0ONCALL", "users": "U1,UNOBODY"}, "invalid_users"),
        ({"usergroup": "S0ONCALL", "users": "UBOT"}, "invalid_users"),  # bots cannot be members
        ({"users": "U1"}, "missing_argument"),
    ):
        assert _error(api("usergroups.users.update", **args)) == code, args
    assert slack.usergroup_users("S0ONCALL") == ["U1"]  # a refused call changes nothing


# ---- users, bookmarks -------------------------------------------------------------------------------------


def test_users_and_bookmarks(slack: SlackStandin, http: httpx.Client, api: Api) -> None:
    alice = http.get("/api/users.info", params={"user": "U1"}).json()["user"]
    assert alice["name"] == "alice" and alice["real_name"] == "Alice A" and alice["tz"] == "America/New_York"
    assert alice["tz_offset"] in (-18000, -14400) and alice["tz_label"] in ("EST", "EDT")
    assert http.get("/api/users.info", params={"user": "UNOBODY"}).json()["error"] == "user_not_found"
    bob = http.get("/api/users.lookupByEmail", params={"email": "bob@corp.example"}).json()
    assert bob["user"]["id"] == "U2" and bob["user"]["tz_offset"] == 0
    assert (
        http.get("/api/users.lookupByEmail", params={"email": "x@y.z"}).json()["error"] == "users_not_found"
    )
    slack.add_user("U9", "dave", "Europe/Berlin")
    assert http.get("/api/users.info", params={"user": "U9"}).json()["user"]["tz"] == "Europe/Berlin"

    cid = _channel(api)
    mark = api(
        "bookmarks.add", channel_id=cid, title="Runbook", type="link", link="https://runbooks.example/42"
    )
    assert (
        mark["ok"] and mark["bookmark"]["channel_id"] == cid and slack.bookmarks[cid][0]["title"] == "Runbook"
    )
    assert _error(api("bookmarks.add", channel_id=cid, title="x", type="folder")) == "invalid_bookmark_type"
    assert (
        _error(api("bookmarks.add", channel_id=cid, title="x", type="link", link="ftp://x")) == "invalid_link"
    )
    assert _error(api("bookmarks.add", channel_id=cid, type="link")) == "missing_argument"


# ---- faults, recording, response_url, side channels -------------------------------------------------------


def test_429_with_retry_after(slack: SlackStandin, api: Api, http: httpx.Client) -> None:
    cid = _channel(api)
    slack.fail_next("chat.postMessage", retry_after=7, times=2)
    for _ in range(2):
        r = http.post("/api/chat.postMessage", data={"channel": cid, "text": "hi"})
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.json() == {"ok": False, "error": "ratelimited"}
    assert _post(api, cid)
    assert [c.http_status for c in slack.calls_to("chat.postMessage")] == [429, 429, 200]
    assert [c.error for c in slack.calls_to("chat.postMessage", ok=False)] == ["ratelimited"] * 2

    slack.fail_next("conversations.create", status=200, error="name_taken", retry_after=None)
    r = http.post("/api/conversations.create", data={"name": "fresh"})
    assert r.status_code == 200 and r.json()["error"] == "name_taken" and "Retry-After" not in r.headers
    slack.fail_always(None)
    r = http.post("/api/auth.test")
    assert r.status_code == 500 and r.json() == {"ok": False, "error": "internal_error"}
    slack.clear_faults()
    assert api("auth.test")["ok"]


def test_applied_fault_does_the_work_and_loses_the_answer(slack: SlackStandin, http: httpx.Client) -> None:
    """A create Slack carried out whose answer was lost: the caller sees a 500 (or a hang past its timeout),
    the channel exists, and the same name again is name_taken."""
    slack.fail_next(
        "conversations.create", status=500, error="internal_error", retry_after=None, applied=True
    )
    r = http.post("/api/conversations.create", data={"name": "lost-answer"})
    assert r.status_code == 500 and r.json() == {"ok": False, "error": "internal_error"}
    made = slack.channel_by_name("lost-answer")
    assert made is not None and "UBOT" in made.members
    [call] = slack.calls_to("conversations.create")
    assert call.ok and call.lost and call.response["channel"]["id"] == made.id
    assert (
        http.post("/api/conversations.create", data={"name": "lost-answer"}).json()["error"] == "name_taken"
    )

    slack.fail_next("conversations.create", status=500, error="request_timeout", retry_after=None,
                    applied=True, hang=0.5)  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/conversations.create", data={"name": "timed-out"}, timeout=0.1)
    assert slack.channel_by_name("timed-out") is not None


def test_delay_makes_clients_time_out(slack: SlackStandin, http: httpx.Client) -> None:
    slack.delay("auth.test", 0.5)
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/auth.test", timeout=0.1)
    assert http.post("/api/users.info", data={"user": "U1"}, timeout=0.4).json()[
        "ok"
    ]  # other methods unaffected
    slack.clear_faults()
    assert http.post("/api/auth.test", timeout=2).json()["ok"]


def test_recorded_calls(slack: SlackStandin, api: Api, http: httpx.Client) -> None:
    before = time.time()
    cid = _channel(api)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*SEV1*"}}]
    api("chat.postMessage", channel=cid, text="sev1", blocks=blocks)  # blocks sent as a JSON string in a form
    api("chat.postMessage", json={"channel": cid, "text": "sev1", "blocks": blocks})
    http.post("/api/chat.postMessage", params={"channel": cid}, data={"text": "mixed"})
    api("chat.postMessage", channel="CNOPE", text="x")
    calls = slack.calls_to("chat.postMessage")
    assert [c.args["blocks"] for c in calls[:2]] == [blocks, blocks]
    assert calls[2].args == {"channel": cid, "text": "mixed"} and calls[2].ok
    assert [c.ok for c in calls] == [True, True, True, False] and calls[3].error == "channel_not_found"
    assert calls[0].response["ts"] == slack.messages[cid][0].ts and calls[0].at >= before
    assert [c.method for c in slack.calls] == ["conversations.create"] + ["chat.postMessage"] * 4
    assert len(slack.calls_to("chat.postMessage", ok=False)) == 1


def test_response_url_limit(slack: SlackStandin) -> None:
    url = slack.new_response_url()
    assert url.startswith(f"{slack.base_url}/response/")
    for i in range(5):
        r = httpx.post(url, json={"text": f"update {i}", "replace_original": True})
        assert r.status_code == 200
    r = httpx.post(url, json={"text": "one too many"})
    assert r.status_code == 404 and r.text == "used_url"
    assert [p["text"] for p in slack.responses_for(url)] == [f"update {i}" for i in range(5)]
    assert httpx.post(f"{slack.base_url}/response/nope", json={"text": "x"}).status_code == 404
    assert httpx.post(slack.new_response_url(), content=b"not json").status_code == 400
    assert len(slack.responses) == 2


def test_side_endpoints_and_listeners(slack: SlackStandin, api: Api, http: httpx.Client) -> None:
    events: list[dict[str, Any]] = []
    slack.listeners.append(events.append)

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    slack.listeners.append(broken)  # a broken listener must not break requests
    cid = _channel(api)
    ts = _post(api, cid)
    api("chat.update", channel=cid, ts=ts, text="edited")
    api("pins.add", channel=cid, timestamp=ts)
    assert [e["type"] for e in events] == ["channel", "message", "update", "pin"]
    assert events[1] == {"type": "message", "channel": cid, "ts": ts}

    state = http.get("/_standin/state").json()
    assert state["messages"][cid][0]["text"] == "edited" and "UBOT" in state["channels"][0]["members"]
    assert {u["id"] for u in state["users"]} >= {"U1", "U2", "U3", "UBOT"}
    assert json.loads(json.dumps(slack.snapshot())) == state

    fault = {"method": "auth.test", "status": 503, "error": "service_unavailable", "retry_after": None}
    assert http.post("/_standin/fault", json=fault).json()["ok"]
    assert http.post("/api/auth.test").status_code == 503
    assert http.post("/api/auth.test").status_code == 200
    slack.fail_always("auth.test")
    assert http.post("/_standin/clear").json()["ok"]
    assert http.post("/api/auth.test").status_code == 200
    slack.reset()
    assert slack.calls == [] and slack.channels == {} and slack.messages == {} and slack.views == {}


def test_concurrent_posts_get_unique_increasing_ts(slack: SlackStandin, api: Api) -> None:
    cid = _channel(api)
    with httpx.Client(base_url=slack.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:

        def post(i: int) -> str:
            return client.post("/api/chat.postMessage", data={"channel": cid, "text": str(i)}).json()["ts"]

        with ThreadPoolExecutor(8) as pool:
            stamps = list(pool.map(post, range(40)))
    assert len(set(stamps)) == 40
    stored = [m.ts for m in slack.messages[cid]]
    assert stored == sorted(stored, key=float) and len(stored) == 40
    assert threading.active_count() < 50


# ---- the official SDK against the stand-in ----------------------------------------------------------------


async def test_slack_sdk_async_client_and_rate_limit_retry() -> None:
    standin = SlackStandin(TOKEN, users=USERS)
    async with LoopServer(standin.app) as server:
        standin.base_url = server.url
        client = AsyncWebClient(
            token=TOKEN,
            base_url=f"{server.url}/api/",
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        assert (await client.auth_test())["user_id"] == "UBOT"
        channel = (await client.conversations_create(name="inc-7"))["channel"]["id"]
        await client.conversations_invite(channel=channel, users=["U1", "U2"])
        await client.conversations_setTopic(channel=channel, topic="SEV2: checkout")
        standin.fail_next("chat.postMessage", retry_after=0)  # the handler sleeps Retry-After + jitter
        posted = await client.chat_postMessage(
            channel=channel,
            text="Declared",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}}],
        )
        assert posted["ok"] and posted["ts"]
        assert [c.http_status for c in standin.calls_to("chat.postMessage")] == [429, 200]
        await client.chat_update(channel=channel, ts=posted["ts"], text="Resolved")
        await client.pins_add(channel=channel, timestamp=posted["ts"])
        await client.reactions_add(channel=channel, timestamp=posted["ts"], name="white_check_mark")
        await client.chat_postEphemeral(channel=channel, user="U1", text="psst")
        link = await client.chat_getPermalink(channel=channel, message_ts=posted["ts"])
        assert link["permalink"].startswith(server.url)
        assert (await client.users_info(user="U1"))["user"]["tz"] == "America/New_York"
        assert (await client.conversations_info(channel=channel))["channel"]["topic"][
            "value"
        ] == "SEV2: checkout"
        history = await client.conversations_history(channel=channel, limit=10)
        assert history["messages"][0]["text"] == "Resolved"
        dm = await client.conversations_open(users="U1")
        assert dm["channel"]["id"] == "DU1"
        view = await client.views_open(trigger_id=standin.issue_trigger_id("U1"), view=MODAL)
        await client.views_update(view_id=view["view"]["id"], view=MODAL)
        await client.views_publish(user_id="U1", view=HOME)
        await client.bookmarks_add(channel_id=channel, title="Doc", type="link", link="https://d.example")
        with pytest.raises(SlackApiError) as failure:
            await client.conversations_create(name="inc-7")
        assert failure.value.response["error"] == "name_taken"
        assert all(c.ok for c in standin.calls if c.method != "conversations.create" and c.http_status != 429)


# ---- conformance with Slack's method reference ------------------------------------------------------------


def _spec_dir() -> Path:
    env = os.environ.get("SLACK_SPEC_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "slack"


# Implemented from Slack's public reference because ../shared has no method file for them (see the comment
# on each in sandbox/slack_standin.py); their own tests check the documented behaviour.
NOT_IN_SHARED = {"usergroups.users.update"}

# limits.md §1: a bad `view` in views.* gets `invalid_arguments` (only views.open.json's example shows it).
LIMITS_MD_EXTRAS = {m: {"invalid_arguments"} for m in ("views.open", "views.update", "views.publish")}


def _minimal_args(slack: SlackStandin, api: Api) -> dict[str, dict[str, Any]]:
    cid = _channel(api, "conformance")
    spare = _channel(api, "conformance-spare")
    api("conversations.invite", channel=cid, users="U2")
    ts, pinned = _post(api, cid), _post(api, cid)
    api("pins.add", channel=cid, timestamp=pinned)
    view_id = api("views.open", json={"trigger_id": "standin-conformance", "view": MODAL})["view"]["id"]
    slack.add_usergroup("S0CONFORM", "conformance", ["U2"])
    return {
        "auth.test": {},
        "conversations.create": {"name": "conformance-new"},
        "conversations.invite": {"channel": cid, "users": "U1"},
        "conversations.setTopic": {"channel": cid, "topic": "SEV1"},
        "conversations.setPurpose": {"channel": cid, "purpose": "Fix it"},
        "conversations.open": {"users": "U1"},
        "conversations.info": {"channel": cid},
        "conversations.members": {"channel": cid},
        "conversations.history": {"channel": cid},
        "conversations.join": {"channel": cid},
        "conversations.archive": {"channel": spare},
        "chat.postMessage": {"channel": cid, "text": "hi"},
        "chat.update": {"channel": cid, "ts": ts, "text": "edited"},
        "chat.postEphemeral": {"channel": cid, "user": "U2", "text": "psst"},
        "chat.getPermalink": {"channel": cid, "message_ts": ts},
        "pins.add": {"channel": cid, "timestamp": ts},
        "pins.remove": {"channel": cid, "timestamp": pinned},
        "reactions.add": {"channel": cid, "timestamp": ts, "name": "eyes"},
        "users.info": {"user": "U1"},
        "users.lookupByEmail": {"email": "alice@example.com"},
        "views.open": {"trigger_id": slack.issue_trigger_id("U1"), "view": MODAL},
        "views.update": {"view_id": view_id, "view": MODAL},
        "views.publish": {"user_id": "U1", "view": HOME},
        "bookmarks.add": {"channel_id": cid, "title": "Runbook", "type": "link", "link": "https://r.example"},
        "usergroups.users.list": {"usergroup": "S0CONFORM"},
        "usergroups.users.update": {"usergroup": "S0CONFORM", "users": "U1"},  # no spec in ../shared
    }


def test_conformance_with_slack_method_files(slack: SlackStandin, api: Api, http: httpx.Client) -> None:
    root = _spec_dir()
    if not (root / "methods").is_dir():
        pytest.skip(f"{root} not found: conformance against Slack's method files skipped")
    common = set(json.loads((root / "extras" / "common_errors.json").read_text())["errors"])
    minimal = _minimal_args(slack, api)
    assert set(minimal) == set(METHODS), "every implemented method needs a minimal argument set here"
    checked = 0
    for method, rules in METHODS.items():
        path = root / "methods" / f"{method}.json"
        if not path.exists():
            continue
        spec = json.loads(path.read_text())
        required = [a for a in spec["args"].get("required", []) if a != "token"]
        json_ok = bool(spec.get("json_input_supported"))
        assert rules.json_ok == json_ok, method

        def call(args: dict[str, Any], method: str = method, json_ok: bool = json_ok) -> dict[str, Any]:
            if json_ok:
                return http.post(f"/api/{method}", json=args).json()
            return http.post(f"/api/{method}", data={k: str(v) for k, v in args.items()}).json()

        if required:
            without = {k: v for k, v in minimal[method].items() if k not in required}
            answer = call(without)
            assert answer["ok"] is False, (method, answer)
            assert answer["error"] in rules.errors | GENERIC_ERRORS, (method, answer)
        answer = call(minimal[method])
        assert answer["ok"] is True, (method, answer)

        allowed = set(spec.get("errors", {})) | common | {"invalid_auth", "missing_argument"}
        allowed |= LIMITS_MD_EXTRAS.get(method, set())
        undocumented = (rules.errors | GENERIC_ERRORS) - allowed
        assert not undocumented, f"{method} can return codes Slack does not document for it: {undocumented}"
        checked += 1
    missing = {m for m in METHODS if not (root / "methods" / f"{m}.json").exists()}
    assert missing == NOT_IN_SHARED, (
        "a method without a spec file must be one followed from Slack's public docs"
    )
    assert checked == len(METHODS) - len(NOT_IN_SHARED)
