"""The Starlette app of `checkin run`: health, the Telegram and Twilio webhooks, the office's console."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from scheduler.clock import Clock


def make_app(clock: Clock, status: dict, extra_routes: list[BaseRoute] | None = None,
             exception_handlers: dict | None = None) -> Starlette:
    """The web app; `status` is a live dict the service keeps up to date."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "now": clock.now().isoformat(), **status})

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *(extra_routes or [])],
                     exception_handlers=exception_handlers or {})
