"""The Renderer the wiring plugs into Services: Block Kit for every domain message, drills included.

A module of its own because the drill messages live with the drill commands (handlers/cmd_dr.py) and the check
report with the check command (handlers/cmd_health.py), which themselves build on handlers/blocks.py."""

from __future__ import annotations

from typing import Any

from bot.dr.report import DrillReport
from bot.ports import Blocks
from handlers.blocks import BlockKitRenderer
from handlers.cmd_dr import drill_report_message, drill_started_message
from handlers.cmd_health import report_blocks


class SlackRenderer(BlockKitRenderer):
    """Implements bot.ports.Renderer."""

    def drill_started(self, drill_id: int, report: DrillReport) -> tuple[str, Blocks]:
        return drill_started_message(drill_id, report)

    def drill_report(self, drill_id: int, report: DrillReport) -> tuple[str, Blocks]:
        return drill_report_message(drill_id, report)

    def check_report(self, report: Any, incident_id: str | None, title: str) -> tuple[str, Blocks]:
        return f"{title}: {report.verdict}", report_blocks(report, incident_id=incident_id, title=title)
