"""How one alert reaches a command or a web endpoint.

Both deliverers block (they run on a hook's own worker thread, never on the
poller) and raise :class:`HookError` with one line when delivery failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from qwatch import __version__
from qwatch.alerts import Alert

log = logging.getLogger(__name__)

ENV_PREFIX = "QWATCH_ALERT_"


class HookError(Exception):
    """A delivery failed; the message is one line."""


class Deliverer(Protocol):
    """One hook: a name for messages and a blocking ``deliver``."""

    name: str

    def deliver(self, alert: Alert) -> None:
        """Send one alert, or raise :class:`HookError`."""

    def close(self) -> None:
        """Free what the deliverer holds."""


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON body of a webhook, also given to commands as QWATCH_ALERT_JSON."""
    return {
        "qwatch": __version__,
        "state": "cleared" if alert.cleared else "firing",
        "target": alert.target,
        "name": alert.name,
        "type": "family" if alert.family else "queue",
        "kind": alert.kind,
        "verdict": alert.verdict.value,
        "reason": alert.reason,
        "depth": alert.depth,
        "members": alert.members,
        "at": datetime.fromtimestamp(alert.at, UTC).isoformat(timespec="seconds"),
        "at_epoch": round(alert.at, 3),
    }


def alert_env(alert: Alert) -> dict[str, str]:
    """``QWATCH_ALERT_*`` variables: one per payload field, plus the JSON."""
    payload = alert_payload(alert)
    env = {
        ENV_PREFIX + key.upper(): "" if value is None else str(value)
        for key, value in payload.items()
        if key != "qwatch"
    }
    env[ENV_PREFIX + "JSON"] = json.dumps(payload)
    return env


class CommandHook:
    """Runs a command per alert, without a shell, details in the environment.

    Raises:
        ValueError: the command line cannot be split or is empty.
    """

    name = "on-alert"

    def __init__(self, command: str, timeout: float) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the command is empty")
        self.timeout = timeout

    def deliver(self, alert: Alert) -> None:
        """Run the command once; its exit status must be 0."""
        env = {**os.environ, **alert_env(alert)}
        try:
            # A session of its own, so a timeout kills what the command started
            # too, not just the command.
            proc = subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise HookError(f"cannot run {self.argv[0]!r}: {exc.strerror}") from None
        try:
            _, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise HookError(f"timed out after {self.timeout:g} s; killed") from None
        if proc.returncode != 0:
            last = _last_line(err)
            raise HookError(f"exit {proc.returncode}" + (f": {last}" if last else ""))

    def close(self) -> None:
        """Nothing to free."""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _last_line(data: bytes | None) -> str:
    lines = (data or b"").decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:200] if lines else ""


class WebhookHook:
    """POSTs each alert as JSON, retrying with growing waits.

    Args:
        attempts: tries in all; a 4xx other than 429 is not retried.
        backoff: seconds before the second try, doubled for each one after.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        timeout: float,
        attempts: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        headers = {"User-Agent": f"qwatch/{__version__}"}
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def deliver(self, alert: Alert) -> None:
        """POST once, or up to ``attempts`` times while the error may pass."""
        body = alert_payload(alert)
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            error = self._post(body)
            if error is None:
                return
            retry, text = error
            log.debug("webhook try %d failed: %s", attempt + 1, text)
            if not retry:
                raise HookError(text)
        raise HookError(f"{text} (after {self.attempts} tries)")

    def _post(self, body: dict[str, Any]) -> tuple[bool, str] | None:
        """None when delivered, else (worth retrying, one-line error)."""
        try:
            response = self.client.post(self.url, json=body)
        except httpx.TimeoutException:
            return True, "timed out"
        except httpx.HTTPError as exc:
            return True, f"{type(exc).__name__}: {exc}".splitlines()[0]
        if response.is_success:
            return None
        status = response.status_code
        return status >= 500 or status == 429, f"HTTP {status}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()
