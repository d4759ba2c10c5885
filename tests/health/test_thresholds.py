"""Thresholds YAML (seeds 001/002), metric classification and single-check severity rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.health.probes import CheckReport, ProbeResult, Status, verdict_of
from bot.health.thresholds import DEFAULT_PATH, classify, load_thresholds, parse_duration, suggest_severity

TH = load_thresholds()
NAMES = ["factory_docs", "factory_vendor", "order", "verify", "jwks", "service_root", "service_docs"]


def _report(overrides: dict[str, Status] | None = None, order_ms: float = 50.0, **data: Any) -> CheckReport:
    overrides = overrides or {}
    results = [
        ProbeResult(
            name,
            name,
            overrides.get(name, "ok"),
            200,
            order_ms if name == "order" else 20.0,
            "",
            data=data if name == "factory_vendor" else {},
        )
        for name in NAMES
    ]
    return CheckReport(results, datetime.now(UTC), 100.0, verdict_of(results), None, None)


def test_default_file_holds_the_seed_values() -> None:
    assert DEFAULT_PATH.name == "thresholds.yaml" and DEFAULT_PATH.parent.name == "playbook_content"
    assert (TH.error_rate.critical, TH.error_rate.high, TH.error_rate.medium) == (0.10, 0.05, 0.02)
    assert (TH.latency_p99_ms.critical, TH.latency_p99_ms.high, TH.latency_p99_ms.medium) == (5000, 1000, 500)
    assert (TH.availability.critical, TH.availability.high, TH.availability.medium) == (0.99, 0.995, 0.999)
    assert TH.severity == {"critical": "P0", "high": "P1", "medium": "P2", "low": "P3"}
    assert TH.severity_for("high") == "P1" and TH.severity_for(None) is None
    slos = {name: (s.target, s.alert_threshold) for name, s in TH.slos.items()}
    assert slos == {
        "availability": (0.999, 0.995),
        "latency_p95_ms": (200, 300),
        "latency_p99_ms": (500, 700),
        "error_rate": (0.001, 0.005),
    }
    assert (TH.monitor.interval_s, TH.monitor.window_s, TH.monitor.min_samples) == (60, 300, 3)


def test_slo_checks() -> None:
    availability, p99 = TH.slos["availability"], TH.slos["latency_p99_ms"]
    assert availability.met(0.9995) and not availability.met(0.998) and not availability.alerting(0.996)
    assert availability.alerting(0.994)
    assert p99.met(450) and not p99.met(600) and not p99.alerting(700) and p99.alerting(701)


@pytest.mark.parametrize(
    ("error_rate", "p99_ms", "availability", "expected"),
    [
        (0.0, 100, 1.0, None),
        (0.02, 500, 0.999, None),  # the seed's limits are strict: "> 2 %", "> 500 ms", "< 99.9 %"
        (0.021, 100, 1.0, "P2"),
        (0.06, 100, 1.0, "P1"),
        (0.10, 100, 1.0, "P1"),
        (0.11, 100, 1.0, "P0"),
        (0.0, 501, 1.0, "P2"),
        (0.0, 1001, 1.0, "P1"),
        (0.0, 5001, 1.0, "P0"),
        (0.0, 100, 0.9985, "P2"),
        (0.0, 100, 0.994, "P1"),
        (0.0, 100, 0.98, "P0"),
        (0.03, 2000, 0.98, "P0"),  # the most severe metric wins
    ],
)
def test_classify(error_rate: float, p99_ms: float, availability: float, expected: str | None) -> None:
    assert classify(error_rate, p99_ms, availability, TH) == expected


@pytest.mark.parametrize(
    ("overrides", "order_ms", "vendor_data", "expected"),
    [
        ({}, 50, {}, None),
        ({}, 50, {"chaos_state": "scheduled"}, "P3"),
        ({}, 600, {}, None),  # one order is no p99: the medium band needs min_samples orders
        ({}, 1500, {}, "P1"),  # > 1 s (high): slow but correct is not healthy
        ({}, 6000, {}, "P0"),  # > 5 s (critical)
        ({"service_docs": "degraded"}, 50, {}, "P2"),
        ({"factory_vendor": "degraded", "order": "degraded"}, 50, {}, "P2"),  # chaos running, orders still OK
        ({"jwks": "down"}, 50, {}, "P2"),
        ({"factory_vendor": "down"}, 50, {}, "P2"),  # docs up + vendor down: the Factory's DB
        ({"order": "down", "verify": "skipped"}, 50, {}, "P0"),  # every order fails: error rate 100 %
        ({"verify": "down"}, 50, {}, "P0"),  # the order "succeeded" with a JWT that does not verify
        ({"order": "down", "verify": "skipped", "factory_vendor": "down"}, 50, {}, "P0"),
        (dict.fromkeys(["factory_docs", "factory_vendor", "order", "jwks"], "down") | {"verify": "skipped"},
         50, {}, "P0"),
        ({"service_root": "down", "service_docs": "down"}, 50, {}, "P0"),  # availability 0 %
        ({"service_root": "down"}, 50, {}, "P2"),
    ],
)  # fmt: skip
def test_suggest_severity(
    overrides: dict[str, Status], order_ms: float, vendor_data: dict[str, Any], expected: str | None
) -> None:
    assert suggest_severity(_report(overrides, order_ms, **vendor_data), TH) == expected


def test_a_down_order_ignores_its_latency() -> None:
    # A timed-out order counts as a failed order (error rate 100 %: P0) whatever its latency.
    assert suggest_severity(_report({"order": "down", "verify": "skipped"}, order_ms=6000), TH) == "P0"


def test_load_a_custom_file_and_reject_bad_ones(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw["alert_thresholds"]["latency_p99"] = {"critical": 3000, "high": 800, "medium": 300}
    raw["monitor"] = {"interval": "30s", "window": "10m", "min_samples": 5}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(raw))
    th = load_thresholds(good)
    assert th.latency_p99_ms.critical == 3000 and classify(0, 900, 1, th) == "P1"
    assert (th.monitor.interval_s, th.monitor.window_s, th.monitor.min_samples) == (30, 600, 5)

    broken: list[dict[str, Any]] = []
    for mutate in [
        lambda r: r.pop("alert_thresholds"),
        lambda r: r["alert_thresholds"]["error_rate"].pop("high"),
        lambda r: r["alert_thresholds"]["error_rate"].update(critical=0.01),  # out of order
        lambda r: r["alert_thresholds"]["availability"].update(critical=0.9999),
        lambda r: r["severity"].update(high="P9"),
        lambda r: r["monitor"].update(interval="soon"),
        lambda r: r["monitor"].update(window="10s"),  # shorter than the interval
    ]:
        copy = yaml.safe_load(DEFAULT_PATH.read_text())
        mutate(copy)
        broken.append(copy)
    for i, doc in enumerate(broken):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(ValueError):
            load_thresholds(path)


def test_parse_duration() -> None:
    assert [parse_duration(v) for v in ["30s", "10m", "1h", "2d", 45, "1.5m"]] == [
        30,
        600,
        3600,
        172800,
        45,
        90,
    ]
    with pytest.raises(ValueError):
        parse_duration("soon")
