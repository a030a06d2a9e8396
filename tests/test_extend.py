"""Extending a finished run in the TUI (ctrl+g says its learning rate is 0 and offers a new peak or a
branch), a task picked after a branch (f3 drops another task's init run:), and a learned prompt that
ends worse than its start (flagged in the results strip and the command line's last lines)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from helpers import wait_for
from rich.console import Console
from textual.widgets import Input, OptionList, Static

from promptgrad.cli.progress import TrainingReport
from promptgrad.events import Evaluation, Extended, Finished, Started, Step
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train
from promptgrad_tui.app import PromptgradApp
from promptgrad_tui.dialogs import StepsDialog
from promptgrad_tui.task_picker import TaskPicker

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: the machine is shared


def finished_run(config) -> Path:
    events = list(train(config))
    assert isinstance(events[-1], Finished) and not events[-1].stopped, events[-1]
    return Path(config.machine.runs_dir) / config.machine.name


def said(screen) -> str:
    return " ".join(str(w.render()) for w in screen.query(Static))


# ---- ctrl+g on a finished run -----------------------------------------------------------------------
def test_extending_a_finished_run_says_its_lr_is_0_and_offers_a_new_peak_or_a_branch(tiny_config):
    run_dir = finished_run(tiny_config.replace(warmup_steps=1, checkpoint_every=0))  # cosine: lr 0 at step 6

    async def scenario():
        app = PromptgradApp(tiny_config.replace(name=""))
        async with app.run_test(size=(100, 40)) as pilot:
            screen = app.main_screen
            await pilot.press("ctrl+g", "enter")  # the only run
            dialog = app.screen
            assert isinstance(dialog, StepsDialog)
            assert "this run has finished: its learning rate is 0" in said(dialog).lower() and "branch" in said(dialog)
            assert dialog.query_one("#extend-lr", Input).value == "0.01"  # the run's own lr, suggested
            await pilot.press("ctrl+b")  # branch instead: the form starts a new run from its prompt
            assert not isinstance(app.screen, StepsDialog) and not screen.running
            init = screen.form.config_fields["init"].value
            assert init.startswith("run:") and Path(init[4:]).resolve() == run_dir.resolve()

            await pilot.press("ctrl+g", "enter")
            dialog = app.screen
            dialog.query_one("#steps", Input).value = "16"
            dialog.query_one("#extend-lr", Input).value = "11"
            await pilot.press("enter")  # a peak out of range: said in the dialog, nothing spent
            assert isinstance(app.screen, StepsDialog) and "at most 10" in str(
                dialog.query_one("#steps-error").render()
            )
            dialog.query_one("#extend-lr", Input).value = "0.02"
            await pilot.press("enter")
            await wait_for(
                pilot, lambda: not screen.running and "finished" in str(screen.status.line()), what="the extension"
            )
            assert screen.chart.steps == list(range(1, 17))
            assert any("a new peak of 0.02" in m.text for m in app.messages)

    asyncio.run(scenario())
    history = RunFolder.open(run_dir).events()
    assert [e for e in history if isinstance(e, Extended)] == [Extended(6, 6, 16, 0.02, warmup_steps=1, new_peak=True)]
    assert all(e.lr > 0 for e in history if isinstance(e, Step) and e.step > 6)


def test_resuming_a_stopped_run_asks_only_how_far(tiny_config):
    """An unfinished run keeps today's dialog: how far, the rate going on from where it is."""
    import threading

    stop = threading.Event()
    for event in train(tiny_config.replace(steps=50, checkpoint_every=0), stop):
        if isinstance(event, Step) and event.step == 2:
            stop.set()

    async def scenario():
        app = PromptgradApp(tiny_config.replace(name=""))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.press("ctrl+g", "enter")
            dialog = app.screen
            assert isinstance(dialog, StepsDialog) and not dialog.query("#extend-lr")
            assert "learning rate is 0" not in said(dialog)

    asyncio.run(scenario())


# ---- f3 after a branch ----------------------------------------------------------------------------
def test_picking_another_task_after_a_branch_drops_the_other_tasks_init(tiny_config):
    run_dir = finished_run(tiny_config.replace(task="antonyms", steps=2, checkpoint_every=0))

    async def scenario():
        app = PromptgradApp(tiny_config.replace(name=""))
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            fields = screen.form.config_fields
            fields["init"].value = f"run:{run_dir}"  # as ctrl+b leaves it
            for expected_init, task in ((f"run:{run_dir}", "antonyms"), ("random", "capitals")):
                await pilot.press("f3")
                assert isinstance(app.screen, TaskPicker)
                picker = app.screen.query_one(OptionList)
                picker.highlighted = next(
                    i for i in range(picker.option_count) if picker.get_option_at_index(i).id == task
                )
                await pilot.press("enter")
                await pilot.pause()
                assert fields["task"].value == task and fields["init"].value == expected_init, task
            assert any(
                f"init was run:{run_dir} (a prompt learned on task antonyms), now random" in m.text
                for m in app.messages
            )
            assert screen.form.check() is not None and screen.form.check().problem.init == "random"

    asyncio.run(scenario())


# ---- worse than its start ---------------------------------------------------------------------------
START, LEARNED = 2.179, 2.275  # the numbers: a branch that ended worse than the prompt it started from


def final_events(learned: float) -> list:
    return [
        Started("runs/b", "m", "cpu", "fp32", 40, 36, 60, 0, 10),
        Evaluation(60, "hand-written", 3.1, 0.05, 36, None, " antonyms", 3.0, 3.2, 0.01, 0.1),
        Evaluation(60, "untrained", START, 0.2, 36, None, "", 2.1, 2.25, 0.1, 0.3),
        Evaluation(60, "learned", learned, 0.18, 36, learned, "", learned - 0.07, learned + 0.07, 0.1, 0.3),
        Finished(60, False, learned, 0.18, "runs/b/prompt.safetensors"),
    ]


@pytest.mark.parametrize("learned, flagged", [(LEARNED, True), (2.0, False)])
def test_the_results_strip_flags_a_prompt_that_ends_worse_than_its_start(tiny_config, learned, flagged):
    async def scenario():
        app = PromptgradApp(tiny_config.replace(name=""))
        async with app.run_test(size=(100, 40)) as pilot:
            strip = app.main_screen.results
            app.main_screen.replay(final_events(learned), live=False)
            await pilot.pause()
            assert strip.display
            rows = {" ".join(line.split()[:1]): line for line in strip.text(100).plain.splitlines()}
            assert ("WORSE than its start by 0.096" in rows["untrained"]) is flagged, rows
            assert "WORSE than its start" not in rows["learned"]

    asyncio.run(scenario())


@pytest.mark.parametrize("learned, flagged", [(LEARNED, True), (2.0, False)])
def test_the_command_line_flags_a_prompt_that_ends_worse_than_its_start(learned, flagged):
    out = io.StringIO()
    report = TrainingReport(Console(file=out, width=200))
    for event in final_events(learned):
        report.show(event)
    last = out.getvalue().strip().splitlines()[-1]
    assert ("WORSE than its start: test loss 2.2750 against 2.1790" in last) is flagged, last
