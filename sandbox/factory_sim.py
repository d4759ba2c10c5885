"""Simulated JWT Pizza Factory and JWT Pizza service (ASGI apps) for tests, the sandbox and drills.

The shapes follow the real systems: same paths, status codes and bodies, the three chaos modes (`fail`,
`throttle`, `badjwt`), RS256 order JWTs with a `kid` listed in the JWKS, and a `reportUrl` built like the real
one (`https://<request host without port>/…`) or, with `report_url_mode="self"`, from the sim's own base URL.

Sim-only extras:
- chaos starts `chaos_start_delay` seconds after `PUT /api/vendor/chaos/:type` (default 0: at once); with
  `chaos_start_delay=None` it is scheduled like the real Factory's: a random time the next day between 08:00 and
  13:59 (UTC−7); `POST /_sim/start-now` then starts it at once (what the Factory's own tests do in SQL);
- `slow`: every Factory request is answered correctly after `slow_delay` seconds (default 1.5 s: "high
  levels of latency" without errors);
- `badkey`: the simulated service orders with a wrong Factory key (every customer order fails with 500 while
  the Factory itself is fine with ours); `service_link_fields="fork"` names the service's chaos link as course
  forks do (`reportPizzaCreationErrorToPizzaFactoryUrl` on 500, `reportSlowPizzaToFactoryUrl` on 200);
- `hang`: every Factory request outside `/_sim/` is accepted and never answered until the mode changes, the
  client leaves, or `release_hangs()` (FactoryServers.stop calls it; call it yourself before stopping a bare
  ServerThread, whose graceful shutdown would otherwise wait 2 s for the stalled request);
- `down`: connection refused. A server cannot refuse its own connections, so `FactoryServers` closes the
  Factory's listening socket and later reopens it on the same port;
- a control API without auth under `/_sim/` on both apps (`GET /_sim/state`, `POST /_sim/mode/{mode}`), so the
  service's copy still works while the Factory is down.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import hashlib
import itertools
import json
import math
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from sandbox.servers import ServerThread

DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef"
FACTORY_VERSION = "20240518.154317"
SERVICE_VERSION = FACTORY_VERSION  # both upstream repositories ship version.json 20240518.154317
CHAOS_TYPES = ("badjwt", "fail", "throttle")
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds; the doc's 500 ms, 1 s, 5 s
SIM_MODES = ("healthy", "fail", "throttle", "badjwt", "slow", "hang", "badkey", "down", "up")
ReportUrlMode = Literal["real", "self"]
LinkFields = Literal["upstream", "fork"]
DINER_EMAIL = "d@jwt.com"
DINER_PASSWORD = "diner"
_MST = timedelta(hours=7)
ControlHook = Callable[[str, float | None], None]

# ----------------------------------------------------------------------------------------------------
# RS256 without third-party crypto: `cryptography` is optional, so keys are generated with it when importable
# (fast 2048-bit) and otherwise in pure Python (1024-bit, to keep start-up near 0.1 s; a simulator needs the
# shape of RS256, not its strength). Signing and verifying are plain modular exponentiation either way.

_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % q for q in range(3, int(p**0.5) + 1, 2))]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint_b64(n: int) -> str:
    return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class RsaKey:
    n: int
    e: int
    d: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint, as node-jose (the real Factory) derives it."""
        canonical = {"e": _uint_b64(self.e), "kty": "RSA", "n": _uint_b64(self.n)}
        return _b64url(hashlib.sha256(_json_bytes(canonical)).digest())

    def _encoded(self, message: bytes) -> int:  # EMSA-PKCS1-v1_5 over SHA-256
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        return int.from_bytes(b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t, "big")

    def sign(self, message: bytes) -> bytes:
        return pow(self._encoded(message), self.d, self.n).to_bytes(self.size, "big")

    def verify(self, message: bytes, signature: bytes) -> bool:
        s = int.from_bytes(signature, "big")
        return len(signature) == self.size and s < self.n and pow(s, self.e, self.n) == self._encoded(message)

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "RSA",
            "kid": self.kid,
            "n": _uint_b64(self.n),
            "e": "AQAB",
        }


def _probably_prime(n: int, rounds: int = 24) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(bits: int) -> int:
    while True:  # top two bits set so p*q has exactly 2*bits bits
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if _probably_prime(candidate):
            return candidate


def _cryptography_rsa() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        return None
    return rsa


