"""The dashboard: a table of queues and families, a detail pane, alerts.

Data flows one way: each target's runner polls in a worker thread and posts
:class:`ViewReady`; the handler takes the newest view (a stale one is never
drawn) and patches the table. Keys only change what is shown, or ask a runner
for a fresh view.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Input

from qwatch.alerts import Alert, Alerts
from qwatch.app.action_keys import ActionKeys
from qwatch.app.alert_log import AlertLog
from qwatch.app.detail import DetailPane
from qwatch.app.help import HelpScreen
from qwatch.app.lines import SORTS, Choices, entries
from qwatch.app.runner import Runner, View
from qwatch.app.status import TargetFlags, TargetLine
from qwatch.app.table import Entry, QueueTable
from qwatch.poller import Watch

log = logging.getLogger(__name__)

SilenceHook = Callable[[str, str, float | None], None]
"""Called with (target, pattern, seconds or None for good) to silence alerts."""


class ViewReady(Message):
    """A runner has a newer view; posted from the runner's thread."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner


class QwatchApp(ActionKeys):
    """Watch one or more targets.

    Args:
        watches: one poll loop per target (see ``qwatch.targets.build_watch``).
        alerts: shared alert state; a fresh one when not given.
        flags: read-only and production badges by target name.
    """

    CSS_PATH = "app.tcss"
    TITLE = "qwatch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("g", "group", "Group"),
        Binding("space", "expand", "Expand", show=False),
        Binding("a", "alert_log", "Alerts"),
        Binding("m", "silence(3600)", "Mute 1h"),
        Binding("M", "silence(0)", "Mute", show=False),
        Binding("escape", "close_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        watches: Sequence[Watch],
        alerts: Alerts | None = None,
        flags: Mapping[str, TargetFlags] | None = None,
    ) -> None:
        super().__init__()
        self.runners = {w.status.name: Runner(w, self._published) for w in watches}
        self.alerts = alerts if alerts is not None else Alerts()
        self.flags = dict(flags or {})
        self.choices = Choices()
        self.views: dict[str, View] = {}
        self.on_silence: SilenceHook = self._silence
        """Replaceable: the config helper persists silences through it."""
        self.bells = 0
        """Bells rung for new leaks (the terminal cannot be asked)."""
        self._posted: set[str] = set()
        # Kept, not queried: a query sees only the top screen (help, modals).
        self.table = QueueTable(id="queues")
        self.detail = DetailPane(id="detail")
        self.alert_log = AlertLog(id="alert-log")
        self.filter_box = Input(
            placeholder="filter by name, enter keeps it", id="filter"
        )
        self.lines: dict[str, TargetLine] = {}

    def compose(self) -> ComposeResult:
        """Status lines, table, detail pane, alert log, filter, footer."""
        with Vertical(id="status"):
            for name in self.runners:
                line = self.lines[name] = TargetLine(name, self.flags_of(name))
                yield line
        yield self.table
        yield self.detail
        yield self.alert_log
        yield self.filter_box
        yield Footer()

    def on_mount(self) -> None:
        """Start one poll worker per target and the one-second clock."""
        self._caption()
        self.table.focus()
        self.detail.show(None, [], {}, [])
        for name, runner in self.runners.items():
            self.run_worker(
                runner.run,
                name=f"poll {name}",
                group="poll",
                thread=True,
                exit_on_error=False,
            )
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        """Stop polling; an unfinished poll is cancelled, not awaited."""
        for runner in self.runners.values():
            runner.stop()

    def flags_of(self, target: str) -> TargetFlags:
        """The badges of ``target``."""
        return self.flags.get(target, TargetFlags())

    def target_names(self) -> list[str]:
        """Every watched target's name."""
        return list(self.runners)

    def selected_entry(self) -> Entry | None:
        """The line under the cursor."""
        return self.table.selected()

    # Data in: runner threads post, the UI thread draws the newest view.

    def _published(self, runner: Runner) -> None:
        """Runner thread: post at most one pending message per target."""
        if runner.name not in self._posted:
            self._posted.add(runner.name)
            self.post_message(ViewReady(runner))

    def on_view_ready(self, message: ViewReady) -> None:
        """Draw the newest view of one target."""
        runner = message.runner
        # Clear first, then read: a view published in between posts again.
        self._posted.discard(runner.name)
        if not self.table.is_attached:
            return  # quitting: the widgets are going away
        view = runner.latest
        old = self.views.get(runner.name)
        if view is None or (old is not None and view.seq <= old.seq):
            return
        self.views[runner.name] = view
        self.lines[runner.name].show(view.status, view.server)
        self._announce(self.alerts.observe(runner.name, view.rows))
        self._draw(runner.name)

    def _draw(self, target: str | None = None) -> None:
        """Bring the table up to date for one target, or all of them."""
        table = self.table
        names = [target] if target is not None else list(self.views)
        lines: list[Entry] = []
        for name in names:
            if name in self.views:
                lines += entries(self.views[name], self.choices, self.alerts.silenced)
        table.show(lines, target)
        self._detail()

    def _detail(self) -> None:
        entry = self.selected_entry()
        pane = self.detail
        if entry is None:
            pane.show(None, [], {}, [])
            return
        view = self.views[entry.target]
        runner = self.runners[entry.target]
        if runner.focus != entry.row.name:
            runner.focus = entry.row.name
            runner.request_view()
        points = view.points if view.focus == entry.row.name else []
        pane.show(entry.row, points, view.server, view.notes)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The cursor moved: describe the new line."""
        if isinstance(event.data_table, QueueTable):
            self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a family expands or folds it."""
        if isinstance(event.data_table, QueueTable):
            self.action_expand()

    # Alerts.

    def _announce(self, fresh: list[Alert]) -> None:
        log_panel = self.alert_log
        for alert in fresh:
            log_panel.add(alert)
            if alert.cleared:
                self.notify(f"{alert.target} {alert.name}: no longer leaking")
                continue
            self.notify(
                f"{alert.target} {alert.name}\n{alert.reason}",
                title="LEAK",
                severity="error",
                timeout=10,
            )
            self.bell()
            self.bells += 1

    def _silence(self, target: str, pattern: str, seconds: float | None) -> None:
        self.alerts.silence(target, pattern, seconds)

    def action_silence(self, seconds: float) -> None:
        """Silence alerts for the selected line: ``seconds``, or 0 for good."""
        entry = self.selected_entry()
        if entry is None:
            self.notify("Nothing selected.", severity="warning")
            return
        pattern = glob.escape(entry.row.name)
        self.on_silence(entry.target, pattern, seconds or None)
        how = "for good" if not seconds else f"for {seconds / 3600:g} h"
        self.notify(f"Silenced {entry.row.name} on {entry.target} {how}.")
        self._draw(entry.target)

    def action_alert_log(self) -> None:
        """Show or hide the alert history."""
        panel = self.alert_log
        panel.display = not panel.display

    # What is shown: filter, sort, grouping, families.

    def action_filter(self) -> None:
        """Open the filter line."""
        box = self.filter_box
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the operator types."""
        if event.input is not self.filter_box:
            return  # a modal's own box (purge name, drain path) bubbled up
        self.choices.filter = event.value
        self._caption()
        self._draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter, go back to the table."""
        if event.input is not self.filter_box:
            return
        event.input.display = False
        self.table.focus()

    def action_close_filter(self) -> None:
        """Clear the filter and go back to the table."""
        box = self.filter_box
        box.display = False
        box.value = ""
        self.table.focus()

    def action_sort(self) -> None:
        """Next sort order."""
        now = SORTS.index(self.choices.sort)
        self.choices.sort = SORTS[(now + 1) % len(SORTS)]
        self._caption()
        self._draw()

    def action_group(self) -> None:
        """Fold names into families, or list every member."""
        self.choices.grouped = not self.choices.grouped
        for runner in self.runners.values():
            runner.flat = not self.choices.grouped
            runner.request_view()
        self._caption()
        self._draw()

    def action_expand(self) -> None:
        """Expand the family under the cursor, or fold the one it is in."""
        entry = self.selected_entry()
        if entry is None or entry.family is None or not self.choices.grouped:
            return
        key = (entry.target, entry.family)
        if key in self.choices.expanded:
            self.choices.expanded.discard(key)
        else:
            self.choices.expanded.add(key)
        runner = self.runners[entry.target]
        runner.expanded = frozenset(
            p for t, p in self.choices.expanded if t == entry.target
        )
        runner.request_view()
        self._draw(entry.target)

    def action_help(self) -> None:
        """Open the help screen."""
        self.push_screen(HelpScreen())

    # Housekeeping.

    def _caption(self) -> None:
        table = self.table
        parts = [f"sort: {self.choices.sort}"]
        parts.append("families" if self.choices.grouped else "every member")
        if self.choices.filter:
            parts.append(f"filter: {self.choices.filter!r}")
        table.border_title = "queues · " + " · ".join(parts)

    def _tick(self) -> None:
        for line in self.lines.values():
            line.redraw()
