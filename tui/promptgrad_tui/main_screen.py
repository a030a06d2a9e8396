"""The main screen: four panes (configuration, loss chart, predictions with the probe box, nearest
tokens), a failure banner, the status line and the key bar, and the events of a run applied to them.

What the keys do lives beside it, one concern a file: panes.py (which pane), run_control.py (start,
stop, resume, branch), following.py (the browser, overlays, following a folder), probing.py (f2),
exporting.py (ctrl+y). The screen redraws the chart and the status line on a timer, not per event.
"""

from __future__ import annotations

import threading

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static, Tab, Tabs

from promptgrad.config import TrainConfig
from promptgrad.events import (
    Evaluation,
    Event,
    Extended,
    Failed,
    Finished,
    HardPromptFound,
    NearestTokens,
    ParetoFront,
    Predictions,
    Progress,
    Reading,
    Started,
    Step,
    TrackerFailed,
    Validation,
)
from promptgrad.store.run_folder import EventFollower, RunFolder
from promptgrad.train.probe import Probe
from promptgrad_tui.device_use import DeviceUse
from promptgrad_tui.dialogs import ConfirmScreen, ErrorScreen, HelpScreen, MessageLogScreen
from promptgrad_tui.exporting import Exporting
from promptgrad_tui.following import Following
from promptgrad_tui.messages import RunEvents
from promptgrad_tui.panes import OPTION_DIGITS, PANES, WIDE, Panes
from promptgrad_tui.probing import Probing
from promptgrad_tui.run_control import RunControl
from promptgrad_tui.size_policy import SizePolicy
from promptgrad_tui.task_picker import INIT_DEFAULT, TaskPicker, init_of_another_task
from promptgrad_tui.widgets.config_form import ConfigForm
from promptgrad_tui.widgets.key_bar import KeyBar
from promptgrad_tui.widgets.loss_chart import LossChart
from promptgrad_tui.widgets.nearest import NearestTable
from promptgrad_tui.widgets.predictions import PredictionsPane
from promptgrad_tui.widgets.results import ResultsStrip
from promptgrad_tui.widgets.status import StatusLine

REDRAW_SECONDS = 0.3  # the status line redraws at most this often
DEVICE_SECONDS = 2.0  # how often device use is sampled for the status line
CHART_SECONDS = (
    1.0  # the chart at most this often: plotext builds it in Python (in a worker thread, but the GIL is shared)
)


