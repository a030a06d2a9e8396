"""enter on a row of the predictions pane: that test pair whole, in a window of its own: the input, the
expected answer, the model's whole answer with the prompt of that step, and whether it counts as right."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from promptgrad.events import Prediction


class PredictionDetail(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, row: Prediction, step: int) -> None:
        super().__init__()
        self.row, self.step = row, step

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="prediction-detail") as box:
            box.border_title = f"Test pair · prompt of step {self.step}"
            yield Static(self.text())
            yield Static("escape or enter closes", classes="dialog-hint")

    def text(self) -> Text:
        row = self.row
        verdict = ("right ✓", "bold green") if row.correct else ("wrong ✗", "bold red")
        # the run records one test loss over all pairs, not one a pair: no loss is shown for a row
        return Text.assemble(
            ("input\n", "bold"),
            row.x,
            "\n\n",
            ("expected\n", "bold"),
            row.expected,
            "\n\n",
            ("answer\n", "bold"),
            row.predicted or "(nothing)",
            "\n\n",
            verdict,
            (" (the target, case as written, then no more letters of its last word)", "dim"),
        )
