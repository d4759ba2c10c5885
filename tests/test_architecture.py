"""The layers hold (import-linter contracts in pyproject.toml, also run by `make lint`), so a plain pytest run
catches an import that points up, a Slack import in the domain or a new cycle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == EXIT_STATUS_SUCCESS, out
    assert "0 broken" in out


def test_no_imports_inside_functions_in_the_domain_and_adapters() -> None:
    """An import inside a function is how a cycle hides from the contracts; type-only imports are fine."""
    found = []
    for package in ("bot", "handlers"):
        for path in (ROOT / package).rglob("*.py"):
            lines = path.read_text().splitlines()
            for n, line in enumerate(lines, 1):
                stripped = line.lstrip()
                indented = line != stripped
                if indented and (stripped.startswith("import ") or stripped.startswith("from ")):
                    guard = next((p for p in reversed(lines[: n - 1]) if not p.startswith(" ")), "")
                    if "TYPE_CHECKING" not in guard:
                        found.append(f"{path.relative_to(ROOT)}:{n}: {stripped}")
    assert not found, "\n".join(found)


def test_sandbox_is_not_inside_the_product_package() -> None:
    assert not (ROOT / "bot" / "sandbox").exists()
    assert os.path.isfile(ROOT / "sandbox" / "slack_standin.py")


def test_handlers_open_no_database_sessions() -> None:
    """A handler parses, checks permission, calls a flow and renders: transactions belong to the flows (the
    domain), so what a command changes commits, or not, as one unit whatever the handler does after."""
    found = []
    for path in (ROOT / "handlers").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if ".session(" in line or "AsyncSession" in line:
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
