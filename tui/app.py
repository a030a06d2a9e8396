"""promptgrad-tui: watch and steer a prompt being learned, from the keyboard, over SSH.

    promptgrad-tui                      the form, pre-filled with the defaults; ctrl+r starts the run
    promptgrad-tui runs/NAME            view a run folder (followed while another process writes it)
    promptgrad-tui --config run.toml    pre-fill the form from a config file

The main screen has four panes: configuration, loss chart, predictions, nearest tokens; side by side on
a wide terminal, one at a time with tabs on a narrow one. Training runs in a thread worker that
iterates the core's `train()` and posts its events as `RunEvents`; the worker never touches a widget,
and the screen redraws the chart and the status line on a timer, not per event.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Tab, Tabs
from textual.worker import Worker, WorkerState, get_current_worker

from promptgrad.cli import quiet_libraries
from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import (Evaluation, Event, Failed, Finished, HardPromptFound, NearestTokens, Predictions,
                               Started, Step)
from promptgrad.run_folder import PROMPT, RunFolder
from promptgrad.signals import on_signals
from promptgrad.training import train
from promptgrad_tui.dialogs import ErrorScreen, HelpScreen, PathPrompt
from promptgrad_tui.messages import RunEvents
from promptgrad_tui.widgets.config_form import ConfigForm
from promptgrad_tui.widgets.loss_chart import LossChart
from promptgrad_tui.widgets.nearest import NearestTable
from promptgrad_tui.widgets.predictions import PredictionsTable
from promptgrad_tui.widgets.status import StatusLine

PANES = {"config": "Config", "chart": "Loss", "predictions": "Predictions", "nearest": "Nearest"}
REDRAW_SECONDS = 0.3  # chart and status line redraw at most this often
POST_SECONDS = 0.25  # the worker batches Step events arriving faster than this into one message
FOLLOW_SECONDS = 1.0  # how often a viewed run folder is checked for new events


class MainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "start", "Start"),
        Binding("ctrl+t", "stop", "Stop"),
        Binding("ctrl+g", "resume", "Resume"),
        Binding("ctrl+o", "open_run", "Open run"),
        Binding("ctrl+y", "export", "Export"),
        Binding("ctrl+n", "next_pane", "Pane"),
        Binding("f1", "help", "Help"),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    running = reactive(False, bindings=True)  # a training worker is alive; Start waits for it to end
    run_dir: reactive[str | None] = reactive(None, bindings=True)  # the run shown: trained here or viewed
    pane = reactive("config")  # the pane shown on a narrow terminal, and the one ctrl+n moves on from

    def __init__(self, config: TrainConfig | None = None, view: str | None = None) -> None:
        super().__init__()
        self.initial_config, self.initial_view = config, view
        self.stop_event = threading.Event()
        self.training_ended = threading.Event()
        self.training_ended.set()
        self.quit_when_stopped = False
        self.followed: RunFolder | None = None
        self.followed_count = 0
        self.followed_stamp: tuple[int, int] | None = None
        self.follow_timer = None

    def compose(self) -> ComposeResult:
        yield Tabs(*(Tab(title, id=f"tab-{pane}") for pane, title in PANES.items()), id="pane-tabs")
        with Container(id="panes"):
            yield ConfigForm(self.initial_config, id="config", classes="pane")
            yield LossChart(id="chart", classes="pane")
            yield PredictionsTable(id="predictions", classes="pane")
            yield NearestTable(id="nearest", classes="pane")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.form.check()
        if self.initial_view:
            self.view_run(self.initial_view)
        self.show_pane(self.pane)  # the cursor starts in the form's first field, on any screen size
        self.redraw()
        self.set_interval(REDRAW_SECONDS, self.redraw)

    def on_unmount(self) -> None:
        self.stop_event.set()  # however the app ends, a run still going finishes its step and saves

    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    @property
    def chart(self) -> LossChart:
        return self.query_one(LossChart)

    @property
    def predictions(self) -> PredictionsTable:
        return self.query_one(PredictionsTable)

    @property
    def nearest(self) -> NearestTable:
        return self.query_one(NearestTable)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    # ---- which keys apply now -------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return None if self.running else True  # shown greyed out until the run has really ended
        if action == "stop":
            return (None if self.stop_event.is_set() else True) if self.running else False
        if action in ("resume", "open_run"):
            return not self.running
        if action == "export":
            return self.run_dir is not None
        return True

    # ---- panes ----------------------------------------------------------------------------------
    def watch_pane(self, pane: str) -> None:
        for name in PANES:
            self.query_one(f"#{name}").set_class(name == pane, "-current")
        self.query_one(Tabs).active = f"tab-{pane}"

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is not None and event.tab.id:
            self.pane = event.tab.id.removeprefix("tab-")

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Tab moving the cursor into another pane makes that pane the current one (for ctrl+n)."""
        for name in PANES:
            if self.query_one(f"#{name}") in (event.widget, *event.widget.ancestors):
                self.pane = name

    def show_pane(self, pane: str, focus: bool = True) -> None:
        self.pane = pane
        if focus:
            widget = self.query_one(f"#{pane}")
            if isinstance(widget, ConfigForm):
                widget = next(iter(widget.config_fields.values())).control
            self.call_after_refresh(widget.focus)

    def action_next_pane(self) -> None:
        names = list(PANES)
        self.show_pane(names[(names.index(self.pane) + 1) % len(names)])

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    # ---- training -------------------------------------------------------------------------------
    def action_start(self) -> None:
        if self.running:
            return
        config = self.form.check()
        if config is None:
            self.notify(str(self.form.error), title="Fix the configuration first", severity="error")
            self.show_pane("config", focus=False)
            self.form.focus_error()
            return
        self.reset_panes(config.name)
        self.begin(config, resume=None)

    def begin(self, config: TrainConfig, resume: str | None) -> None:
        self.stop_following()
        self.stop_event = threading.Event()
        self.running = True
        self.status.set_phase("starting")
        if self.has_class("-narrow"):
            self.show_pane("chart")
        self.train_in_thread(config, resume, self.stop_event)

    @work(thread=True, exclusive=True, group="train", name="train", exit_on_error=False)
    def train_in_thread(self, config: TrainConfig, resume: str | None, stop: threading.Event) -> None:
        worker = get_current_worker()
        batch: list[Event] = []
        posted = time.monotonic()
        self.training_ended.clear()
        try:
            for event in train(config, stop, resume=resume):
                if worker.is_cancelled:  # the app is closing: finish the step and save, as a stop does
                    stop.set()
                batch.append(event)
                if not isinstance(event, Step) or time.monotonic() - posted >= POST_SECONDS:
                    self.post_message(RunEvents(batch, live=True))
                    batch, posted = [], time.monotonic()
            if batch:
                self.post_message(RunEvents(batch, live=True))
        finally:
            self.training_ended.set()  # main() waits for this after the app has closed

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "train" or not event.worker.is_finished:
            return
        self.running = False
        if event.state == WorkerState.ERROR:  # train() reports its own errors; this is a bug here
            error = event.worker.error
            text = "".join(traceback.format_exception(error))
            self.app.push_screen(ErrorScreen("The training thread crashed", f"{type(error).__name__}: {error}", text))
            self.status.set_phase("crashed")
        if self.quit_when_stopped:
            self.app.exit()

    def action_stop(self) -> None:
        if self.running and not self.stop_event.is_set():
            self.stop_event.set()
            self.status.set_phase("stopping")
            self.refresh_bindings()
            self.notify("Stopping: finishing this step and saving a checkpoint")

    def action_resume(self) -> None:
        prompt = PathPrompt("Resume a run", "a run folder with a checkpoint.pt", self.run_dir or "runs/")
        self.app.push_screen(prompt, self.resume_run)

    def resume_run(self, path: str | None) -> None:
        if not path or self.running:
            return
        try:
            folder = RunFolder.open(path)
            config = folder.config()
        except UserError as e:
            self.notify(str(e), title="Cannot resume", severity="error")
            return
        self.stop_following()
        self.reset_panes(folder.path.name)
        self.form.load(config)
        self.replay(folder.events(), live=False)  # the history so far; the worker continues it
        self.begin(config, resume=str(folder.path))

    # ---- viewing a run folder -------------------------------------------------------------------
    def action_open_run(self) -> None:
        prompt = PathPrompt("Open a run folder", "its curves and tables are shown, and followed while it is written",
                            self.run_dir or "runs/")
        self.app.push_screen(prompt, self.view_run)

    def view_run(self, path: str | None) -> None:
        if not path or self.running:
            return
        try:
            folder = RunFolder.open(path)
        except UserError as e:
            self.notify(str(e), title="Cannot open", severity="error")
            return
        self.stop_following()
        self.reset_panes(folder.path.name)
        try:
            self.form.load(folder.config())
        except UserError:
            pass  # a config from another version: the curves are still worth showing
        self.run_dir = str(folder.path)
        self.status.set_phase("viewing")
        self.followed, self.followed_count, self.followed_stamp = folder, 0, None
        self.follow()
        self.follow_timer = self.set_interval(FOLLOW_SECONDS, self.follow)

    def follow(self) -> None:
        """Show the events appended to the viewed run's metrics.jsonl since the last look."""
        if self.followed is None:
            return
        try:
            stat = (self.followed.path / "metrics.jsonl").stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self.followed_stamp:
            return
        self.followed_stamp = stamp
        events = self.followed.events()
        new, self.followed_count = events[self.followed_count :], len(events)
        self.replay(new, live=False)

    def stop_following(self) -> None:
        if self.follow_timer is not None:
            self.follow_timer.stop()
        self.followed, self.follow_timer = None, None

    # ---- events to panes ------------------------------------------------------------------------
    def on_run_events(self, message: RunEvents) -> None:
        self.replay(message.events, message.live)

    def replay(self, events: list[Event], live: bool) -> None:
        for event in events:
            self.apply(event, live)

    def apply(self, event: Event, live: bool) -> None:
        self.status.apply(event)
        if isinstance(event, Started):
            self.run_dir = event.run_dir
            self.chart.total_steps = event.total_steps
            if event.start_step:  # resumed: steps logged after the checkpoint are done again
                self.chart.truncate(event.start_step)
            self.status.set_phase("running" if live else "viewing")
        elif isinstance(event, Step):
            self.chart.add_step(event.step, event.loss)
        elif isinstance(event, Evaluation):
            self.chart.add_evaluation(event)
        elif isinstance(event, Predictions):
            self.predictions.show(event)
        elif isinstance(event, NearestTokens):
            self.nearest.show(event)
        elif isinstance(event, HardPromptFound):
            self.nearest.show_hard_prompt(event)
        elif isinstance(event, Finished):
            self.status.set_phase(("stopped" if event.stopped else "finished") + ("" if live else " (viewing)"))
            if live and event.stopped:
                self.notify(f"Stopped at step {event.step}; checkpoint saved in {self.run_dir} (ctrl+g resumes it)")
            elif live:
                score = "" if event.test_loss is None else (
                    f"test loss {event.test_loss:.4f}, accuracy {event.accuracy:.1%}; ")
                self.notify(f"{score}prompt saved to {event.prompt_path}", title="Run finished", timeout=10)
        elif isinstance(event, Failed):
            self.status.set_phase("failed" + ("" if live else " (viewing)"))
            if live and event.traceback:  # a bug: the whole traceback, kept on screen until dismissed
                self.app.push_screen(ErrorScreen("The run failed: a bug in promptgrad", event.message, event.traceback))
            elif live:
                self.notify(event.message, title="Run failed", severity="error", timeout=15)
        # other kinds (a newer core may add some) are not shown

    def reset_panes(self, name: str = "") -> None:
        self.chart.reset()
        self.predictions.reset()
        self.nearest.reset()
        self.status.reset("", name)
        self.run_dir = None

    def redraw(self) -> None:
        self.chart.redraw()
        self.status.redraw()

    # ---- export ---------------------------------------------------------------------------------
    def action_export(self) -> None:
        if self.run_dir is None:
            return
        source = Path(self.run_dir) / PROMPT
        prompt = PathPrompt("Export the learned prompt",
                            f"copy {source} to this file or folder; empty: show where it is")
        self.app.push_screen(prompt, lambda target: self.export_prompt(source, target))

    def export_prompt(self, source: Path, target: str | None) -> None:
        if target is None:
            return
        if not source.is_file():
            self.notify(f"{source} does not exist yet: a run writes it at each checkpoint and at the end",
                        title="No prompt to export", severity="error")
            return
        if not target:
            self.notify(f"The learned prompt is {source.resolve()}", title="Prompt", timeout=15)
            return
        destination = Path(target).expanduser()
        if destination.is_dir():
            destination = destination / f"{source.parent.name}-{PROMPT}"
        try:
            shutil.copyfile(source, destination)
        except OSError as e:
            self.notify(str(e), title="Export failed", severity="error")
            return
        self.notify(f"Exported the prompt to {destination}", title="Prompt exported")


