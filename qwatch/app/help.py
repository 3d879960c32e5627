"""The help screen: every key, what it does."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("↑ ↓ PgUp PgDn", "move between queues and families"),
    ("enter / space", "expand or fold the family under the cursor"),
    ("/", "filter by name (enter keeps it, escape clears it)"),
    ("s", "cycle the sort: verdict, depth, change, name, target"),
    ("g", "group names into families, or list every member"),
    ("a", "show or hide the alert history"),
    ("m / M", "silence alerts for the selected line for 1 h / for good"),
    ("p", "peek at the first items (RabbitMQ marks them redelivered)"),
    ("d", "drain to a file (nothing is lost)"),
    ("P", "purge (asks you to type the name)"),
    ("?", "this help"),
    ("q", "quit"),
)

VERDICTS = (
    ("LEAK", "bold red", "grows and nothing was ever seen consuming it"),
    ("STALL", "bold dark_orange", "holds items; consuming was seen and stopped"),
    ("BACKLOG", "dark_orange", "consumed, but slower than it is filled"),
    ("OK", "", "none of the above"),
)


class HelpScreen(ModalScreen[None]):
    """Keys and verdicts; any of escape, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        """A keys table and a verdicts table."""
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold cyan", no_wrap=True)
        keys.add_column()
        for key, what in KEYS:
            keys.add_row(key, what)
        verdicts = Table.grid(padding=(0, 2))
        verdicts.add_column(no_wrap=True)
        verdicts.add_column()
        for name, style, what in VERDICTS:
            verdicts.add_row(f"[{style}]{name}[/]" if style else name, what)
        with Vertical(id="help-box"):
            yield Static("[b]qwatch[/b]: find queues that only grow", id="help-title")
            yield Static(keys)
            yield Static("")
            yield Static(verdicts)
            yield Static("\n[dim]escape closes this screen[/dim]")
