"""promptgrad-tui driven headlessly with App.run_test() and Pilot, on the tiny GPT-2; plus snapshots of
the main screen and a check that the core never imports the UI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from promptgrad.config import TrainConfig
from promptgrad.events import Finished
from promptgrad.run_folder import RunFolder
from promptgrad.training import train
from promptgrad_tui.app import PromptgradApp, main
from promptgrad_tui.dialogs import PathPrompt
from textual.widgets import Input


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The machine is shared: one thread makes the tiny model no slower and leaves a core free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


async def wait_for(pilot, condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def notifications(app) -> list:
    return list(app._notifications)


def run_async(coroutine) -> None:
    asyncio.run(coroutine)


def finished_run(config: TrainConfig) -> Path:
    events = list(train(config))
    assert isinstance(events[-1], Finished), events[-1]
    return Path(config.runs_dir) / config.name


# ---- the core stays free of the UI --------------------------------------------------------------
def test_core_never_imports_textual(tiny_config, tmp_path):
    tiny_config.replace(steps=2, name="core-only").save(tmp_path / "core-only.toml")
    code = (
        "import sys, promptgrad.training, promptgrad.cli, promptgrad.run_folder\n"
        "from promptgrad.config import TrainConfig\n"
        f"config = TrainConfig.load({str(tmp_path / 'core-only.toml')!r})\n"
        "events = list(promptgrad.training.train(config))\n"
        "assert events[-1].kind == 'finished', events[-1]\n"
        "ui = sorted(m for m in sys.modules if m.startswith(('textual', 'plotext', 'promptgrad_tui')))\n"
        "assert not ui, ui\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# ---- training from the keyboard -----------------------------------------------------------------
def test_start_see_panes_stop_and_resume_by_keys(tiny_config):
    config = tiny_config.replace(steps=5000, eval_every=2, checkpoint_every=0)  # only the stop saves
    run_dir = Path(config.runs_dir) / config.name

    async def scenario():
        app = PromptgradApp(config)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            assert screen.check_action("stop", ()) is False  # nothing to stop yet
            await pilot.press("ctrl+r")
            assert screen.running and screen.check_action("start", ()) is None  # greyed out while it runs
            await wait_for(pilot, lambda: screen.predictions.row_count and screen.nearest.row_count
                           and screen.chart.test_steps and len(screen.chart.steps) >= 3, what="panes to fill")
            await pilot.press("ctrl+r")  # ignored: one run at a time
            await wait_for(pilot, lambda: not screen.chart.stale, what="chart redraw")
            assert screen.nearest.row_count == config.prompt_len
            assert screen.predictions.row_count == config.num_predictions
            assert screen.chart.hand_written is not None
            assert "running" in str(screen.status.line()) and f"/{config.steps}" in str(screen.status.line())

            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not screen.running, what="the run to stop")
            assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "prompt.safetensors").is_file()
            last = RunFolder.open(run_dir).events()[-1]
            assert isinstance(last, Finished) and last.stopped and 0 < last.step < config.steps
            assert "stopped" in str(screen.status.line())
            assert screen.check_action("start", ()) is True

            await pilot.press("ctrl+g")  # resume: the prompt offers the run just stopped
            assert isinstance(app.screen, PathPrompt)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.chart.steps and screen.chart.steps[-1] > last.step + 1,
                           what="the resumed run to go on")
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not screen.running, what="the resumed run to stop")
            events = RunFolder.open(run_dir).events()
            assert [e.start_step for e in events if e.kind == "started"] == [0, last.step]
            assert events[-1].kind == "finished" and events[-1].step > last.step

    run_async(scenario())


def test_quit_during_a_run_stops_it_cleanly(tiny_config):
    config = tiny_config.replace(steps=5000, checkpoint_every=0)

    async def scenario():
        app = PromptgradApp(config)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.main_screen.chart.steps, what="a step")
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: not app.main_screen.running, what="the run to stop")
        assert app.return_code == 0

    run_async(scenario())
    last = RunFolder.open(Path(config.runs_dir) / config.name).events()[-1]
    assert isinstance(last, Finished) and last.stopped


# ---- the form -----------------------------------------------------------------------------------
def test_invalid_value_blocks_start_with_its_message(tiny_config):
    async def scenario():
        app = PromptgradApp(tiny_config)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            field = screen.form.config_fields["prompt_len"]
            await pilot.pause()  # the cursor lands in the first field after the first refresh
            field.control.focus()
            await pilot.press("end", "ctrl+u", "0")
            assert field.has_class("-invalid")
            message = "prompt_len must be at least 1, got 0"
            assert str(field.query_one(".field-error").render()) == message
            await pilot.press("ctrl+r")
            assert not screen.running
            assert any(n.message == message and n.severity == "error" for n in notifications(app))
            assert not Path(tiny_config.runs_dir).exists()

            await pilot.press("4")  # fixed: the flag goes, and a type error is flagged the same way
            assert not field.has_class("-invalid")
            screen.form.config_fields["lr"].value = "fast"
            await pilot.pause()
            assert screen.form.config_fields["lr"].has_class("-invalid")
            assert str(screen.form.error) == "lr must be float, got 'fast'"

    run_async(scenario())


def test_form_covers_every_setting_and_panes_switch_at_80x24():
    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            assert screen.form.check() == TrainConfig()
            assert set(screen.form.config_fields) == set(TrainConfig().to_dict())
            await pilot.pause()
            assert screen.form.region.height and not screen.chart.region.height  # one pane at a time
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert screen.pane == "chart" and screen.chart.region.height and not screen.form.region.height
            assert app.focused is screen.chart

    run_async(scenario())


# ---- failures and viewing -----------------------------------------------------------------------
def test_failing_run_notifies_and_app_stays_usable(tiny_config, tmp_path):
    config = tiny_config.replace(data=str(tmp_path / "missing.jsonl"))

    async def scenario():
        app = PromptgradApp(config)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not screen.running, what="the run to fail")
            errors = [n for n in notifications(app) if n.severity == "error"]
            assert errors and "missing.jsonl" in errors[-1].message
            assert "failed" in str(screen.status.line())

            screen.form.config_fields["data"].value = tiny_config.data
            screen.form.config_fields["name"].value = "second"
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not screen.running, what="the second run")
            assert "finished" in str(screen.status.line())
            assert (Path(tiny_config.runs_dir) / "second" / "prompt.safetensors").is_file()

    run_async(scenario())


def test_a_pickle_payload_in_a_checkpoint_does_not_run_on_resume(tiny_config, tmp_path):
    import threading

    from test_run_folder import Payload

    stop = threading.Event()
    for event in train(tiny_config.replace(checkpoint_every=0), stop):
        stop.set()
    run_dir = Path(tiny_config.runs_dir) / tiny_config.name
    marker = tmp_path / "pwned"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    torch.save({**state, "rng": Payload(marker)}, run_dir / "checkpoint.pt")

    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.main_screen
            await pilot.press("ctrl+g")
            app.screen.query_one("#path").value = str(run_dir)
            await pilot.press("enter")
            await wait_for(pilot, lambda: "failed" in str(screen.status.line()), what="the resume to fail")
            errors = [n for n in notifications(app) if n.severity == "error"]
            assert errors and "holds more than tensors and plain data" in errors[-1].message

    run_async(scenario())
    assert not marker.exists()


def test_open_run_folder_by_keys_and_export(tiny_config, tmp_path):
    run_dir = finished_run(tiny_config)

    async def scenario():
        app = PromptgradApp()
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.main_screen
            assert screen.check_action("export", ()) is False
            await pilot.press("ctrl+o")
            app.screen.query_one("#path").value = str(run_dir)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.nearest.row_count, what="the run to show")
            assert len(screen.chart.steps) == tiny_config.steps and screen.chart.test_steps
            assert screen.predictions.row_count == tiny_config.num_predictions
            assert screen.form.config_fields["model"].value == tiny_config.model
            assert "finished" in str(screen.status.line())

            await pilot.press("ctrl+y")
            app.screen.query_one("#path").value = str(tmp_path / "exported.safetensors")
            await pilot.press("enter")
            assert (tmp_path / "exported.safetensors").read_bytes() == (run_dir / "prompt.safetensors").read_bytes()

    run_async(scenario())


def test_viewing_follows_a_run_being_written(tiny_config, tmp_path):
    lines = (finished_run(tiny_config) / "metrics.jsonl").read_text().splitlines(keepends=True)
    growing = tmp_path / "growing"
    growing.mkdir()
    (growing / "config.toml").write_text((Path(tiny_config.runs_dir) / tiny_config.name / "config.toml").read_text())
    events = [json.loads(line) for line in lines]
    cut = next(i for i, e in enumerate(events) if e["event"] == "step" and e["step"] == 3)
    (growing / "metrics.jsonl").write_text("".join(lines[:cut]) + lines[cut][:20])  # up to step 2, and half a line

    async def scenario():
        app = PromptgradApp(run_dir=str(growing))
        async with app.run_test(size=(80, 24)) as pilot:
            chart = app.main_screen.chart
            await wait_for(pilot, lambda: chart.steps, what="the first events")
            assert chart.steps == [1, 2]
            (growing / "metrics.jsonl").write_text("".join(lines))
            await wait_for(pilot, lambda: len(chart.steps) == tiny_config.steps, timeout=10, what="the poll")
            assert "finished" in str(app.main_screen.status.line())

    run_async(scenario())


# ---- the command line ---------------------------------------------------------------------------
def test_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("prompt_len = 0\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prompt_len must be at least 1" in err[0]
    assert main([str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_config_file_prefills_the_form(tiny_config, tmp_path):
    path = tmp_path / "run.toml"
    tiny_config = tiny_config.replace(readable_only=False, method="pez")  # a bool and a choice off their defaults
    tiny_config.save(path)

    async def scenario():
        app = PromptgradApp(TrainConfig.load(path))
        async with app.run_test(size=(80, 24)):
            assert app.main_screen.form.check() == tiny_config

    run_async(scenario())


# ---- what the main screen looks like ------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen_snapshot(snap_compare, size):
    async def steady_cursor(pilot):
        await pilot.pause()  # the cursor lands in the first field after the first refresh; then stop its blink
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False

    assert snap_compare(PromptgradApp(), terminal_size=size, run_before=steady_cursor)
