"""What a health check produces (probe results and the report), apart from the probes that produce it, so
the judgement (bot.health.thresholds) and the probes (bot.health.probes) both build on it without a cycle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["ok", "degraded", "down", "skipped"]
Verdict = Literal["healthy", "degraded", "down"]
Severity = Literal["P0", "P1", "P2", "P3"]
RecoveryOutcome = Literal["resolved", "no_chaos", "unresolved", "no_report_url", "failed"]

FACTORY_PROBES = ("factory_docs", "factory_vendor", "order", "verify", "jwks")
SERVICE_PROBES = ("service_root", "service_docs")
ORDER_PATH = ("order", "verify")


@dataclass
class ProbeResult:
    name: str
    title: str
    status: Status
    http_status: int | None
    latency_ms: float
    detail: str
    report_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    results: list[ProbeResult]
    started_at: datetime
    wall_ms: float
    verdict: Verdict
    suggested_severity: Severity | None
    report_url: str | None

    @property
    def checks(self) -> int:
        return len(self.results)

    def result(self, name: str) -> ProbeResult | None:
        return next((r for r in self.results if r.name == name), None)

    @property
    def chaos_type(self) -> str | None:
        """The chaos running, as the vendor record says or, failing that, as the order path shows it."""
        vendor, order, verify = self.result("factory_vendor"), self.result("order"), self.result("verify")
        if vendor is not None and vendor.data.get("chaos_state") == "running":
            return str(vendor.data["chaos"]["type"])
        if order is not None and order.data.get("chaos_monkey"):
            return "fail"
        if verify is not None and verify.status == "down" and verify.http_status == 403 and self.report_url:
            return "badjwt"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "suggested_severity": self.suggested_severity,
            "report_url": self.report_url,
            "chaos_type": self.chaos_type,
            "started_at": self.started_at.isoformat(),
            "wall_ms": round(self.wall_ms, 1),
            "checks": self.checks,
            "results": [r.to_dict() for r in self.results],
        }
