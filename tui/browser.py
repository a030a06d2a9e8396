"""The run browser (ctrl+o, ctrl+g): every run folder under runs/ (and each sweep's, as SWEEP/RUN) with
its state, steps, best test loss, model and date; type to filter, arrows to move, enter to pick, space
to mark runs to compare, f5 for the report of the marked runs (report_table.py). A folder whose files
cannot be read is listed as damaged, and picking it says why instead of opening it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from promptgrad.errors import UserError
from promptgrad.results import Results, collect
from promptgrad.run_folder import RunSummary, list_runs


@dataclass(frozen=True)
class BrowserChoice:
    path: str | None  # the run picked with enter (None: closed with escape)
    compare: tuple[str, ...]  # runs marked with space, to overlay on the chart


def loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


class RunBrowser(ModalScreen[BrowserChoice]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("down", "move(1)", "Down", show=False, priority=True),
        Binding("up", "move(-1)", "Up", show=False, priority=True),
        Binding("f5", "report", "Report"),
    ]  # space marks a run: the filter never holds spaces, so a typed space is taken as that (see on_input_changed)

    def __init__(self, runs_dir: str, title: str, selected: str | None = None, marked: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.runs_dir, self.title_text, self.selected = runs_dir, title, selected
        self.marked = set(marked)
        self.runs: list[RunSummary] = []
        self.shown: list[RunSummary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="browser") as box:
            box.border_title = self.title_text
            yield Input(placeholder="type to filter by name or model", id="filter")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
            yield Static("↑↓ move · enter: pick · space: mark to compare on the chart · f5: report of the marked runs · "
                         "escape: close",
                         classes="dialog-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in ("", "name", "state", "step", "best test", "final test", "model", "modified"):
            table.add_column(label, key=label or "mark")
        self.runs = list_runs(self.runs_dir)
        self.fill("")
        self.query_one("#filter", Input).focus()

    def fill(self, text: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        needle = text.strip().lower()
        self.shown = [r for r in self.runs if needle in r.name.lower() or needle in r.model.lower()]
        for run in self.shown:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.modified))
            steps = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
            mark = "x" if str(run.path) in self.marked else " "
            table.add_row(mark, Text(run.name), run.state, steps, loss(run.best_test_loss), loss(run.final_test_loss),
                          Text(Path(run.model).name if "/" in run.model and Path(run.model).exists() else run.model), when)
        if not self.shown:
            self.query_one("#runs").border_subtitle = f"no runs in {self.runs_dir}/" + (f" match {text!r}" if text else "")
        else:
            self.query_one("#runs").border_subtitle = f"{len(self.shown)} of {len(self.runs)} runs in {self.runs_dir}/"
        if self.selected:
            for row, run in enumerate(self.shown):
                if str(run.path) == str(Path(self.selected)):
                    table.move_cursor(row=row)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value.endswith(" "):  # space: mark the run under the cursor (the text field would eat a binding)
            event.input.value = event.value.rstrip(" ")
            self.action_mark()
            return
        self.fill(event.value)

    def current(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        return self.shown[table.cursor_row] if self.shown and 0 <= table.cursor_row < len(self.shown) else None

    def action_move(self, by: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(0, min(len(self.shown) - 1, table.cursor_row + by)))

    def action_mark(self) -> None:
        run = self.current()
        if run is None or run.state == "damaged":
            return
        key = str(run.path)
        self.marked.symmetric_difference_update({key})
        table = self.query_one(DataTable)
        table.update_cell_at((table.cursor_row, 0), "x" if key in self.marked else " ")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.pick()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.pick()

    def pick(self) -> None:
        run = self.current()
        if run is not None and run.state == "damaged":  # shown so it is not a mystery, never opened
            self.app.notify(f"{run.name} is damaged: {run.problem}", title="Cannot open", severity="error", timeout=15)
        elif run is not None:
            self.dismiss(BrowserChoice(str(run.path), tuple(sorted(self.marked))))

    @dataclass
    class ReportReady(Message):
        """The marked runs' results, read in a thread (or why there are none)."""

        results: Results | None
        paths: list[str]
        problem: str = ""  # nothing to report (a UserError), or a bug
        traceback: str = ""  # a bug's

    def action_report(self) -> None:
        """The report table of the marked runs (the run under the cursor if none is marked)."""
        run = self.current()
        paths = sorted(self.marked) or ([str(run.path)] if run is not None else [])
        if not paths:
            self.app.notify("mark runs with space first", title="Report")
            return
        self.read_results(paths)

    @work(thread=True, exclusive=True, group="report", exit_on_error=False)
    def read_results(self, paths: list[str]) -> None:
        try:
            self.post_message(self.ReportReady(collect(paths), paths))
        except UserError as e:
            self.post_message(self.ReportReady(None, paths, str(e)))
        except Exception as e:  # a bug: kept whole in an error screen, never a toast that fades
            import traceback

            self.post_message(self.ReportReady(None, paths, f"{type(e).__name__}: {e}", traceback.format_exc()))

    def on_run_browser_report_ready(self, message: ReportReady) -> None:
        from promptgrad_tui.report_table import ReportScreen

        if message.traceback:
            from promptgrad_tui.dialogs import ErrorScreen

            self.app.push_screen(ErrorScreen("The report failed", message.problem, message.traceback))
        elif message.results is None:
            self.app.notify(message.problem, title="No report", severity="warning", timeout=15)
        else:
            self.app.push_screen(ReportScreen(message.results, message.paths))

    def action_close(self) -> None:
        self.dismiss(BrowserChoice(None, tuple(sorted(self.marked))))
