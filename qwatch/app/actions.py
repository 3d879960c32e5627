"""Action screens: purge and drain with the count first, progress and cancel.

Each screen opens an adapter of its own (the poll loop's lives in another
thread) and drives :mod:`qwatch.actions`, so the dashboard passes the same
guards, plans and audit log as the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, ProgressBar, Static

from qwatch import actions
from qwatch.adapters import adapter_for
from qwatch.adapters.base import ActionError, Adapter

log = logging.getLogger(__name__)

EXPIRE_SECONDS = 3600.0
"""TTL offered instead of deleting result keys."""

CSS = """
ActionScreen { align: center middle; }
ActionScreen > Vertical {
    width: 76; height: auto; border: thick $error; background: $surface;
    padding: 1 2;
}
ActionScreen .prod { color: $error; text-style: bold; }
ActionScreen Horizontal { height: auto; margin-top: 1; }
ActionScreen Button { margin-right: 2; }
"""


class ActionScreen(ModalScreen[None]):
    """What purge and drain share: a target, a guard, a worker, a cancel.

    Args:
        adapter: a fresh adapter for the target (connected here, closed on exit).
        guard: the target's guard; refused actions never reach the server.
        what: the queue name, or the family pattern.
    """

    DEFAULT_CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop", "Cancel")]

    def __init__(self, adapter: Adapter, guard: actions.Guard, what: str) -> None:
        super().__init__()
        self.adapter = adapter
        self.guard = guard
        self.what = what
        self.cancel = asyncio.Event()
        self.running = False
        self.emptied: Callable[[], None] | None = None
        """Called once the action has run: what qwatch took out itself must
        not later read as a consumer that came and went."""
        self._connected = False
        self._started = 0.0

    def heading(self, verb: str) -> ComposeResult:
        """Title line, with the PRODUCTION badge when the target has one."""
        if self.guard.production:
            yield Static("PRODUCTION", classes="prod")
        yield Static(f"[b]{verb}[/b] {self.what}  on {self.guard.label}", markup=True)

    async def connected(self) -> Adapter:
        """The adapter, connected on first use."""
        if not self._connected:
            await self.adapter.connect()
            self._connected = True
        return self.adapter

    def progress(self, done: int) -> None:
        """Progress callback; runs on the app's loop inside the worker."""
        rate = done / max(1e-6, time.monotonic() - self._started)
        self.query_one(ProgressBar).update(progress=done)
        self.query_one("#rate", Static).update(f"{done:,} done, {rate:,.0f}/s")

    def action_stop(self) -> None:
        """Cancel a running action after its current item, else close."""
        if self.running:
            self.cancel.set()
            self.query_one("#rate", Static).update("cancelling…")
        else:
            self.dismiss()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.action_stop()
        elif event.button.id == "go":
            event.button.disabled = True
            self.running, self._started = True, time.monotonic()
            self.run_worker(self._go(), exclusive=True)

    async def _go(self) -> None:
        try:
            message = await self.perform()
            self.app.notify(message)
        except ActionError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
        except Exception as exc:  # an adapter bug must not end the app
            log.exception("%s failed", self.what)
            self.app.notify(f"failed: {exc}", severity="error", timeout=10)
        if self.emptied is not None:
            self.emptied()
        self.running = False
        self.dismiss()

    async def perform(self) -> str:
        """Run the action; the line to notify."""
        raise NotImplementedError

    async def on_unmount(self) -> None:
        if self._connected:
            await self.adapter.close()


class PurgeScreen(ActionScreen):
    """Count first, then the operator types the name or pattern to confirm."""

    def __init__(
        self, adapter: Adapter, guard: actions.Guard, what: str, family: bool
    ) -> None:
        super().__init__(adapter, guard, what)
        self.family = family
        self.plan: actions.PurgePlan | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield from self.heading("Purge family" if self.family else "Purge")
            yield Static("counting…", id="count")
            yield Input(placeholder=f"type {self.what} to confirm", id="confirm")
            yield Checkbox(
                f"expire in {EXPIRE_SECONDS / 3600:g} h instead of delete",
                id="expire", disabled=True,
            )  # fmt: skip
            yield ProgressBar(show_eta=False)
            yield Static("", id="rate")
            with Horizontal():
                yield Button("Purge", id="go", variant="error", disabled=True)
                yield Button("Cancel", id="stop")

    def on_mount(self) -> None:
        self.run_worker(self._plan(), exclusive=True)

    async def _plan(self) -> None:
        try:
            self.guard.check("purge", self.what)
            adapter = await self.connected()
            self.plan = await actions.plan_purge(adapter, self.what, self.family)
        except ActionError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
            self.dismiss()
            return
        plan = self.plan
        self.query_one("#count", Static).update(
            f"{len(plan.names):,} queues, {plan.items:,} items will go"
        )
        self.query_one(ProgressBar).update(total=len(plan.names))
        self.query_one("#expire", Checkbox).disabled = not plan.can_expire
        self._enable()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._enable()

    def _enable(self) -> None:
        typed = self.query_one("#confirm", Input).value.strip()
        ready = self.plan is not None and typed == self.what and not self.running
        self.query_one("#go", Button).disabled = not ready

    async def perform(self) -> str:
        assert self.plan is not None
        expire = EXPIRE_SECONDS if self.query_one("#expire", Checkbox).value else None
        out = await actions.purge(
            self.adapter, self.plan, self.guard, self.progress, self.cancel, expire
        )
        return summary(out, expire)