def generate_rsa_key(bits: int | None = None) -> RsaKey:
    rsa = _cryptography_rsa()
    if rsa is None or (bits or 2048) < 1024:  # cryptography refuses keys under 1024 bits
        bits = bits or 1024
        while True:
            p, q = _random_prime(bits // 2), _random_prime(bits // 2)
            lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
            if p != q and lam % 65537:
                return RsaKey(p * q, 65537, pow(65537, -1, lam))
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits or 2048).private_numbers()
    return RsaKey(numbers.public_numbers.n, numbers.public_numbers.e, numbers.d)


_KEYS: dict[int | None, RsaKey] = {}
_KEYS_LOCK = threading.Lock()


def shared_rsa_key(bits: int | None = None) -> RsaKey:
    """One key per process and size: the simulators of a test run share it instead of each generating one."""
    with _KEYS_LOCK:
        if bits not in _KEYS:
            _KEYS[bits] = generate_rsa_key(bits)
        return _KEYS[bits]


def sign_jwt(key: RsaKey, header_fields: dict[str, Any], payload: dict[str, Any]) -> str:
    # As node-jose (the real Factory): iat/exp/iss in the protected header, {vendor, diner, order} as payload.
    header = {**header_fields, "alg": "RS256", "kid": key.kid}
    signing_input = f"{_b64url(_json_bytes(header))}.{_b64url(_json_bytes(payload))}"
    return f"{signing_input}.{_b64url(key.sign(signing_input.encode()))}"


def verify_jwt(key: RsaKey, token: object) -> dict[str, Any] | None:
    """The payload of a JWT signed by `key`, or None."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64url_decode(parts[0]))
        payload = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except ValueError:  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
        return None
    if not isinstance(header, dict) or header.get("alg") != "RS256" or header.get("kid") != key.kid:
        return None
    if not isinstance(payload, dict) or not key.verify(f"{parts[0]}.{parts[1]}".encode(), signature):
        return None
    return payload


# ----------------------------------------------------------------------------------------------------
# Shared HTTP helpers.

# Both real apps are Express with the course's CORS middleware: these on every answer (2026-12-07, loopback).
EXPRESS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Access-Control-Allow-Credentials": "true",
}


class _Json(JSONResponse):
    media_type = "application/json; charset=utf-8"  # Express's res.json()


class _ExpressHeaders:
    """ASGI layer adding EXPRESS_HEADERS (and X-Powered-By) to every answer of the app it wraps."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in EXPRESS_HEADERS.items()]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *extra, (b"x-powered-by", b"Express")],
                }
            await send(message)

        await self.app(scope, receive, with_headers)


FACTORY_ENDPOINTS: list[dict[str, Any]] = [
    {"method": "POST", "path": "/api/order", "requiresAuth": True, "description": "Create a JWT pizza"},
    {"method": "POST", "path": "/api/order/verify", "requiresAuth": True,  # listed so; the route has no check
     "description": "Verifies a pizza order"},
    {"method": "GET", "path": "/.well-known/jwks.json", "requiresAuth": False, "description": "Get the JWKS"},
    {"method": "GET", "path": "/api/vendor", "requiresAuth": True, "description": "Gets vendor information"},
    {"method": "PUT", "path": "/api/vendor/chaos/:type", "requiresAuth": True,
     "description": "Initiate chaos testing"},
    {"method": "GET", "path": "/api/support/:vendorToken/report/:fixCode", "requiresAuth": False,
     "description": "Report a problem"},
]  # fmt: skip
SERVICE_ENDPOINTS: list[dict[str, Any]] = [
    {"method": "GET", "path": "/api/order/menu", "requiresAuth": False, "description": "Get the pizza menu"},
    {"method": "POST", "path": "/api/order", "requiresAuth": True,
     "description": "Create a order for the authenticated user"},
]  # fmt: skip


def _message(status: int, message: str, **extra: Any) -> JSONResponse:
    return _Json({"message": message, **{k: v for k, v in extra.items() if v is not None}}, status)


async def _unknown_endpoint(request: Request, exc: Exception) -> Response:
    return _message(404, "unknown endpoint")  # Express answers 404 for a wrong method too


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _js_falsy(value: object) -> bool:
    return value is None or (not isinstance(value, dict | list) and not value)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_real_start(initiated: datetime) -> datetime:
    """The real Factory's `getRandomStartDate`: the next day in UTC−7, 08:00–13:59, on a whole minute."""
    local = (initiated - _MST).replace(second=0, microsecond=0) + timedelta(days=1)
    local = local.replace(hour=8 + secrets.randbelow(6), minute=secrets.randbelow(60))
    return local + _MST


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Receive) -> list[Message] | None:
    """The request's body messages, or None if the client left first."""
    messages: list[Message] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)
        if not message.get("more_body", False):
            return messages


