"""Developer tool (scripts/check-real-pair.sh): one check, the bot's recovery action, one more check, against
whatever FACTORY_URL / PIZZA_SERVICE_URL name (the real pair on loopback). Prints one JSON document.

Uses the bot's own flow pieces (bot.health.flows.run_check, bot.health.probes.run_recovery) on Services opened
by wiring.services.open_services, so DATABASE_URL must point at a migrated throwaway database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot.config import get_settings
from bot.health.flows import figures, run_check
from bot.health.probes import run_recovery
from wiring.services import open_services


async def main(timeout: float) -> dict[str, object]:
    settings = get_settings()
    async with open_services(settings) as svc:
        before = await run_check(svc, kind="check")
        recovery = await run_recovery(
            settings.factory_url, settings.secret("factory_api_key"), before.report_url, timeout=timeout
        )
        after = await run_check(svc, kind="check")
    rec = recovery.to_dict()
    key = settings.secret("factory_api_key")
    text = json.dumps({"before": figures(before), "recovery": rec, "after": figures(after)})
    return dict(json.loads(text.replace(key, "<api key>") if key else text))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--timeout", type=float, default=40.0, help="recovery order/follow timeout (s)")
    out = asyncio.run(main(p.parse_args().timeout))
    json.dump(out, sys.stdout, indent=2)
    print()
