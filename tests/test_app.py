"""The dashboard driven with Pilot: leaks first and red, keys, dead targets."""

from __future__ import annotations

from test_app_fakes import DeadAdapter, LeakyAdapter, until, watch

from qwatch.alerts import Alerts
from qwatch.app.alert_log import AlertLog
from qwatch.app.detail import Facts
from qwatch.app.help import HelpScreen
from qwatch.app.lines import key_parts
from qwatch.app.main import QwatchApp
from qwatch.app.status import TargetFlags, TargetLine
from qwatch.app.table import QueueTable

SIZE = (170, 50)
FAMILY = "celery-task-meta-{uuid}"


def _table(app: QwatchApp) -> QueueTable:
    return app.query_one(QueueTable)


def _keys(app: QwatchApp) -> list[str]:
    return [row.key.value for row in _table(app).ordered_rows]


def _names(app: QwatchApp) -> list[str]:
    return [key_parts(k)[3] for k in _keys(app)]


def _leaking(app: QwatchApp) -> bool:
    table = _table(app)
    return table.row_count > 0 and table.get_row_at(0)[-1].plain == "LEAK"


async def test_leak_row_comes_first_in_red_with_bell_and_alert() -> None:
    """A growing family is the first line, red, announced once with a bell."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _leaking(app))
        first = _table(app).get_row_at(0)
        assert first[1].plain == f"▸ {FAMILY}"
        assert "red" in str(first[-1].style)
        assert "red" in str(first[1].style)
        assert app.bells == 1
        assert app.query_one(AlertLog).row_count == 1
        await until(pilot, lambda: app.runners["fake"].watch.adapter.polls > 30)
        assert app.bells == 1, "a leak is announced once until it clears"


async def test_detail_pane_shows_reason_and_chart_of_selected_line() -> None:
    """The selected line's verdict and reason are in the detail pane."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _leaking(app))
        await until(pilot, lambda: app.views["fake"].focus == FAMILY)
        facts = app.query_one(Facts).plain
        assert "verdict: LEAK" in facts
        assert "reason: +" in facts and "0 read or gone" in facts
        assert "members holding" in facts
        view = app.views["fake"]
        assert len(view.points) >= 2


async def test_filter_keeps_matching_names_and_escape_clears() -> None:
    """``/`` then text hides other names; escape shows them all again."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "celery" in _names(app))
        await pilot.press("slash", *"celery-task")
        await until(pilot, lambda: _names(app) == [FAMILY])
        await pilot.press("enter")
        assert _names(app) == [FAMILY]
        assert "filter: 'celery-task'" in str(_table(app).border_title)
        await pilot.press("escape")
        await until(pilot, lambda: {"celery", "default"} <= set(_names(app)))


async def test_g_lists_every_member_and_back() -> None:
    """``g`` swaps the family line for its members, and back again."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: FAMILY in _names(app))
        await pilot.press("g")
        await until(
            pilot,
            lambda: (
                FAMILY not in _names(app)
                and sum(n.startswith("celery-task-meta-") for n in _names(app)) >= 3
            ),
        )
        await pilot.press("g")
        await until(pilot, lambda: FAMILY in _names(app))
        assert not any(n.startswith("celery-task-meta-") for n in _names(app)[1:])


async def test_enter_expands_family_under_its_line_and_folds_it() -> None:
    """Enter on a family lists its members right below it; enter folds it."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _names(app)[:1] == [FAMILY])
        _table(app).move_cursor(row=0)
        await pilot.press("enter")

        def expanded() -> bool:
            kinds = [key_parts(k)[1] for k in _keys(app)]
            return kinds[0] == "f" and kinds[1:4] == ["m", "m", "m"]

        await until(pilot, expanded)
        assert _table(app).get_row_at(0)[1].plain.startswith("▾")
        assert _table(app).get_row_at(1)[1].plain.startswith("  └ celery-task-meta-")
        _table(app).move_cursor(row=0)
        await pilot.press("space")
        await until(pilot, lambda: "m" not in [key_parts(k)[1] for k in _keys(app)])


async def test_help_opens_and_closes() -> None:
    """``?`` opens the help screen; escape closes it."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_q_quits() -> None:
    """``q`` ends the app while polls are running."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _table(app).row_count > 0)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)


async def test_sort_cycles_and_reorders() -> None:
    """``s`` moves to the next sort; by name, lines are alphabetical."""
    app = QwatchApp([watch("fake", LeakyAdapter())])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(_names(app)) == 3)
        for _ in range(3):
            await pilot.press("s")
        assert "sort: name" in str(_table(app).border_title)
        assert _names(app) == sorted(_names(app))


async def test_dead_target_shows_error_and_retry_beside_a_live_one() -> None:
    """A refused target gets an error and a retry time; the other still shows."""
    app = QwatchApp(
        [watch("dead", DeadAdapter("fake://dead")), watch("fake", LeakyAdapter())]
    )
    async with app.run_test(size=SIZE) as pilot:
        lines = {line.target: line for line in app.query(TargetLine)}
        await until(pilot, lambda: lines["dead"].status is not None)
        text = str(lines["dead"].render())
        assert "connection refused" in text
        assert "retry in" in text
        await until(pilot, lambda: _leaking(app))
        await until(pilot, lambda: app.views["dead"].status.failures >= 2)
        await pilot.press("s")
        assert "sort: depth" in str(_table(app).border_title)


async def test_silence_calls_hook_and_marks_line_muted() -> None:
    """``m`` silences the selected line for an hour through the hook."""
    calls: list[tuple[str, str, float | None]] = []
    alerts = Alerts()
    app = QwatchApp([watch("fake", LeakyAdapter())], alerts)
    async with app.run_test(size=SIZE) as pilot:
        default_hook = app.on_silence
        app.on_silence = lambda t, p, s: (
            calls.append((t, p, s)),
            default_hook(t, p, s),
        )
        await until(pilot, lambda: _leaking(app))
        _table(app).move_cursor(row=0)
        await pilot.press("m")
        assert calls == [("fake", FAMILY, 3600)]
        assert alerts.silenced("fake", FAMILY)
        await until(pilot, lambda: _table(app).get_row_at(0)[-1].plain == "LEAK muted")


async def test_actions_say_not_available_and_read_only_refuses() -> None:
    """Beside a writable target, an action key on a read-only line says why
    it refuses; the read-only target's status line carries the badge."""
    flags = {"ro": TargetFlags(read_only=True, production=True)}
    app = QwatchApp(
        [watch("ro", LeakyAdapter()), watch("rw", LeakyAdapter())], flags=flags
    )
    async with app.run_test(size=SIZE) as pilot:
        table = _table(app)
        await until(pilot, lambda: table.row_count > 1)
        line = next(iter(app.query(TargetLine)))
        assert "PROD" in str(line.render()) and "read-only" in str(line.render())
        ro_row = next(
            i for i in range(table.row_count) if table.get_row_at(i)[0].plain == "ro"
        )
        table.move_cursor(row=ro_row)
        await pilot.press("d")
        messages = [n.message for n in app._notifications]
        assert any("ro is read-only" in m for m in messages), messages