class PromptgradApp(App):
    CSS_PATH = "promptgrad.tcss"
    TITLE = "promptgrad"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, config: TrainConfig | None = None, run_dir: str | None = None) -> None:
        super().__init__()
        self.main_screen = MainScreen(config, run_dir)

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def on_mount(self) -> None:
        self.loop = asyncio.get_running_loop()

    def on_stop_signal(self, signum: int) -> None:
        """SIGTERM (kill, a scheduler) or SIGHUP (the SSH session dropped; the terminal is already detached):
        stop the run the way ctrl+t does, finish the step and save, then quit. Called by the signal
        handler on the main thread, so it only hands the work to the event loop."""
        self.main_screen.stop_event.set()
        loop = getattr(self, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self.run_worker(self.action_quit(), name="quit on signal"))

    async def action_quit(self) -> None:
        """Quitting during a run stops it (finish the step, save a checkpoint) and then quits."""
        screen = self.main_screen
        if screen.running and not screen.quit_when_stopped:
            screen.quit_when_stopped = True
            screen.action_stop()
            self.notify("Quitting once the run has finished its step and saved a checkpoint")
            return
        screen.stop_event.set()
        self.exit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promptgrad-tui", description="Watch and steer a prompt being learned.")
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a run folder to view (followed while it is written)")
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings to pre-fill the form with")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.load(Path(args.config)) if args.config else None
        if args.run_dir:
            RunFolder.open(args.run_dir)
    except UserError as e:
        print(f"promptgrad-tui: error: {e}", file=sys.stderr)
        return 2
    quiet_libraries()  # a library writing to the terminal would scribble over the screen
    app = PromptgradApp(config, args.run_dir)
    # handlers of our own, not the event loop's: those fall back to the default (die) when the loop
    # closes, and a dropped SSH session can deliver a second SIGHUP while the run is still saving
    with on_signals(app.on_stop_signal, (signal.SIGTERM, signal.SIGHUP)):
        app.run()
        if not app.main_screen.training_ended.is_set():  # closed mid-run: the run finishes its step and saves
            app.main_screen.stop_event.set()
            print("promptgrad-tui: waiting for the run to finish its step and save a checkpoint...", file=sys.stderr)
            app.main_screen.training_ended.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
