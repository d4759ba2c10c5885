"""Secrets and exposure: what an operator's terminal, a log shipper, a port scan or a forged payload can get."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from bot.health.report import check_main
from sandbox.servers import ServerThread
from tests.conftest import MakeServers
from tests.security.conftest import free_port, process_env
from tests.support import BotHarness

BIN = Path(sys.executable).parent / "incident-bot"


# -- check --json ---------------------------------------------------------------------------------------


def test_check_json_redacts_the_vendor_key_like_the_table(make_servers: MakeServers) -> None:
    servers = make_servers(report_url_mode="self")
    servers.set_mode("fail")
    key = servers.sim.api_key
    argv = ["--factory-url", servers.factory_url, "--api-key", key, "--service-url", servers.service_url]
    out = io.StringIO()
    check_main(["--json", *argv], stdout=out, stderr=io.StringIO())
    report = json.loads(out.getvalue())
    assert report["report_url"] and "/api/support/" in report["report_url"]  # the link is still shown...
    assert key not in out.getvalue()  # ...without the key, anywhere in the document
    table = io.StringIO()
    check_main(argv, stdout=table, stderr=io.StringIO())
    assert key not in table.getvalue()
    assert report["report_url"] in table.getvalue()  # masked the same way as the table


# -- routes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_no_api_schema_or_docs(lite_bot: BotHarness, path: str) -> None:
    assert (await lite_bot.http.get(f"{lite_bot.url}{path}")).status_code == 404


# -- real processes: metrics bind, access log, link secret ------------------------------------------------


def _listening_on(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* shows them) of sockets LISTENing on `port`."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(addr)
    return found


def test_worker_metrics_bind_loopback_by_default(sqlite_url: str, slack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp")
    port = free_port()
    env = process_env(sqlite_url, slack, WORKER_METRICS_PORT=str(port))
    proc = subprocess.Popen([str(BIN), "worker"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "started" in proc.stderr.readline()
        addrs: set[str] = set()
        for _ in range(100):
            if addrs := _listening_on(port):
                break
            time.sleep(0.05)
        assert addrs == {"0100007F"}, addrs  # 127.0.0.1, not 0.0.0.0 / ::
        assert "incident_bot" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_access_log_drops_signed_link_tokens(sqlite_url: str, slack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = process_env(sqlite_url, slack, SERVER_SECRET="exposure-server-secret")
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    token = "1999999999.THIS-IS-A-SEVEN-DAY-CREDENTIAL-abcdefghijklmnop"
    try:
        for _ in range(400):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        for path in (f"/incidents/INC-1/pir.md?token={token}", f"/incidents?token={token}", "/healthz?x=1"):
            httpx.get(base + path)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert "/incidents/INC-1/pir.md" in out and "/healthz?x=1" in out  # requests are logged...
    assert token not in out and "CREDENTIAL" not in out  # ...without their tokens


def test_worker_refuses_to_start_without_a_link_secret(sqlite_url: str, slack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = process_env(sqlite_url, slack)
    del env["SLACK_SIGNING_SECRET"]
    try:
        out = subprocess.run(
            [str(BIN), "worker"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the worker started without any secret to sign PIR links with")
    assert out.returncode == 2 and "SERVER_SECRET" in out.stderr


def test_no_builtin_link_key() -> None:
    from bot.config import MissingSecret, Settings

    bare = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(MissingSecret):
        bare.link_secret()
    assert Settings(_env_file=None, server_secret="s3cr3t-value").link_secret() == b"s3cr3t-value"  # type: ignore[call-arg]


# -- response_url ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://hooks.slack.com/commands/T1/1/abc", True),
        ("https://hooks.slack.com:443/actions/T1/1/abc", True),
        ("http://hooks.slack.com/commands/T1/1/abc", False),
        ("https://hooks.slack.com.evil.example/commands", False),
        ("https://evil.example/?https://hooks.slack.com/", False),
        ("https://user@hooks.slack.com/commands", False),
        ("https://hooks.slack.com:8443/commands", False),
        ("http://127.0.0.1:7000/response/x", True),  # the configured API host (the stand-in)
        ("http://127.0.0.1:7001/response/x", False),
        ("https://[::1", False),
        ("", False),
    ],
)
def test_response_url_allowlist(url: str, ok: bool) -> None:
    from bot.config import response_url_allowed

    assert response_url_allowed(url, "http://127.0.0.1:7000/api/") is ok


async def test_response_url_to_another_host_is_never_posted(lite_bot: BotHarness) -> None:
    """A signed payload naming an arbitrary response_url: nothing goes there; the answer is an ephemeral."""
    got: list[Any] = []
    trap = FastAPI()

    @trap.post("/{path:path}")
    async def record(request: Request) -> dict[str, str]:
        got.append(await request.body())
        return {}

    with ServerThread(trap) as server:
        evil = f"{server.url}/steal"
        from urllib.parse import urlencode

        form = {
            "command": "/incident",
            "text": "note not in a war room",
            "user_id": "UOUTSIDER",
            "channel_id": "CGENERAL",
            "trigger_id": "standin-t",
            "response_url": evil,
        }
        resp = await lite_bot.post_signed(urlencode(form).encode(), "application/x-www-form-urlencoded")
        assert resp.status_code == 200
        await lite_bot.drain()
    assert got == []
    ephemerals = lite_bot.slack.calls_to("chat.postEphemeral")
    assert ephemerals and ephemerals[-1].args["user"] == "UOUTSIDER"
