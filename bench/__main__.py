"""`make bench` / `python -m bench`: the performance figures of the GitHub issue, measured in one run.

    python -m bench                        # all six, default sizes
    python -m bench --only 1,2             # some of them
    python -m bench --only 3 --incidents 10000
    python -m bench --only 3 --incidents 100 --gate-scale 1   # smaller N; lateness under Slack's real tiers
    python -m bench --write-docs           # also (re)write docs/performance.md with these results

1 slash-command ack latency (ratio to a bare FastAPI endpoint)
2 declare → war room + L1 page
3 escalation on PostgreSQL with 2 worker processes: pages/s, worker CPU and DB round trips per page against a
  minimal claim-send-mark loop (bench/claim_loop.py), lateness p50/p99 below the rate gate's limit, 0 dup/miss
4 health-check fan-out
5 PIR of 100,000 timeline events
6 RSS of the web process after 1 and 2
Not part of `make test`. Every server runs in its own process; everything started is stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import common
from bench.common import BenchResult, Row

TITLES = {
    "1": "Slash-command ack latency",
    "2": "Declare → channel, pinned template, L1 page",
    "3": "Escalation: throughput, cost per page, lateness",
    "4": "Health-check fan-out",
    "5": "PIR of 100,000 timeline events",
    "6": "Memory",
}


def _guard(key: str, fn: Callable[[], BenchResult]) -> BenchResult:
    load0 = os.getloadavg()
    t = time.monotonic()
    print(f"[bench {key}] {TITLES[key]}…", file=sys.stderr, flush=True)
    try:
        res = fn()
    except Exception as exc:
        traceback.print_exc()
        res = BenchResult(key, TITLES[key], skipped=f"failed: {type(exc).__name__}: {exc}")
        res.data["error"] = True
    res.seconds = res.seconds or time.monotonic() - t
    res.data["loadavg_1m"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    print(f"[bench {key}] done in {res.seconds:.0f} s", file=sys.stderr, flush=True)
    return res


def _memory(stack: common.WebStack, ran: list[str]) -> BenchResult:
    assert stack.bot and stack.bare and stack.standin
    res = BenchResult("6", TITLES["6"])
    bot, bare = stack.bot.rss(), stack.bare.rss()
    after = " + ".join(ran) if ran else "start-up only"
    res.rows = [
        Row(
            f"web process RSS after benchmarks {after}",
            f"{bot.get('VmRSS', float('nan')):.0f} MB (peak {bot.get('VmHWM', float('nan')):.0f} MB)",
            "info (no target)",
            f"bare FastAPI: {bare.get('VmRSS', float('nan')):.0f} MB",
        )
    ]
    res.data = {"bot": bot, "bare": bare, "after": ran}
    return res


def _pir() -> BenchResult:
    res = BenchResult("5", TITLES["5"])
    try:
        from bench import pir_bench
    except ModuleNotFoundError as exc:
        res.skipped = f"not available ({exc.name} missing)"
        return res
    t = time.monotonic()
    out: dict[str, Any] = pir_bench.run(100_000)
    res.seconds = time.monotonic() - t
    total, target = float(out["load_plus_render_s"]), float(out["target_s"])
    ok = bool(out.get("ok", total < target))
    res.data = out
    res.rows = [
        Row(
            f"PIR of {int(out['events']):,} events: load + Markdown render",
            f"{total:.2f} s ({out['load_s']:.2f} + {out['render_md_s']:.2f})",
            f"< {target:g} s",
            f"{total / target:.2f}× of target {'OK' if ok else 'MISS'}",
            ok,
        ),
        Row("  HTML render of the same (web view)", f"{out['render_html_s']:.2f} s", "info", ""),
    ]
    return res


def _print_table(results: list[BenchResult]) -> None:
    lines: list[tuple[str, str, str, str]] = [("#", "figure", "value", "target | ratio / verdict")]
    for res in results:
        if res.skipped:
            lines.append((res.key, res.title, res.skipped, ""))
            continue
        for i, row in enumerate(res.rows):
            lines.append((res.key if i == 0 else "", row.figure, row.value, f"{row.target} | {row.verdict}"))
    w1 = max(len(x[1]) for x in lines)
    w2 = max(len(x[2]) for x in lines)
    print()
    for i, (k, fig, val, rest) in enumerate(lines):
        print(f"{k:>2}  {fig:<{w1}}  {val:<{w2}}  {rest}")
        if i == 0:
            print("-" * (w1 + w2 + 40))
    print()
    for res in results:
        for note in res.notes:
            print(f"[{res.key}] {note}")


# -- docs/performance.md -----------------------------------------------------------------------------------

DOCS = common.ROOT / "docs" / "performance.md"
DATA_MARK = "<!-- bench-data (read back by `python -m bench --write-docs`; keep last) -->"


def _doc_key(res: BenchResult) -> str:
    """Benchmark 3 at a non-default size or gate scale is kept alongside the default run."""
    if res.key != "3":
        return res.key
    n, scale = res.data.get("incidents"), res.data.get("gate_scale")
    suffix = ("" if n in (None, 1000) else f"@{n}") + ("" if scale in (None, 10.0) else f"@gate{scale:g}")
    return "3" + suffix


def _load_previous() -> dict[str, Any]:
    import json

    try:
        text = DOCS.read_text()
    except OSError:
        return {}
    if DATA_MARK not in text:
        return {}
    raw = text.split(DATA_MARK, 1)[1].strip().removeprefix("<!--").removesuffix("-->").strip()
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _revive(d: dict[str, Any]) -> BenchResult:
    rows = [Row(**r) for r in d.get("rows", [])]
    fields = {k: d[k] for k in ("key", "title", "data", "notes", "skipped", "seconds") if k in d}
    return BenchResult(rows=rows, **fields)


def write_docs(results: list[BenchResult], machine: dict[str, Any]) -> str:
    import dataclasses
    import json

    store = _load_previous()
    runs: dict[str, Any] = store.get("runs", {})
    # Benchmark 3's figures from before its phases (throughput, lateness below the gate, baseline) were taken
    # with other worker settings; they are not kept beside the new ones.
    runs = {k: v for k, v in runs.items() if not k.startswith("3") or "phases" in v.get("data", {})}
    for res in results:
        if res.skipped and res.data.get("error"):
            continue  # a crashed run does not replace the last good figures
        entry = dataclasses.asdict(res) | {"when": machine["date"], "machine": machine}
        runs[_doc_key(res)] = entry
    store = {"runs": runs}
    ordered = sorted(runs, key=lambda k: (k[0], len(k), k))
    revived = {k: _revive(runs[k]) for k in ordered}
    text = render_docs(revived, {k: runs[k] for k in ordered})
    payload = json.dumps(store, indent=1, sort_keys=True, default=str)
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(f"{text}\n{DATA_MARK}\n<!--\n{payload}\n-->\n")
    return str(DOCS.relative_to(common.ROOT))


KEEP_START, KEEP_END = "<!-- hand-written:start -->", "<!-- hand-written:end -->"


def _kept_section() -> str:
    """The hand-written analysis between the markers survives every rewrite."""
    try:
        text = DOCS.read_text()
    except OSError:
        text = ""
    if KEEP_START in text and KEEP_END in text:
        return text[text.index(KEEP_START) : text.index(KEEP_END) + len(KEEP_END)]
    return f"{KEEP_START}\n## Findings\n\n(none recorded yet)\n{KEEP_END}"


def _f(x: Any, digits: int = 0) -> str:
    try:
        return f"{float(x):,.{digits}f}"
    except (TypeError, ValueError):
        return "n/a"


def _ms(seconds: Any) -> str:
    try:
        return common.ms(float(seconds))
    except (TypeError, ValueError):
        return "n/a"


def _stand_1(d: dict[str, Any]) -> str:
    bot = d["loaded"]["bot"]
    cpu = d["cpu_per_request_us"]
    dec = d["declare"]
    ratios = sorted(d.get("round_p99_ratios") or [float("nan")])
    ok = d["ratio_p99"] <= 1.2
    verdict = "meets" if ok else "misses"
    return (
        f"**{verdict.capitalize()} the 1.2× target** on p99 ({d['ratio_p99']:.2f}×; p50 {d['ratio_p50']:.2f}×; "
        f"per-round p99 ratios {ratios[0]:.2f}–{ratios[-1]:.2f}, median {ratios[len(ratios) // 2]:.2f}) and is "
        f"far inside Slack's 3 s (bot p99 {_ms(bot['p99'])}). With {d['concurrency']} requests in flight both "
        "the server and the load generator saturate the two cores, so latency is queueing and the ratio follows "
        f"the server CPU per ack: {_f(cpu['bot'])} µs for the bot against {_f(cpu['bare'])} µs for the bare "
        f"endpoint ({cpu['bot'] / cpu['bare']:.1f}×). Slash commands take a fast path in the route (the SDK's "
        "signature verifier, then the same listener code), so Bolt's per-request pipeline, which was most of "
        "the difference (finding F4), is no longer on this path; the rest is the signature check, form parsing "
        "and the listener. Unloaded (one request at a time) the bot acks in "
        f"{_ms(d['unloaded']['bot']['p50'])} vs {_ms(d['unloaded']['bare']['p50'])} p50. "
        f"`/incident declare` acks at {_ms(dec['p50'])} p50 / {_ms(dec['p99'])} p99 while the same process "
        f"builds {d['declares']} war rooms: `process_before_response=True` + a background task keeps the ack "
        "independent of the work."
    )


def _stand_2(d: dict[str, Any]) -> str:
    seq, burst = d["sequential"], d["burst"]
    ok = seq["done"]["p95"] <= 0.3
    return (
        f"**{'Meets' if ok else 'Misses'} the 300 ms p95 target**: p50 {_ms(seq['done']['p50'])}, p95 "
        f"{_ms(seq['done']['p95'])} from the signed request to the last of channel, pin and L1 page "
        f"(p50 stages: channel {_ms(seq['channel']['p50'])}, pinned {_ms(seq['pinned']['p50'])}, L1 DM "
        f"{_ms(seq['l1_paged']['p50'])}, reply to the declarer {_ms(seq['replied']['p50'])}). The whole path "
        "is one sequential chain in the web process: about 20 SQLite transactions (each `BEGIN IMMEDIATE`, each "
        "statement a hop to aiosqlite's thread) and 8 Slack calls, each step recorded before the next one "
        "starts so a failure can resume. A burst of "
        f"{d['burst_n']} simultaneous declares takes {_ms(burst['done']['p50'])} p50 / {_ms(burst['done']['p95'])}"
        " p95: SQLite serialises the writers."
    )


def _stand_3(d: dict[str, Any]) -> str:
    ph = d["phases"]
    thr, late, base = ph["throughput"], ph["lateness"], ph.get("baseline")
    lat = d["lateness"]
    per = thr["db_per_page"]
    user, system = thr["user_sys_ms_per_page"]
    clean = d["duplicates"] + d["misses"] + d["strays"] == 0
    ratio = d.get("cpu_ratio", float("nan"))
    text = (
        f"{_f(d['incidents'])} incidents, 2 `Worker` processes on PostgreSQL: **{_f(d['pages_per_s'])} pages/s** "
        f"with {_f(d['arrival_per_s'])} steps/s falling due over {_f(d['window_s'])} s (the queue drained "
        f"{_f(thr['drain_after_last_due_s'], 1)} s after the last due time; lateness while over capacity "
        f"p50 {_ms(thr['lateness']['p50'])}, p99 {_ms(thr['lateness']['p99'])}). Per page the workers spend "
        f"{_f(d['cpu_ms_per_page'], 1)} ms CPU ({user:.1f} user + {system:.1f} system) and about "
        f"{_f(d['db_round_trips_per_page'])} PostgreSQL round trips ({per['statements']:.1f} statements in "
        f"{per['commits']:.1f} transactions, {per['pings']:.1f} pool pre-pings, {per['connects']:.2f} new "
        "connections), and Slack calls per page: "
        + ", ".join(f"{k} {v:.2f}" for k, v in thr.get("slack_calls_per_page", {}).items())
        + " (the DM, the war-room line, the invite of the paged user; the DM channel is cached per user). "
        f"Below the rate gate's limit (gate at {d['gate_scale']:g}× Slack's tiers: {_f(d['gate_limit_per_s'], 1)} "
        f"pages/s for one process, steps due at {_f(d['lateness_due_per_s'], 1)}/s, {late['lateness']['n']} steps) "
        f"**lateness p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])} "
        f"({'meets' if lat['p99'] < 1.0 else 'misses'} < 1 s)**; the worker polls every 0.5 s, which is most "
        "of it. "
        f"{'0 duplicates, 0 misses, 0 strays (met)' if clean else 'duplicates/misses found (see table)'}, "
        "counted from the stand-in's DMs and war-room lines against the pages table."
    )
    if base:
        text += (
            f" The claim-send-mark baseline (bench/claim_loop.py) on the same table pages "
            f"{_f(base['pages_per_s'])}/s for {_f(base['cpu_ms_per_page'], 1)} ms CPU and "
            f"{_f(base['db_round_trips_per_page'], 1)} round trips per page: **the bot costs {ratio:.1f}× its CPU "
            f"per page ({'meets' if ratio <= 2.0 else 'misses'} ≤ 2×)** and "
            f"{d['round_trip_ratio']:.1f}× its round trips."
        )
    return text


def _stand_4(d: dict[str, Any]) -> str:
    sc = d["scenarios"]
    m, shared = sc["mixed"], sc["mixed_shared_client"]
    bare = sc.get("none_shared_client", sc["none"])
    ok = shared["wall_ms"] <= 1.1 * shared["slowest_ms"] + 50
    bare_ok = bare["wall_ms"] <= 1.1 * bare["slowest_ms"] + 50
    return (
        f"As `run_check` calls it (one shared httpx client per process), **{'meets' if ok else 'misses'} the "
        f"target** with probes of 40–250 ms: {_f(shared['wall_ms'])} ms wall vs {_f(shared['slowest_ms'])} ms "
        f"for the slowest probe ({shared['wall_ms'] / shared['slowest_ms']:.2f}×); with fast probes (the sim as "
        f"is) it {'meets' if bare_ok else 'misses'} it: {_f(bare['wall_ms'])} ms vs {_f(bare['slowest_ms'])} ms. "
        f"The standalone `incident-bot check` builds its own client: {_f(m['wall_ms'])} ms vs "
        f"{_f(m['slowest_ms'])} ms with the mixed delays; `httpx.AsyncClient()` costs "
        f"{_f(d['new_httpx_client_ms'])} ms here (SSL context and CA bundle), once per command. "
        "`verify` waits for `order` by design, so with equal delays the wall time is the order → verify chain, "
        "not the slowest single probe."
    )


def _stand_5(d: dict[str, Any]) -> str:
    ok = d.get("ok")
    return (
        f"**{'Meets' if ok else 'Misses'} < 2 s**: loading {_f(d['events'])} events takes {d['load_s']:.2f} s "
        f"and the Markdown render {d['render_md_s']:.2f} s ({d['markdown_bytes'] / 1e6:.1f} MB of Markdown; "
        f"HTML {d['render_html_s']:.2f} s). Measured by `bench/pir_bench.py` (PIR owner's benchmark; its "
        f"seeding of 100,000 rows is most of its run time)."
    )


def _stand_6(d: dict[str, Any]) -> str:
    bot, bare = d["bot"], d["bare"]
    return (
        f"The bot's web process holds {_f(bot.get('VmRSS'))} MB (peak {_f(bot.get('VmHWM'))} MB) after "
        f"benchmarks {' and '.join(d.get('after') or []) or '(none)'}; a bare FastAPI app under uvicorn "
        f"holds {_f(bare.get('VmRSS'))} MB, so the bot's code, Bolt, slack_sdk, SQLAlchemy and the playbook "
        "cost the difference. No target; nothing grew without bound in these runs."
    )


STANDING = {"1": _stand_1, "2": _stand_2, "3": _stand_3, "4": _stand_4, "5": _stand_5, "6": _stand_6}


def render_docs(results: dict[str, BenchResult], raw: dict[str, Any]) -> str:
    machines = {json_key(raw[k]["machine"]): raw[k]["machine"] for k in raw}
    out = [
        "# Performance",
        "",
        "Figures from `make bench` (`python -m bench`; `--only 1,2,…`, `--incidents N`, `--write-docs`). "
        "Every server under test runs in its own process (uvicorn, the same flags as production) and is "
        "loaded over loopback HTTP from the bench process; Slack is the loopback stand-in "
        "(`sandbox/slack_standin.py`), PostgreSQL a throwaway database on the local server. "
        "This file is rewritten by `python -m bench --write-docs`; the findings section is kept.",
        "",
        "## Machine",
        "",
    ]
    for m in machines.values():
        pk = ", ".join(f"{k} {v}" for k, v in sorted(m.get("packages", {}).items()))
        out += [
            f"- {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['os']}, Python {m['python']}, "
            f"PostgreSQL {m.get('postgresql') or '?'} on the same machine",
            f"- {pk}",
        ]
    loads = [v for r in results.values() for v in r.data.get("loadavg_1m", [])]
    if loads:
        out.append(
            f"- Shared machine: 1-minute load average {min(loads):.1f}–{max(loads):.1f} during these runs "
            "(other test suites ran concurrently on the 2 cores), so absolute times are inflated and noisy; "
            "ratios measured in one run against a baseline are the more trustworthy figures."
        )
    out += [
        "",
        "## Results",
        "",
        "| # | figure | value | target | ratio / verdict | run |",
        "|---|---|---|---|---|---|",
    ]
    for key, res in results.items():
        when = raw[key].get("when", "")
        if res.skipped:
            out.append(f"| {res.key} | {res.title} | {res.skipped} | | | {when} |")
            continue
        for i, row in enumerate(res.rows):
            cells = [res.key if i == 0 else "", row.figure.strip(), row.value, row.target, row.verdict]
            out.append(
                "| " + " | ".join(c.replace("|", "\\|") for c in cells) + f" | {when if i == 0 else ''} |"
            )
    out += ["", "## Where we stand, and why", ""]
    for key, res in results.items():
        title = TITLES.get(res.key, res.title)
        if res.key == "3" and key != "3":
            title += f" ({_f(res.data.get('incidents'))} incidents, rate gate at {res.data.get('gate_scale', 1):g}×)"
        out.append(f"### {res.key}. {title}")
        out.append("")
        if res.skipped:
            out.append(f"Not measured: {res.skipped}.")
        else:
            try:
                out.append(STANDING[res.key](res.data))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                out.append(f"(summary unavailable: {exc!r})")
            for note in res.notes:
                out.append("")
                out.append(f"_{note}_")
        out.append("")
    out.append(_kept_section())
    return "\n".join(out) + "\n"


def json_key(obj: Any) -> str:
    import json

    return json.dumps({k: v for k, v in obj.items() if k != "date"}, sort_keys=True, default=str)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="incident-bot performance figures")
    p.add_argument(
        "--only", default="1,2,3,4,5,6", help="comma-separated numbers, default all; none: run nothing"
    )
    p.add_argument("--incidents", type=int, default=1000, help="live incidents for 3 (default 1,000)")
    p.add_argument("--window", type=float, default=10.0, help="seconds over which 3's steps fall due")
    p.add_argument(
        "--gate-scale", type=float, default=10.0, help="3's lateness phase: rate gate at this × Slack's tiers"
    )
    p.add_argument(
        "--below", type=float, default=0.8, help="3's lateness phase: due rate as a share of the gate"
    )
    p.add_argument(
        "--lateness-seconds", type=float, default=20.0, help="3's lateness phase: how long steps fall due"
    )
    p.add_argument("--no-baseline", action="store_true", help="3 without the claim-send-mark baseline")
    p.add_argument("--requests", type=int, default=3000, help="help commands per app for 1")
    p.add_argument("--concurrency", type=int, default=50, help="requests in flight for 1")
    p.add_argument("--declares", type=int, default=30, help="sequential declares for 2")
    p.add_argument("--loop", default="auto", help="uvicorn --loop for every server (auto: as production)")
    p.add_argument("--http", default="auto", help="uvicorn --http for every server")
    p.add_argument("--write-docs", action="store_true", help="(re)write docs/performance.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # `--only none --write-docs` re-renders docs/performance.md from the figures it already holds.
    only = set() if args.only == "none" else {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(TITLES)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from 1-6", file=sys.stderr)
        return 2
    machine = common.machine()
    print(
        f"incident-bot bench on {machine['cpu']} × {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql'] or '?'}; "
        f"load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    results: dict[str, BenchResult] = {}
    if only & {"1", "2", "6"}:
        with common.WebStack(args.loop, args.http) as stack:
            ran: list[str] = []
            if "1" in only:
                from bench import ack_latency

                results["1"] = _guard(
                    "1",
                    lambda: ack_latency.run(stack, requests=args.requests, concurrency=args.concurrency),
                )
                ran.append("1")
            if "2" in only:
                from bench import declare_latency

                results["2"] = _guard("2", lambda: declare_latency.run(stack, n=args.declares))
                ran.append("2")
            if "6" in only:
                results["6"] = _guard("6", lambda: _memory(stack, ran))
    if "3" in only:
        from bench import escalation_lateness

        results["3"] = _guard(
            "3",
            lambda: escalation_lateness.run(
                incidents=args.incidents,
                window=args.window,
                gate_scale=args.gate_scale,
                below=args.below,
                lateness_seconds=args.lateness_seconds,
                baseline=not args.no_baseline,
            ),
        )
    if "4" in only:
        from bench import health_fanout

        results["4"] = _guard("4", health_fanout.run)
    if "5" in only:
        results["5"] = _guard("5", _pir)
    ordered = [results[k] for k in sorted(results)]
    _print_table(ordered)
    if args.write_docs:
        path = write_docs(ordered, machine)
        print(f"wrote {path}")
    return 1 if any(r.data.get("error") for r in ordered) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
