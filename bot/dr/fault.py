"""The drill's fault: which Factory FACTORY_URL is (the simulator or a real one) and how the fault is
injected there (the simulator's control API at once; a real Factory's chaos API, which starts the next day)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx

from bot.context import Services
from bot.dr.times import parse_time
from bot.errors import UserFacingError
from bot.health.probes import describe_error
from bot.health.scenarios import Scenario
from bot.slack_text import esc

Target = Literal["simulator", "factory"]
REAL_CHAOS_NOTE = (
    "The real Factory starts chaos at a random time the next day between 08:00 and 13:59 (UTC−7), not now: "
    "the drill's clock starts when the chaos does."
)


class DrillRefused(UserFacingError):
    """The drill cannot start (or go on); `message` says why, for the person who asked, in Slack mrkdwn:
    text from outside (the Factory's reply, an error) is escaped where it is put in (bot.slack_text.esc)."""


@dataclass(frozen=True)
class Injection:
    target: Target
    fault: str  # the simulator's mode, or the real Factory's chaos type
    at: datetime  # when the bot injected it
    chaos_start: datetime | None  # a real Factory: when its chaos is scheduled to start (GET /api/vendor)
    detail: str

    @property
    def starts_later(self) -> bool:
        return self.target == "factory"

    @property
    def origin(self) -> datetime:
        """Where the drill's clock starts: the chaos' own start on a real Factory, else the injection."""
        if self.target == "factory" and self.chaos_start is not None:
            return self.chaos_start
        return self.at


def message(r: httpx.Response) -> str:
    """What the Factory said about a refused request, escaped for mrkdwn: its words are shown, never a mention."""
    return esc(_said(r))


def _said(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("message", body))[:200] if isinstance(body, dict) else str(body)[:200]


async def detect_target(factory_url: str, *, timeout: float = 5.0) -> Target:
    """`simulator` when FACTORY_URL answers the simulator's `GET /_sim/state`, else `factory`."""
    url = factory_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            r = await http.get(f"{url}/_sim/state")
    except httpx.HTTPError as exc:
        raise DrillRefused(
            f"The Factory at {url} does not answer ({esc(describe_error(exc))}): a drill starts from a healthy Factory."
        ) from exc
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code == 200 and isinstance(body, dict) and isinstance(body.get("mode"), str):
        return "simulator"
    return "factory"


async def inject(svc: Services, sc: Scenario, target: Target) -> Injection:
    """Start the fault: the simulator switches at once; a real Factory schedules chaos for the next day."""
    url = svc.settings.factory_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            if target == "simulator":
                r = await http.post(f"{url}/_sim/mode/{sc.sim_mode}", headers=CLOSE)
                if not r.is_success:
                    raise DrillRefused(
                        f"The simulator refused mode `{sc.sim_mode}`: HTTP {r.status_code} {message(r)}"
                    )
                if sc.sim_mode == "down":
                    await until_refused(http, url)
                what = (
                    "closed (connection refused)" if sc.sim_mode == "down" else f"switched to `{sc.sim_mode}`"
                )
                return Injection(
                    target, sc.sim_mode, svc.clock.now(), None, f"Simulated Factory {what}, effective at once"
                )
            if sc.chaos is None:
                raise DrillRefused(no_real_chaos(sc))
            auth = {"Authorization": f"Bearer {svc.settings.secret('factory_api_key')}"}
            r = await http.put(f"{url}/api/vendor/chaos/{sc.chaos}", headers=auth)
            if r.status_code != 200:
                raise DrillRefused(
                    f"The Factory refused chaos `{sc.chaos}`: HTTP {r.status_code} {message(r)}"
                )
            at = svc.clock.now()
            start: datetime | None = None
            try:
                v = await http.get(f"{url}/api/vendor", headers=auth)
                chaos = v.json().get("chaos") if v.status_code == 200 else None
                if isinstance(chaos, dict) and chaos.get("type") == sc.chaos:
                    start = parse_time(chaos.get("startDate"))
            except (httpx.HTTPError, ValueError, AttributeError):
                pass  # the start time is a nicety: the first failing check still marks the fault
            when = f" Scheduled start: {start:%Y-%m-%d %H:%M} UTC." if start else ""
            return Injection(
                target, sc.chaos, at, start, f"Chaos `{sc.chaos}` requested.{when} {REAL_CHAOS_NOTE}"
            )
    except httpx.HTTPError as exc:
        raise DrillRefused(f"Could not reach the Factory at {url}: {esc(describe_error(exc))}") from exc


CLOSE = {"Connection": "close"}  # no kept-alive connection to hold a closing server open


async def until_refused(http: httpx.AsyncClient, url: str, within: float = 10.0) -> None:
    """`down` closes the simulated Factory's socket after answering: wait until it really refuses."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while loop.time() < end:
        try:
            await http.get(f"{url}/_sim/state", headers=CLOSE, timeout=1.0)
        except httpx.TransportError:
            return
        await asyncio.sleep(0.05)
    raise DrillRefused(f"The simulator accepted `down`, but the Factory still answers after {within:g} s.")


def no_real_chaos(sc: Scenario) -> str:
    return (
        f"`{sc.key}` cannot be drilled against the real Factory: its chaos API only has fail, throttle and "
        "badjwt. Run it against the simulated Factory (`incident-bot factory-sim`, FACTORY_URL pointing at it)."
    )


async def clear_sim(svc: Services) -> None:
    url = svc.settings.factory_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await http.post(f"{url}/_sim/mode/healthy")
    except httpx.HTTPError:
        pass


def target_name(target: str) -> str:
    return "the simulated Factory" if target == "simulator" else "the real Factory, through its chaos API"
