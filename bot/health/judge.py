"""The one health judgement: probe results + thresholds -> verdict, severity, metrics and impact text.

Pure functions, no I/O. `incident-bot check`, `/incident check`, the monitor, drills and the PIR all judge with
this module so a state gets one name and one severity wherever it is shown:

- each probe is ok / degraded / down; an answer slower than `latency_p99.high` (seed 001: "> 1 s is high") is
  degraded with its latency named, so a slow but correct Factory is not called healthy;
- the metrics of a set of checks use their own denominators: error rate over *orders* (the synthetic
  transaction: a Factory order that fails or whose JWT does not verify, and the order through the service),
  availability over *checks* (a check is unavailable when every probe of the Factory, or of the service, is down),
  p99 over the orders' latencies;
- severity = the most severe alert level the metrics cross (seed 001 ALERT_THRESHOLDS), else `medium` when a
  probe is down or degraded (partial), else `low` when chaos is scheduled; the same rule for one check and for
  a window, so `check` and the monitor agree. The p99 medium band (> 500 ms) needs `monitor.min_samples` orders
  to count: one order's latency is not a percentile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bot.health.results import ProbeResult
    from bot.health.thresholds import Thresholds

Verdict = Literal["healthy", "degraded", "down"]
Severity = Literal["P0", "P1", "P2", "P3"]

# The transaction a customer makes: a Factory order (verify is part of it) and an order through the service.
ORDER_PROBES = ("order", "service_order")
FACTORY_PROBES = ("factory_docs", "factory_vendor", "order", "verify", "jwks")
SERVICE_PROBES = ("service_root", "service_docs", "service_order")


@dataclass(frozen=True)
class Sample:
    """One probe's outcome, from a live ProbeResult or a stored CheckSample row."""

    probe: str
    status: str
    latency_ms: float
    detail: str = ""
    http_status: int | None = None


@dataclass(frozen=True)
class CheckSummary:
    """What one check contributes to a window: whether the systems answered, and its orders."""

    available: bool
    orders: tuple[tuple[bool, float], ...]  # (failed, latency_ms) per order placed
    failing: bool  # any probe down or degraded: the check is a failing sample


@dataclass(frozen=True)
class Metrics:
    checks: int
    available_checks: int
    orders: int
    failed_orders: int
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failed_orders / self.orders if self.orders else 0.0

    @property
    def availability(self) -> float:
        return self.available_checks / self.checks if self.checks else 1.0

    def describe(self) -> str:
        orders = f"{self.failed_orders} of {self.orders} orders failed" if self.orders else "no orders placed"
        return (
            f"{orders} (error rate {self.error_rate:.0%}), p99 {self.p99_ms:.0f} ms,"
            f" availability {self.availability:.1%} over {self.checks} check{'s' if self.checks != 1 else ''}"
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "checks": self.checks,
            "orders": self.orders,
            "failed_orders": self.failed_orders,
            "error_rate": round(self.error_rate, 4),
            "p99_ms": round(self.p99_ms, 1),
            "availability": round(self.availability, 4),
        }


def samples_of(results: Iterable[ProbeResult]) -> list[Sample]:
    return [Sample(r.name, r.status, r.latency_ms, r.detail, r.http_status) for r in results]


def summarise(samples: Sequence[Sample]) -> CheckSummary:
    by = {s.probe: s for s in samples}
    available = True
    for group in (FACTORY_PROBES, SERVICE_PROBES):  # every probe of one system down: nothing reached it
        ran = [by[n].status for n in group if n in by and by[n].status != "skipped"]
        if ran and all(status == "down" for status in ran):
            available = False
    orders: list[tuple[bool, float]] = []
    order, verify = by.get("order"), by.get("verify")
    if order is not None and order.status != "skipped":
        failed = order.status == "down" or (verify is not None and verify.status == "down")
        latency = order.latency_ms + (
            verify.latency_ms if verify is not None and verify.status != "skipped" else 0
        )
        orders.append((failed, latency))
    service_order = by.get("service_order")
    if service_order is not None and service_order.status != "skipped":
        orders.append((service_order.status == "down", service_order.latency_ms))
    failing = any(s.status in ("down", "degraded") for s in samples)
    return CheckSummary(available, tuple(orders), failing)


def metrics_of(checks: Sequence[CheckSummary]) -> Metrics:
    orders = [o for c in checks for o in c.orders]
    lat = sorted(ms for _, ms in orders) or [0.0]
    p99 = lat[min(len(lat) - 1, max(0, math.ceil(0.99 * len(lat)) - 1))]
    return Metrics(
        checks=len(checks),
        available_checks=sum(1 for c in checks if c.available),
        orders=len(orders),
        failed_orders=sum(1 for failed, _ in orders if failed),
        p99_ms=p99,
    )


def severity_of(metrics: Metrics, *, partial: bool, scheduled: bool, th: Thresholds) -> Severity | None:
    """The one severity mapping (see the module docstring)."""
    latency = th.latency_p99_ms.level(metrics.p99_ms)
    if latency == "medium" and metrics.orders < th.monitor.min_samples:
        # A p99 of one or two orders is no percentile: the medium band (500 ms-1 s) needs min_samples orders,
        # or a loaded test machine would page. High and critical count from a single order.
        latency = None
    crossed = {
        th.error_rate.level(metrics.error_rate),
        latency,
        th.availability.level(metrics.availability),
    }
    for name in ("critical", "high", "medium"):
        if name in crossed:
            return th.severity[name]
    if partial:
        return th.severity["medium"]
    if scheduled:
        return th.severity["low"]
    return None


