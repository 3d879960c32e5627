"""Keys for operator actions (drain, purge, peek), kept apart on purpose.

The actions themselves live in ``qwatch/actions.py`` and their screens in
``qwatch/app/actions.py``. Textual's own ``App.run_action`` runs action
strings, hence :meth:`ActionKeys.run_queue_action`'s longer name.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from qwatch.app.status import TargetFlags
from qwatch.app.table import Entry

log = logging.getLogger(__name__)


class ActionKeys(App[None]):
    """The action keys and the checks every action passes first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "act('peek')", "Peek"),
        Binding("d", "act('drain')", "Drain"),
        Binding("P", "act('purge')", "Purge"),
    ]

    def selected_entry(self) -> Entry | None:
        """The line under the cursor; the app overrides this."""
        raise NotImplementedError

    def flags_of(self, target: str) -> TargetFlags:
        """The badges of ``target``; the app overrides this."""
        raise NotImplementedError

    def target_names(self) -> list[str]:
        """Every watched target's name; the app overrides this."""
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the action keys when every target is read-only (each status
        line's badge says why); with some writable, a key on a read-only
        line explains itself instead."""
        if action == "act":  # asked for every key on each refresh: act first
            names = self.target_names()
            if names and all(self.flags_of(name).read_only for name in names):
                return False
        return super().check_action(action, parameters)

    def action_act(self, kind: str) -> None:
        """Check that an action may run on the selected line, then run it."""
        entry = self.selected_entry()
        if entry is None:
            self.notify("Nothing selected.", severity="warning")
            return
        if self.flags_of(entry.target).read_only:
            self.notify(
                f"{entry.target} is read-only: no {kind} from here.",
                severity="warning",
            )
            return
        self.run_queue_action(kind, entry)

    def run_queue_action(self, kind: str, entry: Entry) -> None:
        """Run ``kind`` (peek, drain, purge) on ``entry``'s queue or family."""
        from qwatch.app.actions import open_action

        open_action(self, kind, entry)
