"""One test per fact in the shared Factory/service notes that the simulator must reproduce (over real HTTP).

Each test names the fact it pins; the probes and the monitor are built against these shapes."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox.factory_sim import (
    DEFAULT_API_KEY,
    DINER_EMAIL,
    DINER_PASSWORD,
    FactoryServers,
    FactorySim,
    next_real_start,
)
from tests.conftest import MakeServers

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
ORDER: dict[str, Any] = {
    "diner": {"id": 1, "name": "joe", "email": "joe@jwt.com"},
    "order": {
        "items": [{"menuId": 1, "description": "Veggie", "price": 0.05}],
        "storeId": "1",
        "franchiseId": 1,
    },
}
SUPPORT = re.compile(r"/api/support/[0-9a-f]{32}/report/[^/?#]+$")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _diner_token(service: httpx.Client) -> str:
    r = service.put("/api/auth", json={"email": DINER_EMAIL, "password": DINER_PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_verify_needs_no_authentication(servers: FactoryServers) -> None:
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        jwt = factory.post("/api/order", json=ORDER, headers=AUTH).json()["jwt"]
        r = factory.post("/api/order/verify", json={"jwt": jwt})  # no Authorization header at all
        assert r.status_code == 200 and r.json()["message"] == "valid"
        assert r.json()["payload"]["vendor"]["id"]
        bad = factory.post("/api/order/verify", json={"jwt": jwt[:-4] + "AAAA"})
        assert (bad.status_code, bad.json()) == (403, {"message": "invalid"})


def test_real_schedule_starts_tomorrow_between_8_and_14_mst() -> None:
    # vendorRouter.getRandomStartDate: next day (UTC-7), 08:00-13:59, whole minutes.
    for initiated in (datetime(2026, 12, 1, 3, 0, tzinfo=UTC), datetime(2026, 12, 1, 23, 59, tzinfo=UTC)):
        for _ in range(50):
            start = next_real_start(initiated)
            local, local_init = start - timedelta(hours=7), initiated - timedelta(hours=7)
            assert local.date() == local_init.date() + timedelta(days=1)
            assert 8 <= local.hour <= 13 and local.second == 0 and start > initiated


def test_scheduled_chaos_orders_normal_until_start_and_cannot_be_cancelled(make_servers: MakeServers) -> None:
    servers = make_servers(chaos_start_delay=None)  # as the real Factory: a random time tomorrow
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        assert factory.put("/api/vendor/chaos/fail", headers=AUTH).json() == {"message": "Chaos initiated"}
        chaos = factory.get("/api/vendor", headers=AUTH).json()["chaos"]
        assert set(chaos) == {"type", "initiatedDate", "startDate"}  # never the fix code
        assert _when(chaos["startDate"]) > datetime.now(UTC) + timedelta(hours=1)
        order = factory.post("/api/order", json=ORDER, headers=AUTH)
        assert order.status_code == 200 and set(order.json()) == {"jwt"}  # no reportUrl: not running yet
        # No way to cancel: the fix code is hidden, a guessed one is refused, chaos stays scheduled.
        guess = factory.get(f"/api/support/{DEFAULT_API_KEY}/report/00000000")
        assert (guess.status_code, guess.json()) == (400, {"message": "Problem unresolved"})
        assert factory.get("/api/vendor", headers=AUTH).json()["chaos"] == chaos
        # The Factory's own tests make it start now by setting startDate to initiatedDate; the sim's control does.
        assert factory.post("/_sim/start-now").status_code == 200
        r = factory.post("/api/order", json=ORDER, headers=AUTH)
        assert r.status_code == 500 and r.json()["message"] == "chaos monkey"


def test_every_put_overwrites_start_date(make_servers: MakeServers) -> None:
    servers = make_servers(chaos_start_delay=None)
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        seen = set()
        for kind in ("fail", "throttle", "badjwt", "fail"):
            factory.put(f"/api/vendor/chaos/{kind}", headers=AUTH)
            chaos = factory.get("/api/vendor", headers=AUTH).json()["chaos"]
            assert chaos["type"] == kind
            seen.add((chaos["initiatedDate"], chaos["startDate"]))
            time.sleep(0.002)  # initiatedDate has millisecond resolution
        assert len(seen) == 4
    # With a short start delay a second PUT pushes the start out again.
    servers = make_servers(chaos_start_delay=0.6)
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        factory.put("/api/vendor/chaos/fail", headers=AUTH)
        first = _when(factory.get("/api/vendor", headers=AUTH).json()["chaos"]["startDate"])
        time.sleep(0.3)
        factory.put("/api/vendor/chaos/fail", headers=AUTH)
        second = _when(factory.get("/api/vendor", headers=AUTH).json()["chaos"]["startDate"])
        assert second > first


def test_after_a_fix_the_vendor_shows_type_none_with_fix_date(make_servers: MakeServers) -> None:
    servers = make_servers(report_url_mode="self")
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        factory.put("/api/vendor/chaos/fail", headers=AUTH)
        link = factory.post("/api/order", json=ORDER, headers=AUTH).json()["reportUrl"]
        fixed = httpx.get(link)
        assert (fixed.status_code, fixed.json()["message"]) == (
            200,
            "Problem resolved. Pizza is back on the menu!",
        )
        chaos = factory.get("/api/vendor", headers=AUTH).json()["chaos"]
        assert chaos["type"] == "none" and _when(chaos["fixDate"]) >= _when(chaos["startDate"])
        assert "fixCode" not in chaos
        again = httpx.get(link)
        assert again.json()["message"] == "No chaos currently executing"


def test_slow_but_correct_mode(make_servers: MakeServers) -> None:
    servers = make_servers(slow_delay=0.4)
    servers.set_mode("slow")
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        t0 = time.perf_counter()
        r = factory.post("/api/order", json=ORDER, headers=AUTH)
        took = time.perf_counter() - t0
        assert r.status_code == 200 and set(r.json()) == {"jwt"}  # correct, no chaos
        assert took >= 0.4
        assert factory.post("/api/order/verify", json=r.json()).json()["message"] == "valid"
        assert factory.get("/api/docs").status_code == 200
        assert httpx.get(f"{servers.factory_url}/_sim/state").json()["mode"] == "slow"
    assert FactorySim().slow_delay == 1.5  # the case in the notes: 1.5 s per request


def test_service_with_a_wrong_factory_key_fails_every_order_while_probes_are_fine(
    servers: FactoryServers,
) -> None:
    servers.set_mode("badkey")
    with httpx.Client(base_url=servers.service_url, timeout=5) as service:
        token = _diner_token(service)
        r = service.post("/api/order", json=ORDER["order"], headers={"Authorization": f"Bearer {token}"})
        assert (r.status_code, r.json()) == (500, {"message": "Failed to fulfill order at factory"})
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:  # our key still works
        assert factory.post("/api/order", json=ORDER, headers=AUTH).status_code == 200
        assert factory.get("/api/vendor", headers=AUTH).status_code == 200
    servers.set_mode("healthy")
    with httpx.Client(base_url=servers.service_url, timeout=5) as service:
        token = _diner_token(service)
        r = service.post("/api/order", json=ORDER["order"], headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["jwt"]


def test_service_login_and_order_need_a_real_token(servers: FactoryServers) -> None:
    with httpx.Client(base_url=servers.service_url, timeout=5) as service:
        wrong = service.put("/api/auth", json={"email": DINER_EMAIL, "password": "nope"})
        # The service's error handler (real pair, 2026-12-07): 404 {"message": "unknown user", "stack": …}.
        assert (wrong.status_code, set(wrong.json()), wrong.json()["message"]) == (
            404,
            {"message", "stack"},
            "unknown user",
        )
        assert wrong.json()["stack"].startswith("Error: unknown user")
        r = service.post("/api/order", json=ORDER["order"], headers={"Authorization": "Bearer forged"})
        assert (r.status_code, r.json()) == (401, {"message": "unauthorized"})
        login = service.put("/api/auth", json={"email": DINER_EMAIL, "password": DINER_PASSWORD}).json()
        assert login["user"]["email"] == DINER_EMAIL and login["token"]


@pytest.mark.parametrize(
    ("fields", "mode", "status", "name"),
    [
        ("upstream", "fail", 500, "followLinkToEndChaos"),
        ("upstream", "badjwt", 200, "followLinkToEndChaos"),
        ("fork", "fail", 500, "reportPizzaCreationErrorToPizzaFactoryUrl"),
        ("fork", "throttle", 200, "reportSlowPizzaToFactoryUrl"),
    ],
)
def test_service_link_field_name_variants(
    make_servers: MakeServers, fields: str, mode: str, status: int, name: str
) -> None:
    servers = make_servers(service_link_fields=fields, throttle_delay=0.1)
    servers.set_mode(mode)
    with httpx.Client(base_url=servers.service_url, timeout=5) as service:
        token = _diner_token(service)
        r = service.post("/api/order", json=ORDER["order"], headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == status
        assert SUPPORT.search(r.json()[name]), r.json()
        links = [k for k, v in r.json().items() if isinstance(v, str) and "/api/support/" in v]
        assert links == [name]


# -- Observed on the real pair run on loopback, 2026-12-07 (scripts/check-real-pair.sh) ---------------------


def test_support_link_with_an_unknown_key_says_no_chaos(make_servers: MakeServers) -> None:
    # supportRouter looks the vendor up by the key in the path; no vendor -> "No chaos currently executing", 200,
    # even while chaos runs for the vendor whose key it is not.
    servers = make_servers(report_url_mode="self")
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        factory.put("/api/vendor/chaos/fail", headers=AUTH)
        link = factory.post("/api/order", json=ORDER, headers=AUTH).json()["reportUrl"]
        fix_code = link.rsplit("/", 1)[1]
        r = factory.get(f"/api/support/{'f' * 32}/report/{fix_code}")
        assert (r.status_code, r.json()) == (200, {"message": "No chaos currently executing"})
        assert factory.get("/api/vendor", headers=AUTH).json()["chaos"]["type"] == "fail"  # still running


def test_vendor_record_carries_roles_and_connections(servers: FactoryServers) -> None:
    # Real: {"id","name","apiKey","created","email",["chaos",]"roles":["vendor"],"connections":{}}.
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        vendor = factory.get("/api/vendor", headers=AUTH).json()
        assert set(vendor) == {"id", "name", "apiKey", "created", "email", "roles", "connections"}
        assert (vendor["roles"], vendor["connections"], vendor["apiKey"]) == (["vendor"], {}, DEFAULT_API_KEY)
        factory.put("/api/vendor/chaos/fail", headers=AUTH)
        assert set(factory.get("/api/vendor", headers=AUTH).json()) == {*vendor, "chaos"}


def test_jwks_keys_name_only_kty_kid_n_e(servers: FactoryServers) -> None:
    # node-jose's toJSON(): no "use", no "alg" (a consumer must not require them).
    keys = httpx.get(f"{servers.factory_url}/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1 and set(keys[0]) == {"kty", "kid", "n", "e"}
    assert (keys[0]["kty"], keys[0]["e"]) == ("RSA", "AQAB")


def test_badjwt_answers_one_fixed_bogus_token_whatever_the_order(servers: FactoryServers) -> None:
    # The real Factory returns the same unverifiable token for every order under badjwt (even an empty body):
    # three dot-separated parts whose header part does not decode to JSON.
    servers.sim.set_chaos("badjwt")
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        first = factory.post("/api/order", json=ORDER, headers=AUTH)
        empty = factory.post("/api/order", json={}, headers=AUTH)
        assert first.status_code == empty.status_code == 200
        assert set(first.json()) == {"jwt", "reportUrl"} and first.json()["jwt"] == empty.json()["jwt"]
        header = first.json()["jwt"].split(".")[0]
        assert len(first.json()["jwt"].split(".")) == 3
        with pytest.raises(ValueError):
            json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        r = factory.post("/api/order/verify", json={"jwt": first.json()["jwt"]})
        assert (r.status_code, r.json()) == (403, {"message": "invalid"})


def test_throttle_delays_even_an_invalid_order_then_validates_it(servers: FactoryServers) -> None:
    servers.sim.set_chaos("throttle")
    with httpx.Client(base_url=servers.factory_url, timeout=5) as factory:
        start = time.monotonic()
        r = factory.post("/api/order", json={}, headers=AUTH)
        assert time.monotonic() - start >= 0.3  # the throttle delay (32 s real), then body validation
        assert (r.status_code, r.json()) == (400, {"message": "Missing required parameters"})


def test_json_answers_carry_express_headers(servers: FactoryServers) -> None:
    # Express: "application/json; charset=utf-8" and the course's CORS headers on every answer, both apps.
    for url in (f"{servers.factory_url}/api/docs", f"{servers.factory_url}/nope", f"{servers.service_url}/"):
        r = httpx.get(url)
        assert r.headers["content-type"] == "application/json; charset=utf-8", url
        assert r.headers["access-control-allow-origin"] == "*", url
        assert r.headers["access-control-allow-methods"] == "GET, POST, PUT, DELETE", url
        assert r.headers["access-control-allow-headers"] == "Content-Type, Authorization", url
        assert r.headers["access-control-allow-credentials"] == "true", url


def test_upstream_service_and_factory_share_a_version(servers: FactoryServers) -> None:
    # Both upstream repositories ship version.json "20240518.154317" (a deploy stamps its own).
    service = httpx.get(f"{servers.service_url}/").json()
    factory = httpx.get(f"{servers.factory_url}/api/docs").json()
    assert service == {"message": "welcome to JWT Pizza", "version": "20240518.154317"}
    assert factory["version"] == "20240518.154317"


def test_service_without_a_factory_answers_its_error_handler_body(servers: FactoryServers) -> None:
    # fetch() throws; the service's Express error handler answers 500 {"message": err.message, "stack": …}.
    with httpx.Client(base_url=servers.service_url, timeout=5) as service:
        token = _diner_token(service)
        servers.set_mode("down")
        r = service.post("/api/order", json=ORDER["order"], headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 500 and set(r.json()) == {"message", "stack"}
        assert r.json()["message"] == "fetch failed"
        assert r.json()["stack"].startswith("TypeError: fetch failed")


def test_docs_list_verify_as_requiring_auth_although_it_does_not(servers: FactoryServers) -> None:
    docs = httpx.get(f"{servers.factory_url}/api/docs").json()
    assert docs["message"] == "welcome to JWT Pizza Factory"
    verify = [e for e in docs["endpoints"] if e["path"] == "/api/order/verify"]
    assert [(e["method"], e["requiresAuth"]) for e in verify] == [("POST", True)]
