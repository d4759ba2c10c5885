"""Probes, recovery and `incident-bot check` over real HTTP against the simulated Factory and service."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import httpx
import pytest

from bot.health.probes import (
    THROTTLE_HINT,
    CheckReport,
    ProbeResult,
    normalize_url,
    recovery_urls,
    run_probes,
    run_recovery,
)
from bot.health.report import check_main, redact_report_url, render_table
from sandbox.factory_sim import DEFAULT_API_KEY, FactoryServers
from tests.conftest import MakeServers

KEY = DEFAULT_API_KEY


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _statuses(report: CheckReport) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


async def _check(servers: FactoryServers, timeout: float = 1.0, **kw: Any) -> CheckReport:
    return await run_probes(servers.factory_url, KEY, servers.service_url, timeout=timeout, **kw)


# -- modes -----------------------------------------------------------------------------------------


async def test_healthy_runs_seven_probes_and_reports_each_as_it_finishes(servers: FactoryServers) -> None:
    seen: list[ProbeResult] = []

    async def on_result(result: ProbeResult) -> None:
        seen.append(result)

    report = await _check(servers, on_result=on_result)
    assert report.checks == 7 and set(_statuses(report).values()) == {"ok"}
    assert (report.verdict, report.suggested_severity, report.report_url) == ("healthy", None, None)
    assert sorted(r.name for r in seen) == sorted(_statuses(report))
    names = [r.name for r in seen]
    assert names.index("verify") > names.index("order")  # verify checks the order's JWT
    docs = report.result("factory_docs")
    assert docs is not None and docs.http_status == 200 and "20240518.154317" in docs.detail
    assert all(r.latency_ms > 0 for r in report.results)
    payload = report.to_dict()
    assert payload["checks"] == 7 and payload["verdict"] == "healthy" and len(payload["results"]) == 7


async def test_without_a_service_url_only_the_factory_is_probed(servers: FactoryServers) -> None:
    report = await run_probes(servers.factory_url, KEY, None, timeout=1.0)
    assert [r.name for r in report.results] == ["factory_docs", "factory_vendor", "order", "verify", "jwks"]


async def test_fail_chaos_then_recovery_rebases_the_https_report_url(servers: FactoryServers) -> None:
    servers.set_mode("fail")
    report = await _check(servers)
    order = report.result("order")
    assert order is not None and (order.status, order.http_status) == ("down", 500)
    assert order.detail == "chaos monkey (fail chaos)"
    assert _statuses(report)["verify"] == "skipped" and _statuses(report)["factory_vendor"] == "degraded"
    assert (report.verdict, report.suggested_severity, report.chaos_type) == ("down", "P1", "fail")
    assert report.report_url and report.report_url.startswith("https://127.0.0.1/api/support/")

    recovery = await run_recovery(servers.factory_url, KEY, report.report_url, timeout=2.0)
    assert recovery.resolved and recovery.source == "given"
    assert recovery.urls_tried[0] == report.report_url  # as given first: refused (nothing on :443) …
    assert recovery.attempts[0].status is None
    assert recovery.urls_tried[1].startswith(servers.factory_url)  # … then re-based onto FACTORY_URL
    assert recovery.status == 200 and "Problem resolved" in recovery.body
    assert (await _check(servers)).verdict == "healthy"


async def test_throttle_times_out_and_recovery_obtains_the_link_and_ends_chaos(
    servers: FactoryServers,
) -> None:
    servers.set_mode("throttle")  # sim delay 0.3 s > probe timeout 0.2 s, as 32 s > 5 s for real
    report = await _check(servers, timeout=0.2)
    order = report.result("order")
    assert order is not None and order.status == "down"
    assert order.detail == f"timed out after 0.2 s ({THROTTLE_HINT})"
    assert report.report_url is None and report.suggested_severity == "P1" and report.chaos_type == "throttle"

    recovery = await run_recovery(servers.factory_url, KEY, timeout=2.0)
    assert recovery.source == "order" and recovery.order_status == 200
    assert recovery.report_url and recovery.report_url.startswith("https://127.0.0.1/")
    assert recovery.resolved, recovery.to_dict()

    after = await _check(servers)
    assert after.verdict == "healthy", render_table(after)
    async with httpx.AsyncClient() as client:
        vendor = await client.get(
            f"{servers.factory_url}/api/vendor", headers={"Authorization": f"Bearer {KEY}"}
        )
    assert vendor.json()["chaos"]["type"] == "none" and vendor.json()["chaos"]["fixDate"]


async def test_badjwt_fails_verify(servers: FactoryServers) -> None:
    servers.set_mode("badjwt")
    report = await _check(servers)
    verify, order = report.result("verify"), report.result("order")
    assert verify is not None and (verify.status, verify.http_status) == ("down", 403)
    assert verify.detail == "bad JWT (badjwt chaos)"
    assert order is not None and order.status == "degraded" and order.report_url
    assert (report.verdict, report.suggested_severity, report.chaos_type) == ("down", "P1", "badjwt")


async def test_hang_is_bounded_by_the_probe_timeout(servers: FactoryServers) -> None:
    servers.set_mode("hang")
    report = await _check(servers, timeout=0.2)
    assert report.wall_ms < 1000  # concurrent: about one timeout, not one per probe
    for name in ["factory_docs", "factory_vendor", "order", "jwks"]:
        result = report.result(name)
        assert (
            result is not None
            and result.status == "down"
            and result.detail.startswith("timed out after 0.2 s")
        )
    assert _statuses(report)["service_root"] == "ok"
    assert (report.verdict, report.suggested_severity) == ("down", "P0")


async def test_down_is_connection_refused(servers: FactoryServers) -> None:
    servers.set_mode("down")
    report = await _check(servers)
    docs = report.result("factory_docs")
    assert docs is not None and (docs.status, docs.detail) == ("down", "connection refused")
    assert (report.verdict, report.suggested_severity) == ("down", "P0")


async def test_bad_and_missing_api_key(servers: FactoryServers) -> None:
    report = await run_probes(servers.factory_url, "f" * 32, servers.service_url, timeout=1.0)
    vendor, order = report.result("factory_vendor"), report.result("order")
    assert vendor is not None and (vendor.status, vendor.http_status, vendor.detail) == (
        "down",
        401,
        "bad API key",
    )
    assert order is not None and (order.status, order.http_status) == ("down", 401)
    assert report.suggested_severity == "P1"
    report = await run_probes(servers.factory_url, "", servers.service_url, timeout=1.0)
    vendor = report.result("factory_vendor")
    assert vendor is not None and vendor.detail == "no API key configured"


async def test_unknown_endpoint_is_down(servers: FactoryServers) -> None:
    report = await run_probes(f"{servers.factory_url}/nope", KEY, None, timeout=1.0)
    docs = report.result("factory_docs")
    assert docs is not None and (docs.http_status, docs.detail) == (404, "HTTP 404: unknown endpoint")


async def test_service_pointing_at_another_factory_is_degraded(servers: FactoryServers) -> None:
    servers.sim.service_factory_url = "http://127.0.0.1:9"
    report = await _check(servers)
    docs = report.result("service_docs")
    assert docs is not None and docs.status == "degraded" and "http://127.0.0.1:9" in docs.detail
    assert (report.verdict, report.suggested_severity) == ("degraded", "P2")


async def test_service_docs_compares_normalized_urls(servers: FactoryServers) -> None:
    servers.sim.service_factory_url = servers.factory_url.upper() + "/"
    report = await _check(servers)
    assert _statuses(report)["service_docs"] == "ok"


async def test_service_unreachable_is_p0(servers: FactoryServers) -> None:
    report = await run_probes(servers.factory_url, KEY, _dead_url(), timeout=1.0)
    assert _statuses(report)["service_root"] == "down" and _statuses(report)["service_docs"] == "down"
    assert report.suggested_severity == "P0"


async def test_scheduled_chaos_is_ok_with_detail(make_servers: MakeServers) -> None:
    servers = make_servers(chaos_start_delay=3600)
    servers.sim.start_chaos("badjwt")
    report = await _check(servers)
    vendor = report.result("factory_vendor")
    assert (
        vendor is not None
        and vendor.status == "ok"
        and vendor.detail.startswith("chaos badjwt scheduled for")
    )
    assert (report.verdict, report.suggested_severity) == ("healthy", "P3")


async def test_on_result_errors_do_not_sink_the_check(servers: FactoryServers) -> None:
    async def broken(result: ProbeResult) -> None:
        raise RuntimeError("slack is down")

    assert (await _check(servers, on_result=broken)).verdict == "healthy"


async def test_injectable_transport() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/vendor":
            return httpx.Response(
                200, json={"id": "v", "chaos": {"type": "fail", "startDate": "2020-01-01T00:00Z"}}
            )
        if request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json={"keys": []})
        return httpx.Response(503, json={"message": "busy"})

    report = await run_probes("http://factory.test", KEY, transport=httpx.MockTransport(handler))
    assert _statuses(report)["factory_vendor"] == "degraded" and _statuses(report)["jwks"] == "degraded"
    docs = report.result("factory_docs")
    assert docs is not None and docs.detail == "HTTP 503: busy"


# -- recovery --------------------------------------------------------------------------------------


async def test_recovery_follows_a_self_mode_link_directly(make_servers: MakeServers) -> None:
    servers = make_servers(report_url_mode="self")
    servers.set_mode("fail")
    recovery = await run_recovery(servers.factory_url, KEY, timeout=2.0)
    assert recovery.resolved and recovery.source == "order" and recovery.order_status == 500
    assert len(recovery.urls_tried) == 1 and recovery.urls_tried[0].startswith(servers.factory_url)


async def test_recovery_without_chaos_and_with_a_wrong_code(servers: FactoryServers) -> None:
    recovery = await run_recovery(servers.factory_url, KEY, timeout=2.0)
    assert recovery.outcome == "no_report_url" and recovery.attempts == []
    servers.set_mode("fail")
    wrong = f"https://127.0.0.1/api/support/{KEY}/report/wrong"
    recovery = await run_recovery(servers.factory_url, KEY, wrong, timeout=2.0)
    assert recovery.outcome == "unresolved" and "Problem unresolved" in recovery.body
    servers.set_mode("healthy")
    recovery = await run_recovery(servers.factory_url, KEY, wrong, timeout=2.0)
    assert recovery.outcome == "no_chaos"


async def test_recovery_reports_a_hung_order(servers: FactoryServers) -> None:
    servers.set_mode("hang")
    recovery = await run_recovery(servers.factory_url, KEY, timeout=0.2)
    assert recovery.outcome == "failed" and "timed out" in recovery.detail


def test_recovery_urls() -> None:
    link = f"https://127.0.0.1/api/support/{KEY}/report/abc"
    assert recovery_urls(link, "http://127.0.0.1:3000/") == [
        link,
        f"http://127.0.0.1:3000/api/support/{KEY}/report/abc",
    ]
    assert recovery_urls(link, "https://127.0.0.1") == [link]  # same origin: as given
    # Another host would receive the API key: only the re-based link is used.
    assert recovery_urls("https://evil.test/api/support/k/report/c", "https://f.test") == [
        "https://f.test/api/support/k/report/c"
    ]
    assert normalize_url("HTTPS://Factory.Test:443/") == normalize_url("https://factory.test")


# -- rendering and `incident-bot check` ------------------------------------------------------------


async def test_render_table_masks_the_api_key(servers: FactoryServers) -> None:
    servers.set_mode("fail")
    table = render_table(await _check(servers))
    lines = table.splitlines()
    assert lines[0].split() == ["PROBE", "STATUS", "HTTP", "MS", "DETAIL"]
    assert "verdict: down  severity: P1  7 checks" in table and "chaos: fail" in table
    masked = redact_report_url(f"/api/support/{KEY}/report/")
    assert KEY not in table and f"reportUrl: https://127.0.0.1{masked}" in table


def test_check_main_exit_codes_and_json(
    make_servers: MakeServers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    servers = make_servers()
    monkeypatch.setenv("FACTORY_URL", servers.factory_url)
    monkeypatch.setenv("FACTORY_API_KEY", KEY)
    monkeypatch.setenv("PIZZA_SERVICE_URL", servers.service_url)
    assert check_main([]) == 0
    assert "verdict: healthy" in capsys.readouterr().out

    servers.sim.service_factory_url = "http://127.0.0.1:9"
    assert check_main(["--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdict"] == "degraded" and payload["checks"] == 7
    assert payload["suggested_severity"] == "P2"

    servers.set_mode("fail")
    assert check_main(["--json", "--timeout", "1"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdict"] == "down" and payload["report_url"].startswith("https://127.0.0.1/")


def test_check_main_flags_and_progress_on_a_tty(
    servers: FactoryServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIZZA_SERVICE_URL", raising=False)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Tty()
    argv = ["--factory-url", servers.factory_url, "--api-key", KEY, "--timeout", "1"]
    assert check_main(argv, stdout=out, stderr=err) == 0
    progress = err.getvalue().splitlines()
    assert progress[0] == "Running 5 checks…" and len(progress) == 6 and progress[-1].startswith("[5/5]")


def test_check_main_needs_a_factory_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACTORY_URL", raising=False)
    with pytest.raises(SystemExit) as exc:
        check_main([])
    assert exc.value.code == 2