@dataclass
class _Chaos:
    type: str
    fix_code: str | None
    initiated: datetime
    start: datetime
    fixed: datetime | None = None

    def running(self, now: datetime) -> bool:
        return self.type != "none" and self.start <= now

    def record(self, *, with_fix_code: bool = False) -> dict[str, str]:
        out = {"type": self.type, "initiatedDate": _iso(self.initiated), "startDate": _iso(self.start)}
        if self.fixed is not None:
            out["fixDate"] = _iso(self.fixed)
        if with_fix_code and self.fix_code:
            out["fixCode"] = self.fix_code
        return out


class _HangGate:
    """Outer ASGI layer of the Factory: in `hang` mode it reads the request and stalls before routing."""

    def __init__(self, sim: FactorySim, app: Starlette) -> None:
        self.sim, self.app = sim, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stall = self.sim.hanging or self.sim.slow
        if scope["type"] == "http" and stall and not scope["path"].startswith("/_sim/"):
            body = await _read_body(receive)
            wait = None if self.sim.hanging else self.sim.slow_delay
            if body is None or await self.sim.pause(receive, wait):
                return  # the client gave up: nothing to answer
            replay = iter(body)

            async def replayed() -> Message:
                return next(replay, None) or await receive()

            receive = replayed
        await self.app(scope, receive, send)


# ----------------------------------------------------------------------------------------------------


