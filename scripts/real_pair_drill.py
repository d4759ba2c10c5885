"""Developer tool (scripts/check-real-pair.sh): `incident-bot drill <scenario> --target factory
--allow-real-factory --wait --recover` against FACTORY_URL, with the Slack stand-in serving Slack on loopback
(no Slack workspace needed). The real Factory schedules chaos for tomorrow: the calling script makes it start
now in the Factory's database while this waits. DATABASE_URL must point at a migrated throwaway database."""

from __future__ import annotations

import os
import sys

from sandbox.servers import ServerThread
from sandbox.slack_standin import SlackStandin
from wiring.cli import main  # reads the settings when called, after the environment names the stand-in

TOKEN = "xoxb-real-pair-check"

if __name__ == "__main__":
    standin = SlackStandin(token=TOKEN)
    server = ServerThread(standin.app)
    standin.base_url = server.start()
    os.environ.update(SLACK_API_URL=f"{standin.base_url}/api/", SLACK_BOT_TOKEN=TOKEN)
    os.environ.setdefault("SLACK_SIGNING_SECRET", "real-pair-check")
    code = main(["drill", *sys.argv[1:]])
    posted = standin.calls_to("chat.postMessage")
    print(f"stand-in: {len(posted)} chat.postMessage call(s)", file=sys.stderr)
    for call in posted[-3:]:
        print(f"  {str(call)[:300]}", file=sys.stderr)
    sys.exit(code)
