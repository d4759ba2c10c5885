"""A refused drill quotes the Factory's own words in the ephemeral answer: escaped, so a `<!channel>` or
`<@U…>` in the Factory's reply is shown as text, never a mention that notifies anyone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.clock import ManualClock
from bot.dr import drill, fault
from sandbox.servers import LoopServer
from tests.support import BotHarness

LOUD = "<!channel> <@U123> chaos is locked"


async def _refuse(request: Request) -> JSONResponse:
    return JSONResponse({"message": LOUD}, status_code=409)


async def test_the_factory_refusal_is_quoted_inert(
    hbot: BotHarness, clock: ManualClock, monkeypatch: Any
) -> None:
    # The drill starts against the healthy simulated Factory; its chaos order goes to a Factory that refuses.
    refusing = Starlette(routes=[Route("/api/vendor/chaos/{kind}", _refuse, methods=["PUT"])])
    async with LoopServer(refusing) as server:
        settings = SimpleNamespace(factory_url=server.url, secret=lambda name: "key")
        stand_in = SimpleNamespace(settings=settings, clock=clock)

        async def inject(svc: Any, sc: Any, target: Any) -> fault.Injection:
            return await fault.inject(stand_in, sc, "factory")  # type: ignore[arg-type]

        monkeypatch.setattr(drill, "inject", inject)
        _, url = await hbot.command("drill fail")
        reply = hbot.last_reply(url)
    assert "The Factory refused chaos `fail`: HTTP 409" in reply
    assert "&lt;!channel&gt; &lt;@U123&gt; chaos is locked" in reply
    assert "<!channel>" not in reply and "<@U123>" not in reply
    await hbot.drain()
