"""The status line: what the run is doing and how far it has got, in one line that fits 80 columns;
and, under it when a run has failed, the reason, kept until the next run starts."""

from __future__ import annotations

import math
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from promptgrad.events import Evaluation, Event, Extended, Failed, Finished, Progress, Started, Step


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StatusLine(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.device_use = ""  # "CPU 190% · RSS 1.2 GB" or the GPU's use (device_use.py), kept across runs
        self.reset()

    def reset(self, phase: str = "ready", name: str = "") -> None:
        self.phase, self.run_name = phase, name
        self.doing = ""  # what a long phase is doing ("scoring the hand-written prompt 64/256")
        self.step = self.total_steps = 0
        self.examples_per_s = 0.0
        self.eta_s = math.nan
        self.device = self.precision = ""
        self.best_test_loss: float | None = None
        self.ended = False  # finished or stopped: no ETA
        self.stale = True

    def set_device_use(self, text: str) -> None:
        if text != self.device_use:
            self.device_use, self.stale = text, True

    def set_phase(self, phase: str) -> None:
        self.phase, self.stale = phase, True

    def apply(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.doing = f"{event.task} {event.done}/{event.total}" if event.total else f"{event.task}…"
        elif isinstance(event, Started):
            self.ended = False
            self.run_name = Path(event.run_dir).name
            self.total_steps, self.step = event.total_steps, event.start_step
            self.device, self.precision = event.device, event.precision
            self.doing = ""
        elif isinstance(event, Extended):
            self.total_steps = event.total_steps
        elif isinstance(event, Step):
            self.step, self.eta_s, self.examples_per_s, self.doing = event.step, event.eta_s, event.examples_per_s, ""
        elif isinstance(event, Evaluation):
            self.doing = ""
            if event.prompt == "learned" and event.best_test_loss is not None:
                self.best_test_loss = event.best_test_loss
        elif isinstance(event, Finished):
            self.step, self.eta_s, self.doing, self.ended = event.step, math.nan, "", True
        elif isinstance(event, Failed):
            self.step, self.doing = max(self.step, event.step), ""
        self.stale = True

    def redraw(self) -> None:
        if self.stale:
            self.stale = False
            self.update(
                self.line(max(40, self.size.width or 80)), layout=False
            )  # one line high: the layout never changes

    def line(self, width: int = 80) -> Text:
        """The line, fitted to `width`: less important parts go first, the run's name is shortened last."""
        head = [(self.phase or "ready", "bold")]
        if self.doing:  # a long phase: what it does and how far, beside the step it follows
            step = f" │ step {self.step}/{self.total_steps}" if self.total_steps else ""
            return Text.assemble(*head, step, " │ ", self.doing)[:width]
        if not self.total_steps:
            hint = " │ ctrl+r starts a run · ctrl+o opens one · ? help" if self.phase == "ready" else ""
            return Text.assemble(*head, (f" │ {self.run_name}" if self.run_name else "", "bold"), (hint, "dim"))[:width]
        best = "–" if self.best_test_loss is None else f"{self.best_test_loss:.4f}"
        use = self.device_use
        parts = [
            f"step {self.step}/{self.total_steps}",
            f"{self.examples_per_s:.1f} ex/s",
            "" if self.ended else f"ETA {duration(self.eta_s)}",
            f"{self.device}/{self.precision}",
            f"best test {best}",
            use,
        ]
        optional = [5, 3, 1, 2]  # dropped in this order when the line is too long: device use, device, speed, ETA
        name = self.run_name
        while True:
            text = Text.assemble(*head, (f" │ {name}" if name else "", "bold"), *(f" │ {p}" for p in parts if p))
            if text.cell_len <= width:
                return text
            if optional:
                parts[optional.pop(0)] = ""
            elif len(name) > 8:
                name = name[:7] + "…"
            else:
                return text[:width]
