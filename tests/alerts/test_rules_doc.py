"""jwtFactory.md's Prometheus alert rules carry thresholds.yaml's numbers, route to the monitor's problem with
the severity the monitor would pick, and are valid rules for Debian's promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.alerts.routing import load_policy
from bot.config import CONTENT_DIR
from bot.health.thresholds import load_thresholds

DOC = (CONTENT_DIR / "jwtFactory.md").read_text()
FAMILIES = {"ErrorRate": "error_rate", "LatencyP99": "latency_p99_ms", "Availability": "availability"}


def rules() -> list[dict[str, Any]]:
    section = DOC.split("### Alert rules", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "jwtFactory.md has no yaml block under ### Alert rules"
    return list(yaml.safe_load(block.group(1))["groups"][0]["rules"])


def test_every_level_of_every_threshold_has_a_rule_with_its_number() -> None:
    th = load_thresholds()
    seen = set()
    for rule in rules():
        m = re.fullmatch(
            r"(?:Factory|Service)(ErrorRate|LatencyP99|Availability)(Critical|High|Medium)", rule["alert"]
        )
        assert m, rule["alert"]
        family, level = FAMILIES[m.group(1)], m.group(2).lower()
        assert rule["labels"]["severity"] == level
        limit = getattr(getattr(th, family), level)
        number = float(re.findall(r"[<>] ([0-9.]+)$", rule["expr"])[0])
        assert (number * 1000 if family == "latency_p99_ms" else number) == pytest.approx(limit)
        seen.add((family, level))
    assert seen == {(f, lvl) for f in FAMILIES.values() for lvl in ("critical", "high", "medium")}


def test_rules_route_to_the_monitors_problem_with_its_severity() -> None:
    th, policy = load_thresholds(), load_policy(CONTENT_DIR / "alerts.yaml")
    for rule in rules():
        route = policy.route({"alertname": rule["alert"], **rule["labels"]})
        assert (route.rule, route.problem, route.action) == ("factory-health", "factory-health", "declare")
        assert route.severity == th.severity[rule["labels"]["severity"]]


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "Debian's prometheus (promtool) is not installed: scripts/ensure-alertmanager.sh installs it"
        )
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "jwt-pizza-factory", "rules": rules()}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
