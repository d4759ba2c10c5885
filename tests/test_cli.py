"""The `incident-bot` command line: routing of feature subcommands, version."""

from __future__ import annotations

import json

import pytest

from wiring.cli import main


def test_delegated_command_keeps_a_leading_option(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["check", "--json", "--factory-url", "http://127.0.0.1:9", "--service-url", "", "--timeout", "0.5"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["verdict"] == "down"
    assert {r["name"] for r in out["results"]} >= {"factory_docs", "order"}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("incident-bot ")
