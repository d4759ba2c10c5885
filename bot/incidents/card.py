"""What the update template shows, as plain data; handlers/blocks.py turns it into Block Kit."""

from __future__ import annotations

from dataclasses import dataclass

from bot.incident_facts import IncidentFacts, facts_of
from bot.models import Incident
from bot.playbook import Playbook
from bot.slack_text import esc_clip


@dataclass(frozen=True)
class IncidentCard(IncidentFacts):
    acked: bool = False  # acknowledged in the current cycle (a reopen starts a new one)

    @classmethod
    def of(cls, inc: Incident, playbook: Playbook) -> IncidentCard:
        route = playbook.routing.get(inc.area or "")
        label = playbook.severities.label(inc.severity)
        return cls(**facts_of(inc, label, route.title if route else None), acked=inc.ack_cycle == inc.cycle)

    def topic(self) -> str:
        """Slack reads `<!channel>` and links in topics too: the summary goes in escaped, and clipped so
        that no entity is cut in half."""
        prefix = f"{'[DRILL] ' if self.is_drill else ''}{self.id} | {self.severity_label} | {self.status} | "
        return prefix + esc_clip(self.summary, 250 - len(prefix))