def summary(out: actions.PurgeOutcome, expire: float | None) -> str:
    """The notify line for a purge."""
    verb = "expired" if expire is not None else "purged"
    result = out.result
    text = f"{verb} {len(result.deleted)} queues ({result.items} items)"
    if result.skipped:
        names = ", ".join(sorted(result.skipped)[:3])
        text += f"; skipped {len(result.skipped)} that changed ({names}…)"
    if out.cancelled:
        text += f"; cancelled, {out.untouched} untouched"
    return text


class DrainScreen(ActionScreen):
    """Where the file goes, then progress with cancel."""

    def __init__(
        self, adapter: Adapter, guard: actions.Guard, what: str, depth: int
    ) -> None:
        super().__init__(adapter, guard, what)
        self.depth = depth

    def compose(self) -> ComposeResult:
        with Vertical():
            yield from self.heading("Drain")
            yield Static(f"about {self.depth:,} items, saved to:")
            yield Input(str(actions.default_drain_path(self.what)), id="path")
            yield ProgressBar(total=self.depth or None, show_eta=False)
            yield Static("", id="rate")
            with Horizontal():
                yield Button("Drain", id="go", variant="warning")
                yield Button("Cancel", id="stop")

    async def perform(self) -> str:
        path = Path(self.query_one("#path", Input).value).expanduser()
        adapter = await self.connected()
        out = await actions.drain(
            adapter, self.what, path, self.guard, None, self.progress, self.cancel
        )
        state = " (cancelled; the rest stays queued)" if out.cancelled else ""
        return f"drained {out.count} items to {out.path}{state}"


class PeekScreen(ModalScreen[None]):
    """The first items of a queue, with what peeking changed."""

    DEFAULT_CSS = CSS.replace("ActionScreen", "PeekScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, title: str, lines: list[str], note: str | None) -> None:
        super().__init__()
        self.title_text, self.lines, self.note = title, lines, note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, markup=False)
            if self.note:
                yield Static(f"note: {self.note}", markup=False)
            yield Static("\n".join(self.lines) or "(empty)", markup=False)


def open_action(app: App[Any], kind: str, entry: Any) -> None:
    """Open the screen for ``kind`` on a dashboard line.

    ``app`` is the dashboard: ``runners`` by target name and ``flags_of``.
    """
    runner = app.runners[entry.target]  # type: ignore[attr-defined]
    source = runner.watch.adapter
    flags = app.flags_of(entry.target)  # type: ignore[attr-defined]
    guard = actions.Guard(source.url, flags.read_only, flags.production, "config")
    adapter = adapter_for(source.url, source.options)
    row = entry.row
    screen: ActionScreen
    if kind == "purge":
        screen = PurgeScreen(adapter, guard, row.name, row.is_family)
    elif row.is_family:
        app.notify(f"{kind} works on one queue; expand the family first")
        return
    elif kind == "drain":
        screen = DrainScreen(adapter, guard, row.name, row.depth)
    else:
        # Limitation: a peek's side effect (RabbitMQ marks messages
        # redelivered) is said as it starts, not confirmed beforehand.
        if source.peek_side_effect and source.can_peek:
            app.notify(f"peek: {source.peek_side_effect}", severity="warning")
        app.run_worker(_peek(app, adapter, guard, row.name), exclusive=True)
        return
    screen.emptied = lambda: runner.forget(row.name)
    app.push_screen(screen)


async def _peek(
    app: App[Any], adapter: Adapter, guard: actions.Guard, queue: str
) -> None:
    try:
        await adapter.connect()
        items = await actions.peek(adapter, queue, 10, guard)
    except ActionError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return
    finally:
        await adapter.close()
    lines = list(actions.describe(items, width=70))
    title = f"first {len(items)} items of {queue}"
    app.push_screen(PeekScreen(title, lines, adapter.peek_side_effect))
