"""Real bot processes for crash and chaos tests: `incident-bot serve` and `incident-bot worker` as
subprocesses (SIGKILL is a real crash), plus signed HTTP to them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

from tests.support import BOT_TOKEN, SIGNING_SECRET, sign

BIN = Path(sys.executable).parent / "incident-bot"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(db_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{slack_url}/api/",
        DATABASE_URL=db_url,
        MONITOR_INTERVAL="0",
        WORKER_POLL_INTERVAL="0.1",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


@dataclass
class Proc:
    kind: str  # web | worker
    env: dict[str, str]
    cwd: Path
    port: int = 0
    p: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proc:
        args = [str(BIN), "worker"]
        if self.kind == "web":
            self.port = self.port or free_port()
            args = [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        log = open(self.cwd / f"{self.kind}-{self.port or id(self)}.log", "ab")
        self.p = subprocess.Popen(args, env=self.env, cwd=self.cwd, stdout=log, stderr=log)
        if self.kind == "web":
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert self.p.poll() is None, f"web exited with {self.p.returncode}"
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            raise TimeoutError("web did not come up")
        return self

    def kill(self) -> None:
        """A crash: no drain, no shutdown hooks."""
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(timeout=10)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def command_body(text: str, *, user: str, channel: str, trigger_id: str, response_url: str) -> bytes:
    return urlencode(
        {
            "team_id": "T0STANDIN",
            "channel_id": channel,
            "user_id": user,
            "user_name": user.lower(),
            "command": "/incident",
            "text": text,
            "response_url": response_url,
            "trigger_id": trigger_id,
            "api_app_id": "A0TEST",
        }
    ).encode()


async def post_command(http: httpx.AsyncClient, url: str, body: bytes, **headers: str) -> httpx.Response:
    h = {"Content-Type": "application/x-www-form-urlencoded", **sign(body), **headers}
    return await http.post(f"{url}/slack/events", content=body, headers=h)


__all__ = ["BOT_TOKEN", "SIGNING_SECRET", "Proc", "bot_env", "command_body", "free_port", "post_command"]
