"""The predictions pane: the fixed test pairs, what the model answers with the current prompt, ✓/✗;
and under them the probe box, where any input can be tried with the prompt being learned, beside the
hand-written prompt, while the run goes on."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from promptgrad.events import Predictions
from promptgrad.probe import ProbeAnswer
from promptgrad_tui.widgets.tables import set_table

MARK_WIDTH = 1


def one_line(text: str) -> str:
    return text.replace("\n", "⏎")


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


class PredictionsTable(DataTable):
    """Columns: ✓/✗, input, predicted, expected. The predicted word is never cut: when the pane is
    narrow, the input and expected words give up their width first."""

    LABELS = ["", "input", "predicted", "expected"]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.event: Predictions | None = None

    def on_mount(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.event = None
        set_table(self, self.LABELS, [])

    def on_resize(self) -> None:
        if self.event is not None:
            self.show(self.event)

    def show(self, event: Predictions) -> None:
        self.event = event
        texts = [(one_line(r.x), one_line(r.predicted or "?"), one_line(r.expected)) for r in event.rows]
        predicted = max([len("predicted"), *(len(t[1]) for t in texts)])
        # each column costs its width plus 2 of padding (and 1 for a scrollbar); what is left is shared
        # by input and expected, at least 3 each ("in…")
        room = max(6, self.size.width - 2 * 4 - MARK_WIDTH - predicted - 1)
        longest_x = max([len("input"), *(len(t[0]) for t in texts)])
        longest_y = max([len("expected"), *(len(t[2]) for t in texts)])  # labels are cut like the words
        x_width = min(longest_x, max(3, room - min(longest_y, room // 2)))
        y_width = min(longest_y, max(3, room - x_width))
        rows = [
            [Text("✓", style="bold green") if r.correct else Text("✗", style="bold red"),
             Text(cut(x, x_width)), Text(p), Text(cut(y, y_width))]
            for r, (x, p, y) in zip(event.rows, texts)
        ]
        set_table(self, self.LABELS, rows, [MARK_WIDTH, x_width, predicted, y_width])


@dataclass
class ProbeAsked(Message):
    """The user typed an input to try."""

    text: str


class ProbeBox(Vertical):
    """An input line and the last answer: what the learned and the hand-written prompt make of it."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="try an input (f2), e.g. hot", id="probe-input")
        yield Static(Text("the learned prompt's answer appears here, beside the hand-written one's", style="dim"),
                     id="probe-answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(ProbeAsked(event.value))

    def waiting(self, text: str, doing: str = "asking between two steps") -> None:
        self.query_one("#probe-answer", Static).update(Text(f"{text} → … ({doing})", style="dim"))

    def show(self, answer: ProbeAnswer) -> None:
        others = [part for name, said in answer.others for part in (f" · {name}: ", (said or "?", "bold"))]
        self.query_one("#probe-answer", Static).update(Text.assemble(
            (f"{answer.x}", "bold"), " → learned: ", (answer.learned or "?", "bold"),
            " · hand-written: ", (answer.hand_written or "?", "bold"), *others, (f" · prompt of step {answer.step}", "dim")))

    def failed(self, message: str) -> None:
        self.query_one("#probe-answer", Static).update(Text(message, style="italic"))


class PredictionsPane(Vertical):
    BORDER_TITLE = "Predictions"

    def compose(self) -> ComposeResult:
        yield PredictionsTable()
        yield ProbeBox()

    @property
    def table(self) -> PredictionsTable:
        return self.query_one(PredictionsTable)

    @property
    def probe(self) -> ProbeBox:
        return self.query_one(ProbeBox)

    @property
    def row_count(self) -> int:
        return self.table.row_count

    def reset(self) -> None:
        self.table.reset()
        self.border_title = "Predictions"

    def show(self, event: Predictions) -> None:
        self.table.show(event)
        right = sum(row.correct for row in event.rows)
        self.border_title = f"Predictions · step {event.step} · {right}/{len(event.rows)} right"