class FactorySim:
    """State and ASGI apps of a simulated Factory (`app`) and JWT Pizza service (`service_app`).

    `base_url` (the Factory's URL, for "self" reportUrls) and `service_factory_url` (what the service reports
    in `/api/docs` and calls) are set by whoever serves the apps; `FactoryServers` does both.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        throttle_delay: float = 32.0,
        report_url_mode: ReportUrlMode = "real",
        chaos_start_delay: float | None = 0.0,
        slow_delay: float = 1.5,
        service_link_fields: LinkFields = "upstream",
        version: str = FACTORY_VERSION,
        service_version: str = SERVICE_VERSION,
        key_bits: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.throttle_delay = throttle_delay
        self.report_url_mode: ReportUrlMode = report_url_mode
        self.chaos_start_delay = chaos_start_delay
        self.slow_delay = slow_delay
        self.service_link_fields: LinkFields = service_link_fields
        self.service_api_key = api_key  # the key the simulated service orders with (`badkey` breaks it)
        self.version = version
        self.service_version = service_version
        self.base_url = ""
        self.service_factory_url = ""
        self.down = False  # maintained by FactoryServers
        self.control: ControlHook | None = None  # FactoryServers.set_mode, installed while it runs
        self.orders = 0
        # The service's own order counters, served at the service's /metrics for Prometheus (the course's
        # forks push the same figures to Grafana); failures are orders the service answered 500.
        self.service_orders = 0
        self.service_order_failures = 0
        self.service_latency = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket (last: +Inf); sum below
        self.service_latency_sum = 0.0
        self.vendor: dict[str, Any] = {
            "id": "pizza-sim",
            "name": "Simulated Pizza Vendor",
            "apiKey": api_key,
            "created": _iso(_now()),
            "email": "pizza-sim@jwt.com",
        }
        self._key = shared_rsa_key(key_bits)
        self._chaos: _Chaos | None = None
        self._bad_jwt: str | None = None
        self._hang = False
        self._slow = False
        self._tokens: set[str] = set()  # diner tokens the service issued
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._order_ids = itertools.count(1)
        self.app = _ExpressHeaders(_HangGate(self, self._factory_app()))
        self.service_app = _ExpressHeaders(self._service_app())

    # -- state ----------------------------------------------------------------------------------------------
    @property
    def key(self) -> RsaKey:
        return self._key

    @property
    def hanging(self) -> bool:
        return self._hang

    @property
    def slow(self) -> bool:
        return self._slow

    @property
    def mode(self) -> str:
        if self.down:
            return "down"
        if self._hang:
            return "hang"
        chaos = self._chaos
        if chaos is not None and chaos.running(_now()):
            return chaos.type
        if self._slow:
            return "slow"
        return "badkey" if self.service_api_key != self.api_key else "healthy"

    def running_chaos(self) -> _Chaos | None:
        chaos = self._chaos
        return chaos if chaos is not None and chaos.running(_now()) else None

    def state(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "chaos": self._chaos.record(with_fix_code=True) if self._chaos else None,
            "hang": self._hang,
            "slow": self._slow,
            "slowDelay": self.slow_delay,
            "serviceKeyWrong": self.service_api_key != self.api_key,
            "serviceLinkFields": self.service_link_fields,
            "down": self.down,
            "waiting": len(self._waiters),
            "orders": self.orders,
            "throttleDelay": self.throttle_delay,
            "chaosStartDelay": self.chaos_start_delay,
            "reportUrlMode": self.report_url_mode,
            "baseUrl": self.base_url,
            "serviceFactoryUrl": self.service_factory_url,
        }

    def vendor_record(self) -> dict[str, Any]:
        record = dict(self.vendor)
        if self._chaos is not None:
            record["chaos"] = self._chaos.record()  # never the fix code
        return record | {"roles": ["vendor"], "connections": {}}  # as the real record, after chaos

    def start_chaos(self, chaos_type: str) -> None:
        """What `PUT /api/vendor/chaos/:type` does: a new fix code, starting after `chaos_start_delay`."""
        if chaos_type not in CHAOS_TYPES:
            raise ValueError(f"invalid chaos type {chaos_type!r}")
        now = _now()
        delay = self.chaos_start_delay
        start = next_real_start(now) if delay is None else now + timedelta(seconds=delay)
        with self._lock:  # every PUT replaces the previous chaos and its startDate, as the real Factory does
            self._chaos = _Chaos(chaos_type, secrets.token_hex(4), now, start)

    def start_now(self) -> bool:
        """Start scheduled chaos at once (startDate = initiatedDate, as the Factory's own tests do)."""
        with self._lock:
            chaos = self._chaos
            if chaos is None or chaos.type == "none":
                return False
            chaos.start = chaos.initiated
            return True

    def resolve(self, api_key: str, fix_code: str) -> tuple[int, str]:
        """What `GET /api/support/:apiKey/report/:fixCode` answers (status, message)."""
        with self._lock:
            # The real route looks the vendor up by this key: an unknown key is a vendor without chaos.
            chaos = self._chaos if api_key == self.api_key else None
            if chaos is None or chaos.type == "none":
                return 200, "No chaos currently executing"
            if fix_code != chaos.fix_code:
                return 400, "Problem unresolved"
            chaos.type, chaos.fix_code, chaos.fixed = "none", None, _now()
            return 200, "Problem resolved. Pizza is back on the menu!"

    def set_chaos(self, mode: str | None) -> None:
        """Switch mode: None/"healthy" ends chaos (recorded as fixed), hang, slow and badkey; fail|throttle|
        badjwt start chaos (after `chaos_start_delay`); "hang" stalls all Factory requests; "slow" answers
        them after `slow_delay`; "badkey" gives the service a wrong Factory key; down/up need FactoryServers."""
        mode = mode or "healthy"
        if mode not in ("healthy", "hang", "slow", "badkey", *CHAOS_TYPES):
            raise ValueError(
                f"mode {mode!r}: expected healthy, hang, slow, badkey or one of {CHAOS_TYPES}"
                " (down/up: FactoryServers)"
            )
        with self._lock:
            chaos = self._chaos
            if chaos is not None and chaos.type != "none":
                chaos.type, chaos.fix_code, chaos.fixed = "none", None, _now()
            self._hang = mode == "hang"
            self._slow = mode == "slow"
            wrong = "f" * 32 if self.api_key != "f" * 32 else "0" * 32
            self.service_api_key = wrong if mode == "badkey" else self.api_key
        if mode in CHAOS_TYPES:
            self.start_chaos(mode)
        self.release_hangs()

    # -- waiting --------------------------------------------------------------------------------------------
    async def pause(self, receive: Receive | None, seconds: float | None) -> bool:
        """Wait `seconds` (None: until released). Ends early on `release_hangs()`; True if the client left.

        Call only after the request body was read: `receive` is then only watched for the disconnect."""
        released = asyncio.Event()
        entry = (asyncio.get_running_loop(), released)
        with self._lock:
            self._waiters.add(entry)
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(released.wait())]
        if seconds is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(seconds)))
        gone = asyncio.ensure_future(_until_disconnect(receive)) if receive is not None else None
        try:
            done, _ = await asyncio.wait(
                [*waits, *([gone] if gone else [])], return_when=asyncio.FIRST_COMPLETED
            )
            return gone is not None and gone in done
        finally:
            for task in [*waits, *([gone] if gone else [])]:
                task.cancel()
            with self._lock:
                self._waiters.discard(entry)

    def release_hangs(self) -> None:
        """Wake every stalled request (hang, throttle, oven full) so a server can stop promptly."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that server's loop already closed
                pass

    # -- Factory --------------------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else header
        return secrets.compare_digest(token.encode(), self.api_key.encode())

    def _report_url(self, request: Request, chaos: _Chaos) -> str:
        path = f"/api/support/{self.api_key}/report/{chaos.fix_code}"
        if self.report_url_mode == "self":
            return (self.base_url or str(request.base_url)).rstrip("/") + path
        return f"https://{request.url.hostname or 'localhost'}{path}"  # like the real one: https, no port

    def _order_jwt(self, diner: object, order: object) -> str:
        now = int(_now().timestamp())
        header = {"iat": now, "exp": now + 24 * 3600, "iss": "cs329.click"}
        vendor = {"id": self.vendor["id"], "name": self.vendor["name"]}
        return sign_jwt(self._key, header, {"vendor": vendor, "diner": diner, "order": order})

    def bad_jwt(self) -> str:
        """badjwt chaos's token: like the real Factory's, one fixed token for every order (whatever its body),
        JWT-shaped, but its header part is overwritten so it does not even decode, and it is another vendor's."""
        if self._bad_jwt is None:
            vendor = {"id": "someone-else", "name": "Another vendor"}
            good = sign_jwt(self._key, {"iss": "cs329.click"}, {"vendor": vendor, "diner": {}, "order": {}})
            self._bad_jwt = "deadbeef" + good[8:]
        return self._bad_jwt

    async def _docs(self, request: Request) -> Response:
        return _Json(
            {
                "message": "welcome to JWT Pizza Factory",
                "version": self.version,
                "endpoints": FACTORY_ENDPOINTS,
            }
        )

    async def _jwks(self, request: Request) -> Response:
        return _Json({"keys": [self._key.jwk()]})

    async def _order(self, request: Request) -> Response:
        if not self._authorized(request):
            return _message(401, "invalid authentication")
        body = await _json_body(request)
        self.orders += 1
        diner, order = body.get("diner"), body.get("order")
        report_url = None
        chaos = self.running_chaos()
        if chaos is not None:  # chaos runs before body validation, as on the real Factory
            report_url = self._report_url(request, chaos)
            if chaos.type == "fail":
                return _message(500, "chaos monkey", reportUrl=report_url)
            if chaos.type == "badjwt":
                return _Json({"jwt": self.bad_jwt(), "reportUrl": report_url})
            await self.pause(request.receive, self.throttle_delay)  # throttle: answer late, then carry on
        if _js_falsy(diner) or _js_falsy(order):
            return _message(400, "Missing required parameters")
        items = order.get("items") if isinstance(order, dict) else None
        if not isinstance(items, list):
            return _message(500, "Cannot read properties of undefined (reading 'length')")
        if not items or len(items) > 20:
            await self.pause(request.receive, self.throttle_delay)
            return _message(503, "Unable to satisfy pizza order. The oven is full.")
        answer = {"jwt": self._order_jwt(diner, order)}
        return _Json(answer | ({"reportUrl": report_url} if report_url else {}))

    async def _verify(self, request: Request) -> Response:
        payload = verify_jwt(self._key, (await _json_body(request)).get("jwt"))
        if payload is None:
            return _message(403, "invalid")
        return _Json({"message": "valid", "payload": payload})

    async def _vendor(self, request: Request) -> Response:
        if not self._authorized(request):
            return _message(401, "invalid authentication")
        return _Json(self.vendor_record())

    async def _put_chaos(self, request: Request) -> Response:
        if not self._authorized(request):
            return _message(401, "invalid authentication")
        chaos_type = request.path_params["type"]
        if chaos_type not in CHAOS_TYPES:
            return _message(400, "Invalid chaos type")
        self.start_chaos(chaos_type)
        return _message(200, "Chaos initiated")

    async def _support(self, request: Request) -> Response:
        status, message = self.resolve(request.path_params["api_key"], request.path_params["fix_code"])
        return _message(status, message)

    def _factory_app(self) -> Starlette:
        routes = [
            Route("/api/docs", self._docs, methods=["GET"]),
            Route("/.well-known/jwks.json", self._jwks, methods=["GET"]),
            Route("/api/order", self._order, methods=["POST"]),
            Route("/api/order/verify", self._verify, methods=["POST"]),
            Route("/api/vendor", self._vendor, methods=["GET"]),
            Route("/api/vendor/chaos/{type}", self._put_chaos, methods=["PUT"]),
            Route("/api/support/{api_key}/report/{fix_code}", self._support, methods=["GET"]),
            *self._control_routes(),
        ]
        return Starlette(routes=routes, exception_handlers={404: _unknown_endpoint, 405: _unknown_endpoint})

    # -- JWT Pizza service ----------------------------------------------------------------------------------
    async def _service_root(self, request: Request) -> Response:
        return _Json({"message": "welcome to JWT Pizza", "version": self.service_version})

    async def _service_docs(self, request: Request) -> Response:
        config = {"factory": self.service_factory_url, "db": "127.0.0.1"}
        return _Json({"version": self.service_version, "endpoints": SERVICE_ENDPOINTS, "config": config})

    async def _service_auth(self, request: Request) -> Response:
        body = await _json_body(request)
        if body.get("email") != DINER_EMAIL or body.get("password") != DINER_PASSWORD:
            return _message(404, "unknown user", stack="Error: unknown user\n    at DB.getUser (database.js)")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        user = {"id": 3, "name": "pizza diner", "email": DINER_EMAIL, "roles": [{"role": "diner"}]}
        return _Json({"user": user, "token": token})

    def _service_client(self) -> httpx.AsyncClient:
        """One client per server loop: building one per order (an SSL context each) costs ~100 ms under load."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            # No keep-alive: the Factory may be closed and reopened (down/up) between orders.
            no_pool = httpx.Limits(max_keepalive_connections=0)
            client = self._clients[loop] = httpx.AsyncClient(timeout=None, limits=no_pool)
        return client

    def _link(self, failed: bool, link: object) -> dict[str, Any]:
        if not isinstance(link, str) or not link:
            return {}
        if self.service_link_fields == "fork":
            return {
                "reportPizzaCreationErrorToPizzaFactoryUrl" if failed else "reportSlowPizzaToFactoryUrl": link
            }
        return {"followLinkToEndChaos": link}

    async def _service_order(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        if token not in self._tokens:
            return _message(401, "unauthorized")
        self.service_orders += 1
        started = time.monotonic()
        response = await self._service_order_inner(request)
        took = time.monotonic() - started
        self.service_order_failures += response.status_code >= 500
        self.service_latency[bisect.bisect_left(LATENCY_BUCKETS, took)] += 1
        self.service_latency_sum += took
        return response

    async def _service_metrics(self, request: Request) -> Response:
        lines = [
            "# HELP jwt_pizza_orders_total Orders the service was asked for.",
            "# TYPE jwt_pizza_orders_total counter",
            f"jwt_pizza_orders_total {self.service_orders}",
            "# HELP jwt_pizza_order_failures_total Orders the service failed (HTTP 5xx).",
            "# TYPE jwt_pizza_order_failures_total counter",
            f"jwt_pizza_order_failures_total {self.service_order_failures}",
            "# HELP jwt_pizza_order_latency_seconds How long the service took to answer an order.",
            "# TYPE jwt_pizza_order_latency_seconds histogram",
        ]
        running = 0
        for le, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], self.service_latency, strict=True):
            running += n
            lines.append(f'jwt_pizza_order_latency_seconds_bucket{{le="{le}"}} {running}')
        lines.append(f"jwt_pizza_order_latency_seconds_sum {self.service_latency_sum}")
        lines.append(f"jwt_pizza_order_latency_seconds_count {running}")
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def _service_order_inner(self, request: Request) -> Response:
        order = {**(await _json_body(request)), "id": next(self._order_ids)}
        diner = {"id": 1, "name": "pizza diner", "email": "d@jwt.com"}
        try:  # the real service calls the Factory with no timeout
            r = await self._service_client().post(
                f"{self.service_factory_url.rstrip('/')}/api/order",
                json={"diner": diner, "order": order},
                headers={"Authorization": f"Bearer {self.service_api_key}"},
            )
        except httpx.HTTPError:
            # the service's Express error handler: {message: err.message, stack: err.stack}
            return _message(
                500, "fetch failed", stack="TypeError: fetch failed\n    at node:internal/deps/undici"
            )
        try:
            answer = r.json()
        except ValueError:
            answer = {}
        link = answer.get("reportUrl") if isinstance(answer, dict) else None
        if not r.is_success:
            return _message(500, "Failed to fulfill order at factory", **self._link(True, link))
        out = {"order": order, "jwt": answer.get("jwt"), **self._link(False, link)}
        return _Json({k: v for k, v in out.items() if v is not None})

    def _service_app(self) -> Starlette:
        routes = [
            Route("/", self._service_root, methods=["GET"]),
            Route("/api/docs", self._service_docs, methods=["GET"]),
            Route("/api/auth", self._service_auth, methods=["PUT"]),
            Route("/api/order", self._service_order, methods=["POST"]),
            Route("/metrics", self._service_metrics, methods=["GET"]),
            *self._control_routes(),
        ]
        return Starlette(routes=routes, exception_handlers={404: _unknown_endpoint, 405: _unknown_endpoint})

    # -- control API ----------------------------------------------------------------------------------------
    def _control_routes(self) -> list[Route]:
        async def state(request: Request) -> Response:
            return _Json(self.state())

        async def set_mode(request: Request) -> Response:
            mode = request.path_params["mode"]
            if mode not in SIM_MODES:
                return _message(400, f"unknown mode {mode!r}; expected one of {', '.join(SIM_MODES)}")
            try:
                down_for = float(request.query_params["for"]) if "for" in request.query_params else None
            except ValueError:
                return _message(400, "'for' must be a number of seconds")
            hook = self.control
            if hook is None:
                if mode in ("down", "up"):
                    return _message(
                        409, f"{mode} needs FactoryServers (it closes and reopens the listening socket)"
                    )
                self.set_chaos(mode)
            elif mode == "down":
                # Another thread, after this answer: stopping the server waits for in-flight responses.
                threading.Thread(target=hook, args=(mode, down_for), daemon=True).start()
                return _Json({**self.state(), "mode": "down"}, 202)
            else:
                await asyncio.to_thread(hook, mode, None)
            return _Json(self.state())

        async def start_now(request: Request) -> Response:
            if not self.start_now():
                return _message(409, "no chaos scheduled")
            return _Json(self.state())

        return [
            Route("/_sim/state", state, methods=["GET"]),
            Route("/_sim/mode/{mode}", set_mode, methods=["POST"]),
            Route("/_sim/start-now", start_now, methods=["POST"]),
        ]


# ----------------------------------------------------------------------------------------------------


class FactoryServers:
    """Serves a FactorySim's Factory and service on `ServerThread`s; `set_mode("down")` closes the Factory's
    listening socket (connection refused) and any other mode reopens it on the same port.

    Over HTTP, `POST /_sim/mode/down?for=S` (on either app) does the same, optionally back after S seconds;
    while the Factory is down, `POST {service_url}/_sim/mode/healthy` (or `up`, keeping chaos) reopens it.
    """

    def __init__(
        self,
        sim: FactorySim | None = None,
        *,
        host: str = "127.0.0.1",
        factory_port: int = 0,
        service_port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.sim = sim or FactorySim()
        self.host, self.log_level = host, log_level
        self.factory_port, self.service_port = factory_port, service_port
        self.factory_url = ""
        self.service_url = ""
        self._factory: ServerThread | None = None
        self._service: ServerThread | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()
        self._running = False

    @property
    def is_down(self) -> bool:
        return self._running and self._factory is None

    def start(self) -> FactoryServers:
        with self._lock:
            self._running = True
            self._start_factory()
            self.factory_url = f"http://{self.host}:{self.factory_port}"
            self.sim.base_url = self.factory_url
            self.sim.service_factory_url = self.sim.service_factory_url or self.factory_url
            self._service = ServerThread(self.sim.service_app, self.host, self.service_port, self.log_level)
            self.service_url = self._service.start()
            self.service_port = self._service.port
            self.sim.control = self.set_mode
        return self

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._cancel_timer()
            self.sim.control = None
            self.sim.release_hangs()
            threads = [t for t in (self._factory, self._service) if t is not None]
            for t in threads:  # signal both first: they then shut down in parallel
                t.server.should_exit = True
            for t in threads:
                t.stop()
            self._factory = self._service = None

    def set_mode(self, mode: str, down_for: float | None = None) -> None:
        """healthy|fail|throttle|badjwt|hang as `FactorySim.set_chaos` (restarting a down Factory first);
        "down" closes the Factory (back after `down_for` seconds if given); "up" reopens it as it was."""
        if mode not in SIM_MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            if not self._running:
                return
            self._cancel_timer()
            if mode == "down":
                if self._factory is not None:
                    self.sim.release_hangs()
                    self._factory.stop()
                    self._factory = None
                    self.sim.down = True
                if down_for:
                    self._timer = threading.Timer(down_for, self.set_mode, args=("up",))
                    self._timer.daemon = True
                    self._timer.start()
                return
            if mode != "up":
                self.sim.set_chaos(mode)
            self._start_factory()

    def _start_factory(self) -> None:
        if self._factory is None:
            server = ServerThread(self.sim.app, self.host, self.factory_port, self.log_level)
            server.start()
            self._factory, self.factory_port = server, server.port
            self.sim.down = False

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __enter__(self) -> FactoryServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------------
# CLI entry points (`incident-bot factory-sim …`, `incident-bot chaos …`).


def sim_main(argv: list[str], *, stop_event: threading.Event | None = None) -> int:
    """Serve the simulated Factory and service until Ctrl-C (or `stop_event`, for tests)."""
    parser = argparse.ArgumentParser(
        prog="incident-bot factory-sim", description="Simulated JWT Pizza Factory"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="Factory port (default: a free one)")
    parser.add_argument(
        "--service-port", type=int, default=0, help="JWT Pizza service port (default: a free one)"
    )
    parser.add_argument("--throttle-delay", type=float, default=32.0, help="seconds (the real Factory: 32)")
    parser.add_argument(
        "--report-url", choices=["real", "self"], default="real", help="real: https, host only"
    )
    parser.add_argument(
        "--chaos-start-delay",
        default="0",
        help="seconds after PUT chaos, or 'real': a random time tomorrow 08:00-13:59 UTC-7 like the real Factory",
    )
    parser.add_argument("--slow-delay", type=float, default=1.5, help="seconds per request in slow mode")
    parser.add_argument("--link-fields", choices=["upstream", "fork"], default="upstream")
    parser.add_argument("--api-key", default=os.environ.get("FACTORY_API_KEY") or DEFAULT_API_KEY)
    args = parser.parse_args(argv)
    sim = FactorySim(
        args.api_key,
        throttle_delay=args.throttle_delay,
        report_url_mode=cast(ReportUrlMode, args.report_url),
        chaos_start_delay=None if args.chaos_start_delay == "real" else float(args.chaos_start_delay),
        slow_delay=args.slow_delay,
        service_link_fields=cast(LinkFields, args.link_fields),
    )
    servers = FactoryServers(
        sim, host=args.host, factory_port=args.port, service_port=args.service_port
    ).start()
    stop = stop_event or threading.Event()
    if stop_event is None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"FACTORY_URL={servers.factory_url}", flush=True)
    print(f"PIZZA_SERVICE_URL={servers.service_url}", flush=True)
    print(f"FACTORY_API_KEY={sim.api_key}", flush=True)
    print(
        "Switch modes with: incident-bot chaos <healthy|fail|throttle|badjwt|slow|hang|badkey|down|up>."
        " Ctrl-C stops.",
        flush=True,
    )
    try:
        while not stop.wait(0.25):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        servers.stop()
    return 0


def chaos_main(argv: list[str]) -> int:
    """Switch a running simulator's mode through `POST /_sim/mode/{mode}`; prints the resulting state."""
    parser = argparse.ArgumentParser(
        prog="incident-bot chaos", description="Switch the simulated Factory's mode"
    )
    parser.add_argument("mode", choices=SIM_MODES)
    parser.add_argument("--factory-url", default=os.environ.get("FACTORY_URL", ""))
    parser.add_argument(
        "--service-url",
        default=os.environ.get("PIZZA_SERVICE_URL", ""),
        help="tried when the Factory does not answer (it is down): the service serves the same control API",
    )
    parser.add_argument(
        "--for", dest="down_for", type=float, default=None, help="with down: back up after S s"
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not args.factory_url:
        parser.error("--factory-url or FACTORY_URL is required")
    params = {"for": str(args.down_for)} if args.down_for else {}
    error: Exception | None = None
    with httpx.Client(timeout=args.timeout) as client:
        for base in [u for u in (args.factory_url, args.service_url) if u]:
            try:
                r = client.post(f"{base.rstrip('/')}/_sim/mode/{args.mode}", params=params)
            except httpx.TransportError as exc:
                error = exc
                continue
            print(r.text)
            return 0 if r.is_success else 1
    print(f"error: the simulator's control API did not answer: {error}", file=sys.stderr)
    return 1
