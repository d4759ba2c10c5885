"""Start Debian's real Alertmanager (and Prometheus) on free loopback ports for a test. Skips, saying why,
where the binaries are missing (`scripts/ensure-alertmanager.sh`, run by `make test`, installs them)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PROM_BIN = shutil.which("prometheus")
AM_SKIP = (
    "Debian's prometheus-alertmanager is not installed (scripts/ensure-alertmanager.sh installs it as root)"
)
PROM_SKIP = "Debian's prometheus is not installed (scripts/ensure-alertmanager.sh installs it as root)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, args: list[str], log: Path, url: str, ready_path: str) -> None:
        self.args, self.log, self.url, self.ready_path = args, log, url, ready_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        out = self.log.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.args[0]} not ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def alertmanager(tmp: Path, webhook_url: str, user: str, password: str, **route: str) -> Process:
    if AM_BIN is None:
        pytest.skip(AM_SKIP)
    port = free_port()
    config = {
        "route": {
            "receiver": "incident-bot",
            "group_by": ["alertname"],
            "group_wait": route.get("group_wait", "1s"),
            "group_interval": route.get("group_interval", "2s"),
            "repeat_interval": route.get("repeat_interval", "3s"),
        },
        "receivers": [
            {
                "name": "incident-bot",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"basic_auth": {"username": user, "password": password}},
                    }
                ],
            }
        ],
    }
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config))
    (tmp / "am-data").mkdir(exist_ok=True)
    args = [
        AM_BIN,
        f"--config.file={cfg}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    return Process(args, tmp / "alertmanager.log", f"http://127.0.0.1:{port}", "/-/ready").start()


def prometheus(tmp: Path, scrape_target: str, alertmanager_url: str, rules: dict[str, Any]) -> Process:
    if PROM_BIN is None:
        pytest.skip(PROM_SKIP)
    port = free_port()
    rules_file = tmp / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {"job_name": "jwt-pizza-service", "static_configs": [{"targets": [scrape_target]}]}
        ],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.split("//", 1)[1]]}]}]
        },
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    args = [
        PROM_BIN,
        f"--config.file={cfg}",
        f"--storage.tsdb.path={tmp / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}/",  # generatorURL links back here, not to the hostname
        "--rules.alert.resend-delay=1s",
    ]
    return Process(args, tmp / "prometheus.log", f"http://127.0.0.1:{port}", "/-/ready").start()


async def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll until `predicate()` is truthy (real senders run on their own schedule). Not a timing assertion:
    the deadline only keeps a broken run from hanging."""
    deadline = time.monotonic() + timeout
    while True:
        got = await predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
