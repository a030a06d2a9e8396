"""r in the run browser: a new name for a run folder; what is wrong with it is said in the dialog, which
stays open."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class RenameDialog(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, name: str, check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.old_name, self.check = name, check

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = f"Rename {self.old_name}"
            yield Input(self.old_name.rsplit("/", 1)[-1], id="new-name", select_on_focus=False)
            yield Static("the folder is renamed where it is · enter: rename · escape: cancel", classes="dialog-hint")
            yield Static("", id="rename-error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self.check(event.value)
        if problem:
            self.query_one("#rename-error", Static).update(Text(problem))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