class MainScreen(Panes, SizePolicy, RunControl, Following, Probing, Exporting, Screen):
    BINDINGS = [
        Binding("ctrl+r", "start", "Start"),
        Binding("ctrl+t", "stop", "Stop"),
        Binding("ctrl+g", "resume", "Resume"),
        Binding("ctrl+b", "branch", "Branch", show=False),
        Binding("ctrl+o", "browse", "Runs"),
        Binding("f3", "pick_task", "Task", show=False),
        Binding("f2", "probe", "Try", show=False),
        Binding("ctrl+y", "export", "Export", show=False),
        Binding("ctrl+n", "next_pane", "Pane"),
        # 1-4 outside text fields; alt+1-4 where the terminal sends them as such, and what a Mac's option+1-4
        # types (¡ ™ £ ¢, as tmux passes them on) outside text fields; f6-f9 anywhere, in any terminal
        *(
            Binding(key, f"show_pane('{pane}')", title, show=False)
            for n, (pane, title) in enumerate(PANES.items(), 1)
            for key in (str(n), f"alt+{n}", OPTION_DIGITS[n - 1], f"f{n + 5}")
        ),
        Binding("escape", "leave_field", "Leave the field", show=False),
        Binding("f4", "copy_result", "Copy", show=False),
        Binding("z", "fold_results", "Fold the result", show=False),
        Binding("ctrl+l", "messages", "Log"),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    AUTO_FOCUS = ""  # no text field has the cursor at launch: the first keys are pane keys (1-4), not typing

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
        self.probe: Probe | None = None  # attached to the model of the run trained here, or of the run viewed
        self.probe_for: tuple | None = None  # (viewed run, overlaid runs) the probe was made for
        self.device_use = DeviceUse()
        self.focus_given = set()
        self.compared: tuple[str, ...] = ()  # run folders overlaid on the chart
        self.first_pane = "chart" if view else "config"  # a run opened on the command line shows its chart first

    def compose(self) -> ComposeResult:
        tabs = Tabs(
            *(Tab(title, id=f"tab-{pane}") for pane, title in PANES.items()),
            active=f"tab-{self.first_pane}",
            id="pane-tabs",
        )
        tabs.can_focus = False  # ctrl+n, 1-4 and a click switch panes; as a focus stop it showed no cursor
        yield tabs
        with Container(id="panes"):
            yield ConfigForm(self.initial_config, id="config", classes="pane")
            yield LossChart(id="chart", classes="pane")
            yield PredictionsPane(id="predictions", classes="pane")
            yield NearestTable(id="nearest", classes="pane")
        yield ResultsStrip(id="results")
        yield Static("", id="failure")
        yield StatusLine(id="status")
        yield KeyBar(id="keys")
        yield Static("", id="too-small")  # over everything, on a terminal too small to draw on (size_policy.py)

    def on_mount(self) -> None:
        self.form.check()
        if self.initial_view:
            self.view_run(self.initial_view)
        # no text field takes the cursor at launch: keys typed at once (2 3 4) jump between panes instead of
        # landing in the form; tab, 1 or f6 go to the form. A run opened on the command line shows its chart.
        self.show_pane(self.first_pane, focus=bool(self.initial_view))
        self.apply_size_policy()
        self.show_keys()
        self.redraw()
        self.set_interval(REDRAW_SECONDS, self.status.redraw)
        self.set_interval(CHART_SECONDS, self.chart.redraw)
        self.set_interval(DEVICE_SECONDS, self.sample_device)
        self.sample_device()

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

    @property
    def results(self) -> ResultsStrip:
        return self.query_one(ResultsStrip)

    def say(self, text: str, title: str = "", severity: str = "information", timeout: float | None = None) -> None:
        self.app.notify(text, title=title, severity=severity, timeout=timeout)

    # ---- which keys apply now -------------------------------------------------------------------
    # Keys that cannot act during a run still run their action, which says why (a key that does nothing
    # and says nothing looks broken); the key bar shows them greyed out (`key_state`).
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return (None if self.stop_event.is_set() else True) if self.running else False
        if action == "export":
            return self.run_dir is not None
        return True

    def key_state(self, action: str, parameters: tuple[object, ...] = ()) -> bool | None:
        """For the key bar: True (acts now), None (greyed: not during a run) or False (hidden)."""
        if action in ("start", "resume", "branch", "pick_task") and self.running:
            return None
        return self.check_action(action, parameters)

    def busy(self, what: str) -> bool:
        """During a run, say why `what` cannot be done now (and what can); False when it can."""
        if self.running:
            self.say(
                f"{what} waits until the run has ended: ctrl+t stops it (a checkpoint is saved), ctrl+o can "
                f"still overlay other runs on the chart",
                title="A run is going on",
                severity="warning",
            )
        return self.running

    def watch_running(self) -> None:
        self.show_keys()

    def watch_run_dir(self) -> None:
        self.show_keys()

    def show_keys(self) -> None:
        bars = self.query(KeyBar)  # none yet while the screen is being composed
        if bars:
            bars.first().show_keys(self.key_state)

    def action_copy_result(self) -> None:
        """f4: the hard prompt's text, or the results strip, to the clipboard (OSC 52 works over SSH)."""
        if not self.results.display:
            self.say(
                "Nothing to copy yet: a finished run's result is copied (a hard prompt's text)", severity="warning"
            )
            return
        self.app.copy_to_clipboard(self.results.copied)
        self.say(f"Copied to the clipboard: {self.results.copied[:100]}", title="Copied")

    @work(thread=True, exclusive=True, group="device", exit_on_error=False)
    def sample_device(self) -> None:
        """Device use for the status line, read off the UI thread (a few /proc reads, or CUDA's counters)."""
        text = self.device_use.sample()
        try:
            self.app.call_from_thread(self.status.set_device_use, text)
        except RuntimeError:
            pass  # the app is closing

    def action_pick_task(self) -> None:
        if self.busy("Picking a task"):
            return
        self.app.push_screen(TaskPicker(self.form.config_fields["task"].value), self.task_picked)

    def task_picked(self, name: str | None) -> None:
        """The task in the form, and its data, template and hand-written prompts taken from it (emptied)."""
        if name is None or self.running:
            return
        fields = self.form.config_fields
        fields["task"].value = name
        for key in ("data", "template", "baseline_text"):
            fields[key].value = ""
        reset = ""
        if other := init_of_another_task(fields["init"].value, name):  # a branch's init: another task's prompt
            reset = f"; init was {fields['init'].value} (a prompt learned on {other}), now {INIT_DEFAULT}"
            fields["init"].value = INIT_DEFAULT
        for key in ("x_column", "y_column"):  # at their defaults, so that a task file's own columns apply
            fields[key].value = TrainConfig.settings()[key][1].default
        self.form.check()
        self.show_pane("config", focus=False)
        self.say(
            f"Task {name}: its data, template and hand-written prompts are used (the fields left empty){reset}; "
            f"ctrl+r starts",
            title="Task",
        )

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_messages(self) -> None:
        self.app.push_screen(MessageLogScreen(self.app.messages))

    def action_quit(self) -> None:
        """q: quits at once when no run is going on; during a run it asks first (ctrl+q stops and quits)."""
        if not self.running:
            self.run_worker(self.app.action_quit(), name="quit")
            return
        question = "A run is going on. Stop it (a checkpoint is saved) and quit?"
        self.app.push_screen(
            ConfirmScreen("Quit?", question, default=False),
            lambda yes: self.run_worker(self.app.action_quit(), name="quit") if yes else None,
        )

    # ---- events to panes ------------------------------------------------------------------------
    def on_run_events(self, message: RunEvents) -> None:
        self.replay(message.events, message.live)

    def replay(self, events: list[Event], live: bool) -> None:
        for event in events:
            self.apply(event, live)

    def apply(self, event: Event, live: bool) -> None:
        self.status.apply(event)
        self.results.apply(event)
        if isinstance(event, (Started, Step, Evaluation, Extended, Validation)):
            self.chart.add(event)
        if isinstance(event, Started):
            if live:  # a viewed folder keeps its own path: a copied folder's records name the original
                self.run_dir = event.run_dir
                config = self.form.check()  # the run's own settings: the form is locked with them
                if config is not None:
                    self.keep_comparable(config)
            self.status.set_phase("running" if live else "viewing")
        elif isinstance(event, Progress):
            self.status.set_phase("starting" if live and not self.run_dir else self.status.phase)
        elif isinstance(event, Extended) and live:
            self.say(
                f"Extended from {event.previous_total_steps} to {event.total_steps} steps; {event.describe()}",
                title="Run extended",
            )
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
                score = (
                    ""
                    if event.test_loss is None
                    else f"test loss {event.test_loss:.4f}, accuracy {event.accuracy:.1%}; "
                )
                kept = (
                    ""
                    if event.best_step is None
                    else f"the prompt of step {event.best_step} (best on validation) is the result; "
                )
                self.say(
                    f"{kept}{score}prompt saved to {event.prompt_path}",
                    title="Run stopped early" if event.stopped_early else "Run finished",
                    timeout=10,
                )
        elif isinstance(event, Failed):
            self.status.set_phase("failed" + ("" if live else " (viewing)"))
            if live:
                self.show_failure(event)
                if event.traceback:  # a bug: the whole traceback, kept on screen until dismissed
                    self.app.push_screen(
                        ErrorScreen("The run failed: a bug in promptgrad", event.message, event.traceback)
                    )
                else:
                    self.say(event.message, title="Run failed", severity="error", timeout=15)
                if event.field:
                    self.form.flag(event.field, event.message)
        elif (
            isinstance(event, TrackerFailed) and live
        ):  # the run goes on; the tracker's trouble stays on screen a while
            self.say(event.message, title=f"report_to {event.tracker}", severity="warning", timeout=15)
        # other kinds (a newer core may add some) are not shown

    def show_failure(self, event: Failed | None) -> None:
        """A failed run's reason stays under the panes until the next run starts."""
        banner = self.query_one("#failure", Static)
        banner.display = event is not None
        if event is not None:
            where = f" (field {event.field} is flagged in the form)" if event.field else ""
            banner.update(f"Run failed: {event.message}{where} · ctrl+l: all messages")

    def reset_panes(self, name: str = "") -> None:
        self.results.reset()
        self.chart.reset()
        self.predictions.reset()
        self.nearest.reset()
        self.status.reset("", name)
        self.run_dir = None

    def redraw(self) -> None:
        self.chart.redraw()
        self.status.redraw()
