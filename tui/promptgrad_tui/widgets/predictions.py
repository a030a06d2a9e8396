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
from promptgrad.train.probe import ProbeAnswer
from promptgrad_tui.prediction_detail import PredictionDetail
from promptgrad_tui.widgets.tables import set_table

MARK_WIDTH = 1
ANSWER_MIN = 8  # the answer column keeps at least this much ("contrar…"); the rest of it is in the detail view
INPUT_SHARE, EXPECTED_SHARE = 0.45, 0.3  # the most of the room the input and expected columns take, on one line


def one_line(text: str) -> str:
    return text.replace("\n", "⏎")


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


@dataclass(frozen=True)
class Layout:
    """Column widths of the predictions table: the input and the expected answer are always shown whole
    (on more lines where they are longer than their column), the model's answer gets the rest, cut with
    an ellipsis (enter shows the whole row)."""

    x: int
    expected: int
    answer: int

    @staticmethod
    def of(texts: list[tuple[str, str, str]], width: int) -> Layout:
        # each column costs its width plus 2 of padding, and 1 for a scrollbar
        room = max(3 * 3, width - 2 * 4 - MARK_WIDTH - 1)
        longest = [
            max([len(label), *(len(t[i]) for t in texts)])
            for label, i in (("input", 0), ("expected", 2), ("answer", 1))
        ]
        # the input and expected columns are at least as wide as their longest word (a word is never split
        # over two lines); the answer at least ANSWER_MIN
        floors = [
            min(longest[0], max(5, longest_word(t[0] for t in texts))),
            min(longest[1], max(5, longest_word(t[2] for t in texts))),
            min(longest[2], ANSWER_MIN),
        ]
        if sum(floors) > room:  # not even that fits (a narrow pane, long single words): the answer keeps its start,
            left = max(10, room - floors[2])  # the input and expected share the rest, a long word folded over lines
            x = max(5, left * floors[0] // (floors[0] + floors[1]))
            return Layout(x, max(5, left - x), max(3, room - left))
        return Layout(*fill(floors, longest, room))


def longest_word(texts) -> int:
    return max([0, *(len(word) for text in texts for word in text.split())])


def fill(floors: list[int], wanted: list[int], room: int) -> list[int]:
    """Widths from `floors` up to `wanted`, the room left shared out evenly among the columns that want more."""
    widths = list(floors)
    left = room - sum(widths)
    while left > 0:
        hungry = [i for i in range(len(widths)) if widths[i] < wanted[i]]
        if not hungry:
            break
        share = max(1, left // len(hungry))
        for i in hungry:
            give = min(share, wanted[i] - widths[i], left)
            widths[i] += give
            left -= give
    return widths


class PredictionsTable(DataTable):
    """Columns: ✓/✗, input, expected, answer. The input and the expected answer are never cut (a long one
    takes more lines); the model's answer is cut with an ellipsis where it does not fit; enter on a row
    shows it whole (PredictionDetail)."""

    LABELS = ["", "input", "expected", "answer"]

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
        layout = Layout.of(texts, self.size.width)
        widths = [MARK_WIDTH, layout.x, layout.expected, layout.answer]
        cursor = self.cursor_row
        self.clear(columns=True)
        for label, width in zip(self.LABELS, widths):
            self.add_column(cut(label, width), width=width)
        for r, (x, answer, y) in zip(event.rows, texts):
            mark = Text("✓", style="bold green") if r.correct else Text("✗", style="bold red")
            whole = max(-(-len(x) // layout.x), -(-len(y) // layout.expected))  # lines the longer of the two takes
            self.add_row(
                mark, Text(x), Text(y), Text(cut(answer, layout.answer), no_wrap=True), height=1 if whole <= 1 else None
            )  # None: as many lines as the wrapped text needs
        if event.rows:
            self.move_cursor(row=min(max(cursor, 0), len(event.rows) - 1), animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """enter: the whole row in a window of its own (the answer, however long)."""
        event.stop()
        if self.event is not None and 0 <= event.cursor_row < len(self.event.rows):
            self.app.push_screen(PredictionDetail(self.event.rows[event.cursor_row], self.event.step))


@dataclass
class ProbeAsked(Message):
    """The user typed an input to try."""

    text: str


class ProbeBox(Vertical):
    """An input line and the last answer: what the learned and the hand-written prompt make of it."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="try an input (f2), e.g. hot", id="probe-input")
        yield Static(
            Text("the learned prompt's answer appears here, beside the hand-written one's", style="dim"),
            id="probe-answer",
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(ProbeAsked(event.value))

    def waiting(self, text: str, doing: str = "asking between two steps") -> None:
        self.query_one("#probe-answer", Static).update(Text(f"{text} → … ({doing})", style="dim"))

    def show(self, answer: ProbeAnswer) -> None:
        others = [part for name, said in answer.others for part in (f" · {name}: ", (said or "?", "bold"))]
        self.query_one("#probe-answer", Static).update(
            Text.assemble(
                (f"{answer.x}", "bold"),
                " → learned: ",
                (answer.learned or "?", "bold"),
                " · hand-written: ",
                (answer.hand_written or "?", "bold"),
                *others,
                (f" · prompt of step {answer.step}", "dim"),
            )
        )

    def reset(self) -> None:
        """A new run, or another run opened: the last answer was another prompt's (another task's, maybe)."""
        self.query_one("#probe-input", Input).value = ""
        self.query_one("#probe-answer", Static).update(
            Text("the learned prompt's answer appears here, beside the hand-written one's", style="dim")
        )

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
        self.probe.reset()
        self.border_title = "Predictions"

    def show(self, event: Predictions) -> None:
        self.table.show(event)
        right = sum(row.correct for row in event.rows)
        self.border_title = f"Predictions · step {event.step} · {right}/{len(event.rows)} right"
