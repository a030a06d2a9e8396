"""How the command line shows a training run: a rich progress bar on a terminal, lines otherwise.

Only presentation lives here; it reads events and never changes the run.
"""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from promptgrad.events import Event, NearestToken


def nearest_table(positions: list[list[NearestToken]]) -> Table:
    table = Table(title="nearest vocabulary tokens (cosine)")
    table.add_column("position")
    for i in range(len(positions[0]) if positions else 0):
        table.add_column(f"#{i + 1}")
    for p, tokens in enumerate(positions):
        table.add_row(str(p), *(f"{t.token!r} {t.cosine:.2f}" for t in tokens))
    return table


class TrainingReport:
    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        if not self.console.is_terminal:
            self.console.width = 200  # a log file (nohup): don't wrap lines at 80 columns
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[rate]:.1f} ex/s"),
            TimeRemainingColumn(), console=self.console, disable=not self.live,
        )
        self.task = None
        self.total = 0
        self.exit_status = 0

    def __enter__(self) -> TrainingReport:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        (self.progress.console if self.live else self.console).print(text, highlight=False)

    def show(self, event: Event) -> None:
        kind = event.kind
        if kind == "started":
            self.total = event.total_steps
            self.say(f"run {event.run_dir}: {event.model} on {event.device} ({event.precision}), "
                     f"{event.n_train} training / {event.n_test} test pairs, {event.total_steps} steps"
                     + (f", resuming at step {event.start_step}" if event.start_step else ""))
            self.task = self.progress.add_task("training", total=event.total_steps, completed=event.start_step, loss=math.nan, rate=0.0)
        elif kind == "step":
            self.progress.update(self.task, completed=event.step, loss=event.loss, rate=event.examples_per_s)
            if not self.live and (event.step % max(1, self.total // 20) == 0):
                self.say(f"step {event.step}/{self.total} loss {event.loss:.4f} {event.examples_per_s:.1f} ex/s eta {event.eta_s:.0f}s")
        elif kind == "evaluation":
            self.say(f"step {event.step}: {event.prompt} prompt: test loss {event.test_loss:.4f}, "
                     f"accuracy {event.accuracy:.1%} on {event.n_pairs} test pairs")
        elif kind == "predictions":
            self.say("  " + "  ".join(f"{r.x}->{r.predicted or '?'}{'✓' if r.correct else '✗'}" for r in event.rows))
        elif kind == "nearest_tokens":
            self.say("  nearest: " + " | ".join(", ".join(f"{t.token!r} {t.cosine:.2f}" for t in pos[:3]) for pos in event.positions))
        elif kind == "hard_prompt":
            self.say(escape(f"step {event.step}: best hard prompt {event.text!r} {event.ids} "  # the text may hold "[...]"
                            f"(loss {event.train_loss:.4f} on held-out training pairs)"))
        elif kind == "checkpoint":
            pass
        elif kind == "finished":
            how = "stopped" if event.stopped else "finished"
            result = "" if event.test_loss is None else f": test loss {event.test_loss:.4f}, accuracy {event.accuracy:.1%}"
            self.say(f"{how} at step {event.step}{result}; prompt saved to {event.prompt_path}")
        elif kind == "failed":
            print(f"promptgrad: error: {event.message}", file=sys.stderr)
            self.exit_status = 2 if event.user_error else 1
