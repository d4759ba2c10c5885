"""Health probes for the JWT Pizza Factory and the JWT Pizza service, and the chaos recovery action.

`run_probes` runs every probe concurrently, each bounded by its own timeout, so a hung endpoint costs one
timeout, not one per probe; `verify` alone waits, for the JWT that `order` produced. `run_recovery` stays out
of the probe set: `throttle` chaos only reveals its reportUrl after ~32 s, far beyond a probe's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

# The result types live in bot.health.results; re-exported here, where callers have always found them.
from bot.health.results import (
    FACTORY_PROBES,
    SERVICE_PROBES,
    CheckReport,
    ProbeResult,
    RecoveryOutcome,
    Status,
    Verdict,
)
from bot.health.thresholds import Thresholds, load_thresholds, suggest_severity

log = logging.getLogger(__name__)

THROTTLE_HINT = "throttle chaos hides its reportUrl for 32 s"

# A minimal valid order: one item (0 or more than 20 items makes the Factory wait 32 s, then answer 503).
PROBE_ORDER: dict[str, Any] = {
    "diner": {"id": 1, "name": "incident-bot probe", "email": "probe@jwt.com"},
    "order": {
        "items": [{"menuId": 1, "description": "Veggie", "price": 0.05}],
        "storeId": "1",
        "franchiseId": 1,
        "id": 1,
    },
}


@dataclass
class _Outcome:
    status: Status
    http_status: int | None
    detail: str
    report_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Ctx:
    client: httpx.AsyncClient
    factory_url: str
    api_key: str
    service_url: str


# -- helpers -----------------------------------------------------------------------------------------------


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _http_detail(r: httpx.Response, body: dict[str, Any]) -> str:
    message = body.get("message")
    return f"HTTP {r.status_code}: {message}" if message else f"HTTP {r.status_code}"


def _auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def describe_error(exc: BaseException) -> str:
    """A short reason for a failed request; "connection refused" is the common case worth naming."""
    chain: BaseException | None = exc
    seen: set[int] = set()
    while chain is not None and id(chain) not in seen:
        if isinstance(chain, ConnectionRefusedError):
            return "connection refused"
        seen.add(id(chain))
        chain = chain.__cause__ or chain.__context__
    return str(exc) or type(exc).__name__


def normalize_url(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, no trailing slash: for comparing configured URLs."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def _parse_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@contextlib.asynccontextmanager
async def _http(
    client: httpx.AsyncClient | None,
    transport: httpx.AsyncBaseTransport | None,
    timeout: float,
) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as own:
        yield own


# -- probes ------------------------------------------------------------------------------------------------


async def _factory_docs(ctx: _Ctx) -> _Outcome:
    r = await ctx.client.get(f"{ctx.factory_url}/api/docs")
    body = _json(r)
    if r.status_code == 200 and "version" in body:
        return _Outcome("ok", 200, f"version {body['version']}", data={"version": body["version"]})
    return _Outcome("down", r.status_code, _http_detail(r, body))


async def _factory_vendor(ctx: _Ctx) -> _Outcome:
    # /api/vendor reads the Factory's database (docs does not): docs ok + vendor failing points at the DB.
    if not ctx.api_key:
        return _Outcome("down", None, "no API key configured")
    r = await ctx.client.get(f"{ctx.factory_url}/api/vendor", headers=_auth(ctx.api_key))
    body = _json(r)
    if r.status_code == 401:
        return _Outcome("down", 401, "bad API key")
    if r.status_code != 200:
        return _Outcome("down", r.status_code, _http_detail(r, body))
    chaos = body.get("chaos")
    data: dict[str, Any] = {"vendor_id": body.get("id"), "chaos": chaos, "chaos_state": "none"}
    if not isinstance(chaos, dict) or chaos.get("type") in (None, "none"):
        fixed = chaos.get("fixDate") if isinstance(chaos, dict) else None
        return _Outcome("ok", 200, f"no chaos (last fixed {fixed})" if fixed else "no chaos", data=data)
    kind, start = chaos.get("type"), _parse_date(chaos.get("startDate"))
    if start is None or start > datetime.now(UTC):
        data["chaos_state"] = "scheduled"
        when = f"for {chaos['startDate']}" if start else "(start time unknown)"
        return _Outcome("ok", 200, f"chaos {kind} scheduled {when}", data=data)
    data["chaos_state"] = "running"
    return _Outcome("degraded", 200, f"chaos {kind} running since {chaos['startDate']}", data=data)


async def _order(ctx: _Ctx) -> _Outcome:
    if not ctx.api_key:
        return _Outcome("down", None, "no API key configured")
    r = await ctx.client.post(f"{ctx.factory_url}/api/order", json=PROBE_ORDER, headers=_auth(ctx.api_key))
    body = _json(r)
    jwt, link = body.get("jwt"), body.get("reportUrl")
    report_url = link if isinstance(link, str) and link else None
    if r.status_code == 200 and isinstance(jwt, str):
        if report_url:  # a normal answer never carries a reportUrl
            return _Outcome(
                "degraded", 200, "chaos active: the order carried a reportUrl", report_url, {"jwt": jwt}
            )
        return _Outcome("ok", 200, "order placed", data={"jwt": jwt})
    if r.status_code == 401:
        return _Outcome("down", 401, "bad API key")
    if r.status_code == 500 and body.get("message") == "chaos monkey":
        return _Outcome("down", 500, "chaos monkey (fail chaos)", report_url, {"chaos_monkey": True})
    if r.status_code == 503:
        return _Outcome("down", 503, f"oven full: {body.get('message', 'HTTP 503')}", report_url)
    return _Outcome("down", r.status_code, _http_detail(r, body), report_url)


async def _verify(ctx: _Ctx, jwt: str, chaos: bool) -> _Outcome:
    r = await ctx.client.post(f"{ctx.factory_url}/api/order/verify", json={"jwt": jwt})
    body = _json(r)
    if r.status_code == 200 and body.get("message") == "valid":
        return _Outcome("ok", 200, "JWT valid")
    if r.status_code == 403:
        detail = "bad JWT (badjwt chaos)" if chaos else "bad JWT: the Factory rejects its own order JWT"
        return _Outcome("down", 403, detail)
    return _Outcome("down", r.status_code, _http_detail(r, body))


async def _jwks(ctx: _Ctx) -> _Outcome:
    r = await ctx.client.get(f"{ctx.factory_url}/.well-known/jwks.json")
    body = _json(r)
    keys = body.get("keys")
    if r.status_code != 200 or not isinstance(keys, list):
        return _Outcome("down", r.status_code, _http_detail(r, body))
    kids = [str(k.get("kid")) for k in keys if isinstance(k, dict) and k.get("kid")]
    if not kids:
        return _Outcome("degraded", 200, "no signing keys published")
    return _Outcome("ok", 200, f"{len(kids)} key(s), kid {kids[0][:12]}…", data={"kids": kids})


async def _service_root(ctx: _Ctx) -> _Outcome:
    r = await ctx.client.get(f"{ctx.service_url}/")
    body = _json(r)
    if r.status_code == 200 and "message" in body:
        return _Outcome(
            "ok", 200, f"version {body.get('version', '?')}", data={"version": body.get("version")}
        )
    return _Outcome("down", r.status_code, _http_detail(r, body))


async def _service_docs(ctx: _Ctx) -> _Outcome:
    r = await ctx.client.get(f"{ctx.service_url}/api/docs")
    body = _json(r)
    if r.status_code != 200:
        return _Outcome("down", r.status_code, _http_detail(r, body))
    config = body.get("config")
    config = config if isinstance(config, dict) else {}
    factory = config.get("factory")
    if not isinstance(factory, str) or not factory:
        return _Outcome("degraded", 200, "docs show no config.factory", data={"config": config})
    if normalize_url(factory) != normalize_url(ctx.factory_url):
        return _Outcome(
            "degraded", 200, f"service calls {factory}, not {ctx.factory_url}", data={"config": config}
        )
    return _Outcome("ok", 200, f"factory {factory}", data={"config": config})


TITLES = {
    "factory_docs": "Factory API docs",
    "factory_vendor": "Factory vendor record",
    "order": "Order a pizza",
    "verify": "Verify the order JWT",
    "jwks": "Factory signing keys",
    "service_root": "Pizza service",
    "service_docs": "Pizza service config",
}


async def _run_one(
    name: str,
    call: Callable[[], Awaitable[_Outcome]],
    timeout: float,
    hint: str = "",
) -> ProbeResult:
    start = time.perf_counter()

    def result(status: Status, http_status: int | None, detail: str, **kw: Any) -> ProbeResult:
        ms = (time.perf_counter() - start) * 1000
        return ProbeResult(name, TITLES[name], status, http_status, ms, detail, **kw)

    try:
        async with asyncio.timeout(timeout):  # the whole probe, not just each socket operation
            out = await call()
    except (TimeoutError, httpx.TimeoutException):
        return result("down", None, f"timed out after {timeout:g} s{f' ({hint})' if hint else ''}")
    except httpx.HTTPError as exc:
        return result("down", None, describe_error(exc))
    except Exception as exc:  # a probe bug must not sink the whole check
        log.exception("probe %s failed", name)
        return result("down", None, f"probe error: {exc!r}")
    return result(out.status, out.http_status, out.detail, report_url=out.report_url, data=out.data)


def probe_names(service_url: str | None) -> list[str]:
    return [*FACTORY_PROBES, *(SERVICE_PROBES if service_url else ())]


def verdict_of(results: list[ProbeResult]) -> Verdict:
    statuses = {r.status for r in results}
    return "down" if "down" in statuses else "degraded" if "degraded" in statuses else "healthy"


async def run_probes(
    factory_url: str,
    api_key: str,
    service_url: str | None = None,
    *,
    timeout: float = 5.0,
    client: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_result: Callable[[ProbeResult], Awaitable[None]] | None = None,
    thresholds: Thresholds | None = None,
) -> CheckReport:
    """Run the probes (7, or 5 without `service_url`: `probe_names()` lists them) and judge the result.

    `on_result` is awaited as each probe finishes (progress updates); its errors are logged, not raised."""
    started_at, t0 = datetime.now(UTC), time.perf_counter()
    factory_url = factory_url.rstrip("/")
    async with _http(client, transport, timeout) as http:
        ctx = _Ctx(http, factory_url, api_key, (service_url or "").rstrip("/"))

        async def finish(result: ProbeResult) -> ProbeResult:
            if on_result is not None:
                try:
                    await on_result(result)
                except Exception:
                    log.exception("on_result failed for %s", result.name)
            return result

        async def probe(name: str, call: Callable[[], Awaitable[_Outcome]], hint: str = "") -> ProbeResult:
            return await finish(await _run_one(name, call, timeout, hint))

        async def verify() -> ProbeResult:
            order = await tasks["order"]
            jwt = order.data.get("jwt")
            if not isinstance(jwt, str):
                return await finish(
                    ProbeResult("verify", TITLES["verify"], "skipped", None, 0.0, "no JWT to verify")
                )
            return await probe("verify", lambda: _verify(ctx, jwt, order.report_url is not None))

        calls: dict[str, Callable[[], Coroutine[Any, Any, ProbeResult]]] = {
            "factory_docs": lambda: probe("factory_docs", lambda: _factory_docs(ctx)),
            "factory_vendor": lambda: probe("factory_vendor", lambda: _factory_vendor(ctx)),
            "order": lambda: probe("order", lambda: _order(ctx), THROTTLE_HINT),
            "verify": verify,
            "jwks": lambda: probe("jwks", lambda: _jwks(ctx)),
            "service_root": lambda: probe("service_root", lambda: _service_root(ctx)),
            "service_docs": lambda: probe("service_docs", lambda: _service_docs(ctx)),
        }
        tasks: dict[str, asyncio.Task[ProbeResult]] = {}
        async with asyncio.TaskGroup() as group:
            for name in probe_names(service_url):
                tasks[name] = group.create_task(calls[name]())
    results = [task.result() for task in tasks.values()]
    report = CheckReport(
        results=results,
        started_at=started_at,
        wall_ms=(time.perf_counter() - t0) * 1000,
        verdict=verdict_of(results),
        suggested_severity=None,
        report_url=next((r.report_url for r in results if r.report_url), None),
    )
    report.suggested_severity = suggest_severity(report, thresholds or load_thresholds())
    return report


# -- recovery ----------------------------------------------------------------------------------------------


@dataclass
class RecoveryAttempt:
    url: str
    status: int | None
    body: str
    error: str | None
    latency_ms: float


@dataclass
class RecoveryResult:
    outcome: RecoveryOutcome
    report_url: str | None
    source: Literal["given", "order"]
    attempts: list[RecoveryAttempt]
    detail: str
    order_status: int | None = None
    order_ms: float | None = None

    @property
    def resolved(self) -> bool:
        return self.outcome == "resolved"

    @property
    def urls_tried(self) -> list[str]:
        return [a.url for a in self.attempts]

    @property
    def status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None

    @property
    def body(self) -> str:
        return self.attempts[-1].body if self.attempts else ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resolved": self.resolved, "urls_tried": self.urls_tried}


def rebase_report_url(report_url: str, factory_url: str) -> str:
    """The reportUrl's path on FACTORY_URL's scheme, host and port (the Factory builds it as https://<host>/…)."""
    link, base = urlsplit(report_url), urlsplit(factory_url.rstrip("/"))
    return urlunsplit((base.scheme, base.netloc, base.path + link.path, link.query, ""))


def recovery_urls(report_url: str, factory_url: str) -> list[str]:
    """The URLs to try, in order: as given, then re-based onto FACTORY_URL.

    Same origin: only as given. A different host: only re-based, because the link carries the API key and
    the Factory builds it from the host it was asked on, so another host is not the Factory."""
    link, base = urlsplit(report_url), urlsplit(factory_url)
    rebased = rebase_report_url(report_url, factory_url)
    if normalize_url(f"{link.scheme}://{link.netloc}") == normalize_url(f"{base.scheme}://{base.netloc}"):
        return [report_url]
    if (link.hostname or "").lower() != (base.hostname or "").lower():
        return [rebased]
    return [report_url, rebased]


def _support_outcome(attempt: RecoveryAttempt) -> tuple[RecoveryOutcome, str]:
    text = attempt.body
    if attempt.status == 200 and "resolved" in text:
        return "resolved", "chaos ended: Problem resolved"
    if attempt.status == 200 and "No chaos" in text:
        return "no_chaos", "no chaos currently executing"
    if attempt.status == 400:
        return "unresolved", f"the Factory refused the fix: {text[:200]}"
    return "failed", attempt.error or f"HTTP {attempt.status}: {text[:200]}"


async def run_recovery(
    factory_url: str,
    api_key: str,
    report_url: str | None = None,
    *,
    timeout: float = 40.0,
    client: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RecoveryResult:
    """End chaos by following its reportUrl; without one, first order (`timeout` > 32 s) to obtain it."""
    factory_url = factory_url.rstrip("/")
    async with _http(client, transport, timeout) as http:
        source: Literal["given", "order"] = "given"
        order_status: int | None = None
        order_ms: float | None = None
        if report_url is None:
            source, start = "order", time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    r = await http.post(
                        f"{factory_url}/api/order", json=PROBE_ORDER, headers=_auth(api_key), timeout=timeout
                    )
            except (TimeoutError, httpx.TimeoutException):
                return RecoveryResult("failed", None, source, [], f"the order timed out after {timeout:g} s")
            except httpx.HTTPError as exc:
                return RecoveryResult("failed", None, source, [], f"the order failed: {describe_error(exc)}")
            order_status, order_ms = r.status_code, (time.perf_counter() - start) * 1000
            link = _json(r).get("reportUrl")
            if not isinstance(link, str) or not link:
                detail = f"the order answered HTTP {r.status_code} without a reportUrl: no chaos to end"
                return RecoveryResult("no_report_url", None, source, [], detail, order_status, order_ms)
            report_url = link
        attempts: list[RecoveryAttempt] = []
        for url in recovery_urls(report_url, factory_url):
            attempts.append(await _follow(http, url, timeout))
            if attempts[-1].status in (200, 400):  # the Factory's support route answered
                break
    outcome, detail = _support_outcome(attempts[-1])
    return RecoveryResult(outcome, report_url, source, attempts, detail, order_status, order_ms)


async def _follow(http: httpx.AsyncClient, url: str, timeout: float) -> RecoveryAttempt:
    start = time.perf_counter()
    # A short connect timeout: an unreachable as-given link must leave time for the re-based one.
    limits = httpx.Timeout(timeout, connect=min(timeout, 5.0))
    try:
        async with asyncio.timeout(timeout):
            r = await http.get(url, timeout=limits)
    except (TimeoutError, httpx.TimeoutException):
        return RecoveryAttempt(
            url, None, "", f"timed out after {timeout:g} s", (time.perf_counter() - start) * 1000
        )
    except httpx.HTTPError as exc:
        return RecoveryAttempt(url, None, "", describe_error(exc), (time.perf_counter() - start) * 1000)
    return RecoveryAttempt(url, r.status_code, r.text, None, (time.perf_counter() - start) * 1000)
