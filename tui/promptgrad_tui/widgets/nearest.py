"""The nearest-token readout: for each prompt position, what the model itself reads there (explain.py)
and the vocabulary tokens closest by cosine.

In hard mode the prompt is made of real tokens: the best one found so far is shown under the table,
and the rows after the positions list the Pareto front (held-out task loss against nats/token).
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from promptgrad.events import HardPromptFound, NearestTokens, ParetoFront, Reading
from promptgrad_tui.widgets.tables import set_table


def visible(token: str) -> str:
    """A token with its whitespace made visible: a leading space is most of what a GPT token says."""
    return token.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")


class NearestTable(DataTable):
    BORDER_TITLE = "Nearest tokens"

    BINDINGS = [Binding("right", "page_right", "More", show=False), Binding("left", "page_left", "Back", show=False)]

    def __init__(self, **kwargs) -> None:
        # the position column stays in place while the neighbours scroll sideways, a page at a time
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=1, **kwargs)
        self.event: NearestTokens | None = None
        self.reading: Reading | None = None
        self.front: ParetoFront | None = None

    def reset(self) -> None:
        self.clear(columns=True)
        self.event = self.reading = self.front = None
        self.border_title = "Nearest tokens"
        self.border_subtitle = ""

    def on_resize(self) -> None:
        self.render_table()

    def show(self, event: NearestTokens) -> None:
        self.event = event
        self.render_table()

    def show_reading(self, event: Reading) -> None:
        self.reading = event
        self.border_subtitle = f"all together the model reads: {event.whole!r}"
        self.render_table()

    def show_front(self, event: ParetoFront) -> None:
        self.front = event
        self.render_table()

    def render_table(self) -> None:
        event = self.event
        if event is None:
            return
        k = max((len(tokens) for tokens in event.positions), default=0)
        # the reading of the same readout only: it arrives just after these neighbours
        reads = (
            self.reading is not None
            and self.reading.step == event.step
            and len(self.reading.positions) == len(event.positions)
        )
        rows = [
            [
                Text(str(position)),
                *([Text(visible(self.reading.positions[position]), style="bold")] if reads else []),
                *(Text.assemble(visible(t.token), (f" {t.cosine:.2f}", "dim")) for t in tokens),
            ]
            for position, tokens in enumerate(event.positions)
        ]
        labels = ["pos", *(["reads as"] if reads else []), *(f"#{i + 1}" for i in range(k))]
        if self.front is not None and len(labels) >= 3:  # hard mode: the front, one prompt a row
            for point in self.front.points:
                rows.append(
                    [
                        Text("front", style="dim"),
                        Text(visible(point.text)),
                        Text(f"{point.train_loss:.3f} · {point.nats_per_token:.1f} nats/tok", style="dim"),
                        *[Text("")] * (len(labels) - 3),
                    ]
                )
        set_table(self, labels, rows)
        needed = sum(column.get_render_width(self) for column in self.columns.values())
        more = " · ←→ more" if needed > self.size.width - 1 else ""  # the table scrolls sideways
        self.border_title = f"Nearest · step {event.step} · cosine{more}"

    def show_hard_prompt(self, event: HardPromptFound) -> None:
        self.border_subtitle = (
            f"hard prompt {event.text!r} · step {event.step} · held-out {event.train_loss:.3f} · "
            f"{event.nats_per_token:.1f} nats/token"
        )
