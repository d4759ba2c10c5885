"""The Factory playbook's numbers are the ones the bot runs on: each phrase is rebuilt from the YAML."""

from __future__ import annotations

import yaml

from bot.config import CONTENT_DIR
from bot.escalation.policy import load_policy
from bot.health.playbook_doc import PATH, sections
from bot.health.thresholds import load_thresholds
from bot.playbook import format_duration, load_severities, parse_duration

DOC = PATH.read_text()


def fmt(td) -> str:  # type: ignore[no-untyped-def]
    return format_duration(td)


def test_every_seed_000_section_is_present() -> None:
    titles = [t for t, _ in sections()]
    assert titles == [
        "Objective",
        "Roles and responsibilities",
        "Communication plan",
        "Detection and notification",
        "Diagnostics",
        "Recovery procedures",
        "Post-recovery",
    ]


def test_rto_rpo_match_dr_yaml() -> None:
    dr = yaml.safe_load((CONTENT_DIR / "dr.yaml").read_text())["services"]
    assert f"**RTO: {fmt(parse_duration(dr['factory']['rto']))}**" in DOC
    assert f"**RPO: {fmt(parse_duration(dr['pizza-db']['rpo']))}**" in DOC


def test_cadence_targets_and_resolution_match_severities_yaml() -> None:
    sev = load_severities(CONTENT_DIR / "severities.yaml")
    c = {k: fmt(sev[k].update_cadence) for k in ("P0", "P1", "P2")}
    assert f"P0 every {c['P0']}, P1 every {c['P1']}, P2 every {c['P2']}" in DOC
    r = {k: fmt(sev[k].response_target) for k in ("P0", "P1", "P2", "P3")}
    assert f"(respond within {r['P0']})" in DOC
    assert f"P1 pages L1 ({r['P1']})" in DOC
    assert f"without a DM ({r['P2']})" in DOC
    assert f"ticket entry ({r['P3']})" in DOC
    assert f"MONITORING for {fmt(sev.monitoring_minimum)} with no issues" in DOC
    assert f"reminds the commander after {fmt(sev.pir_remind_after).replace(' d', ' days')}" in DOC
    assert f"MTTD target: {fmt(sev.mttd_target)}" in DOC


def test_ladder_matches_escalation_yaml() -> None:
    policy = load_policy(yaml.safe_load((CONTENT_DIR / "escalation.yaml").read_text()))
    lv = {x.level: x for x in policy.levels}
    assert f"L2 Secondary on-call: if not acknowledged {fmt(lv[2].after)} after L1" in DOC
    assert f"L3 Team lead / Engineering manager: if not acknowledged {fmt(lv[3].after)} after L2" in DOC
    assert f"L4 VP of Engineering: if still unresolved {fmt(lv[4].after)} after L3" in DOC
    assert f"L5 CEO: P0 only, if unresolved {fmt(lv[5].after)} after declare" in DOC
    assert policy.paging["P0"].initial_levels == (1, 2) and "P0 pages L1 and L2 at once" in DOC


def _num(v: float) -> str:
    return f"{v:g}"


def test_thresholds_and_monitor_match_thresholds_yaml() -> None:
    th = load_thresholds()
    e, lat, av = th.error_rate, th.latency_p99_ms, th.availability
    pct = lambda x: _num(round(x * 100, 3))  # noqa: E731
    assert (
        f"| Error rate (order path) | > {pct(e.critical)} % | > {pct(e.high)} % | > {pct(e.medium)} % |"
        in DOC
    )
    row = f"| Latency p99 (order) | > {_num(lat.critical)} ms | > {_num(lat.high)} ms | > {_num(lat.medium)} ms |"
    assert row in DOC
    assert (
        f"| Availability (checks) | < {pct(av.critical)} % | < {pct(av.high)} % | < {pct(av.medium)} % |"
        in DOC
    )
    m = th.monitor
    assert f"every {_num(m.interval_s)} s and judges a {_num(m.window_s / 60)} min window" in DOC
    assert f"once it has {m.min_samples} checks" in DOC and f"after {m.min_samples} failing checks" in DOC


def _min(seconds: float) -> str:
    return f"{seconds / 60:g} min"


def test_alert_states_and_enhanced_monitoring_match_thresholds_yaml() -> None:
    th = load_thresholds()
    a = th.alerting
    assert f"answer slower than {_num(th.latency_p99_ms.high)} ms is **degraded" in DOC
    assert f"once it has failed for {_min(a.for_s)} with {th.monitor.min_samples} failing checks" in DOC
    assert f"only after {_min(a.clean_s)} without a failing check" in DOC
    assert f'"metrics back to normal" (after {_min(a.clean_s)} without a failing check)' in DOC
    assert f"for {_num(a.enhanced_monitoring_s / 3600)} h after resolve (seed 001: 24–48" in DOC
    assert 24 <= a.enhanced_monitoring_s / 3600 <= 48


def test_readme_alert_numbers_match_thresholds_yaml() -> None:
    readme = (CONTENT_DIR.parent / "README.md").read_text()
    th = load_thresholds()
    a = th.alerting
    assert f"an answer slower than {_num(th.latency_p99_ms.high)} ms is degraded" in readme
    assert f"after {_min(a.for_s)} with {th.monitor.min_samples} failing checks it *fires*" in readme
    assert f"only {_min(a.clean_s)} without a" in readme
    assert f"keeps watching for {_num(a.enhanced_monitoring_s / 3600)} h after resolve" in readme
