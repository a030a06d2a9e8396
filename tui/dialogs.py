"""The two modal screens: a one-line path prompt (open, resume, export) and the help text."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from rich.text import Text
from textual.widgets import Input, Markdown, Static


class PathPrompt(ModalScreen[str | None]):
    """Ask for a path; dismiss with what was typed (enter) or None (escape)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, hint: str, value: str = "") -> None:
        super().__init__()
        self.title_text, self.hint, self.value = title, hint, value

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            yield Input(self.value, id="path")
            yield Static(self.hint + "  (enter: ok, escape: cancel)", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ErrorScreen(ModalScreen[None]):
    """A failure that must not fade: its message and, for a bug, the whole traceback, until escape."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, title: str, message: str, details: str = "") -> None:
        super().__init__()
        self.title_text, self.message, self.details = title, message, details

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="error") as box:
            box.border_title = self.title_text
            yield Static(Text(self.message), classes="error-message")
            if self.details:
                yield Static(Text(self.details), classes="error-details")
            yield Static("escape closes this; the traceback is also in the run folder's traceback.txt", classes="dialog-hint")


HELP = """\
# promptgrad-tui

Learns a soft prompt for a frozen language model and shows it learning.

| key | does |
|---|---|
| **ctrl+r** | start a run with the configuration in the form |
| **ctrl+t** | stop the run: finish the step, save a checkpoint |
| **ctrl+g** | resume a run folder from its checkpoint |
| **ctrl+o** | open a run folder to view (follows it while another process writes it) |
| **ctrl+y** | export the learned prompt (prompt.safetensors) |
| **ctrl+n** | next pane; **tab** / **shift+tab** move between fields |
| **f1** | this help |
| **ctrl+q** | quit (stops a run cleanly first) |

**Configuration**: every setting of a run; a bad value is flagged under its field and blocks the start.
The model field completes smollm2-135m and gpt2 … gpt2-xl (press **→** to accept) and takes any
Hugging Face id or local path.

**Loss**: training loss per step (grey) and its moving average, test loss at each evaluation,
and the hand-written prompt's test loss as a reference line: below it, the learned prompt wins.

**Predictions**: the fixed test pairs and what the model answers with the prompt so far.

**Nearest tokens**: for each prompt position, the vocabulary tokens closest by cosine similarity.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
