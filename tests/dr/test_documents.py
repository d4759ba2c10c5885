"""The runbook and the DR plan say what the bot runs on: their numbers equal the YAML, and every metric,
route, `incident-bot` command (and flag), `/incident` command and table they name exists."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.config import CONTENT_DIR, Settings
from bot.dr.plan import DR_PLAN, load_dr, plan_hash
from bot.escalation.policy import load_policy
from bot.health.thresholds import load_thresholds
from bot.metrics import Metrics
from bot.models import ALL_TABLES
from bot.playbook import PlaybookError, load_severities
from bot.worker import Worker
from handlers.parse import USAGE
from wiring.cli import DELEGATED, build_parser

RUNBOOK = CONTENT_DIR / "runbook-incident-bot.md"
DOCS = {"runbook": RUNBOOK, "dr-plan": DR_PLAN}
UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}

Table = list[dict[str, str]]


def tables(path: Path) -> dict[str, Table]:
    """Every Markdown table introduced by `<!-- table: NAME -->`, as rows of {header: cell}."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: dict[str, Table] = {}
    for i, line in enumerate(lines):
        tag = re.fullmatch(r"\s*<!-- table: ([\w-]+) -->\s*", line)
        if not tag:
            continue
        rows, j = [], i + 1
        while j < len(lines) and lines[j].strip().startswith("|"):
            rows.append([c.strip() for c in lines[j].strip().strip("|").split("|")])
            j += 1
        assert len(rows) > 2, f"{path.name}: table {tag[1]} is empty"
        assert tag[1] not in out, f"{path.name}: table {tag[1]} twice"
        out[tag[1]] = [dict(zip(rows[0], r, strict=True)) for r in rows[2:]]
    return out


def by_key(table: Table, column: str) -> dict[str, dict[str, str]]:
    return {row[column].strip("`"): row for row in table}


def dur(cell: str) -> timedelta | None:
    """'15 min', '1 h', '24 h', '30 d', '60 s' -> timedelta; '—' (nothing) -> None."""
    if cell.startswith("—"):
        return None
    m = re.match(r"(\d+(?:\.\d+)?)\s*(s|min|h|d)\b", cell)
    assert m, f"no duration in {cell!r}"
    return timedelta(seconds=float(m[1]) * UNITS[m[2]])


