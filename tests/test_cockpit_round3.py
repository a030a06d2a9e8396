"""The cockpit, round 3 (issue 29): one Pilot test (or more) per numbered item, each driving promptgrad-tui
headlessly on the tiny GPT-2 or on a run's events replayed; and snapshots at 60x20, 80x24, 100x30 and
160x48 checked for a wrapped frame, a word cut in the middle and a Predictions column too narrow to read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import finished_events, finished_run, wait_for
from textual.widgets import DataTable, Input

from promptgrad.events import Prediction, Predictions, Started, Step
from promptgrad_tui.app import PromptgradApp
from promptgrad_tui.browser import RunBrowser
from promptgrad_tui.dialogs import ConfirmScreen

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: the machine is shared


# ---- 3. the first keys after launch are pane keys, never typed into the form ---------------------------
def test_3_keys_typed_at_launch_jump_between_panes_and_never_land_in_the_form(tiny_config):
    run_dir = finished_run(tiny_config)

    async def scenario():
        app = PromptgradApp(tiny_config, run_dir=str(run_dir))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            task = screen.form.config_fields["task"].value
            await pilot.press("2", "3", "4")  # at once, as a user who knows the panes does
            await pilot.pause()
            assert screen.form.config_fields["task"].value == task
            assert screen.pane == "nearest" and not isinstance(app.focused, Input)
            await pilot.press("1")  # the user goes to the form: now its first field has the cursor
            await pilot.pause()
            assert isinstance(app.focused, Input) and screen.pane == "config"
            await pilot.press("f7")  # f6-f9 switch panes even from a text field (tmux passes F-keys)
            await pilot.pause()
            assert screen.pane == "chart"
            await pilot.press("1")
            await pilot.pause()
            await pilot.press("escape", "3")  # escape leaves the field: digits are pane keys again
            await pilot.pause()
            assert screen.pane == "predictions"
            await pilot.press("pound_sign")  # option+3 on a Mac, as tmux passes it on
            await pilot.press("cent_sign")
            assert screen.pane == "nearest"

    asyncio.run(scenario())


def test_3_the_empty_form_at_launch_has_no_field_with_the_cursor():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.focused is None
            await pilot.press("2")
            assert app.main_screen.pane == "chart"

    asyncio.run(scenario())


# ---- 4 and 13. the run browser: marking keeps the cursor; j/k, sort, delete with undo, rename ----------
def three_runs(tiny_config) -> list[Path]:
    return [
        finished_run(tiny_config.replace(name=name, seed=len(name), steps=2 + i))
        for i, name in enumerate(("alpha", "bravo", "charlie"))
    ]


def test_4_marking_a_run_leaves_the_cursor_on_it(tiny_config):
    three_runs(tiny_config)

    async def scenario():
        app = PromptgradApp(tiny_config)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("ctrl+o")
            browser = app.screen
            assert isinstance(browser, RunBrowser)
            await pilot.press("down", "down", "space")
            await pilot.pause()
            table = browser.query_one(DataTable)
            assert table.cursor_row == 2
            assert str(table.get_cell_at((2, 0))) == "x" and str(browser.shown[2].path) in browser.marked
            await pilot.press("slash", *"a", "space")  # the filter's typed space marks too, the cursor stays put
            await pilot.pause()
            assert table.cursor_row == [r.name for r in browser.shown].index(browser.current().name)

    asyncio.run(scenario())


def test_13_the_browser_moves_with_j_k_sorts_deletes_with_undo_and_renames(tiny_config, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    runs = three_runs(tiny_config)
    runs_dir = runs[0].parent

    async def scenario():
        app = PromptgradApp(tiny_config)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("ctrl+o")
            browser = app.screen
            table = browser.query_one(DataTable)
            await pilot.press("j", "j", "k")
            assert table.cursor_row == 1
            # the cursor row is plain to see without colour: reverse video
            assert table.get_component_rich_style("datatable--cursor").reverse
            await pilot.press("s")  # sort by name, A-Z
            assert [r.name for r in browser.shown] == ["alpha", "bravo", "charlie"]
            await pilot.press("S")  # the other way round
            assert [r.name for r in browser.shown] == ["charlie", "bravo", "alpha"]
            await pilot.press("s", "s")  # state, then steps (most first)
            assert [r.step for r in browser.shown] == [4, 3, 2]
            table.move_cursor(row=[r.name for r in browser.shown].index("bravo"))
            await pilot.press("d")  # into runs/.trash, at once; u brings it back
            await pilot.pause()
            assert not (runs_dir / "bravo").exists() and "bravo" not in [r.name for r in browser.shown]
            assert [p.name.split("-")[0] for p in (runs_dir / ".trash").iterdir()] == ["bravo"]
            await pilot.press("u")
            await pilot.pause()
            assert (runs_dir / "bravo" / "config.toml").is_file() and browser.current().name == "bravo"
            await pilot.press("r")
            dialog = app.screen
            field = dialog.query_one("#new-name", Input)
            field.value = "alpha"  # taken: said in the dialog, which stays
            await pilot.press("enter")
            assert app.screen is dialog and "exists" in str(dialog.query_one("#rename-error").render())
            field.value = "bravo-lr3"
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is browser and (runs_dir / "bravo-lr3" / "config.toml").is_file()
            assert browser.current().name == "bravo-lr3" and not (runs_dir / "bravo").exists()
            await pilot.press("enter")  # the renamed run opens
            await wait_for(
                pilot, lambda: app.main_screen.run_dir == str(runs_dir / "bravo-lr3"), what="the run to open"
            )

    asyncio.run(scenario())


# ---- 11. a "y" meant for a question never lands in the name field ---------------------------------------
def test_11_a_y_after_a_refused_ctrl_r_leaves_the_run_name_alone(tiny_config):
    run_dir = finished_run(tiny_config)

    async def scenario():
        app = PromptgradApp(tiny_config, run_dir=str(run_dir))
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.main_screen
            await wait_for(pilot, lambda: screen.chart.steps, what="the run to show")
            screen.form.config_fields["name"].value = tiny_config.machine.name  # a folder that exists
            await pilot.pause()
            await pilot.press("ctrl+r")  # refused: the field is flagged, no question asked
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen), [m.text for m in app.messages]
            assert screen.form.config_fields["name"].has_class("-invalid")
            await pilot.press("y")  # meant for the question the user expected
            await pilot.pause()
            assert screen.form.config_fields["name"].value == tiny_config.machine.name
            screen.form.config_fields["lr"].value = "fast"  # an invalid value: flagged, the cursor stays put too
            await pilot.pause()
            await pilot.press("ctrl+r", "y")
            await pilot.pause()
            assert screen.form.config_fields["lr"].value == "fast" and not screen.running

    asyncio.run(scenario())


# ---- 8. the train average follows the steps in a short run ----------------------------------------------
def test_8_the_train_average_follows_a_short_run_from_its_first_step():
    from promptgrad_tui.widgets.loss_chart import Curves

    losses = [10.7, 4.0, 3.6, 3.9, 3.4, 3.8, 3.5, 3.3, 3.7, 3.4]
    curves = Curves.of(
        [Started("runs/r", "m", "cpu", "fp32", 40, 10, 10, 0, 10)]
        + [Step(i, i, loss, 0.01, 1.0, i, 10 - i) for i, loss in enumerate(losses, 1)]
    )
    assert curves.smoothed[0] == pytest.approx(10.7)  # the first step's own loss, not pulled towards 0
    assert curves.smoothed[-1] < 4.5  # was 6.3: step 1 held the average up
    assert min(losses[1:]) < curves.smoothed[-1]
    curves.truncate(5)  # a resume from step 5 goes on from the same average
    assert (
        curves.smoothed
        == Curves.of([Step(i, i, loss, 0.01, 1.0, i, 10 - i) for i, loss in enumerate(losses[:5], 1)]).smoothed
    )


# ---- 1. the Predictions pane shows what was asked and what was expected, whole ---------------------------
LONG_ANSWER = " reject. The probability of accepting is 1/2, and of rejecting it is 1/2 as well, so"
ROWS = [
    Prediction("accept", " reject", LONG_ANSWER, True),
    Prediction("hot", " cold", " cold", True),
    Prediction(
        "What is the opposite of the word written before this question, asked politely?",
        " no",
        " I think that the answer is yes, or maybe not",
        False,
    ),
]


def screen_text(app) -> str:
    return app.export_screenshot()  # an SVG: the text is in it, one <text> run per styled span


@pytest.mark.parametrize("width", [80, 100, 160])
def test_1_input_and_expected_are_whole_at_every_width_and_enter_shows_the_row(width):
    from promptgrad_tui.prediction_detail import PredictionDetail

    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(width, 40)) as pilot:
            screen = app.main_screen
            screen.show_pane("predictions")
            await pilot.pause()
            screen.predictions.show(Predictions(7, ROWS))
            await pilot.pause()
            table = screen.predictions.table
            assert [str(c.label) for c in table.columns.values()] == ["", "input", "expected", "answer"]
            for row, pair in enumerate(ROWS):
                assert str(table.get_cell_at((row, 1))) == pair.x  # whole, on more lines where it is long
                assert (
                    str(table.get_cell_at((row, 2))) == pair.expected.strip()
                    or str(table.get_cell_at((row, 2))) == pair.expected
                )
            answer = str(table.get_cell_at((0, 3)))
            assert answer.endswith("…") and LONG_ANSWER.startswith(answer[:-1])  # cut, and said to be
            widths = [c.get_render_width(table) for c in table.columns.values()]
            assert (
                sum(widths) <= table.size.width and widths[1] >= len("accept") + 2 and widths[2] >= len(" reject") + 2
            )
            assert widths[3] >= 8 + 2  # the answer keeps room enough to read its start
            assert table.rows[list(table.rows)[2]].height > 1 or widths[1] >= len(ROWS[2].x) + 2
            await pilot.press("3")
            table.focus()
            table.move_cursor(row=0)
            await pilot.press("enter")
            detail = app.screen
            assert isinstance(detail, PredictionDetail)
            shown = str(detail.query_one("Static").render())
            assert "accept" in shown and LONG_ANSWER.strip() in shown.replace("\n", " ") and "right" in shown
            await pilot.press("escape")
            assert app.screen is screen

    asyncio.run(scenario())


# ---- 10. nothing stale or covering: the probe's last answer, another task's overlays, toasts -----------
def test_10_another_run_clears_the_probe_answer_and_drops_another_tasks_overlays(tiny_config, tmp_path):
    import shutil

    from promptgrad.train.probe import ProbeAnswer

    other_data = tmp_path / "other-task.jsonl"
    shutil.copy(tiny_config.problem.data, other_data)
    a1, a2 = (finished_run(tiny_config.replace(name=name, steps=2)) for name in ("a1", "a2"))
    b1 = finished_run(tiny_config.replace(name="b1", steps=2, data=str(other_data)))

    async def scenario():
        app = PromptgradApp(tiny_config, run_dir=str(a1))
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.main_screen
            await wait_for(pilot, lambda: screen.chart.steps, what="the run to show")
            screen.compare((str(a2),))
            assert set(screen.chart.overlays) == {"a2"}
            screen.predictions.probe.show(ProbeAnswer("hot", " cold", " warm", 2))
            await pilot.press("ctrl+o")
            browser = app.screen
            browser.query_one(DataTable).move_cursor(row=[r.name for r in browser.shown].index("b1"))
            await pilot.press("enter")  # another task: a2's curves are not b1's
            await wait_for(pilot, lambda: screen.run_dir == str(b1), what="b1 to open")
            assert screen.chart.overlays == {} and screen.compared == ()
            assert "cold" not in str(screen.query_one("#probe-answer").render())
            assert any("another task" in m.text and "a2" in m.text for m in app.messages)

    asyncio.run(scenario())


def test_10_toasts_never_cover_the_results_strip():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = app.main_screen
            screen.replay(finished_events(), live=True)  # the strip appears, with a "Run finished" toast
            screen.say("a second message, long enough to take two lines of a toast at this width, or three")
            await pilot.press("z")  # the whole strip (folded to one line below 30 rows): more of it to cover
            await pilot.pause(0.3)
            strip = screen.results.region
            rows = [line.text for line in app.screen._compositor.render_strips()]
            toast_rows = [y for y, row in enumerate(rows) if "Run finished" in row or "a second message" in row]
            assert strip.height and toast_rows  # both on screen at once...
            assert all(
                y < strip.y for y in toast_rows
            )  # ... the toasts above the strip, every row of the strip its own
            assert rows[strip.y].lstrip().startswith("Result") and "learned" in rows[strip.y + 1]
            assert all("▌" not in row for row in rows[strip.y : strip.bottom])

    asyncio.run(scenario())


# ---- 5. small terminals: a policy by size, the chart's frame whole ---------------------------------------
def frame_rows(plot) -> list[str]:
    """The built figure's rows from the frame's top edge to its bottom edge (each must be one row)."""
    rows = plot.built.plain.splitlines()
    top = next(i for i, r in enumerate(rows) if "┌" in r)
    bottom = next(i for i, r in enumerate(rows) if "└" in r)
    return rows[top : bottom + 1]


@pytest.mark.parametrize("size", [(60, 20), (80, 24)], ids=["60x20", "80x24"])
def test_5_small_terminals_fold_the_strip_and_legend_and_the_chart_frame_stays_whole(size):
    from promptgrad_tui.widgets.loss_chart import MIN_PLOT_ROWS, BuiltPlot

    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=size) as pilot:
            screen = app.main_screen
            screen.replay(finished_events(), live=True)
            await pilot.press("2")
            plot = screen.chart.query_one(BuiltPlot)
            await wait_for(
                pilot, lambda: plot.built is not None and plot.built_size == tuple(plot.size), what="the chart"
            )
            rows = frame_rows(plot)
            assert "┐" in rows[0] and "┘" in rows[-1]  # each edge of the frame on one row: nothing wrapped
            assert len(rows) - 2 >= MIN_PLOT_ROWS and all(
                len(r) <= plot.size.width for r in plot.built.plain.splitlines()
            )
            assert screen.results.region.height == 1 and "learned 2.000" in str(screen.results.render())
            legend = screen.chart.query_one(".legend").region.height  # 60x20: markers and keys on one line
            assert legend == 1 if size[1] < 24 else legend <= 2
            await pilot.press("z")  # the whole strip, its rows cut (with …) rather than wrapped
            await pilot.pause()
            strip = [str(line) for line in screen.results.render().split("\n")]
            assert screen.results.region.height == len(strip) >= 4 and strip[1].startswith("learned")
            assert all(len(line) <= screen.results.size.width for line in strip)
            await pilot.press("z")
            await pilot.pause()
            assert screen.results.region.height == 1

    asyncio.run(scenario())


def test_5_below_60x18_the_screen_says_what_it_needs_and_comes_back_when_resized():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(50, 15)) as pilot:
            notice = app.main_screen.query_one("#too-small")
            await pilot.pause()
            assert notice.display and "needs at least 60 columns and 18 rows" in str(notice.render())
            await pilot.resize_terminal(100, 30)
            await pilot.pause()
            assert not notice.display

    asyncio.run(scenario())


# ---- 6. the form during a run: every value whole, nothing cut inside a word --------------------------------
def test_6_the_locked_form_shows_each_value_whole_at_160x48(tiny_config):
    from promptgrad_tui.widgets.config_form import LockedSummary

    config = tiny_config.replace(steps=5000, checkpoint_every=0, name="a-rather-long-run-name-for-a-narrow-form")

    async def scenario():
        app = PromptgradApp(config)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: screen.chart.steps, what="a step")
            await pilot.pause()
            summary = screen.form.query_one(LockedSummary)
            assert summary.display and not any(f.display for f in screen.form.config_fields.values())
            lines = str(summary.render()).splitlines()
            width = summary.size.width
            assert width < 40 and all(len(line) <= width for line in lines)
            joined = "".join(line.strip() for line in lines)
            for value in (config.problem.model, config.machine.name, config.problem.data):
                assert value in joined  # whole, over lines broken only at '/', '-', '_', '.' or a space
            for line, after in zip(lines, lines[1:]):
                if after.startswith("  ") and line.startswith("  "):  # a value going on to the next line
                    assert line[-1] in "/-_. …", (line, after)
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not screen.running, what="the stop")
            assert not summary.display and screen.form.config_fields["model"].display

    asyncio.run(scenario())


# ---- the four sizes, as snapshots: no wrapped frame, no word cut, every Predictions column readable ---------
SIZES = {"60x20": (60, 20), "80x24": (80, 24), "100x30": (100, 30), "160x48": (160, 48)}


@pytest.mark.parametrize("pane", ["chart", "predictions"])
@pytest.mark.parametrize("size", list(SIZES))
def test_snapshots_at_four_sizes(snap_compare, monkeypatch, size, pane):
    from promptgrad_tui.device_use import DeviceUse
    from promptgrad_tui.widgets.loss_chart import BuiltPlot

    if size == "160x48" and pane == "predictions":
        pytest.skip("at 160x48 every pane is on screen: the chart's snapshot shows them all")
    monkeypatch.setattr(DeviceUse, "sample", lambda self: "CPU 5% · RSS 0.3 GB")  # the same in every snapshot

    async def replayed_run(pilot):
        screen = pilot.app.main_screen
        await pilot.pause()  # the screen is composed after the first refresh
        screen.replay(finished_events() + [Predictions(12, ROWS)], live=False)
        await pilot.press({"chart": "2", "predictions": "3"}[pane])
        plot = screen.chart.query_one(BuiltPlot)
        if plot.display and plot.size.height:
            await wait_for(
                pilot, lambda: plot.built is not None and plot.built_size == tuple(plot.size), what="the chart"
            )
            rows = frame_rows(plot)
            assert "┐" in rows[0] and "┘" in rows[-1]  # the frame's edges each on one row
        table = screen.predictions.table
        if table.size.height:  # on screen: each pair's input and expected whole, the answer's start readable
            for row, pair in enumerate(ROWS):
                assert str(table.get_cell_at((row, 1))) == pair.x
                assert str(table.get_cell_at((row, 2))).strip() == pair.expected.strip()
                answer = str(table.get_cell_at((row, 3)))
                assert answer.rstrip("…") and pair.predicted.startswith(answer.rstrip("…"))
            assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width
        text = [str(line) for line in screen.results.render().split("\n")]
        assert all(len(line) <= screen.results.size.width for line in text)
        if screen.results.folded:
            assert text[0].endswith("z: all rows")  # parts left out whole, none cut
        await pilot.pause(0.3)

    assert snap_compare(PromptgradApp(), terminal_size=SIZES[size], run_before=replayed_run)
