"""The results strip: once a run has its result on the whole test set, it stays under the panes until
the next run starts: the learned prompt's test loss and accuracy beside each hand-written prompt's and the
untrained one's, with the difference, said in words where the learned prompt did worse, and the text of
a hard prompt. f4 copies it (the hard prompt's text, or the strip) through the terminal (OSC 52, which
works over SSH)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from promptgrad.events import Evaluation, Event, Finished, HardPromptFound, Started


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
            self.update(self.text())
            self.display = True

    @property
    def copied(self) -> str:
        """What f4 copies: a hard prompt's text (to paste into any API), else the strip itself."""
        return self.hard_text if self.hard_text is not None else self.text().plain

    def text(self) -> Text:
        learned = next((e for e in reversed(self.final) if e.prompt == "learned"), None)
        if learned is None:
            return Text("")
        head = Text.assemble(("Result", "bold"), f" on {learned.n_pairs:,} test pairs: ")
        parts = [Text.assemble(("learned", "bold"), f" {learned.test_loss:.3f} ({learned.accuracy:.1%})")]
        for e in self.final:
            if e.prompt == "hand-written":
                delta = learned.test_loss - e.test_loss
                verdict = (f"learned {delta:+.3f} ({delta / e.test_loss:+.1%})" if delta < 0 else
                           f"learned is WORSE by {delta:.3f}")
                parts.append(Text.assemble(f"hand-written {e.text!r} {e.test_loss:.3f} ({e.accuracy:.1%}), ",
                                           (verdict, "bold" if delta >= 0 else "")))
        for e in self.final:
            if e.prompt == "untrained":
                parts.append(Text(f"untrained {e.test_loss:.3f} ({e.accuracy:.1%})"))
        if self.hard_text is not None:
            parts.append(Text.assemble("hard prompt ", (repr(self.hard_text), "bold")))
        parts.append(Text("f4 copies", style="dim"))
        return head + Text(" · ").join(parts)
