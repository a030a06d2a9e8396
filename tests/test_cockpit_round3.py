"""The cockpit, round 3 (issue 29): one Pilot test (or more) per numbered item, each driving promptgrad-tui
headlessly on the tiny GPT-2 or on a run's events replayed; and snapshots at 60x20, 80x24, 100x30 and
160x48 checked for a wrapped frame, a word cut in the middle and a Predictions column too narrow to read."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from conftest import wait_for

from promptgrad.config import TrainConfig
from promptgrad.events import Evaluation, Finished, Prediction, Predictions, Started, Step
from promptgrad.training import train
from promptgrad_tui.app import PromptgradApp
from promptgrad_tui.browser import RunBrowser
from promptgrad_tui.dialogs import ConfirmScreen
from textual.widgets import DataTable, Input

from test_cockpit import finished_events


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: the machine is shared


def run_async(coroutine) -> None:
    asyncio.run(coroutine)


def finished_run(config: TrainConfig) -> Path:
    events = list(train(config))
    assert isinstance(events[-1], Finished), events[-1]
    return Path(config.machine.runs_dir) / config.machine.name


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

    run_async(scenario())


def test_3_the_empty_form_at_launch_has_no_field_with_the_cursor():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.focused is None
            await pilot.press("2")
            assert app.main_screen.pane == "chart"

    run_async(scenario())
