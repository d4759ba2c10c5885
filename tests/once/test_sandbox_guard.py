"""A second `incident-bot sandbox` (a second `make run`) refuses clearly and leaves the running one's database
alone: port and database lock are checked before anything is deleted."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.chaos.procs import BIN, free_port


def _start(tmp_path: Path, port: int, db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN), "sandbox", "--port", str(port), "--db", str(db), "--no-worker"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_second_sandbox_refuses_and_keeps_the_first_ones_database(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    port = free_port()
    first = _start(tmp_path, port, db)
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert "open http" in line, line
        deadline = time.monotonic() + 30
        while not db.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        inode = db.stat().st_ino

        same_port = subprocess.run(
            [str(BIN), "sandbox", "--port", str(port), "--db", str(tmp_path / "other.db")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert same_port.returncode == 1
        assert "in use" in same_port.stdout and "Nothing was changed" in same_port.stdout

        same_db = subprocess.run(
            [str(BIN), "sandbox", "--port", str(free_port()), "--db", str(db)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert same_db.returncode == 1
        assert "in use by another sandbox" in same_db.stdout, same_db.stdout
        assert db.exists() and db.stat().st_ino == inode  # not deleted and recreated
        assert first.poll() is None  # the first one still runs
    finally:
        first.terminate()
        first.wait(timeout=30)
