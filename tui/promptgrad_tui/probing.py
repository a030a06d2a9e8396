"""The probe box (f2): try an input with the learned prompt while the run goes on."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.widgets import Input

from promptgrad.errors import UserError
from promptgrad.train.probe import Probe
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
        live = (
            self.probe is not None
            and self.probe.ready
            and (self.running or self.probe_for == (self.run_dir, self.compared))
        )
        if live:
            box.waiting(message.text)
            self.ask_probe(self.probe, message.text)
        elif self.run_dir is not None and not self.running:  # a run on view: its model loads now, once
            box.waiting(message.text, f"loading the model of {Path(self.run_dir).name}")
            self.probe_for = (self.run_dir, self.compared)
            self.ask_probe(None, message.text, (self.run_dir, self.compared))
        else:
            box.failed("nothing to try yet: start a run (ctrl+r), resume one (ctrl+g) or open one (ctrl+o)")

    @work(thread=True, exclusive=True, group="probe", name="probe", exit_on_error=False)
    def ask_probe(self, probe: Probe | None, text: str, run: tuple | None = None) -> None:
        """Answer in a thread of its own; for a viewed run (`run`: its folder and the overlaid ones), make the
        probe first, loading the model."""

        def answer():
            nonlocal probe
            if probe is None:
                probe = Probe.of_run(*run)
                self.app.call_from_thread(setattr, self, "probe", probe)
            return probe.ask(text)

        try:
            self.post_message(ProbeAnswered(in_own_thread(answer, "promptgrad probe"), None))
        except UserError as e:
            self.post_message(ProbeAnswered(None, str(e)))

    def on_probe_answered(self, message: ProbeAnswered) -> None:
        box = self.predictions.probe
        if message.answer is not None:
            box.show(message.answer)
        else:
            box.failed(message.error or "")
