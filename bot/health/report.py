"""Renderers for a CheckReport (terminal and Slack code block) and the `incident-bot check` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from typing import Any, TextIO

from bot.health.probes import CheckReport, ProbeResult, probe_names, run_probes

EXIT_CODES = {"healthy": 0, "degraded": 1, "down": 2}
DETAIL_WIDTH = 72
_SUPPORT_KEY = re.compile(r"(/api/support/)([^/]+)(/report/)")


def redact_report_url(url: str) -> str:
    """Mask the vendor API key a reportUrl carries, for text people read (Slack, terminals)."""

    def mask(m: re.Match[str]) -> str:
        key = m[2]
        return f"{m[1]}{key[:4]}…{key[-4:]}{m[3]}" if len(key) > 8 else f"{m[1]}…{m[3]}"

    return _SUPPORT_KEY.sub(mask, url)


def redact_json(value: Any, api_key: str = "") -> Any:
    """`redact_report_url` over every string of a report's JSON, and the key itself wherever it appears:
    `check --json` output ends up in CI logs and tickets just like the table does."""
    if isinstance(value, str):
        text = redact_report_url(value)
        return text.replace(api_key, "[redacted]") if len(api_key) >= 6 else text
    if isinstance(value, dict):
        return {k: redact_json(v, api_key) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v, api_key) for v in value]
    return value


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(result: ProbeResult, name_width: int) -> str:
    http = str(result.http_status) if result.http_status is not None else "-"
    ms = f"{result.latency_ms:.0f}" if result.status != "skipped" else "-"
    detail = _clip(redact_report_url(result.detail), DETAIL_WIDTH)
    return f"{result.name:<{name_width}}  {result.status:<8}  {http:>4}  {ms:>6}  {detail}".rstrip()


def render_table(report: CheckReport) -> str:
    """A fixed-width table (probe, status, HTTP, ms, detail) plus a verdict line; fits a Slack code block."""
    width = max([5, *(len(r.name) for r in report.results)])
    lines = [f"{'PROBE':<{width}}  {'STATUS':<8}  {'HTTP':>4}  {'MS':>6}  DETAIL"]
    lines += [_row(r, width) for r in report.results]
    severity = report.suggested_severity or "none"
    lines.append(
        f"verdict: {report.verdict}  severity: {severity}  {report.checks} checks in {report.wall_ms:.0f} ms"
    )
    if report.impact:
        lines.append(f"impact: {redact_report_url(report.impact)}")
    if report.chaos_type:
        lines.append(f"chaos: {report.chaos_type}")
    if report.report_url:
        lines.append(f"reportUrl: {redact_report_url(report.report_url)}")
    return "\n".join(lines)


def render_progress(result: ProbeResult, done: int, total: int) -> str:
    """One line per finished probe, e.g. `[3/7] order  down  timed out after 5 s (…)`."""
    return (
        f"[{done}/{total}] {result.name:<14} {result.status:<8} {_clip(redact_report_url(result.detail), 72)}"
    )


def check_main(argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`incident-bot check`: run the probes once; exit 0 healthy, 1 degraded, 2 down (and usage errors)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="incident-bot check", description="Check the Factory and the service"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--factory-url", default=os.environ.get("FACTORY_URL", ""))
    parser.add_argument("--api-key", default=os.environ.get("FACTORY_API_KEY", ""))
    parser.add_argument("--service-url", default=os.environ.get("PIZZA_SERVICE_URL", ""))
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per probe (default 5)")
    parser.add_argument(
        "--diner-email",
        default=os.environ.get("PIZZA_DINER_EMAIL", ""),
        help="with PIZZA_DINER_PASSWORD: also order through the service as this diner",
    )
    args = parser.parse_args(argv)
    if not args.factory_url:
        parser.error("--factory-url or FACTORY_URL is required")
    password = os.environ.get("PIZZA_DINER_PASSWORD", "")
    diner = (args.diner_email, password) if args.diner_email and password and args.service_url else None
    total = len(probe_names(args.service_url, diner))
    done = 0

    async def progress(result: ProbeResult) -> None:
        nonlocal done
        done += 1
        print(render_progress(result, done, total), file=err, flush=True)

    on_result = progress if err.isatty() else None
    if on_result is not None:
        print(f"Running {total} checks…", file=err, flush=True)
    report = asyncio.run(
        run_probes(
            args.factory_url,
            args.api_key,
            args.service_url or None,
            timeout=args.timeout,
            on_result=on_result,
            diner=diner,
        )
    )
    print(
        json.dumps(redact_json(report.to_dict(), args.api_key), indent=2)
        if args.json
        else render_table(report),
        file=out,
    )
    return EXIT_CODES[report.verdict]