def number(cell: str) -> float:
    """'> 2 %' -> 0.02, '> 500 ms' -> 500, '< 99.9 %' -> 0.999."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*(%|ms)?", cell)
    assert m, f"no number in {cell!r}"
    return float(m[1]) / 100 if m[2] == "%" else float(m[1])


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Table]]:
    return {name: tables(path) for name, path in DOCS.items()}


@pytest.fixture(scope="module")
def text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOCS.values())


# -------------------------------------------------------------------------------- numbers == YAML


def test_severity_table_matches_severities_and_paging(docs: dict[str, dict[str, Table]]) -> None:
    sevs = load_severities(CONTENT_DIR / "severities.yaml")
    policy = load_policy(yaml.safe_load((CONTENT_DIR / "escalation.yaml").read_text()))
    rows = by_key(docs["runbook"]["severities"], "Severity")
    assert set(rows) == set(sevs.severities)
    for key, row in rows.items():
        sev, paging = sevs[key], policy.paging[key]
        assert dur(row["Response target"]) == sev.response_target, key
        assert dur(row["Update cadence"]) == sev.update_cadence, key
        assert dur(row["MTTR target"]) == sev.mttr_target, key
        assert row["Paging"] == paging.mode, key
        levels = tuple(int(x) for x in re.findall(r"\d+", row["Initial levels"]))
        assert levels == paging.initial_levels, key
        assert row["Auto-escalates"] == ("yes" if paging.escalate else "no"), key


def test_update_cadence_in_the_plan_matches_severities(docs: dict[str, dict[str, Table]]) -> None:
    sevs = load_severities(CONTENT_DIR / "severities.yaml")
    rows = by_key(docs["dr-plan"]["update-cadence"], "Severity")
    assert set(rows) == set(sevs.severities)
    for key, row in rows.items():
        assert dur(row["Response target"]) == sevs[key].response_target, key
        assert dur(row["Update cadence"]) == sevs[key].update_cadence, key


def test_escalation_tables_match_the_ladder(docs: dict[str, dict[str, Table]]) -> None:
    policy = load_policy(yaml.safe_load((CONTENT_DIR / "escalation.yaml").read_text()))
    paged_at: dict[str, timedelta] = {"declare": timedelta(0)}
    for lv in policy.levels:  # sorted by level; each `from` names an earlier level or declare
        paged_at[lv.step] = paged_at[lv.base] + lv.after
    for doc in ("runbook", "dr-plan"):
        rows = by_key(docs[doc]["escalation"], "Level")
        if doc == "runbook":
            assert set(rows) == {lv.step for lv in policy.levels}
        for step, row in rows.items():
            lv = next(lv for lv in policy.levels if lv.step == step)
            assert row["Who"] == lv.name, (doc, step)
            assert dur(row["Paged at (no ack)"]) == paged_at[step], (doc, step)
            if "After" in row:
                assert dur(row["After"]) == lv.after, step
                assert row["From"] == lv.base, step
                assert row["Stops at"] == lv.until, step
                assert row["Severities"] == (", ".join(lv.severities) if lv.severities else "all"), step


def test_detection_settings_match_yaml(docs: dict[str, dict[str, Table]]) -> None:
    sevs = load_severities(CONTENT_DIR / "severities.yaml")
    monitor = load_thresholds(CONTENT_DIR / "thresholds.yaml").monitor
    rows = {k: row["Value"] for k, row in by_key(docs["runbook"]["detection"], "Setting").items()}
    assert dur(rows["mttd"]) == sevs.mttd_target
    assert dur(rows["monitor interval"]) == timedelta(seconds=monitor.interval_s)
    assert dur(rows["monitor window"]) == timedelta(seconds=monitor.window_s)
    assert int(rows["monitor min samples"]) == monitor.min_samples
    assert dur(rows["monitoring minimum"]) == sevs.monitoring_minimum
    # The plan says it in prose: "watch for the monitoring minimum of 30 min".
    m = re.search(r"monitoring minimum of (\d+ \w+)", DR_PLAN.read_text(encoding="utf-8"))
    assert m and dur(m[1]) == sevs.monitoring_minimum


def test_alert_thresholds_match_yaml(docs: dict[str, dict[str, Table]]) -> None:
    th = load_thresholds(CONTENT_DIR / "thresholds.yaml")
    levels = {"error rate": th.error_rate, "latency p99": th.latency_p99_ms, "availability": th.availability}
    rows = by_key(docs["runbook"]["alert-thresholds"], "Metric")
    assert set(rows) == set(levels)
    for metric, row in rows.items():
        for header, cell in row.items():
            m = re.fullmatch(r"(Medium|High|Critical) \((P\d)\)", header)
            if not m:
                continue
            level = m[1].lower()
            assert th.severity[level] == m[2], header
            assert number(cell) == pytest.approx(getattr(levels[metric], level)), (metric, level)
            assert cell.startswith(">" if levels[metric].higher_is_worse else "<"), (metric, level)


def test_services_table_matches_dr_yaml(docs: dict[str, dict[str, Table]]) -> None:
    plan = load_dr()
    rows = by_key(docs["dr-plan"]["services"], "Service")
    assert set(rows) == {s.name for s in plan.services.values()}
    assert [rows[s.name]["Priority"] for s in plan.by_priority()] == [r["Priority"] for r in rows.values()]
    for svc in plan.services.values():
        row = rows[svc.name]
        assert int(row["Priority"]) == svc.priority, svc.key
        assert dur(row["RTO"]) == svc.rto, svc.key
        assert dur(row["RPO"]) == svc.rpo, svc.key
        assert row["Owner"] == svc.owner, svc.key
        assert row["Depends on"] == (", ".join(svc.depends_on) or "—"), svc.key


def test_bot_objectives_and_backups_agree(docs: dict[str, dict[str, Table]]) -> None:
    plan = load_dr()
    bot = plan.services["incident-bot"]
    assert bot.rpo == plan.backup.interval, "the bot's RPO is the backup interval"
    objectives = {
        k: row["Value"] for k, row in by_key(docs["runbook"]["bot-objectives"], "Objective").items()
    }
    assert dur(objectives["RTO (Recovery Time Objective)"]) == bot.rto
    assert dur(objectives["RPO (Recovery Point Objective)"]) == bot.rpo
    backup = {k: row["Value"] for k, row in by_key(docs["dr-plan"]["backup"], "Setting").items()}
    assert dur(backup["incident-bot backup interval"]) == plan.backup.interval
    assert dur(backup["backup retention"]) == plan.backup.retention
    assert dur(backup["PostgreSQL WAL archive timeout"]) == plan.backup.postgres_wal_archive_timeout
    runbook = RUNBOOK.read_text(encoding="utf-8")
    assert re.search(r"every 15 min from cron", runbook) and plan.backup.interval == timedelta(minutes=15)
    assert f"Retention**: {plan.backup.retention.days} days" in runbook
    assert f"archive_timeout = {int(plan.backup.postgres_wal_archive_timeout.total_seconds())}s" in runbook
    prose = re.search(r"backups every (\d+ \w+) → RPO (\d+ \w+)", DR_PLAN.read_text(encoding="utf-8"))
    assert prose and dur(prose[1]) == dur(prose[2]) == plan.backup.interval


def test_scenario_objectives_match_their_services() -> None:
    """§4's `**RTO** x; **RPO** y` lines, in order, against the services each scenario restores."""
    plan = load_dr().services
    expected = {
        "4.1": ["factory"],
        "4.2": ["factory"],
        "4.3": ["factory"],
        "4.4": ["pizza-service"],
        "4.5": ["pizza-db", "incident-bot"],
        "4.6": ["incident-bot"],
    }
    parts = re.split(r"^### (4\.\d)\b", DR_PLAN.read_text(encoding="utf-8"), flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert set(sections) == set(expected)
    for section, keys in expected.items():
        rtos = [dur(m) for m in re.findall(r"\*\*RTO\*\* (\d+ \w+)", sections[section])]
        assert rtos == [plan[k].rto for k in keys], section
        rpos = [dur(m) for m in re.findall(r"\*\*RPO\*\* (\d+ \w+|—)", sections[section])]
        assert rpos == [plan[k].rpo for k in keys], section


def test_drills_review_and_signoff_match_dr_yaml(docs: dict[str, dict[str, Table]]) -> None:
    plan = load_dr()
    drills = by_key(docs["dr-plan"]["drills"], "Scenario")
    assert {k: dur(r["Every"]) for k, r in drills.items()} == plan.drills
    for scenario in plan.drills:  # what `/incident drill` accepts, plus the two done by hand
        assert scenario in ("restore", "tabletop") or f"|{scenario}" in USAGE or f"drill {scenario}|" in USAGE
    review = re.search(r"\*\*Review\*\*: every (\d+ d)", DR_PLAN.read_text(encoding="utf-8"))
    assert review and dur(review[1]) == plan.review_interval == timedelta(days=365)
    signoff = by_key(docs["dr-plan"]["signoff"], "Role")
    assert {k: r["Signed for"] for k, r in signoff.items()} == plan.signoff_roles
    for role in plan.signoff_roles:
        assert f"`/incident dr signoff {role}`" in signoff[role]["How to sign"]
        assert role in USAGE.split("/incident dr signoff ")[1].split("`")[0].split("|")


def test_code_defaults_quoted_in_the_runbook() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    poll = Settings.model_fields["worker_poll_interval"].default
    assert f"`WORKER_POLL_INTERVAL`, {poll:g} s by default" in runbook
    lease = inspect.signature(Worker.__init__).parameters["lease"].default
    assert runbook.count(f"{int(lease.total_seconds())} s lease") == 2


# -------------------------------------------------------------------------------- names that must exist


def _exposed_metrics() -> tuple[set[str], dict[str, set[str]]]:
    """Names a scrape of /metrics can show, and each histogram's `le` label values."""
    metrics = Metrics()
    names: set[str] = set()
    buckets: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {family.name, *(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))}
        else:
            names.add(family.name)
    metrics.timer_lateness.observe(0)  # bucket samples appear once a histogram (child) has one observation
    metrics.check_latency.labels(probe="x").observe(0)
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.setdefault(sample.name.removesuffix("_bucket"), set()).add(sample.labels["le"])
    return names, buckets


