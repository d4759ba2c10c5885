"""The Slack app manifest and the code agree: every shortcut and event it declares has a listener."""

from __future__ import annotations

from pathlib import Path

import yaml

from handlers import registry
from handlers.app import _load_modules

MANIFEST = Path(__file__).resolve().parents[2] / "slack-app-manifest.yaml"


def test_manifest_shortcuts_and_events_have_handlers() -> None:
    _load_modules()
    m = yaml.safe_load(MANIFEST.read_text())
    callbacks = {s["callback_id"] for s in m["features"]["shortcuts"]}
    assert callbacks == set(registry.SHORTCUTS)
    events = set(m["settings"]["event_subscriptions"]["bot_events"])
    assert events == set(registry.EVENTS)
    assert m["features"]["app_home"]["home_tab_enabled"] is True
