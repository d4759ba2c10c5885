"""`incident-bot statuspage …` against a real database: subscribers and maintenance show up on the page data."""

from __future__ import annotations

import pytest

from wiring.cli import main


def test_subscribe_list_unsubscribe_and_maintenance(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.config import get_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    try:
        assert main(["statuspage", "subscribe", "https://hooks.example.com/status"]) == 0
        out = capsys.readouterr().out
        assert "subscriber 1" in out and "signing secret" in out
        assert main(["statuspage", "subscribe", "ftp://nope"]) == 2
        assert main(["statuspage", "subscribers"]) == 0
        assert "1\tactive\thttps://hooks.example.com/status" in capsys.readouterr().out
        assert main(["statuspage", "unsubscribe", "1"]) == 0
        assert main(["statuspage", "unsubscribe", "99"]) == 1
        code = main(
            ["statuspage", "maintenance", "DB upgrade", "2026-12-02T03:00Z", "1h", "--component", "ordering"]
        )
        assert code == 0 and "maintenance 1 scheduled 2026-12-02 03:00–04:00 UTC" in capsys.readouterr().out
        assert main(["statuspage", "maintenance", "x", "2026-12-02T03:00", "1h"]) == 2  # no zone
        assert main(["statuspage", "maintenance", "x", "2026-12-02T03:00Z", "1h", "--component", "nope"]) == 2
        assert main(["statuspage", "cancel-maintenance", "1"]) == 0
    finally:
        get_settings.cache_clear()