def test_every_metric_named_exists(text: str) -> None:
    names, buckets = _exposed_metrics()
    mentioned = set(re.findall(r"\bincident_bot_\w+", text))
    assert mentioned, "the runbook should name the bot's metrics"
    assert mentioned <= names, f"not exposed by bot/metrics.py: {sorted(mentioned - names)}"
    for metric, le in re.findall(r"\b(incident_bot_\w+)_bucket\{[^}]*le=\"([^\"]+)\"", text):
        assert le in buckets[metric], f"{metric} has no bucket le={le!r} (buckets: {sorted(buckets[metric])})"


def test_every_route_named_exists(text: str) -> None:
    from wiring.app import create_app

    routes = {getattr(r, "path", "") for r in create_app(Settings(_env_file=None)).routes}  # type: ignore[call-arg]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert path in text and path in routes
    for path in re.findall(r"\$PUBLIC_URL(/[\w/]+)", text):
        assert path in routes, path


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _delegated_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> str:
    main, _ = DELEGATED[cmd]
    with pytest.raises(SystemExit):
        main(["--help"])
    return capsys.readouterr().out


def test_every_incident_bot_command_and_flag_named_exists(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = _subcommands()
    used: dict[str, set[str]] = {}
    for cmd, rest in re.findall(r"\bincident-bot ([a-z][\w-]*)([^`\n#|]*)", text):
        used.setdefault(cmd, set()).update(re.findall(r"(?<!\S)(--[a-z][\w-]*)", rest))
    assert {"backup", "restore", "migrate", "check", "worker"} <= set(used)
    for cmd, flags in used.items():
        assert cmd in commands, f"`incident-bot {cmd}` is not a command"
        if not flags:
            continue
        if cmd in DELEGATED:
            help_text = _delegated_help(cmd, capsys)
            missing = {f for f in flags if f not in help_text}
        else:
            missing = flags - set(commands[cmd]._option_string_actions)
        assert not missing, f"`incident-bot {cmd}` has no {sorted(missing)}"


def test_documented_invocations_that_start_with_an_option_reach_their_command(text: str) -> None:
    failures = []
    for cmd, rest in re.findall(r"\bincident-bot ([a-z][\w-]*)([^`\n#|]*)", text):
        tokens = rest.split()
        if not tokens or not tokens[0].startswith("--"):
            continue
        if cmd in DELEGATED:
            continue  # cli.main hands these to their feature before argparse (tests/test_cli.py)
        try:
            build_parser().parse_args([cmd, *tokens])
        except SystemExit:
            failures.append(f"incident-bot {cmd} {' '.join(tokens)}")
    assert not failures, failures


def test_every_slash_command_named_exists(text: str) -> None:
    for sub in set(re.findall(r"/incident (\w[\w-]*)", text)):
        assert f"/incident {sub}" in USAGE, f"`/incident {sub}` is not in handlers/parse.py USAGE"


def test_every_table_in_sql_exists(text: str) -> None:
    for name in re.findall(r"\bFROM (\w+)", text):
        assert name in ALL_TABLES or name == "pg_stat_activity", name


# -------------------------------------------------------------------------------- plan.py


def test_plan_hash_is_the_sha256_of_the_plan(tmp_path: Path) -> None:
    assert plan_hash() == hashlib.sha256(DR_PLAN.read_bytes()).hexdigest()
    copy = tmp_path / "dr-plan.md"
    copy.write_bytes(DR_PLAN.read_bytes())
    assert plan_hash(copy) == plan_hash()
    copy.write_bytes(DR_PLAN.read_bytes() + b"\nedited\n")
    assert plan_hash(copy) != plan_hash()


def test_load_dr_validates(tmp_path: Path) -> None:
    plan = load_dr()
    assert plan.services["pizza-db"].rpo == timedelta(minutes=15) and plan.services["factory"].rpo is None
    assert [s.priority for s in plan.by_priority()] == sorted(s.priority for s in plan.services.values())
    for service in plan.services.values():
        assert all(d in plan.services or d in ("slack", "incident-bot-db") for d in service.depends_on)
    bad = tmp_path / "dr.yaml"
    bad.write_text((CONTENT_DIR / "dr.yaml").read_text().replace("rto: 1h", "rto: soon", 1))
    with pytest.raises(PlaybookError, match="bad duration"):
        load_dr(bad)
    bad.write_text("services: {}\n")
    with pytest.raises(PlaybookError):
        load_dr(bad)
