"""The results strip: once a run has its result on the whole test set, it stays under the panes until
the next run starts: a small table of the learned prompt's test loss and accuracy, each with its 95%
bootstrap interval, above each baseline's (every hand-written prompt, the k-shot demonstrations, the
untrained prompt, the majority answer), with the learned prompt's difference from each hand-written and
k-shot one, said in words where it did worse, and the text of a hard prompt. One row a prompt, in
columns that fit 80 columns. f4 copies it (the hard prompt's text, or the strip) through the terminal
(OSC 52, which works over SSH)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from promptgrad.events import Evaluation, Event, Finished, HardPromptFound, Started
from promptgrad.readout.intervals import accuracy_text, interval_of, loss_text

NAME, LOSS, ACCURACY, LAST = 24, 18, 19, 14  # column widths at 80 columns (78 characters); wider: longer names
BASELINE_ORDER = ("hand-written", "k-shot", "untrained", "majority")


class ResultsStrip(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        self.n_test = 0
        self.final: list[Evaluation] = []  # whole-test-set scores at the last step, in the order they came
        self.hard_text: str | None = None
        self.finished: Finished | None = None
        self.display = False

    def apply(self, event: Event) -> None:
        if isinstance(event, Started):
            self.n_test = event.n_test
        elif isinstance(event, HardPromptFound):
            self.hard_text = event.text
        elif isinstance(event, Evaluation) and event.n_pairs == self.n_test:
            self.final = [e for e in self.final if (e.prompt, e.text) != (event.prompt, event.text)] + [event]
        elif isinstance(event, Finished) and not event.stopped and event.test_loss is not None:
            self.finished = event
            self.display = True
            self.refresh(layout=True)

    folded = False  # one line (a small terminal, or z): the learned prompt's result beside the first hand-written one's

    def set_folded(self, folded: bool) -> None:
        if folded != self.folded:
            self.folded = folded
            self.refresh(layout=True)

    def render(self) -> Text:
        # drawn at the width it has: on a wide terminal a hand-written prompt's whole wording fits; each line
        # cut with an ellipsis where it is wider than that, never wrapped (an interval split over two lines)
        width = self.size.width or 80
        text = self.folded_line(width) if self.folded else self.text(width)
        lines = text.split("\n")
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines)

    def folded_line(self, width: int = 80) -> Text:
        """The strip on one line: the learned prompt's test loss and accuracy, and its difference from the
        first hand-written prompt (z unfolds the whole table); a part that does not fit is left out whole."""
        learned = next((e for e in reversed(self.final) if e.prompt == "learned"), None)
        if learned is None:
            return Text("")
        hand = next((e for e in self.final if e.prompt == "hand-written"), None)
        parts = [
            Text.assemble(
                ("Result: learned ", "bold"),
                loss_text(learned.test_loss, interval_of(learned.loss_low, learned.loss_high)),
            ),
            Text(", " + accuracy_text(learned.accuracy, interval_of(learned.accuracy_low, learned.accuracy_high))),
        ]
        if hand is not None:
            parts.append(Text.assemble(" · ", difference(learned, hand), f" vs {name_of(hand)}"))
        hint = Text(" · z: all rows", style="dim")  # kept: it is how the rest is found
        line = Text()
        for part in parts:
            if line.cell_len + part.cell_len + hint.cell_len <= width:
                line.append_text(part)
        return line.append_text(hint)

    @property
    def copied(self) -> str:
        """What f4 copies: a hard prompt's text (to paste into any API), else the strip itself."""
        return self.hard_text if self.hard_text is not None else self.text(width=10_000).plain  # every name whole

    def text(self, width: int = 80) -> Text:
        learned = next((e for e in reversed(self.final) if e.prompt == "learned"), None)
        if learned is None:
            return Text("")
        baselines = sorted(
            (e for e in self.final if e.prompt in BASELINE_ORDER), key=lambda e: BASELINE_ORDER.index(e.prompt)
        )
        longest = max(len(name_of(e)) for e in [learned, *baselines])
        name_width = max(NAME, min(longest, width - 2 - (LOSS + ACCURACY + LAST + 3)))
        head = f"Result, {learned.n_pairs:,} test pairs"
        lines = [
            Text.assemble(
                (fit(head, name_width).ljust(name_width), "bold"),
                " ",
                "test loss [95%]".ljust(LOSS),
                " ",
                "accuracy [95%]",
            )
        ]
        lines.append(row(learned, Text("f4 copies", style="dim"), name_width))
        for e in baselines:
            if e.prompt in ("hand-written", "k-shot"):
                last = difference(learned, e)
            else:
                last = worse_than_start(learned, e) if e.prompt == "untrained" else Text("")
            lines.append(row(e, last, name_width))
        if self.hard_text is not None:
            lines.append(Text.assemble("hard prompt ", (repr(self.hard_text), "bold")))
        return Text("\n").join(lines)


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def name_of(e: Evaluation) -> str:
    if e.prompt == "hand-written":
        return f"hand-written {e.text!r}"
    if e.prompt == "k-shot":
        return f"{e.text} demonstrations"
    if e.prompt == "majority":
        return f"majority {e.text!r}"
    return e.prompt


def row(e: Evaluation, last: Text, name_width: int = NAME) -> Text:
    loss = loss_text(e.test_loss, interval_of(e.loss_low, e.loss_high))
    accuracy = accuracy_text(e.accuracy, interval_of(e.accuracy_low, e.accuracy_high))
    name = (fit(name_of(e), name_width).ljust(name_width), "bold" if e.prompt == "learned" else "")
    line = Text.assemble(name, " ", loss.ljust(LOSS), " ", accuracy.ljust(ACCURACY), " ", last)
    line.rstrip()
    return line


def difference(learned: Evaluation, e: Evaluation) -> Text:
    """The learned prompt's test loss minus this baseline's, said in words where the learned one is worse."""
    if learned.test_loss is None or e.test_loss is None:
        return Text("")
    delta = learned.test_loss - e.test_loss
    return Text(f"learned {delta:+.3f}") if delta < 0 else Text(f"WORSE by {delta:.3f}", style="bold")


def worse_than_start(learned: Evaluation, start: Evaluation) -> Text:
    """Flagged where training made the prompt worse than the one it started from (a branch from another
    run's prompt can): otherwise nothing, the row says it with its numbers."""
    if learned.test_loss is None or start.test_loss is None or learned.test_loss <= start.test_loss:
        return Text("")
    return Text(f"WORSE than its start by {learned.test_loss - start.test_loss:.3f}", style="bold")
