"""Starting, stopping, resuming, extending and branching runs from the keyboard. Training runs in a
thread worker (its torch work in a thread of its own, torch_thread.py) that iterates the core's
`train()` and posts its events as `RunEvents`; the worker never touches a widget."""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path

from textual import work
from textual.worker import Worker, WorkerState, get_current_worker

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Event, Step
from promptgrad.store.run_folder import PROMPT, RunFolder, summarize
from promptgrad.train.loop import needs_new_peak, train
from promptgrad.train.probe import Probe
from promptgrad_tui.browser import BrowserChoice, RunBrowser
from promptgrad_tui.dialogs import ConfirmScreen, ErrorScreen, ResumeChoice, StepsDialog
from promptgrad_tui.messages import RunEvents
from promptgrad_tui.panes import WIDE
from promptgrad_tui.torch_thread import in_own_thread

POST_SECONDS = 0.25  # the worker batches Step events arriving faster than this into one message
LOCKED_FORM_COLUMNS = "34 1fr 1fr"  # the wide layout's columns while the form is locked (promptgrad.tcss: 50 1fr 1fr)


class RunControl:
    """Mixin of MainScreen."""

    def action_start(self) -> None:
        if self.busy("A new run"):
            return
        config = self.form.check()
        if config is None:
            self.say(str(self.form.error), title="Fix the configuration first", severity="error")
            self.show_pane("config", focus=False)
            self.form.show_field(self.form.error.field if self.form.error else None)
            return
        existing = Path(config.machine.runs_dir) / config.machine.name
        if config.machine.name and (existing / "config.toml").exists():  # say so before clearing anything
            message = (
                f"run folder {existing} exists: change the name field (empty gives a timestamp), "
                f"or resume and extend that run with ctrl+g"
            )
            self.form.flag("name", message)
            self.say(message, title="Cannot start", severity="error")
            self.show_pane("config", focus=False)
            self.form.show_field("name")  # not focused: a "y" meant for a question would be typed over the name
            return
        if self.run_dir is not None:  # a run is on screen: starting another clears the view
            question = f"Start a new run? The view of {self.run_dir} is cleared (the folder stays on disk)."
            self.app.push_screen(
                ConfirmScreen("Start a new run", question), lambda yes: self.start_new(config) if yes else None
            )
            return
        self.start_new(config)

    def start_new(self, config: TrainConfig) -> None:
        self.stop_following()
        self.reset_panes(config.machine.name)
        self.begin(config, resume=None)

    def begin(self, config: TrainConfig, resume: str | None, extend_lr: float | None = None) -> None:
        self.stop_following()
        self.stop_event = threading.Event()
        self.probe, self.probe_for = Probe(), None
        self.running = True
        self.form.clear_run_flags()
        self.form.set_locked(True)
        self.narrow_form(True)
        self.show_failure(None)
        self.status.set_phase("starting")
        if self.size.width < WIDE:
            self.show_pane("chart")
        self.train_in_thread(config, resume, self.stop_event, self.probe, extend_lr)

    def narrow_form(self, narrow: bool) -> None:
        """On a wide screen the locked form gives room to the chart and the tables (one relayout a run)."""
        self.query_one("#panes").styles.grid_columns = LOCKED_FORM_COLUMNS if narrow else None

    @work(thread=True, exclusive=True, group="train", name="train", exit_on_error=False)
    def train_in_thread(
        self,
        config: TrainConfig,
        resume: str | None,
        stop: threading.Event,
        probe: Probe,
        extend_lr: float | None = None,
    ) -> None:
        worker = get_current_worker()
        batch: list[Event] = []
        posted = time.monotonic()
        self.training_ended.clear()

        def run() -> None:
            nonlocal batch, posted
            for event in train(config, stop, resume=resume, probe=probe, extend_lr=extend_lr):
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
        self.narrow_form(False)
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
        if self.busy("Resuming a run"):
            return
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
            self.say(
                f"{choice.path} is being written by another process; open it with ctrl+o to watch it",
                title="Cannot resume",
                severity="error",
            )
            return
        if not (folder.path / "checkpoint.pt").exists():
            self.say(
                f"{choice.path} has no checkpoint to resume from (it stopped before its first one); "
                f"start a new run instead",
                title="Cannot resume",
                severity="error",
            )
            return
        try:  # said before any step is spent: more steps of a run whose rate has decayed to 0 change nothing
            new_peak = folder.config().learning.lr if needs_new_peak(folder) else None
        except (UserError, OSError, KeyError):
            new_peak = None  # a checkpoint it cannot read: the resumed run says what is wrong with it, as it starts
        dialog = StepsDialog(
            folder.path.name,
            summary.step,
            summary.total_steps or folder.config().learning.steps,
            summary.state == "finished",
            new_peak,
        )
        self.app.push_screen(dialog, lambda choice: self.resume_run(str(folder.path), choice))

    def resume_run(self, path: str, choice: ResumeChoice | None) -> None:
        if choice is None or self.running:
            return
        if choice.branch:
            self.branch_from(path)
            return
        try:
            folder = RunFolder.open(path)
            config = folder.config().replace(steps=choice.steps, epochs=0)
        except UserError as e:
            self.say(str(e), title="Cannot resume", severity="error")
            return
        self.stop_following()
        self.reset_panes(folder.path.name)
        self.form.load(config)
        self.replay(folder.events(), live=False)  # the history so far; the worker continues it
        self.begin(config, resume=str(folder.path), extend_lr=choice.extend_lr)

    def action_branch(self) -> None:
        """A new run that starts from the shown run's prompt: the form gets its settings, init run:<it>
        and an empty name; change what you like, then ctrl+r."""
        if self.busy("Branching"):
            return
        if self.run_dir is None:
            self.say(
                "Open a run first (ctrl+o): a branch starts from the prompt of the run on screen",
                title="Nothing to branch from",
                severity="warning",
            )
            return
        self.branch_from(self.run_dir)

    def branch_from(self, run_dir: str) -> None:
        """The form gets init run:<run_dir> and an empty name (ctrl+b, or the steps dialog's branch)."""
        if not (Path(run_dir) / PROMPT).is_file():
            self.say(f"{run_dir} has saved no prompt yet", title="Nothing to branch from", severity="warning")
            return
        self.form.config_fields["init"].value = f"run:{run_dir}"
        self.form.config_fields["name"].value = ""
        self.form.check()
        self.show_pane("config")
        self.say(
            f"The form starts a new run from the prompt of {run_dir}: change any setting, then ctrl+r", title="Branch"
        )
