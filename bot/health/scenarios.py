"""The faults a drill can inject, in the terms the monitor judges them by (its simulator mode, its chaos on a
real Factory). Here, below both, so the drill (bot.dr.drill) and the monitor (which ignores on the real alert
only the fault the open drill injected) share one list without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    sim_mode: str  # POST /_sim/mode/{sim_mode}
    chaos: str | None  # PUT /api/vendor/chaos/{chaos} on a real Factory; None: not possible there
    service: str  # the dr.yaml service whose RTO/RPO the drill is judged against
    section: str  # dr-plan.md's procedure for it


SCENARIOS: dict[str, Scenario] = {
    "fail": Scenario("fail", "Factory chaos `fail`: orders answer 500", "fail", "fail", "factory", "4.1"),
    "throttle": Scenario(
        "throttle", "Factory chaos `throttle`: orders take ~32 s", "throttle", "throttle", "factory", "4.2"
    ),
    "badjwt": Scenario(
        "badjwt", "Factory chaos `badjwt`: order JWTs fail verification", "badjwt", "badjwt", "factory", "4.3"
    ),
    "service-down": Scenario(
        "service-down", "Factory unreachable: pizza ordering down", "down", None, "pizza-service", "4.4"
    ),
}
