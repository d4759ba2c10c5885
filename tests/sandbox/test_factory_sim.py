"""The simulated Factory and service over real HTTP: Factory-notes shapes, chaos modes, control API."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.factory_sim import (
    DEFAULT_API_KEY,
    FactoryServers,
    FactorySim,
    RsaKey,
    _b64url_decode,
    chaos_main,
    generate_rsa_key,
    sign_jwt,
    sim_main,
    verify_jwt,
)
from sandbox.servers import ServerThread
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


@pytest.fixture
def factory(servers: FactoryServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers.factory_url, timeout=5) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate: Callable[[], bool], limit: float = 1.5) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _refused(url: str) -> bool:
    """True while nothing answers (refused, or reset by a server that is closing its socket)."""
    try:
        httpx.get(f"{url}/api/docs", timeout=0.5)
    except httpx.TransportError:
        return True
    return False


# -- plain endpoints -------------------------------------------------------------------------------


def test_docs_jwks_and_unknown_endpoints(factory: httpx.Client) -> None:
    docs = factory.get("/api/docs")
    assert docs.status_code == 200
    assert docs.json()["message"] == "welcome to JWT Pizza Factory"
    assert docs.json()["version"] == "20240518.154317" and docs.json()["endpoints"]
    keys = factory.get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["e"] == "AQAB" and keys[0]["kid"]
    for method, path in [("GET", "/"), ("GET", "/health"), ("DELETE", "/api/docs"), ("GET", "/api/order")]:
        r = factory.request(method, path)
        assert (r.status_code, r.json()) == (404, {"message": "unknown endpoint"}), (method, path)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/order"), ("GET", "/api/vendor"), ("PUT", "/api/vendor/chaos/fail")]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ffffffffffffffffffffffffffffffff"}])
def test_bad_or_missing_key_is_401(
    factory: httpx.Client, method: str, path: str, headers: dict[str, str]
) -> None:
    r = factory.request(method, path, headers=headers, json=ORDER)
    assert (r.status_code, r.json()) == (401, {"message": "invalid authentication"})


def test_order_jwt_is_rs256_signed_by_a_jwks_key(factory: httpx.Client) -> None:
    r = factory.post("/api/order", json=ORDER, headers={"authorization": f"bearer {DEFAULT_API_KEY}"})
    assert r.status_code == 200 and set(r.json()) == {"jwt"}  # no reportUrl without chaos
    jwt = r.json()["jwt"]
    header_b64, payload_b64, signature_b64 = jwt.split(".")
    header = json.loads(_b64url_decode(header_b64))
    jwk = factory.get("/.well-known/jwks.json").json()["keys"][0]
    assert header["alg"] == "RS256" and header["kid"] == jwk["kid"] and header["iss"] == "cs329.click"
    # Independent check with the public key alone, as a JWKS consumer would.
    public = RsaKey(int.from_bytes(_b64url_decode(jwk["n"]), "big"), 65537, 0)
    assert public.verify(f"{header_b64}.{payload_b64}".encode(), _b64url_decode(signature_b64))

    verified = factory.post("/api/order/verify", json={"jwt": jwt})
    assert verified.status_code == 200
    assert verified.json()["message"] == "valid"
    assert verified.json()["payload"]["diner"] == ORDER["diner"]
    assert verified.json()["payload"]["order"] == ORDER["order"]
    assert verified.json()["payload"]["vendor"]["id"] == "pizza-sim"
    tampered = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
    for bad in [tampered, "abc", "a.b.c", None]:
        r = factory.post("/api/order/verify", json={"jwt": bad})
        assert (r.status_code, r.json()) == (403, {"message": "invalid"})


def test_order_validation(factory: httpx.Client, servers: FactoryServers) -> None:
    for body in [{}, {"diner": ORDER["diner"]}, {"order": ORDER["order"]}]:
        r = factory.post("/api/order", json=body, headers=AUTH)
        assert (r.status_code, r.json()) == (400, {"message": "Missing required parameters"})
    for items in [[], [{"menuId": 1}] * 21]:
        start = time.monotonic()
        r = factory.post("/api/order", json={**ORDER, "order": {"items": items}}, headers=AUTH)
        assert time.monotonic() - start >= 0.3  # the oven-full answer comes after the throttle delay
        assert (r.status_code, r.json()) == (
            503,
            {"message": "Unable to satisfy pizza order. The oven is full."},
        )


def test_put_chaos_validates_type(factory: httpx.Client) -> None:
    r = factory.put("/api/vendor/chaos/explode", headers=AUTH)
    assert (r.status_code, r.json()) == (400, {"message": "Invalid chaos type"})
    r = factory.put("/api/vendor/chaos/fail", headers=AUTH)
    assert (r.status_code, r.json()) == (200, {"message": "Chaos initiated"})


# -- chaos -----------------------------------------------------------------------------------------


def test_fail_chaos_lifecycle_with_a_real_style_report_url(
    factory: httpx.Client, servers: FactoryServers
) -> None:
    factory.put("/api/vendor/chaos/fail", headers=AUTH)
    vendor = factory.get("/api/vendor", headers=AUTH)
    chaos = vendor.json()["chaos"]
    assert chaos["type"] == "fail" and "fixCode" not in vendor.text
    assert datetime.fromisoformat(chaos["startDate"]) <= datetime.now(UTC)

    r = factory.post("/api/order", json={"nonsense": True}, headers=AUTH)  # chaos runs before validation
    assert r.status_code == 500 and r.json()["message"] == "chaos monkey"
    report_url = r.json()["reportUrl"]
    match = re.fullmatch(rf"https://127\.0\.0\.1/api/support/{DEFAULT_API_KEY}/report/(\w+)", report_url)
    assert match, report_url  # https, host without port: unreachable as given on a loopback port

    support = f"/api/support/{DEFAULT_API_KEY}/report"
    r = factory.get(f"{support}/wrong")
    assert (r.status_code, r.json()) == (400, {"message": "Problem unresolved"})
    r = factory.get(f"/api/support/{'f' * 32}/report/{match[1]}")  # another key: a vendor with no chaos
    assert (r.status_code, r.json()) == (200, {"message": "No chaos currently executing"})
    r = factory.get(f"{support}/{match[1]}")
    assert (r.status_code, r.json()) == (200, {"message": "Problem resolved. Pizza is back on the menu!"})
    r = factory.get(f"{support}/{match[1]}")
    assert (r.status_code, r.json()) == (200, {"message": "No chaos currently executing"})

    chaos = factory.get("/api/vendor", headers=AUTH).json()["chaos"]
    assert chaos["type"] == "none" and "fixDate" in chaos
    assert factory.post("/api/order", json=ORDER, headers=AUTH).status_code == 200


def test_chaos_start_delay_schedules_chaos(make_servers: MakeServers) -> None:
    servers = make_servers(chaos_start_delay=3600)
    with httpx.Client(base_url=servers.factory_url) as factory:
        factory.put("/api/vendor/chaos/fail", headers=AUTH)
        chaos = factory.get("/api/vendor", headers=AUTH).json()["chaos"]
        assert datetime.fromisoformat(chaos["startDate"]) > datetime.now(UTC)
        r = factory.post("/api/order", json=ORDER, headers=AUTH)
        assert r.status_code == 200 and "reportUrl" not in r.json()
        assert factory.get("/_sim/state").json()["mode"] == "healthy"


def test_throttle_answers_late_with_a_good_jwt_and_report_url(
    factory: httpx.Client, servers: FactoryServers
) -> None:
    servers.set_mode("throttle")
    start = time.monotonic()
    r = factory.post("/api/order", json=ORDER, headers=AUTH)
    assert time.monotonic() - start >= 0.3
    assert r.status_code == 200 and r.json()["reportUrl"].startswith("https://127.0.0.1/api/support/")
    assert factory.post("/api/order/verify", json={"jwt": r.json()["jwt"]}).status_code == 200


def test_badjwt_answers_a_jwt_that_fails_verify(factory: httpx.Client, servers: FactoryServers) -> None:
    servers.set_mode("badjwt")
    r = factory.post("/api/order", json=ORDER, headers=AUTH)
    assert r.status_code == 200 and "reportUrl" in r.json()
    assert len(r.json()["jwt"].split(".")) == 3
    assert factory.post("/api/order/verify", json={"jwt": r.json()["jwt"]}).status_code == 403


def test_self_mode_report_url_is_followable(make_servers: MakeServers) -> None:
    servers = make_servers(report_url_mode="self")
    servers.set_mode("fail")
    report_url = httpx.post(f"{servers.factory_url}/api/order", json=ORDER, headers=AUTH).json()["reportUrl"]
    assert report_url.startswith(f"{servers.factory_url}/api/support/{DEFAULT_API_KEY}/report/")
    assert httpx.get(report_url).json() == {"message": "Problem resolved. Pizza is back on the menu!"}


def test_hang_stalls_until_the_mode_changes(factory: httpx.Client, servers: FactoryServers) -> None:
    servers.set_mode("hang")
    with pytest.raises(httpx.ReadTimeout):
        factory.get("/api/docs", timeout=0.2)
    assert factory.get("/_sim/state").json()["mode"] == "hang"  # the control API never hangs

    answers: list[int] = []
    pending = threading.Thread(
        target=lambda: answers.append(httpx.get(f"{servers.factory_url}/api/docs").status_code)
    )
    pending.start()
    _wait_for(lambda: factory.get("/_sim/state").json()["waiting"] == 1)
    servers.set_mode("healthy")
    pending.join(timeout=1)
    assert answers == [200]


def test_stop_releases_hung_requests_promptly(make_servers: MakeServers) -> None:
    servers = make_servers()
    servers.set_mode("hang")
    pending = threading.Thread(
        target=lambda: httpx.get(f"{servers.factory_url}/api/docs", timeout=3), daemon=True
    )
    pending.start()
    _wait_for(lambda: httpx.get(f"{servers.factory_url}/_sim/state").json()["waiting"] == 1)
    start = time.monotonic()
    servers.stop()
    assert time.monotonic() - start < 1.0


# -- down / up -------------------------------------------------------------------------------------


def test_down_refuses_connections_and_up_reopens_the_same_port(servers: FactoryServers) -> None:
    url = servers.factory_url
    servers.set_mode("down")
    assert _refused(url) and servers.is_down
    assert httpx.get(f"{servers.service_url}/_sim/state").json()["mode"] == "down"
    servers.set_mode("healthy")
    assert servers.factory_url == url
    assert httpx.get(f"{url}/api/docs").status_code == 200


def test_down_over_http_comes_back_after_the_given_seconds(servers: FactoryServers) -> None:
    r = httpx.post(f"{servers.factory_url}/_sim/mode/down", params={"for": "0.3"})
    assert r.status_code == 202 and r.json()["mode"] == "down"
    _wait_for(lambda: _refused(servers.factory_url))
    _wait_for(lambda: not _refused(servers.factory_url))
    assert httpx.get(f"{servers.factory_url}/_sim/state").json()["mode"] == "healthy"


def test_the_service_control_api_brings_a_down_factory_back(servers: FactoryServers) -> None:
    servers.set_mode("down")
    r = httpx.post(f"{servers.service_url}/_sim/mode/fail")
    assert r.status_code == 200 and r.json()["mode"] == "fail"
    assert httpx.post(f"{servers.factory_url}/api/order", json=ORDER, headers=AUTH).status_code == 500


def test_control_api_rejects_unknown_modes_and_needs_the_runner_for_down() -> None:
    sim = FactorySim(throttle_delay=0.3)
    with ServerThread(sim.app) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/_sim/mode/explode").status_code == 400
        assert client.post("/_sim/mode/down").status_code == 409
        for mode in ["fail", "throttle", "badjwt", "hang", "healthy"]:
            assert client.post(f"/_sim/mode/{mode}").json()["mode"] == mode


def test_set_chaos_python_api() -> None:
    sim = FactorySim()
    sim.set_chaos("badjwt")
    assert sim.mode == "badjwt" and sim.state()["chaos"]["fixCode"]
    sim.set_chaos(None)
    assert sim.mode == "healthy" and sim.vendor_record()["chaos"]["type"] == "none"
    with pytest.raises(ValueError):
        sim.set_chaos("down")


# -- the JWT Pizza service -------------------------------------------------------------------------


def test_service_root_docs_and_auth(servers: FactoryServers) -> None:
    with httpx.Client(base_url=servers.service_url) as service:
        root = service.get("/").json()
        assert root["message"] == "welcome to JWT Pizza" and root["version"]
        docs = service.get("/api/docs").json()
        assert docs["config"] == {"factory": servers.factory_url, "db": "127.0.0.1"} and docs["endpoints"]
        r = service.post("/api/order", json=ORDER["order"])
        assert (r.status_code, r.json()) == (401, {"message": "unauthorized"})
        assert service.get("/nope").json() == {"message": "unknown endpoint"}


def test_service_forwards_orders_and_maps_factory_failures(servers: FactoryServers) -> None:
    login = {"email": "d@jwt.com", "password": "diner"}
    token = httpx.put(f"{servers.service_url}/api/auth", json=login).json()["token"]
    with httpx.Client(base_url=servers.service_url, headers={"Authorization": f"Bearer {token}"}) as service:
        r = service.post("/api/order", json=ORDER["order"])
        assert r.status_code == 200 and r.json()["jwt"] and "followLinkToEndChaos" not in r.json()
        servers.set_mode("fail")
        r = service.post("/api/order", json=ORDER["order"])
        assert r.status_code == 500 and r.json()["message"] == "Failed to fulfill order at factory"
        assert r.json()["followLinkToEndChaos"].startswith("https://127.0.0.1/api/support/")
        servers.set_mode("down")
        r = service.post("/api/order", json=ORDER["order"])
        assert (r.status_code, r.json()["message"]) == (500, "fetch failed")


# -- CLI helpers -----------------------------------------------------------------------------------


def test_chaos_main_switches_modes_and_falls_back_to_the_service(
    servers: FactoryServers, capsys: pytest.CaptureFixture[str]
) -> None:
    assert chaos_main(["throttle", "--factory-url", servers.factory_url]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "throttle"
    assert chaos_main(["down", "--factory-url", servers.factory_url]) == 0
    _wait_for(lambda: _refused(servers.factory_url))
    args = ["healthy", "--factory-url", servers.factory_url, "--service-url", servers.service_url]
    assert chaos_main(args) == 0
    assert httpx.get(f"{servers.factory_url}/_sim/state").json()["mode"] == "healthy"
    with pytest.raises(SystemExit):
        chaos_main(["explode", "--factory-url", servers.factory_url])


def test_chaos_main_reports_an_unreachable_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos_main(["fail", "--factory-url", f"http://127.0.0.1:{_free_port()}", "--service-url", ""]) == 1
    assert "did not answer" in capsys.readouterr().err


def test_sim_main_serves_until_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    port, stop = _free_port(), threading.Event()
    argv = ["--port", str(port), "--throttle-delay", "0.1", "--report-url", "self"]
    runner = threading.Thread(target=sim_main, args=(argv,), kwargs={"stop_event": stop})
    runner.start()
    try:
        _wait_for(lambda: not _refused(f"http://127.0.0.1:{port}"))
        state = httpx.get(f"http://127.0.0.1:{port}/_sim/state").json()
        assert state["throttleDelay"] == 0.1 and state["reportUrlMode"] == "self"
    finally:
        stop.set()
        runner.join(timeout=2)
    assert f"FACTORY_URL=http://127.0.0.1:{port}" in capsys.readouterr().out


def test_rsa_and_jwt_helpers() -> None:
    key = generate_rsa_key(512)  # small: only the arithmetic is under test
    token = sign_jwt(key, {"iss": "x"}, {"a": 1})
    assert verify_jwt(key, token) == {"a": 1}
    assert verify_jwt(generate_rsa_key(512), token) is None  # another key: kid and signature differ
    assert verify_jwt(key, token.replace(".", "..", 1)) is None
