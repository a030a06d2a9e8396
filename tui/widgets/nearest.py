"""The nearest-token readout: for each prompt position, the vocabulary tokens closest by cosine.

In hard mode the prompt is made of real tokens; the best one found so far is shown under the table.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from promptgrad.events import HardPromptFound, NearestTokens
from promptgrad_tui.widgets.tables import set_table


def visible(token: str) -> str:
    """A token with its whitespace made visible: a leading space is most of what a GPT token says."""
    return token.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")


class NearestTable(DataTable):
    BORDER_TITLE = "Nearest tokens"

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def reset(self) -> None:
        self.clear(columns=True)
        self.border_title = "Nearest tokens"
        self.border_subtitle = ""

    def on_mount(self) -> None:
        self.event: NearestTokens | None = None

    def on_resize(self) -> None:
        if getattr(self, "event", None) is not None:
            self.show(self.event)

    def show(self, event: NearestTokens) -> None:
        self.event = event
        k = max((len(tokens) for tokens in event.positions), default=0)
        rows = [
            [Text(str(position)), *(Text.assemble(visible(t.token), (f" {t.cosine:.2f}", "dim")) for t in tokens)]
            for position, tokens in enumerate(event.positions)
        ]
        set_table(self, ["pos", *(f"#{i + 1}" for i in range(k))], rows)
        needed = sum(column.get_render_width(self) for column in self.columns.values())
        more = " · ←→ more" if needed > self.size.width - 1 else ""  # the table scrolls sideways
        self.border_title = f"Nearest · step {event.step} · cosine{more}"

    def show_hard_prompt(self, event: HardPromptFound) -> None:
        self.border_subtitle = f"hard prompt {event.text!r} · step {event.step} · loss {event.train_loss:.3f}"
