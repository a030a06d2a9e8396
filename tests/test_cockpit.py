"""The cockpit after a day of use: one Pilot test (or more) per item of that issue, each driving
promptgrad-tui headlessly on the tiny GPT-2 or on a run's events replayed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers import finished_events, wait_for
from rich.text import Text

from promptgrad.events import Evaluation, HardPromptFound
from promptgrad.train.loop import train
from promptgrad_tui.app import PromptgradApp
from promptgrad_tui.dialogs import ConfirmScreen
from promptgrad_tui.widgets.config_form import ConfigForm
from promptgrad_tui.widgets.loss_chart import BuiltPlot, legend_lines, step_ticks

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: the machine is shared


def plot_area(plot: BuiltPlot) -> str:
    """The plot's drawing area: the rows between the frame, right of the y-axis labels."""
    rows = plot.built.plain.splitlines()
    inside = [r for r in rows if "┤" in r or r.lstrip().startswith("│")]
    return "\n".join(r.split("┤", 1)[-1] if "┤" in r else r.split("│", 1)[-1] for r in inside)


# ---- 1. the chart shows every series, the reference lines under the measurements -----------------------
def test_1_every_legend_marker_is_on_the_plot_of_a_finished_run():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            # measurements right on the reference lines: the subset point at step 4 on the untrained line, the
            # final one on the hand-written line; drawn first, the lines must not hide them
            screen.replay(finished_events(learned=3.7, hand=3.7, untrained=4.7, subset=(4.7, 3.2)), live=False)
            await pilot.press("alt+2")
            await wait_for(pilot, lambda: screen.chart.query_one(BuiltPlot).built is not None, what="the chart")
            area = plot_area(screen.chart.query_one(BuiltPlot))
            for marker in (".", "o", "@", "-", "~"):  # train, test (subset), test (all pairs), hand-written, untrained
                assert marker in area, (marker, area)

    asyncio.run(scenario())


# ---- 2. the result stays on screen, with the hand-written prompt beside it, and can be copied ----------
def test_2_the_result_stays_with_each_baseline_and_says_when_the_learned_prompt_is_worse(monkeypatch):
    copied = []
    monkeypatch.setattr(PromptgradApp, "copy_to_clipboard", lambda self, text: copied.append(text))

    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.main_screen
            screen.replay(finished_events(learned=2.0, hand=3.7), live=True)
            await pilot.pause()
            strip = " ".join(str(screen.results.render()).split())  # a table: columns padded with spaces
            assert screen.results.display and "learned 2.000" in strip and "' antonyms' 3.700" in strip
            assert "learned -1.700" in strip and "untrained 4.700" in strip
            await wait_for(pilot, lambda: not app.query("Toast"), 30, "the finished toast to expire")  # the strip stays
            assert screen.results.display and "learned 2.000" in " ".join(str(screen.results.render()).split())
            screen.reset_panes()
            screen.replay(finished_events(learned=4.0, hand=3.7)[:-1], live=True)
            screen.replay(
                [
                    HardPromptFound(12, [1, 2], ["a", "b"], " or versa;", 4.0, 9.0),
                    finished_events(learned=4.0, hand=3.7)[-1],
                ],
                live=True,
            )
            await pilot.pause()
            strip = " ".join(str(screen.results.render()).split())
            assert "' antonyms' 3.700 5.0% WORSE by 0.300" in strip and "' or versa;'" in strip
            await pilot.press("f4")
            assert copied == [" or versa;"]  # a hard prompt: its text, to paste anywhere

    asyncio.run(scenario())


def test_2_a_hand_written_wording_is_whole_where_the_strip_has_room_and_cut_only_at_80_columns():
    wording = " words with the opposite meaning, one per line:"
    events = finished_events()
    events.insert(-1, Evaluation(0, "hand-written", 3.1, 0.1, 10, None, wording))

    async def scenario(width: int) -> str:
        app = PromptgradApp()
        async with app.run_test(size=(width, 30)) as pilot:
            screen = app.main_screen
            screen.replay(events, live=True)
            await pilot.pause()
            rows = str(screen.results.render()).splitlines()
            assert max(map(len, rows)) <= screen.results.size.width  # nothing runs off the strip
            return "\n".join(rows)

    assert repr(wording) in asyncio.run(scenario(160))
    narrow = asyncio.run(scenario(80))
    assert repr(wording) not in narrow and "hand-written ' words" in narrow and "…" in narrow


