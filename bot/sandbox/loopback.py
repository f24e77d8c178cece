"""Serve a Starlette app on loopback inside the running event loop (the stand-ins, the tests, the demo)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """uvicorn on 127.0.0.1 as a task of this loop; `port` is known once `start()` returns."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve (port 0: any free port) and return once the socket listens."""
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the host process owns its signals
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():  # failed to bind: raise its error
                await self._task
            await asyncio.sleep(0)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await self._task
