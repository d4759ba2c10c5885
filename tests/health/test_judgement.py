"""The one health judgement against the simulated Factory and service over HTTP: latency, one severity for one
state, plain-words impact, URL normalisation, and the service-path probe."""

from __future__ import annotations

import asyncio
import io

import pytest

from bot.health.judge import CheckSummary, Metrics, metrics_of, severity_of
from bot.health.probes import find_report_url, normalize_url, run_probes
from bot.health.report import check_main
from bot.health.thresholds import load_thresholds
from sandbox.factory_sim import DINER_EMAIL, DINER_PASSWORD, FactoryServers
from tests.conftest import MakeServers

TH = load_thresholds()
DINER = (DINER_EMAIL, DINER_PASSWORD)


async def _check(servers: FactoryServers, timeout: float = 3.0, diner: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
    return await run_probes(
        servers.factory_url, servers.sim.api_key, servers.service_url, timeout=timeout, diner=diner
    )


async def test_slow_but_correct_factory_is_degraded_with_its_latency_named(make_servers: MakeServers) -> None:
    servers = make_servers(slow_delay=1.2)  # > latency_p99.high (1000 ms)
    servers.set_mode("slow")
    report = await _check(servers)
    assert report.verdict == "degraded" and report.suggested_severity == "P1"
    order = report.result("order")
    assert (
        order is not None
        and order.status == "degraded"
        and "slow:" in order.detail
        and "> 1000 ms" in order.detail
    )
    assert "High latency" in report.impact and "order" in report.impact
    out, err = io.StringIO(), io.StringIO()
    argv = ["--factory-url", servers.factory_url, "--api-key", servers.sim.api_key, "--service-url", ""]
    assert await asyncio.to_thread(check_main, argv, stdout=out, stderr=err) == 1  # exit 1: not healthy
    assert "verdict: degraded" in out.getvalue() and "slow:" in out.getvalue()


@pytest.mark.parametrize("mode", ["fail", "badjwt"])
async def test_one_severity_for_one_state(servers: FactoryServers, mode: str) -> None:
    # Check and monitor share severity_of(): a check is a window of one.
    servers.set_mode(mode)
    report = await _check(servers)
    window = Metrics(checks=3, available_checks=3, orders=3, failed_orders=3, p99_ms=40.0)
    assert report.suggested_severity == severity_of(window, partial=True, scheduled=False, th=TH) == "P0"
    if mode == "fail":
        assert "Every pizza order fails" in report.impact and "fail chaos" in report.impact
    else:
        assert "do not verify" in report.impact and "badjwt" in report.impact


async def test_hung_factory_impact_does_not_blame_throttle(servers: FactoryServers) -> None:
    servers.set_mode("hang")
    report = await _check(servers, timeout=0.3)
    assert report.verdict == "down" and "hung" in report.impact and "throttle" not in report.impact


async def test_throttle_impact_names_throttle(make_servers: MakeServers) -> None:
    # Throttle answers after 3 s, past the 1.5 s probe timeout; the probes chaos leaves alone answer well
    # inside it even on a loaded machine (with 0.3 s vs 0.2 s, a slow vendor probe read as "hung").
    servers = make_servers(throttle_delay=3.0)
    servers.set_mode("throttle")
    report = await _check(servers, timeout=1.5)
    assert "throttle chaos" in report.impact and report.suggested_severity == "P0"


def test_error_rate_counts_orders_and_availability_counts_checks() -> None:
    # 3 of 6 orders failed (verify skipped under fail must not dilute it), every check answered.
    checks = [CheckSummary(True, ((i % 2 == 0, 50.0),), i % 2 == 0) for i in range(6)]
    m = metrics_of(checks)
    assert (m.orders, m.failed_orders, m.error_rate, m.availability) == (6, 3, 0.5, 1.0)
    assert "3 of 6 orders failed" in m.describe()


def test_url_normalisation_treats_localhost_as_loopback() -> None:
    assert normalize_url("http://localhost:3000/") == normalize_url("http://127.0.0.1:3000")
    assert normalize_url("HTTP://LocalHost:80") == normalize_url("http://127.0.0.1")
    assert normalize_url("http://localhost:3000") != normalize_url("http://127.0.0.1:3001")
    assert normalize_url("https://127.0.0.1:3000") != normalize_url("http://127.0.0.1:3000")


async def test_service_configured_with_localhost_is_the_same_factory(servers: FactoryServers) -> None:
    servers.sim.service_factory_url = servers.factory_url.replace("127.0.0.1", "localhost") + "/"
    report = await _check(servers)
    docs = report.result("service_docs")
    assert docs is not None and docs.status == "ok", docs
    assert report.verdict == "healthy"


async def test_service_path_probe_sees_a_wrong_factory_key(servers: FactoryServers) -> None:
    assert (await _check(servers, diner=DINER)).verdict == "healthy"
    servers.set_mode("badkey")
    report = await _check(servers, diner=DINER)
    so = report.result("service_order")
    assert so is not None and (so.status, so.http_status) == ("down", 500)
    assert all(r.status == "ok" for r in report.results if r.name != "service_order")  # our key is fine
    assert report.verdict == "down" and report.suggested_severity == "P0"
    assert "through the service fail" in report.impact and "Factory key" in report.impact
    # Without diner credentials nothing sees it: the probe is optional.
    assert (await _check(servers)).verdict == "healthy"


async def test_service_path_probe_finds_fork_link_fields(make_servers: MakeServers) -> None:
    servers = make_servers(service_link_fields="fork")
    servers.set_mode("fail")
    report = await _check(servers, diner=DINER)
    so = report.result("service_order")
    assert so is not None and so.status == "down" and so.report_url and "/api/support/" in so.report_url


def test_find_report_url_accepts_any_field_name() -> None:
    link = "https://x/api/support/abc/report/123"
    for body in (
        {"followLinkToEndChaos": link},
        {"reportPizzaCreationErrorToPizzaFactoryUrl": link},
        {"reportSlowPizzaToFactoryUrl": link},
        {"nested": {"whatever": link}},
    ):
        assert find_report_url(body) == link
    assert find_report_url({"message": "https://x/api/docs"}) is None


def test_the_p99_medium_band_needs_min_samples_orders() -> None:
    one = Metrics(checks=1, available_checks=1, orders=1, failed_orders=0, p99_ms=700.0)
    window = Metrics(checks=3, available_checks=3, orders=3, failed_orders=0, p99_ms=700.0)
    assert severity_of(one, partial=False, scheduled=False, th=TH) is None
    assert severity_of(window, partial=False, scheduled=False, th=TH) == "P2"
    slow = Metrics(checks=1, available_checks=1, orders=1, failed_orders=0, p99_ms=1500.0)
    assert severity_of(slow, partial=True, scheduled=False, th=TH) == "P1"  # > 1 s counts from one order
