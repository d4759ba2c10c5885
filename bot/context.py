"""The services one app instance runs on, built once by create_app (or a test) and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.config import Settings
from bot.db import Database
from bot.playbook import Playbook
from bot.ports import ChatPort, Renderer
from bot.tasks import TaskGroup

if TYPE_CHECKING:
    from bot.metrics import Metrics


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    playbook: Playbook
    chat: ChatPort
    render: Renderer
    metrics: Metrics
    tasks: TaskGroup = field(default_factory=TaskGroup)

    @classmethod
    def load_playbook(cls, settings: Settings) -> Playbook:
        return Playbook.load(
            settings.severities_file, settings.oncall_file, settings.routing_file, settings.escalation_file
        )
