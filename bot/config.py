"""One Settings class, read from the environment (and `.env`). Everything configurable lives here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONTENT_DIR = Path(__file__).resolve().parent.parent / "playbook_content"


class MissingSecret(RuntimeError):
    """A secret the bot will not run without."""


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
    # Optional diner account: enables the end-to-end probe that orders through the service (PUT /api/auth,
    # POST /api/order), the only probe that sees a service unable to order from the Factory.
    pizza_diner_email: str = ""
    pizza_diner_password: SecretStr | None = None
    oncall_file: Path = CONTENT_DIR / "oncall.example.yaml"
    escalation_file: Path = CONTENT_DIR / "escalation.yaml"
    routing_file: Path = CONTENT_DIR / "routing.yaml"
    severities_file: Path = CONTENT_DIR / "severities.yaml"
    # On-call schedules (bot/oncall); a missing file means the roster's fixed users, always on.
    schedules_file: Path = CONTENT_DIR / "schedules.yaml"
    oncall_channel: str | None = None  # hand-off lines and gap warnings
    oncall_admins: str = ""  # comma-separated Slack ids who may change any schedule
    oncall_check_interval: float = 60.0  # seconds between the worker's hand-off/gap/feed passes
    announce_channel: str | None = None
    display_tz: str = "UTC"
    log_level: str = "INFO"
    # Signs PIR links; falls back to the signing secret so a single-secret install still works.
    server_secret: SecretStr | None = None
    web_access_token: SecretStr | None = None
    declare_rate_limit: int = 5  # declarations per user per minute
    monitor_interval: float = 60.0
    check_timeout: float = 5.0  # seconds per probe (the whole probe), for the monitor and `/incident check`
    worker_poll_interval: float = 0.5
    worker_metrics_port: int = 0  # >0: the worker serves its own /metrics (pages, lateness, Slack errors)
    worker_metrics_host: str = "127.0.0.1"  # loopback unless an operator says otherwise
    slash_command: str = "/incident"  # the only command name the endpoint handles
    slack_max_body: int = 1_000_000  # bytes; Slack's own payloads are a few KB, modals well under 100 KB
    # response_url hosts the bot POSTs to (besides the host of SLACK_API_URL): anything else a payload names
    # is ignored, so a forged or odd payload cannot make the bot POST elsewhere.
    response_url_hosts: str = "hooks.slack.com"
    # Multiplies every ladder/reminder duration (sandbox --fast uses a small factor).
    time_scale: float = 1.0
    # Public status page (bot/statuspage): components in YAML; who may publish besides the commander and comms
    # lead (comma-separated Slack user ids); a second person's approval for P0 updates; optional Atlassian
    # Statuspage mirror (set the page id and API key).
    statuspage_file: Path = CONTENT_DIR / "status.yaml"
    statuspage_admins: str = ""
    statuspage_p0_approval: bool = False
    statuspage_cache_seconds: int = 30
    statuspage_atlassian_url: str = "https://api.statuspage.io/v1/"
    statuspage_atlassian_page_id: str | None = None
    statuspage_atlassian_api_key: SecretStr | None = None
    # Alerts in (bot/alerts): one credential per sender, "user:password" (HTTP Basic) or a whole
    # Authorization header value such as "Bearer <token>". Unset: that endpoint refuses everything (401).
    alertmanager_credentials: SecretStr | None = None
    grafana_credentials: SecretStr | None = None
    alerts_file: Path = CONTENT_DIR / "alerts.yaml"
    alerts_max_body: int = 4 * 1024 * 1024  # bytes; 1,000 Grafana alerts are about 1.5 MB
    # Who may do what beyond war-room membership (bot/permissions.py). Slack user ids, comma-separated.
    dr_admins: str = ""  # start drills and tabletops, change the Factory
    dr_product_owner: str = ""  # signs dr-plan.md for product
    dr_ops_owner: str = ""  # signs dr-plan.md for operations
    # A drill from Slack against a FACTORY_URL that is not the simulator starts real chaos: off unless set.
    drills_allow_real_factory: bool = False
    # Multiplies the Slack rate gate's per-method and per-channel rates (1 = Slack's published tiers).
    slack_rate_scale: float = 1.0
    # Retention (the worker's retention tick, docs/architecture.md): finished bookkeeping rows are deleted
    # after these many days; incidents, timeline events and pages are kept. 0 keeps that kind forever.
    retention_interval: float = 3600.0  # seconds between passes in one worker
    retention_outbox_days: float = 30.0  # sent/failed outbox rows (a Slack retry storm is long over)
    retention_timers_days: float = 30.0  # done/dropped/failed timers (the pages table keeps the record)
    retention_samples_days: float = 90.0  # monitor/check samples (PIRs of that age show no check table)
    retention_requests_days: float = 7.0  # processed Slack request ids (Slack retries within minutes)

    # Bookmarks in every war room besides its timeline & PIR: "Title=https://…, Title=https://…"
    # (dashboards, the playbook, the runbook).
    war_room_links: str = ""

    def war_room_bookmarks(self) -> list[tuple[str, str]]:
        """(title, url) pairs from WAR_ROOM_LINKS; entries that are not http(s) links are ignored."""
        out = []
        for item in self.war_room_links.split(","):
            title, _, url = item.partition("=")
            title, url = title.strip(), url.strip()
            if title and url.startswith(("https://", "http://")):
                out.append((title[:60], url))
        return out

    @field_validator("slack_api_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    def dr_admin_ids(self) -> frozenset[str]:
        return _ids(self.dr_admins)

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
        """The PIR link key: SERVER_SECRET, else the signing secret. No built-in fallback: a guessable key
        would let anyone mint 7-day links to every PIR."""
        secret = self.secret("server_secret") or self.secret("slack_signing_secret")
        if not secret:
            raise MissingSecret("set SERVER_SECRET or SLACK_SIGNING_SECRET to sign PIR links")
        return secret.encode()

    def response_url_allowed(self, url: str) -> bool:
        return response_url_allowed(url, self.slack_api_url, self.response_url_hosts)


def response_url_allowed(url: str, api_url: str, hooks_hosts: str = "hooks.slack.com") -> bool:
    """Slack's hooks host over https, or the configured Web API host (the sandbox's stand-in)."""
    try:
        target, api = urlsplit(url), urlsplit(api_url)
        target_port, api_port = target.port, api.port
    except ValueError:
        return False
    if target.username or target.password or not target.hostname:
        return False
    hooks = {h.strip().lower() for h in hooks_hosts.split(",") if h.strip()}
    if target.scheme == "https" and target.hostname in hooks and target_port in (None, 443):
        return True
    return (target.scheme, target.hostname, target_port) == (api.scheme, api.hostname, api_port)


def _ids(value: str) -> frozenset[str]:
    return frozenset(u for u in value.replace(",", " ").split() if u)


@lru_cache
def get_settings() -> Settings:
    return Settings()  # values come from the environment
