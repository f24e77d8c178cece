"""The Starlette app of `checkin run`: health, the Telegram and Twilio webhooks, the office's console."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from scheduler.clock import Clock


def make_app(clock: Clock, status: dict, extra_routes: list[BaseRoute] | None = None,
             exception_handlers: dict | None = None,
             ready: Callable[[], tuple[bool, dict]] | None = None,
             metrics: Callable[[], bytes] | None = None) -> Starlette:
    """The web app; `status` is a live dict the service keeps up to date.

    `/livez`: the process answers (for a supervisor that restarts it). `/healthz`: ready to do its work, from
    `ready` (run in a thread: it asks the database): 200, or 503 with what is wrong.
    """

    async def livez(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def healthz(request: Request) -> JSONResponse:
        ok, facts = (await asyncio.to_thread(ready)) if ready is not None else (True, {})
        return JSONResponse({"status": "ok" if ok else "not ready", "now": clock.now().isoformat(), **status,
                             **facts}, status_code=200 if ok else 503)

    async def metrics_text(request: Request) -> Response:
        body = await asyncio.to_thread(metrics)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    own = [Route("/livez", livez, methods=["GET"]), Route("/healthz", healthz, methods=["GET"])]
    if metrics is not None:  # Prometheus' format (bot/metrics.py)
        own.append(Route("/metrics", metrics_text, methods=["GET"]))
    return Starlette(routes=[*own, *(extra_routes or [])],
                     exception_handlers=exception_handlers or {})
