"""promptgrad-tui: watch and steer a prompt being learned, from the keyboard, over SSH.

    promptgrad-tui                      the form, pre-filled with the defaults; ctrl+r starts the run
    promptgrad-tui runs/NAME            view a run folder (followed while another process writes it)
    promptgrad-tui --config run.toml    pre-fill the form from a config file

The main screen has four panes: configuration, loss chart, predictions (with the probe box), nearest
tokens; side by side on a wide terminal, one at a time with tabs on a narrow one. Training runs in a
thread worker (its torch work in a thread of its own, see torch_thread.py) that iterates the core's
`train()` and posts its events as `RunEvents`; the worker never touches a widget, and the screen
redraws the chart and the status line on a timer, not per event.
Every message the app shows is also kept in a log (ctrl+l).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Input, Static, Tab, Tabs
from textual.worker import Worker, WorkerState, get_current_worker

from promptgrad.quiet import quiet_libraries
from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import (Evaluation, Event, Extended, Failed, Finished, HardPromptFound, NearestTokens, ParetoFront,
                               Predictions, Progress, Reading, Started, Step)
from promptgrad.probe import Probe, ProbeAnswer
from promptgrad.files import atomic_write, read_bytes
from promptgrad.run_folder import METRICS, PROMPT, EventFollower, RunFolder, is_locked, summarize
from promptgrad.signals import on_signals
from promptgrad.training import train
from promptgrad_tui.browser import BrowserChoice, RunBrowser
from promptgrad_tui.dialogs import (ConfirmScreen, ErrorScreen, HelpScreen, LoggedMessage, MessageLogScreen, PathPrompt,
                                    StepsDialog)
from promptgrad_tui.messages import ProbeAnswered, RunEvents
from promptgrad_tui.torch_thread import in_own_thread
from promptgrad_tui.widgets.config_form import ConfigForm
from promptgrad_tui.widgets.key_bar import KeyBar
from promptgrad_tui.widgets.loss_chart import Curves, LossChart
from promptgrad_tui.widgets.nearest import NearestTable
from promptgrad_tui.widgets.predictions import PredictionsPane, ProbeAsked
from promptgrad_tui.widgets.status import StatusLine

PANES = {"config": "Config", "chart": "Loss", "predictions": "Predictions", "nearest": "Nearest"}
REDRAW_SECONDS = 0.3  # the status line redraws at most this often
CHART_SECONDS = 1.0  # the chart at most this often: plotext builds it in Python (in a worker thread, but the GIL is shared)
POST_SECONDS = 0.25  # the worker batches Step events arriving faster than this into one message
FOLLOW_SECONDS = 1.0  # how often a viewed run folder is checked for new events
MAX_OVERLAYS = 5
WIDE = 120  # columns from which the four panes stand side by side


class MainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "start", "Start"),
        Binding("ctrl+t", "stop", "Stop"),
        Binding("ctrl+g", "resume", "Resume"),
        Binding("ctrl+b", "branch", "Branch", show=False),
        Binding("ctrl+o", "browse", "Runs"),
        Binding("f2", "probe", "Try", show=False),
        Binding("ctrl+y", "export", "Export", show=False),
        Binding("ctrl+n", "next_pane", "Pane"),
        Binding("ctrl+l", "messages", "Log"),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]

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
        self.follower: EventFollower | None = None
        self.bad_lines: set[int] = set()  # lines of the followed metrics.jsonl already reported as damaged
        self.follow_timer = None
        self.probe: Probe | None = None  # attached to the model of the run trained here
        self.compared: tuple[str, ...] = ()  # run folders overlaid on the chart

    def compose(self) -> ComposeResult:
        yield Tabs(*(Tab(title, id=f"tab-{pane}") for pane, title in PANES.items()), id="pane-tabs")
        with Container(id="panes"):
            yield ConfigForm(self.initial_config, id="config", classes="pane")
            yield LossChart(id="chart", classes="pane")
            yield PredictionsPane(id="predictions", classes="pane")
            yield NearestTable(id="nearest", classes="pane")
        yield Static("", id="failure")
        yield StatusLine(id="status")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self.form.check()
        if self.initial_view:
            self.view_run(self.initial_view)
        self.show_pane(self.pane)  # the cursor starts in the form's first field, on any screen size
        self.show_keys()
        self.redraw()
        self.set_interval(REDRAW_SECONDS, self.status.redraw)
        self.set_interval(CHART_SECONDS, self.chart.redraw)

    def on_unmount(self) -> None:
        self.stop_event.set()  # however the app ends, a run still going finishes its step and saves

    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    @property
    def chart(self) -> LossChart:
        return self.query_one(LossChart)

    @property
    def predictions(self) -> PredictionsPane:
        return self.query_one(PredictionsPane)

    @property
    def nearest(self) -> NearestTable:
        return self.query_one(NearestTable)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def say(self, text: str, title: str = "", severity: str = "information", timeout: float | None = None) -> None:
        self.app.notify(text, title=title, severity=severity, timeout=timeout)

    # ---- which keys apply now -------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return None if self.running else True  # shown greyed out until the run has really ended
        if action == "stop":
            return (None if self.stop_event.is_set() else True) if self.running else False
        if action in ("resume", "browse", "branch"):
            return None if self.running else True
        if action == "export":
            return self.run_dir is not None
        return True

    def watch_running(self) -> None:
        self.show_keys()

    def watch_run_dir(self) -> None:
        self.show_keys()

    def show_keys(self) -> None:
        bars = self.query(KeyBar)  # none yet while the screen is being composed
        if bars:
            bars.first().show_keys(self.check_action)

    # ---- panes ----------------------------------------------------------------------------------
    def watch_pane(self, pane: str) -> None:
        self.show_panes()
        tabs = self.query_one(Tabs)
        with self.prevent(Tabs.TabActivated):  # set from here: no echo that could undo a later switch
            tabs.active = f"tab-{pane}"

    def show_panes(self) -> None:
        """All four panes on a wide screen, the current one on a narrow one. Set as inline display, not as
        a CSS class: a class change makes Textual restyle every widget in the pane (the form has hundreds),
        which took half a second a key press."""
        narrow = self.size.width < WIDE
        for name in PANES:
            self.query_one(f"#{name}").display = not narrow or name == self.pane

    def on_resize(self, event: events.Resize) -> None:
        self.show_panes()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is not None and event.tab.id:
            self.show_pane(event.tab.id.removeprefix("tab-"))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Tab moving the cursor into another pane makes that pane the current one (for ctrl+n), and
        its border the accented one."""
        for name in PANES:
            pane = self.query_one(f"#{name}")
            has_cursor = pane in (event.widget, *event.widget.ancestors)
            if has_cursor:
                self.pane = name
            # the title in bold accent, set inline: a class change would restyle every widget inside the
            # pane, and a border change would lay the whole screen out again
            pane.styles.border_title_color = self.app.theme_variables["accent"] if has_cursor else None
            pane.styles.border_title_style = "bold" if has_cursor else "none"

    def pane_focus_target(self, pane: str):
        widget = self.query_one(f"#{pane}")
        if isinstance(widget, ConfigForm):
            return next(iter(widget.config_fields.values())).control
        if isinstance(widget, PredictionsPane):
            return widget.table
        return widget

    def show_pane(self, pane: str, focus: bool = True) -> None:
        self.pane = pane
        if focus:
            target = self.pane_focus_target(pane)

            def focus_if_still_current() -> None:  # a later switch may have come first: then it wins
                if self.pane == pane:
                    target.focus()

            self.call_after_refresh(focus_if_still_current)

    def action_next_pane(self) -> None:
        names = list(PANES)
        self.show_pane(names[(names.index(self.pane) + 1) % len(names)])

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_messages(self) -> None:
        self.app.push_screen(MessageLogScreen(self.app.messages))

    def action_quit(self) -> None:
        self.run_worker(self.app.action_quit(), name="quit")

    def action_probe(self) -> None:
        if self.size.width < WIDE:
            self.pane = "predictions"
        self.call_after_refresh(self.query_one("#probe-input", Input).focus)

    # ---- training -------------------------------------------------------------------------------
    def action_start(self) -> None:
        if self.running:
            return
        config = self.form.check()
        if config is None:
            self.say(str(self.form.error), title="Fix the configuration first", severity="error")
            self.show_pane("config", focus=False)
            self.form.focus_error()
            return
        existing = Path(config.machine.runs_dir) / config.machine.name
        if config.machine.name and (existing / "config.toml").exists():  # say so before clearing anything
            message = (f"run folder {existing} exists: change the name field (empty gives a timestamp), "
                       f"or resume and extend that run with ctrl+g")
            self.form.flag("name", message)
            self.say(message, title="Cannot start", severity="error")
            self.show_pane("config", focus=False)
            self.form.config_fields["name"].control.focus()
            return
        if self.run_dir is not None:  # a run is on screen: starting another clears the view
            question = f"Start a new run? The view of {self.run_dir} is cleared (the folder stays on disk)."
            self.app.push_screen(ConfirmScreen("Start a new run", question),
                                 lambda yes: self.start_new(config) if yes else None)
            return
        self.start_new(config)

    def start_new(self, config: TrainConfig) -> None:
        self.stop_following()
        self.reset_panes(config.machine.name)
        self.begin(config, resume=None)

    def begin(self, config: TrainConfig, resume: str | None) -> None:
        self.stop_following()
        self.stop_event = threading.Event()
        self.probe = Probe()
        self.running = True
        self.form.set_locked(True)
        self.show_failure(None)
        self.status.set_phase("starting")
        if self.size.width < WIDE:
            self.show_pane("chart")
        self.train_in_thread(config, resume, self.stop_event, self.probe)

    @work(thread=True, exclusive=True, group="train", name="train", exit_on_error=False)
    def train_in_thread(self, config: TrainConfig, resume: str | None, stop: threading.Event, probe: Probe) -> None:
        worker = get_current_worker()
        batch: list[Event] = []
        posted = time.monotonic()
        self.training_ended.clear()

        def run() -> None:
            nonlocal batch, posted
            for event in train(config, stop, resume=resume, probe=probe):
                if worker.is_cancelled:  # the app is closing: finish the step and save, as a stop does
                    stop.set()
                batch.append(event)
                if not isinstance(event, Step) or time.monotonic() - posted >= POST_SECONDS:
                    self.post_message(RunEvents(batch, live=True))
                    batch, posted = [], time.monotonic()
            if batch:
                self.post_message(RunEvents(batch, live=True))

        try:
            in_own_thread(run, "promptgrad training")
        finally:
            self.training_ended.set()  # main() waits for this after the app has closed

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "train" or not event.worker.is_finished:
            return
        self.running = False
        self.form.set_locked(False)
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
            self.show_keys()
            self.say("Stopping: finishing this step (or evaluation batch) and saving a checkpoint")

    # ---- resume, extend, branch -----------------------------------------------------------------
    @property
    def runs_dir(self) -> str:
        value = self.form.config_fields["runs_dir"].value
        return value or "runs"

    def action_resume(self) -> None:
        browser = RunBrowser(self.runs_dir, "Resume or extend a run · enter picks it", self.run_dir, self.compared)
        self.app.push_screen(browser, self.ask_steps)

    def ask_steps(self, choice: BrowserChoice | None) -> None:
        if choice is None or choice.path is None or self.running:
            return
        summary = summarize(Path(choice.path))
        if summary.state == "damaged":
            self.say(summary.problem, title="Cannot resume", severity="error")
            return
        folder = RunFolder.open(choice.path)
        if summary.state == "running":
            self.say(f"{choice.path} is being written by another process; open it with ctrl+o to watch it",
                     title="Cannot resume", severity="error")
            return
        if not (folder.path / "checkpoint.pt").exists():
            self.say(f"{choice.path} has no checkpoint to resume from (it stopped before its first one); "
                     f"start a new run instead", title="Cannot resume", severity="error")
            return
        dialog = StepsDialog(folder.path.name, summary.step, summary.total_steps or folder.config().learning.steps,
                             summary.state == "finished")
        self.app.push_screen(dialog, lambda steps: self.resume_run(str(folder.path), steps))

    def resume_run(self, path: str, steps: int | None) -> None:
        if steps is None or self.running:
            return
        try:
            folder = RunFolder.open(path)
            config = folder.config().replace(steps=steps, epochs=0)
        except UserError as e:
            self.say(str(e), title="Cannot resume", severity="error")
            return
        self.stop_following()
        self.reset_panes(folder.path.name)
        self.form.load(config)
        self.replay(folder.events(), live=False)  # the history so far; the worker continues it
        self.begin(config, resume=str(folder.path))

    def action_branch(self) -> None:
        """A new run that starts from the shown run's prompt: the form gets its settings, init run:<it>
        and an empty name; change what you like, then ctrl+r."""
        if self.run_dir is None:
            self.say("Open a run first (ctrl+o): a branch starts from the prompt of the run on screen",
                     title="Nothing to branch from", severity="warning")
            return
        if not (Path(self.run_dir) / PROMPT).is_file():
            self.say(f"{self.run_dir} has saved no prompt yet", title="Nothing to branch from", severity="warning")
            return
        self.form.config_fields["init"].value = f"run:{self.run_dir}"
        self.form.config_fields["name"].value = ""
        self.form.check()
        self.show_pane("config")
        self.say(f"The form starts a new run from the prompt of {self.run_dir}: change any setting, then ctrl+r",
                 title="Branch")

    # ---- viewing and comparing run folders ------------------------------------------------------
    def action_browse(self) -> None:
        browser = RunBrowser(self.runs_dir, "Runs · enter opens one · space marks runs to compare", self.run_dir,
                             self.compared)
        self.app.push_screen(browser, self.browsed)

    def browsed(self, choice: BrowserChoice | None) -> None:
        if choice is None:
            return
        self.compare(choice.compare)
        if choice.path is not None and not self.running:
            self.view_run(choice.path)

    def compare(self, paths: tuple[str, ...]) -> None:
        paths = tuple(p for p in paths if p != self.run_dir)[:MAX_OVERLAYS]
        self.compared = paths
        overlays = {}
        for path in paths:
            try:
                overlays[Path(path).name] = Curves.of(RunFolder.open(path).events())
            except UserError:
                continue
        self.chart.set_overlays(overlays)
        if overlays:
            self.say(f"Overlaid on the chart: {', '.join(overlays)}", title="Compare")

    def view_run(self, path: str | None) -> None:
        if not path or self.running:
            return
        candidate = Path(path).expanduser()
        if not (candidate / "config.toml").exists() and (Path(self.runs_dir) / path / "config.toml").exists():
            candidate = Path(self.runs_dir) / path  # a bare name means a folder under runs/
        try:
            folder = RunFolder.open(candidate)
            config = folder.config()
        except UserError as e:
            self.say(str(e), title="Cannot open", severity="error")
            return
        self.stop_following()
        self.reset_panes(folder.path.name)
        self.form.load(config.replace(name=""))  # its settings; no name, so ctrl+r makes a new run
        self.run_dir = str(folder.path)  # this folder, whatever its records say they were written as
        self.status.set_phase("viewing")
        self.followed, self.follower, self.bad_lines = folder, EventFollower(folder.path / METRICS), set()
        self.follow()
        if self.followed is not None:
            self.follow_timer = self.set_interval(FOLLOW_SECONDS, self.follow)

    def follow(self) -> None:
        """Show the events appended to the viewed run's metrics.jsonl since the last look (by byte offset,
        so a resume that cuts the file back and writes on between two looks is noticed)."""
        if self.followed is None:
            return
        try:
            events, bad, reset = self.follower.poll()
            locked = is_locked(self.followed.path)
        except (UserError, OSError) as e:  # a file someone planted (a FIFO, a link): stop looking at it
            self.say(str(e) if isinstance(e, UserError) else f"cannot read {self.followed.path}: {e.strerror or e}",
                     title="Cannot follow the run", severity="error", timeout=30)
            self.stop_following()
            return
        if reset:  # a resume cut the file back: show it again from the start
            self.reset_panes(self.followed.path.name)
            self.run_dir = str(self.followed.path)
        new_bad = [n for n in bad if n not in self.bad_lines]
        if new_bad:
            self.bad_lines.update(new_bad)
            lines = ", ".join(map(str, new_bad[:5])) + (" ..." if len(new_bad) > 5 else "")
            self.say(f"{self.followed.path / METRICS}: line(s) {lines} are not well-formed events and were skipped",
                     title="Damaged lines", severity="warning", timeout=15)
        self.replay(events, live=False)
        if locked and not self.running:
            self.status.set_phase("viewing (being written)")

    def stop_following(self) -> None:
        if self.follow_timer is not None:
            self.follow_timer.stop()
        self.followed, self.follower, self.follow_timer = None, None, None

    # ---- the probe box --------------------------------------------------------------------------
    def on_probe_asked(self, message: ProbeAsked) -> None:
        box = self.predictions.probe
        if self.probe is None or not self.probe.ready:
            box.failed("nothing to try yet: start a run (ctrl+r) or resume one (ctrl+g); the model loads with it")
            return
        box.waiting(message.text)
        self.ask_probe(self.probe, message.text)

    @work(thread=True, exclusive=True, group="probe", name="probe", exit_on_error=False)
    def ask_probe(self, probe: Probe, text: str) -> None:
        try:
            self.post_message(ProbeAnswered(in_own_thread(lambda: probe.ask(text), "promptgrad probe"), None))
        except UserError as e:
            self.post_message(ProbeAnswered(None, str(e)))

    def on_probe_answered(self, message: ProbeAnswered) -> None:
        box = self.predictions.probe
        if message.answer is not None:
            box.show(message.answer)
        else:
            box.failed(message.error or "")

    # ---- events to panes ------------------------------------------------------------------------
    def on_run_events(self, message: RunEvents) -> None:
        self.replay(message.events, message.live)

    def replay(self, events: list[Event], live: bool) -> None:
        for event in events:
            self.apply(event, live)

    def apply(self, event: Event, live: bool) -> None:
        self.status.apply(event)
        if isinstance(event, (Started, Step, Evaluation, Extended)):
            self.chart.add(event)
        if isinstance(event, Started):
            if live:  # a viewed folder keeps its own path: a copied folder's records name the original
                self.run_dir = event.run_dir
            self.status.set_phase("running" if live else "viewing")
        elif isinstance(event, Progress):
            self.status.set_phase("starting" if live and not self.run_dir else self.status.phase)
        elif isinstance(event, Extended) and live:
            self.say(f"Extended from {event.previous_total_steps} to {event.total_steps} steps; the learning rate "
                     f"decays from {event.lr:.3g} to 0 by step {event.total_steps}", title="Run extended")
        elif isinstance(event, Predictions):
            self.predictions.show(event)
        elif isinstance(event, NearestTokens):
            self.nearest.show(event)
        elif isinstance(event, HardPromptFound):
            self.nearest.show_hard_prompt(event)
        elif isinstance(event, Reading):
            self.nearest.show_reading(event)
        elif isinstance(event, ParetoFront):
            self.nearest.show_front(event)
        elif isinstance(event, Finished):
            self.status.set_phase(("stopped" if event.stopped else "finished") + ("" if live else " (viewing)"))
            if live and event.stopped:
                self.say(f"Stopped at step {event.step}; checkpoint saved in {self.run_dir} (ctrl+g resumes it)")
            elif live:
                score = "" if event.test_loss is None else f"test loss {event.test_loss:.4f}, accuracy {event.accuracy:.1%}; "
                self.say(f"{score}prompt saved to {event.prompt_path}", title="Run finished", timeout=10)
        elif isinstance(event, Failed):
            self.status.set_phase("failed" + ("" if live else " (viewing)"))
            if live:
                self.show_failure(event)
                if event.traceback:  # a bug: the whole traceback, kept on screen until dismissed
                    self.app.push_screen(ErrorScreen("The run failed: a bug in promptgrad", event.message, event.traceback))
                else:
                    self.say(event.message, title="Run failed", severity="error", timeout=15)
                if event.field:
                    self.form.flag(event.field, event.message)
        # other kinds (a newer core may add some) are not shown

    def show_failure(self, event: Failed | None) -> None:
        """A failed run's reason stays under the panes until the next run starts."""
        banner = self.query_one("#failure", Static)
        banner.display = event is not None
        if event is not None:
            where = f" (field {event.field} is flagged in the form)" if event.field else ""
            banner.update(f"Run failed: {event.message}{where} · ctrl+l: all messages")

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
        prompt = PathPrompt("Export the learned prompt", f"copy {source} to this file or folder; empty: show where it is",
                            placeholder=f"~/{Path(self.run_dir).name}-{PROMPT}")
        self.app.push_screen(prompt, lambda target: self.export_prompt(source, target))

    def export_prompt(self, source: Path, target: str | None, overwrite: bool = False) -> None:
        if target is None:
            return
        try:
            data = read_bytes(source)
        except FileNotFoundError:
            self.say(f"{source} does not exist yet: a run writes it at each checkpoint and at the end",
                     title="No prompt to export", severity="error")
            return
        except (UserError, OSError) as e:
            self.say(str(e) if isinstance(e, UserError) else f"cannot read {source}: {e.strerror or e}",
                     title="Export failed", severity="error")
            return
        if not target:
            self.say(f"The learned prompt is {source.resolve()}", title="Prompt", timeout=15)
            return
        destination = Path(target).expanduser()
        if destination.is_dir() and not destination.is_symlink():
            destination = destination / f"{source.parent.name}-{PROMPT}"
        if not destination.parent.is_dir():
            self.say(f"folder {destination.parent} does not exist; make it first or pick another",
                     title="Export failed", severity="error")
            return
        if os.path.lexists(destination) and not overwrite:
            question = f"{destination} exists. Overwrite it with the prompt of {source.parent.name}?"
            self.app.push_screen(ConfirmScreen("Overwrite?", question),
                                 lambda yes: self.export_prompt(source, target, overwrite=True) if yes else None)
            return
        try:  # a new file renamed into place: never written through a link or into a FIFO planted there
            atomic_write(destination, data, overwrite=False)
        except UserError as e:
            self.say(str(e), title="Export failed", severity="error")
            return
        self.say(f"Exported the prompt to {destination}", title="Prompt exported")