def judge_latency(results: list[ProbeResult], th: Thresholds) -> None:
    """Mark answers slower than latency_p99.high as degraded, naming the latency (in place)."""
    limit = th.latency_p99_ms.high
    for r in results:
        if r.status == "ok" and r.latency_ms > limit:
            r.status = "degraded"
            r.detail = f"slow: {r.latency_ms:.0f} ms (> {limit:.0f} ms); {r.detail}"
            r.data["slow"] = True


def verdict_of(samples: Sequence[Sample], severity: Severity | None, th: Thresholds) -> Verdict:
    statuses = {s.status for s in samples}
    if "down" in statuses:
        return "down"
    if "degraded" in statuses or severity in (
        th.severity["critical"],
        th.severity["high"],
        th.severity["medium"],
    ):
        return "degraded"
    return "healthy"


def _chaos_running(vendor: ProbeResult | None) -> str | None:
    if vendor is not None and vendor.data.get("chaos_state") == "running":
        chaos = vendor.data.get("chaos") or {}
        return str(chaos.get("type")) if isinstance(chaos, dict) else None
    return None


def impact_of(results: Sequence[ProbeResult], th: Thresholds) -> str:
    """The current failing state in plain words (empty when nothing fails)."""
    by = {r.name: r for r in results}
    chaos = _chaos_running(by.get("factory_vendor"))
    factory = [by[n] for n in FACTORY_PROBES if n in by and by[n].status != "skipped"]
    service = [by[n] for n in SERVICE_PROBES if n in by and by[n].status != "skipped"]
    out: list[str] = []

    def timed_out(r: ProbeResult) -> bool:
        return r.status == "down" and r.detail.startswith("timed out")

    if factory and all(r.status == "down" for r in factory):
        if all(timed_out(r) for r in factory):
            out.append("The Factory accepts connections but never answers (hung): no pizza can be made")
        else:
            out.append(f"The Factory does not answer ({factory[0].detail}): no pizza can be made")
    else:
        order, verify = by.get("order"), by.get("verify")
        if order is not None and order.status == "down":
            if order.data.get("chaos_monkey"):
                out.append(
                    'Every pizza order fails: the Factory answers HTTP 500 "chaos monkey" (fail chaos)'
                )
            elif timed_out(order):
                why = (
                    "throttle chaos: the Factory answers after ~32 s"
                    if chaos == "throttle"
                    else "the Factory does not answer orders in time"
                )
                out.append(f"Pizza orders do not complete ({order.detail}; {why})")
            elif order.http_status == 401:
                out.append("The Factory refuses our vendor API key (401): check FACTORY_API_KEY")
            else:
                out.append(f"Pizza orders fail ({order.detail})")
        if verify is not None and verify.status == "down":
            kind = " (badjwt chaos)" if (chaos == "badjwt" or (order and order.report_url)) else ""
            out.append(f"Pizzas are made but their JWTs do not verify{kind}: customers get invalid pizzas")
        vendor, docs = by.get("factory_vendor"), by.get("factory_docs")
        if vendor is not None and vendor.status == "down" and docs is not None and docs.status != "down":
            out.append(
                f"The Factory's database looks unhealthy: vendor record fails ({vendor.detail}), docs answer"
            )
        jwks = by.get("jwks")
        if jwks is not None and jwks.status == "down":
            out.append(f"The Factory's signing keys are unavailable ({jwks.detail})")
        if chaos and not any("chaos" in line for line in out):
            out.append(f"Chaos {chaos} is running at the Factory")
    if service and all(r.status == "down" for r in service):
        out.append(f"The JWT Pizza service does not answer ({service[0].detail}): customers cannot reach it")
    else:
        so = by.get("service_order")
        factory_ok = not any(r.status == "down" for r in factory)
        if so is not None and so.status == "down":
            where = (
                " while the Factory answers our probes: check the service's Factory key and URL"
                if factory_ok
                else ""
            )
            out.append(f"Customer orders through the service fail ({so.detail}){where}")
        for name in ("service_root", "service_docs"):
            r = by.get(name)
            if r is not None and r.status in ("down", "degraded") and not r.data.get("slow"):
                out.append(f"{r.title}: {r.detail}")
    slow = [r for r in results if r.data.get("slow")]
    if slow:
        names = ", ".join(f"{r.name} {r.latency_ms:.0f} ms" for r in slow[:4])
        out.append(
            f"High latency (> {th.latency_p99_ms.high:.0f} ms) on answers that are otherwise correct: {names}"
        )
    return "; ".join(out)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    severity: Severity | None
    metrics: Metrics
    failing: bool
    failing_probes: tuple[str, ...]
    impact: str


def judge_check(results: list[ProbeResult], th: Thresholds) -> Judgement:
    """Judge one check in place (latency) and as a whole."""
    judge_latency(results, th)
    samples = samples_of(results)
    summary = summarise(samples)
    metrics = metrics_of([summary])
    vendor = next((r for r in results if r.name == "factory_vendor"), None)
    scheduled = vendor is not None and vendor.data.get("chaos_state") == "scheduled"
    severity = severity_of(metrics, partial=summary.failing, scheduled=scheduled, th=th)
    failing = tuple(r.name for r in results if r.status in ("down", "degraded"))
    return Judgement(
        verdict_of(samples, severity, th),
        severity,
        metrics,
        summary.failing,
        failing,
        impact_of(results, th),
    )
