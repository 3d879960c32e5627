"""Run a :class:`StarlingServer` on its own thread and event loop.

The server's ``stats`` cost blocks its loop on purpose, as the real server
blocks; a thread keeps that from freezing the caller's loop (tests, the demo).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from qwatch.starling.server import StarlingServer

T = TypeVar("T")


class ServerThread:
    """Owns a background loop that runs one server.

    Args:
        server: the server to run; its settings are left as given.
    """

    def __init__(self, server: StarlingServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="starling", daemon=True
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.port

    @property
    def url(self) -> str:
        """``starling://host:port`` for adapters."""
        return f"starling://{self.server.host}:{self.server.port}"

    def start(self) -> ServerThread:
        """Start the loop and wait until the server listens."""
        self._thread.start()
        self.run(self.server.start())
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        """Call ``fn`` on the server's loop (its state is not thread-safe)."""

        async def wrapped() -> Any:
            return fn(*args)

        return self.run(wrapped())

    def restart(self) -> None:
        """Restart the server in place (same port and journal)."""
        self.run(self.server.restart())

    def stop(self) -> None:
        """Stop the server and the loop; safe to call twice."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self.run(self.server.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()
