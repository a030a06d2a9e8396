"""The probe box (f2): try an input with the learned prompt while the run goes on."""

from __future__ import annotations

from textual import work
from textual.widgets import Input

from promptgrad.errors import UserError
from promptgrad.probe import Probe
from promptgrad_tui.messages import ProbeAnswered
from promptgrad_tui.panes import WIDE
from promptgrad_tui.torch_thread import in_own_thread
from promptgrad_tui.widgets.predictions import ProbeAsked


class Probing:
    """Mixin of MainScreen."""

    def action_probe(self) -> None:
        if self.size.width < WIDE:
            self.pane = "predictions"
        self.call_after_refresh(self.query_one("#probe-input", Input).focus)


    def on_probe_asked(self, message: ProbeAsked) -> None:
        box = self.predictions.probe
        if self.probe is None or not self.probe.ready:
            box.failed("nothing to try yet: start a run (ctrl+r) or resume one (ctrl+g); the model loads with it")
            return
        box.waiting(message.text)
        self.ask_probe(self.probe, message.text)

    @work(thread=True, exclusive=True, group="probe", name="probe", exit_on_error=False)
    def ask_probe(self, probe: Probe, text: str) -> None:
        try:
            self.post_message(ProbeAnswered(in_own_thread(lambda: probe.ask(text), "promptgrad probe"), None))
        except UserError as e:
            self.post_message(ProbeAnswered(None, str(e)))

    def on_probe_answered(self, message: ProbeAnswered) -> None:
        box = self.predictions.probe
        if message.answer is not None:
            box.show(message.answer)
        else:
            box.failed(message.error or "")
