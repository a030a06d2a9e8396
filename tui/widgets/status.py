"""The status line: what the run is and how far it has got, in one or two lines."""

from __future__ import annotations

import math
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from promptgrad.events import Evaluation, Event, Failed, Finished, Started, Step


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StatusLine(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self, phase: str = "ready", name: str = "") -> None:
        self.phase, self.run_name = phase, name
        self.step = self.total_steps = 0
        self.epoch = self.examples_per_s = 0.0
        self.eta_s = math.nan
        self.device = self.precision = ""
        self.best_test_loss: float | None = None
        self.stale = True

    def set_phase(self, phase: str) -> None:
        self.phase, self.stale = phase, True

    def apply(self, event: Event) -> None:
        if isinstance(event, Started):
            self.run_name = Path(event.run_dir).name
            self.total_steps, self.step = event.total_steps, event.start_step
            self.device, self.precision = event.device, event.precision
        elif isinstance(event, Step):
            self.step, self.epoch, self.eta_s = event.step, event.epoch, event.eta_s
            self.examples_per_s = event.examples_per_s
        elif isinstance(event, Evaluation) and event.prompt == "learned" and event.best_test_loss is not None:
            self.best_test_loss = event.best_test_loss
        elif isinstance(event, Finished):
            self.step, self.eta_s = event.step, 0.0
        elif isinstance(event, Failed):
            self.step = max(self.step, event.step)
        self.stale = True

    def redraw(self) -> None:
        if self.stale:
            self.stale = False
            self.update(self.line())

    def line(self) -> Text:
        parts: list[str | tuple[str, str]] = [(self.phase, "bold")]
        if self.run_name:
            parts.append((f" {self.run_name}", "bold"))
        if self.total_steps:
            best = "–" if self.best_test_loss is None else f"{self.best_test_loss:.4f}"
            parts += [
                f" │ step {self.step}/{self.total_steps}",
                f" │ epoch {self.epoch:.2f}",
                f" │ {self.examples_per_s:.1f} ex/s",
                f" │ ETA {duration(self.eta_s)}",
                f" │ {self.device}/{self.precision}",
                f" │ best test loss {best}",
            ]
        elif self.phase == "ready":
            parts.append((" │ ctrl+r starts a run with this configuration │ f1 help", "dim"))
        return Text.assemble(*parts)
