"""``python -m qwatch.starling``: run the Starling-speaking server until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from qwatch.starling.server import StarlingServer


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m qwatch.starling",
        description="A server that answers like Starling 0.10 (for tests and demos).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=22122, help="0 picks a free one")
    parser.add_argument(
        "--journal", default=None, help="journal folder (default: temp)"
    )
    parser.add_argument("--max-fds", type=int, default=4096)
    parser.add_argument("--reserved-fds", type=int, default=9)
    parser.add_argument(
        "--stats-cost", type=float, default=0.0,
        help="seconds stats blocks at 1,000 queues (grows with the square)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a TCP port")
    return args


async def _serve(args: argparse.Namespace) -> None:
    try:
        server = StarlingServer(
            args.host, args.port, args.journal, args.max_fds, args.reserved_fds,
            args.stats_cost,
        )  # fmt: skip
    except OSError as exc:
        raise _Fatal(f"journal folder {args.journal}: {exc.strerror}") from None
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        where = f"{args.host}:{args.port}"
        raise _Fatal(f"cannot listen on {where}: {exc.strerror}") from None
    # The launcher reads this line to learn the port (useful with --port 0).
    print(f"starling listening on {server.host}:{server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


class _Fatal(Exception):
    """A setting the server cannot run with; the message is the one line shown."""


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or Ctrl-C; a bad setting is one line and a non-zero exit."""
    args = _args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        asyncio.run(_serve(args))
    except _Fatal as exc:
        print(f"starling: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
