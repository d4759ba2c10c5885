"""Developer tool (scripts/check-real-pair.sh): `incident-bot drill <scenario> --target factory
--allow-real-factory --wait --recover` against FACTORY_URL, with the Slack stand-in serving Slack on loopback
(no Slack workspace needed). The real Factory schedules chaos for tomorrow: the calling script makes it start
now in the Factory's database while this waits. DATABASE_URL must point at a migrated throwaway database."""

from __future__ import annotations

import os
import sys

from bot.config import get_settings
from sandbox.servers import ServerThread
from sandbox.slack_standin import SlackStandin
from wiring.cli import main
from wiring.sandbox import sandbox_users

TOKEN = "xoxb-real-pair-check"

if __name__ == "__main__":
    standin = SlackStandin(token=TOKEN)
    server = ServerThread(standin.app)
    standin.base_url = server.start()
    os.environ.update(SLACK_API_URL=f"{standin.base_url}/api/", SLACK_BOT_TOKEN=TOKEN)
    os.environ.setdefault("SLACK_SIGNING_SECRET", "real-pair-check")
    # Settings are read (and cached) from here on, with the environment naming the stand-in.
    for user in sandbox_users(get_settings().oncall_file):  # the roster's people, so war-room invites work
        standin.add_user(user.id, user.name, real_name=user.real_name)
    code = main(["drill", *sys.argv[1:]])
    posted = standin.calls_to("chat.postMessage")
    print(f"stand-in: {len(posted)} chat.postMessage call(s)", file=sys.stderr)
    for call in posted[-3:]:
        print(f"  {str(call)[:300]}", file=sys.stderr)
    sys.exit(code)
