"""The report of the runs marked in the browser (f5 there): the same table as `promptgrad report` prints
(results.py makes its cells), the runs left out and why, and the command that writes the files."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from promptgrad.experiments.results import Results


class ReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f5", "dismiss", "Close")]
    DEFAULT_CSS = """
    ReportScreen { align: center middle; }
    ReportScreen #report { width: 95%; height: 85%; border: round $accent; background: $surface; }
    ReportScreen #report DataTable { height: 1fr; }
    """

    def __init__(self, results: Results, paths: list[str]) -> None:
        super().__init__()
        self.results, self.paths = results, paths

    def compose(self) -> ComposeResult:
        results = self.results
        with Vertical(id="report") as box:
            box.border_title = (
                f"Report: {len(results.runs)} finished run(s) in {len(results.groups)} group(s) of seeds"
                " · escape closes"
            )
            yield DataTable(zebra_stripes=True, cursor_type="row")
            for left in results.left_out:
                yield Static(Text(f"left out: {left.path.name}: {left.why}"), classes="dialog-hint")
            command = "promptgrad report " + " ".join(shlex.quote(p) for p in self.paths) + " --out report"
            yield Static(
                Text(
                    f"mean ± sd over seeds; 95% CI: one seed's bootstrap interval, or ± the runs' mean half-width. "
                    f"Files and plots: {command}"
                ),
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        header, cells = self.results.table()
        table = self.query_one(DataTable)
        for column in header:
            table.add_column(Text(column))
        for row in cells:
            table.add_row(*map(Text, row))
        table.focus()
