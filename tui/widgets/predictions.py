"""The sample predictions: the fixed test pairs, what the model answers with the current prompt, ✓/✗."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from promptgrad.events import Predictions
from promptgrad_tui.widgets.tables import set_table

MAX_WIDTH = 18  # a long word is cut, so that the ✓/✗ and the prediction stay in view


def one_line(text: str) -> str:
    text = text.replace("\n", "⏎")
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


class PredictionsTable(DataTable):
    BORDER_TITLE = "Predictions"
    LABELS = ["", "input", "expected", "predicted"]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def on_mount(self) -> None:
        self.reset()

    def reset(self) -> None:
        set_table(self, self.LABELS, [])
        self.border_title = "Predictions"

    def show(self, event: Predictions) -> None:
        rows = [
            [Text("✓", style="bold green") if row.correct else Text("✗", style="bold red"),
             Text(one_line(row.x)), Text(one_line(row.expected)), Text(one_line(row.predicted))]
            for row in event.rows
        ]
        set_table(self, self.LABELS, rows)
        right = sum(row.correct for row in event.rows)
        self.border_title = f"Predictions · step {event.step} · {right}/{len(event.rows)} right"