class PromptgradApp(App):
    CSS_PATH = "promptgrad.tcss"
    TITLE = "promptgrad"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, config: TrainConfig | None = None, run_dir: str | None = None) -> None:
        super().__init__()
        self.main_screen = MainScreen(config, run_dir)
        self.messages: list[LoggedMessage] = []

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def on_mount(self) -> None:
        self.loop = asyncio.get_running_loop()

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every message is kept in the log (ctrl+l), and shown as it is: never read as markup."""
        self.messages.append(LoggedMessage(time.time(), severity, title, message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        for title, help_text, callback in (
            ("Start a run", "ctrl+r: with the configuration in the form", main.action_start),
            ("Stop the run", "ctrl+t: finish the step, save a checkpoint", main.action_stop),
            ("Resume or extend a run", "ctrl+g: pick a run folder, then how many steps", main.action_resume),
            ("Branch from the shown run", "ctrl+b: a new run starting from its prompt", main.action_branch),
            ("Browse runs", "ctrl+o: open a run, mark runs to compare on the chart", main.action_browse),
            ("Try an input", "f2: the learned prompt's answer beside the hand-written one's", main.action_probe),
            ("Export the prompt", "ctrl+y: copy prompt.safetensors", main.action_export),
            ("Next pane", "ctrl+n", main.action_next_pane),
            ("Messages", "ctrl+l: every message with its time", main.action_messages),
            ("Help", "f1 or ?: keys and panes", main.action_help),
        ):
            yield SystemCommand(title, help_text, callback)

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

    def on_stop_signal(self, signum: int) -> None:
        """SIGTERM (kill, a scheduler) or SIGHUP (the SSH session dropped; the terminal is already detached):
        stop the run the way ctrl+t does, finish the step and save, then quit. Called by the signal
        handler on the main thread, so it only hands the work to the event loop."""
        self.main_screen.stop_event.set()
        loop = getattr(self, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self.run_worker(self.action_quit(), name="quit on signal"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promptgrad-tui", description="Watch and steer a prompt being learned.")
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a run folder to view (followed while it is written)")
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings to pre-fill the form with")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.load(Path(args.config)) if args.config else None
        if args.run_dir:
            RunFolder.open(args.run_dir).config()  # a folder that cannot be read is one line here, not a crash later
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
    return app.return_code or 0  # non-zero when the app crashed (Textual printed the traceback)


if __name__ == "__main__":
    sys.exit(main())