# ---- 3. every phase counted; the first step soon; the ETA includes the evaluations to come -------------
def test_3_phases_show_a_count_and_the_first_step_comes_first(tiny_config, monkeypatch):
    from promptgrad_tui.widgets.status import StatusLine

    lines = []  # the status line after each event it was given: every state it went through
    apply = StatusLine.apply
    monkeypatch.setattr(
        StatusLine, "apply", lambda self, event: (apply(self, event), lines.append(str(self.line(100))))
    )

    async def scenario():
        app = PromptgradApp(tiny_config.replace(steps=8, eval_every=4, eval_size=8, name="phases"))
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.main_screen
            started = time.monotonic()
            await pilot.press("ctrl+r")
            first_step = None
            while screen.running or first_step is None:
                if first_step is None and screen.status.step >= 1:
                    first_step = time.monotonic() - started
                await pilot.pause(0.02)
            assert first_step is not None and first_step < 15
            assert any("reading out the prompt" in line and "/3" in line and "step " in line for line in lines), lines
            assert any("scoring the" in line and "/6" in line for line in lines)

    asyncio.run(scenario())


# ---- 4. the chart refits when the terminal is resized -----------------------------------------------------
def test_4_the_plot_follows_the_terminal_when_it_is_resized():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            screen.replay(finished_events(), live=False)
            await pilot.press("alt+2")
            plot = screen.chart.query_one(BuiltPlot)
            await wait_for(pilot, lambda: plot.built is not None, what="the chart")
            narrow = max(len(row) for row in plot.built.plain.splitlines())
            await pilot.resize_terminal(160, 48)
            await wait_for(
                pilot,
                lambda: max(len(row) for row in plot.built.plain.splitlines()) > narrow + 20,
                timeout=10,
                what="the chart to refit",
            )
            assert max(len(row) for row in plot.built.plain.splitlines()) == plot.size.width

    asyncio.run(scenario())


# ---- 5. keys you can trust -------------------------------------------------------------------------------
def test_5_quick_ctrl_n_bursts_end_on_the_right_pane_and_1_to_4_jump_to_one():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            names = ("config", "chart", "predictions", "nearest")
            for burst in range(3):  # bursts of 20, 19 and 18 presses
                before = names.index(screen.pane)
                for _ in range(20 - burst % 3):
                    await pilot.press("ctrl+n")
                    await pilot.pause(0.05)
                await pilot.pause(0.2)
                assert screen.pane == names[(before + 20 - burst % 3) % 4], burst
                assert screen.query_one(f"#{screen.pane}") in (app.focused, *app.focused.ancestors)
            for n, name in enumerate(names, 1):
                await pilot.press(f"alt+{n}")
                await pilot.pause(0.1)
                assert screen.pane == name
            await pilot.press("2")  # outside a text field the digit alone jumps (the cursor is in the nearest table)
            await pilot.pause(0.1)
            assert screen.pane == "chart"

    asyncio.run(scenario())


def test_5_keys_off_during_a_run_say_why_q_asks_and_tab_never_stops_where_nothing_shows(tiny_config):
    async def scenario():
        app = PromptgradApp(tiny_config.replace(steps=5000, eval_every=0, name="keys"))
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            stops = []
            for _ in range(60):  # every focus stop shows a cursor: a field, a table, the chart, the probe box
                await pilot.press("tab")  # (at launch nothing has the cursor: the first tab gives it to the form)
                stops.append(app.focused)
            assert not [w for w in stops if isinstance(w, ConfigForm) or w.id == "pane-tabs"]
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: screen.status.step >= 1, what="the run to start")
            await pilot.press("alt+2")
            for key in ("ctrl+g", "ctrl+b", "ctrl+r"):
                before = len(app.messages)
                await pilot.press(key)
                await pilot.pause(0.1)
                assert any("waits until the run has ended" in m.text for m in app.messages[before:]), key
            await pilot.press("ctrl+o")  # the browser opens mid-run: overlaying is safe
            assert type(app.screen).__name__ == "RunBrowser"
            await pilot.press("escape")
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmScreen)  # q during a run asks
            await pilot.press("enter")  # enter is no
            await pilot.pause(0.2)
            assert screen.running and not isinstance(app.screen, ConfirmScreen)
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not screen.running, what="the run to stop")

    asyncio.run(scenario())


