"""One Settings class, read from the environment (and `.env`). Everything configurable lives here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONTENT_DIR = Path(__file__).resolve().parent.parent / "playbook_content"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None  # Socket Mode only
    slack_api_url: str = "https://slack.com/api/"
    slack_timeout: int = 10  # seconds per Web API call (the SDK retries 429/5xx/connection errors on top)
    database_url: str = "sqlite+aiosqlite:///./incident-bot.db"
    public_url: str = "http://127.0.0.1:8000"
    factory_url: str = "https://pizza-factory.cs329.click"
    factory_api_key: SecretStr | None = None
    pizza_service_url: str = "https://pizza-service.cs329.click"
    oncall_file: Path = CONTENT_DIR / "oncall.example.yaml"
    escalation_file: Path = CONTENT_DIR / "escalation.yaml"
    routing_file: Path = CONTENT_DIR / "routing.yaml"
    severities_file: Path = CONTENT_DIR / "severities.yaml"
    announce_channel: str | None = None
    display_tz: str = "UTC"
    log_level: str = "INFO"
    # Signs PIR links; falls back to the signing secret so a single-secret install still works.
    server_secret: SecretStr | None = None
    web_access_token: SecretStr | None = None
    declare_rate_limit: int = 5  # declarations per user per minute
    monitor_interval: float = 60.0
    worker_poll_interval: float = 0.5
    worker_metrics_port: int = 0  # >0: the worker serves its own /metrics (pages, lateness, Slack errors)
    # Multiplies every ladder/reminder duration (sandbox --fast uses a small factor).
    time_scale: float = 1.0
    # Multiplies the Slack rate gate's per-method and per-channel rates (1 = Slack's published tiers).
    slack_rate_scale: float = 1.0
    # Retention (the worker's retention tick, docs/architecture.md): finished bookkeeping rows are deleted
    # after these many days; incidents, timeline events and pages are kept. 0 keeps that kind forever.
    retention_interval: float = 3600.0  # seconds between passes in one worker
    retention_outbox_days: float = 30.0  # sent/failed outbox rows (a Slack retry storm is long over)
    retention_timers_days: float = 30.0  # done/dropped/failed timers (the pages table keeps the record)
    retention_samples_days: float = 90.0  # monitor/check samples (PIRs of that age show no check table)
    retention_requests_days: float = 7.0  # processed Slack request ids (Slack retries within minutes)

    @field_validator("slack_api_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else ""

    def missing_for_serve(self) -> list[str]:
        return [
            env
            for env, value in (
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
            )
            if value is None or not value.get_secret_value()
        ]

    def link_secret(self) -> bytes:
        return (self.secret("server_secret") or self.secret("slack_signing_secret") or "dev").encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()  # values come from the environment
