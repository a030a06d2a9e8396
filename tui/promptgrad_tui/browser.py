"""The run browser (ctrl+o, ctrl+g): every run folder under runs/ (and each sweep's, as SWEEP/RUN) with
its state, steps, best test loss, model and date, as a table that keys move through the way k9s and
lazygit do: j/k or arrows, / to filter, s to sort by the next column (S the other way; a click on a
header sorts by it), enter to pick, space to mark runs to compare, d to delete (into runs/.trash/, u
undoes it), r to rename, f5 for the report of the marked runs (report_table.py). A folder whose files
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
from promptgrad.experiments.results import Results, collect
from promptgrad.store.run_folder import RunSummary, list_runs
from promptgrad_tui.rename_dialog import RenameDialog
from promptgrad_tui.run_files import Trashed, check_name, rename, restore, trash


@dataclass(frozen=True)
class BrowserChoice:
    path: str | None  # the run picked with enter (None: closed with escape)
    compare: tuple[str, ...]  # runs marked with space, to overlay on the chart


def loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


# the columns: (label, what a run is sorted by); a missing loss sorts last either way round
COLUMNS = [
    ("", None),
    ("name", lambda r: r.name.lower()),
    ("state", lambda r: r.state),
    ("step", lambda r: r.step),
    ("best test", lambda r: r.best_test_loss),
    ("final test", lambda r: r.final_test_loss),
    ("model", lambda r: r.model.lower()),
    ("modified", lambda r: r.modified),
]


def sorted_runs(runs: list[RunSummary], column: int, descending: bool) -> list[RunSummary]:
    key = COLUMNS[column][1]
    present = [r for r in runs if key(r) is not None]
    return sorted(present, key=key, reverse=descending) + [r for r in runs if key(r) is None]


class RunBrowser(ModalScreen[BrowserChoice]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("down", "move(1)", "Down", show=False, priority=True),
        Binding("up", "move(-1)", "Up", show=False, priority=True),
        Binding("j", "move(1)", "Down", show=False),  # typed into the filter while it has the cursor
        Binding("k", "move(-1)", "Up", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("slash", "filter", "Filter", show=False),
        Binding("s", "sort(1)", "Sort", show=False),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("d,delete", "delete", "Delete", show=False),
        Binding("u", "undo", "Undo delete", show=False),
        Binding("r", "rename", "Rename", show=False),
        Binding("f5", "report", "Report"),
    ]  # in the filter the text field takes space: a typed space marks the run there (the filter never holds spaces)

    def __init__(self, runs_dir: str, title: str, selected: str | None = None, marked: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.runs_dir, self.title_text, self.selected = runs_dir, title, selected
        self.marked = set(marked)
        self.runs: list[RunSummary] = []
        self.shown: list[RunSummary] = []
        self.needle = ""
        self.sort_column, self.descending = 7, True  # newest first
        self.trashed: list[Trashed] = []  # deleted in this browser, the last one first undone

    def compose(self) -> ComposeResult:
        with Vertical(id="browser") as box:
            box.border_title = self.title_text
            yield Input(placeholder="/ filters by name or model", id="filter")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
            yield Static(
                "j/k ↑↓ move · enter: pick · space: mark to compare · / filter · s/S sort · d delete (u undoes) · "
                "r rename · f5 report of the marked · escape: close",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.runs = list_runs(self.runs_dir)
        self.fill(keep=self.selected)
        self.query_one(DataTable).focus()  # keys move through the runs; / goes to the filter

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    def fill(self, keep: str | None = None) -> None:
        """The runs that match the filter, sorted; the cursor stays on the run it was on (`keep`: on that one)."""
        table = self.table
        current = self.current()
        keep = keep if keep is not None else (str(current.path) if current is not None else None)
        row_before = table.cursor_row
        table.clear(columns=True)
        for i, (label, _) in enumerate(COLUMNS):
            arrow = (" ▼" if self.descending else " ▲") if i == self.sort_column else ""
            table.add_column(label + arrow, key=label or "mark")
        runs = [r for r in self.runs if self.needle in r.name.lower() or self.needle in r.model.lower()]
        self.shown = sorted_runs(runs, self.sort_column, self.descending)
        for run in self.shown:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.modified))
            steps = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
            mark = "x" if str(run.path) in self.marked else " "
            table.add_row(
                mark,
                Text(run.name),
                run.state,
                steps,
                loss(run.best_test_loss),
                loss(run.final_test_loss),
                Text(Path(run.model).name if "/" in run.model and Path(run.model).exists() else run.model),
                when,
            )
        if not self.shown:
            table.border_subtitle = f"no runs in {self.runs_dir}/" + (f" match {self.needle!r}" if self.needle else "")
        else:
            table.border_subtitle = f"{len(self.shown)} of {len(self.runs)} runs in {self.runs_dir}/"
        paths = [str(r.path) for r in self.shown]
        if keep is not None and str(Path(keep)) in paths:
            table.move_cursor(row=paths.index(str(Path(keep))), animate=False)
        elif self.shown:  # the run went (deleted, filtered out): the row where it was
            table.move_cursor(row=max(0, min(row_before, len(self.shown) - 1)), animate=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value.endswith(" "):  # space: mark the run under the cursor (the text field would eat a binding)
            event.input.value = event.value.rstrip(" ")
            self.action_mark()
            return
        if event.value.strip().lower() != self.needle:  # only a changed filter fills the table again
            self.needle = event.value.strip().lower()
            self.fill()

    def current(self) -> RunSummary | None:
        table = self.table
        return self.shown[table.cursor_row] if self.shown and 0 <= table.cursor_row < len(self.shown) else None

    def action_move(self, by: int) -> None:
        table = self.table
        table.move_cursor(row=max(0, min(len(self.shown) - 1, table.cursor_row + by)))

    def action_mark(self) -> None:
        run = self.current()
        if run is None or run.state == "damaged":
            return
        key = str(run.path)
        self.marked.symmetric_difference_update({key})
        table = self.table
        table.update_cell_at((table.cursor_row, 0), "x" if key in self.marked else " ")

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_sort(self, by: int) -> None:
        """s: sort by the next column (a new column starts the way people expect: names A-Z, losses lowest first,
        dates newest first); S: the other way round on the same column."""
        if by < 0:
            self.descending = not self.descending
        else:
            self.sort_column = self.sort_column % (len(COLUMNS) - 1) + 1
            self.descending = COLUMNS[self.sort_column][0] in ("modified", "step")
        self.fill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.column_index == 0:
            return
        if event.column_index == self.sort_column:
            self.descending = not self.descending
        else:
            self.sort_column, self.descending = (
                event.column_index,
                COLUMNS[event.column_index][0] in ("modified", "step"),
            )
        self.fill()

    def refused(self, problem: str, title: str) -> None:
        self.app.notify(problem, title=title, severity="error", timeout=10)

    def action_delete(self) -> None:
        """d: the run goes to runs/.trash/ at once (no question: u brings it back)."""
        run = self.current()
        if run is None:
            return
        try:
            done = trash(run.path, self.runs_dir, self.selected)
        except (UserError, OSError) as e:
            self.refused(str(e), "Cannot delete")
            return
        self.trashed.append(done)
        self.marked.discard(str(run.path))
        self.runs = [r for r in self.runs if r.path != run.path]
        self.fill()
        self.app.notify(f"{run.name} moved to {done.trashed} · u undoes it", title="Deleted")

    def action_undo(self) -> None:
        if not self.trashed:
            self.app.notify("nothing deleted to bring back", title="Undo")
            return
        try:
            back = restore(self.trashed[-1])
        except (UserError, OSError) as e:
            self.refused(str(e), "Cannot undo")
            return
        self.trashed.pop()
        self.runs = list_runs(self.runs_dir)
        self.fill(keep=str(back))
        self.app.notify(f"{back} is back", title="Undone")

    def action_rename(self) -> None:
        run = self.current()
        if run is None:
            return

        def check(name: str) -> str | None:
            problem = check_name(name)
            if problem is None and run.path.with_name(name.strip()).exists() and name.strip() != run.path.name:
                problem = f"{run.path.with_name(name.strip())} exists: pick another name"
            return problem

        self.app.push_screen(RenameDialog(run.name, check), lambda name: self.renamed(run, name))

    def renamed(self, run: RunSummary, name: str | None) -> None:
        if name is None or name == run.path.name:
            return
        try:
            target = rename(run.path, name, self.selected)
        except (UserError, OSError) as e:
            self.refused(str(e), "Cannot rename")
            return
        if str(run.path) in self.marked:
            self.marked = (self.marked - {str(run.path)}) | {str(target)}
        self.runs = list_runs(self.runs_dir)
        self.fill(keep=str(target))
        self.app.notify(f"{run.path} is now {target}", title="Renamed")

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
        """escape: from the filter, back to the table; from the table, the browser closes."""
        if isinstance(self.app.focused, Input):
            self.table.focus()
            return
        self.dismiss(BrowserChoice(None, tuple(sorted(self.marked))))