# ---- 6. the probe answers on an opened, finished run (and with an overlaid run's prompt) ------------------
def test_6_the_probe_loads_the_model_of_an_opened_run_on_demand(tiny_config):
    for name, seed in (("first", 1), ("second", 2)):
        assert list(train(tiny_config.replace(name=name, seed=seed, steps=3)))[-1].kind == "finished"
    runs = Path(tiny_config.machine.runs_dir)

    async def scenario():
        app = PromptgradApp(run_dir=str(runs / "first"))
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            screen.compare((str(runs / "second"),))
            await pilot.press("f2")
            await pilot.pause()
            await pilot.press(*"hot", "enter")
            answer = screen.predictions.probe.query_one("#probe-answer")
            await wait_for(pilot, lambda: "learned:" in str(answer.render()), timeout=60, what="the answer")
            text = str(answer.render())
            assert "hand-written:" in text and "second:" in text and "prompt of step 3" in text

    asyncio.run(scenario())


# ---- 7. the chart at 80 columns: legend entries whole, whole-number steps, series by key ----------------
def test_7_legend_entries_stay_whole_steps_are_whole_numbers_and_series_toggle():
    entries = [
        Text(f"{m * 2} {label}") for m, label in (("x", "train"), ("o", "test (subset)"), ("@", "test (all pairs)"))
    ]
    lines = legend_lines(entries, 24).plain.splitlines()
    assert all(any(line.startswith(e.plain) or f"  {e.plain}" in line for line in lines) for e in entries)
    for right, width in ((12, 70), (18, 30), (100, 78), (7, 200), (1, 10)):
        ticks = step_ticks(right, width)
        assert (
            all(isinstance(t, int) for t in ticks)
            and ticks[0] == 0
            and ticks[-1] == right
            and ticks == sorted(set(ticks))
        )

    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            screen.replay(finished_events(steps=12), live=False)
            screen.chart.set_overlays(
                {
                    "short": __import__("promptgrad_tui.widgets.loss_chart", fromlist=["Curves"]).Curves.of(
                        finished_events(steps=6)
                    )
                }
            )
            await pilot.press("alt+2")
            plot = screen.chart.query_one(BuiltPlot)
            await wait_for(pilot, lambda: plot.built is not None, what="the chart")
            axis = plot.built.plain.splitlines()[-2]
            assert axis.split() == [str(t) for t in step_ticks(12, plot.size.width)]  # whole steps, to 12, not 18
            await pilot.press("t")  # the chart has the cursor: t switches the training loss off
            await wait_for(
                pilot, lambda: "(t off)" in str(screen.chart.query_one(".legend").render()), what="the toggle"
            )
            await pilot.pause(1.2)
            assert "." not in plot_area(plot).replace("⡀", "")

    asyncio.run(scenario())


# ---- 8. small things ---------------------------------------------------------------------------------------
def test_8_small_things(tiny_config):
    async def scenario():
        app = PromptgradApp(tiny_config.replace(data="/nonexistent/pairs.jsonl", name="flagged"))
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            form = screen.form
            name_width = form.config_fields["checkpoint_minutes"].query_one(".field-name").size.width
            assert name_width > len("checkpoint_minutes")  # a space between every name and its value
            assert screen.nearest.fixed_columns == 1  # the position column stays when the table scrolls
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: screen.query_one("#failure").display, what="the failure")
            assert form.config_fields["data"].has_class("-invalid")
            form.config_fields["steps"].value = "7"  # editing another field keeps the run's flag
            await pilot.pause()
            assert form.config_fields["data"].has_class("-invalid") and "field data is flagged" in str(
                screen.query_one("#failure").render()
            )
            form.config_fields["data"].value = tiny_config.problem.data  # editing it clears it
            await pilot.pause()
            assert not form.config_fields["data"].has_class("-invalid")
            form.config_fields["name"].value = "locked"
            form.config_fields["steps"].value = "5000"
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: screen.status.step >= 1, what="the run to start")
            await pilot.pause(0.3)
            assert form.size.width < screen.size.width / 4  # the locked form gives the tables room
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not screen.running, what="the run to stop")
            line = str(screen.status.line())
            assert "stopped │ locked" in line and "ETA" not in line
            assert form.size.width >= 45

    asyncio.run(scenario())


# ---- 9. device use in the status line ------------------------------------------------------------------------
def test_9_the_status_line_shows_device_use():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            screen.replay(finished_events(), live=False)
            await wait_for(pilot, lambda: "RSS" in str(screen.status.line(160)), timeout=10, what="device use")
            line = lambda: str(screen.status.line(160))  # noqa: E731
            await wait_for(pilot, lambda: "CPU " in line() and "%" in line(), 10, "a second sample, with a CPU share")

    asyncio.run(scenario())
