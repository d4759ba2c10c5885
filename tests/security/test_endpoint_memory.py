"""A 300 MB unsigned body against a real `incident-bot serve` process: refused at the limit, and the process's
resident memory stays flat (today's main grew from ~105 MB to ~705 MB)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support import BOT_TOKEN, SIGNING_SECRET

BIN = Path(sys.executable).parent / "incident-bot"
BODY = 300 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)
GROWTH_LIMIT = 50 * 1024 * 1024  # the request limit is 1 MB; 50 MB of slack for allocator noise


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(sqlite_url: str, slack, tmp_path: Path):  # type: ignore[no-untyped-def]
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the server's RSS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{slack.base_url}/api/",
        DATABASE_URL=sqlite_url,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _send(port: int, head: bytes, chunked: bool) -> bytes:
    """Write up to 300 MB, stopping when the server answers or closes; return what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent < BODY:
                sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK)
                sent += len(CHUNK)
                sock.setblocking(False)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break  # the server has answered: stop sending
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(30)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_300mb_unsigned_body_keeps_memory_flat(served, chunked: bool) -> None:  # type: ignore[no-untyped-def]
    proc, port = served
    before = _rss(proc.pid)
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % BODY
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + framing
        + b"\r\n"
    )
    # Sampled while the body is in flight: a buffered body is freed (and RSS falls) once the request ends.
    peak, done = before, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        answer = _send(port, head, chunked)
    finally:
        done.set()
        sampler.join()
    peak = max(peak, _rss(proc.pid))
    assert peak - before < GROWTH_LIMIT, (before, peak)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # ...and the process is still serving.
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    print(
        f"RSS before {before / 2**20:.0f} MB, peak during a 300 MB body ({'chunked' if chunked else 'sized'})"
        f" {peak / 2**20:.0f} MB"
    )
