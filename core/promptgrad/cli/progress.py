"""How the command line shows a training run: a rich progress bar on a terminal, lines otherwise.

Only presentation lives here; it reads events and never changes the run.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from promptgrad.config import ProblemSettings
from promptgrad.events import Evaluation, Event, NearestToken
from promptgrad.readout.intervals import accuracy_text, interval_of, loss_text


def nearest_table(positions: list[list[NearestToken]]) -> Table:
    table = Table(title="nearest vocabulary tokens (cosine)")
    table.add_column("position")
    for i in range(len(positions[0]) if positions else 0):
        table.add_column(f"#{i + 1}")
    for p, tokens in enumerate(positions):
        table.add_row(str(p), *(Text(f"{t.token!r} {t.cosine:.2f}") for t in tokens))  # Text: tokens may hold "[...]"
    return table


def task_line(problem: ProblemSettings) -> str:
    """A run's first line: what it learns (a resolved config's problem), so that no template or hand-written
    prompt is taken unseen: 'task antonyms: template 'Here are two {prompt} {x} and {y}', hand-written
    ' antonyms', ' words with opposite meanings:'; data antonyms'."""
    task = f"task {problem.task}" if problem.task else "no task"
    columns = (
        ""
        if (problem.x_column, problem.y_column) == ("x", "y")
        else f" (columns {problem.x_column} -> {problem.y_column})"
    )
    return (
        f"{task}: template {problem.template!r}, hand-written {', '.join(repr(t) for t in problem.baseline_text)}; "
        f"data {problem.data}{columns}"
    )


def evaluation_line(event: Evaluation) -> str:
    """'step 6: hand-written prompt ' antonyms': test loss 3.6860 [3.61, 3.75], accuracy 6.0% [4.7, 7.4] on
    1292 test pairs' (the intervals: 95% bootstrap, intervals.py; absent from records older than them)."""
    loss = interval_of(event.loss_low, event.loss_high)
    accuracy = accuracy_text(event.accuracy, interval_of(event.accuracy_low, event.accuracy_high))
    if event.prompt == "majority":  # not a prompt, and no language model: no loss
        what = f"majority answer {event.text!r} (always the most common training answer): accuracy {accuracy}"
    elif event.prompt == "untrained" and event.text:  # the start prompt, named for what it is (soft_prompt.py)
        what = f"{event.text}: test loss {loss_text(event.test_loss, loss, places=4)}, accuracy {accuracy}"
    else:
        wording = f" {event.text!r}" if event.text else ""
        what = f"{event.prompt} prompt{wording}: test loss {loss_text(event.test_loss, loss, places=4)}, accuracy {accuracy}"
    return f"step {event.step}: {what} on {event.n_pairs} test pairs"


class TrainingReport:
    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        if not self.console.is_terminal:
            self.console.width = 200  # a log file (nohup): don't wrap lines at 80 columns
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TextColumn("{task.fields[rate]:.1f} ex/s"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task = None
        self.total = 0
        self.exit_status = 0
        self.n_test = 0
        self.start: Evaluation | None = None  # the prompt the run started from, on the whole test set

    def __enter__(self) -> TrainingReport:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        """Print a line; `text` is rich markup, so anything from data or the model must be escaped first."""
        (self.progress.console if self.live else self.console).print(text, highlight=False)

    def begin(self, problem: ProblemSettings) -> None:
        """The run's first line: its task, template, hand-written prompts and data (never folded: a template
        or a path cut at the console's width would read as two)."""
        (self.progress.console if self.live else self.console).print(
            escape(task_line(problem)), highlight=False, soft_wrap=True
        )

    def show(self, event: Event) -> None:
        kind = event.kind
        if kind == "started":
            self.total, self.n_test = event.total_steps, event.n_test
            self.say(
                escape(
                    f"run {event.run_dir}: {event.model} on {event.device} ({event.precision}: {event.precision_reason}), "
                    f"{event.n_train} training / {event.n_test} test pairs"
                    + (f" ({event.n_validation} more held out for validation)" if event.n_validation else "")
                    + (f" ({event.skipped_rows} data rows without both x and y left out)" if event.skipped_rows else "")
                    + f", {event.total_steps} steps"
                    + (f", resuming at step {event.start_step}" if event.start_step else "")
                )
            )
            if event.no_majority:
                self.say(escape(event.no_majority))
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(
                "training", total=event.total_steps, completed=event.start_step, loss=math.nan, rate=0.0
            )
        elif kind == "progress":
            if self.task is None:
                self.task = self.progress.add_task("starting", total=None, loss=math.nan, rate=0.0)
            count = f" {event.done}/{event.total}" if event.total else ""
            self.progress.update(self.task, description=escape(event.task + count))
            if not self.live and event.total == 0:
                self.say(escape(event.task + "..."))
        elif kind == "step":
            self.progress.update(
                self.task, description="training", completed=event.step, loss=event.loss, rate=event.examples_per_s
            )
            if not self.live and (event.step % max(1, self.total // 20) == 0):
                self.say(
                    f"step {event.step}/{self.total} loss {event.loss:.4f} {event.examples_per_s:.1f} ex/s eta {event.eta_s:.0f}s"
                )
        elif kind == "extended":
            self.say(
                f"extended from {event.previous_total_steps} to {event.total_steps} steps at step {event.step}: "
                f"{event.describe()}"
            )
        elif kind == "evaluation":
            self.say(escape(evaluation_line(event)))
            if event.prompt == "untrained" and event.n_pairs == self.n_test:
                self.start = event
        elif kind == "validation":
            since = (
                f", {event.without_gain} score(s) without a lower one" if event.without_gain else " (the best: kept)"
            )
            stop = f"; stopping early, with the prompt of step {event.best_step}" if event.stopping else ""
            self.say(
                f"step {event.step}: learned prompt: validation loss {event.loss:.4f}, accuracy {event.accuracy:.1%} on "
                f"{event.n_pairs} validation pairs; best {event.best_loss:.4f} at step {event.best_step}{since}{stop}"
            )
        elif kind == "predictions":
            self.say(
                escape("  " + "  ".join(f"{r.x}->{r.predicted or '?'}{'✓' if r.correct else '✗'}" for r in event.rows))
            )
        elif kind == "nearest_tokens":
            self.say(
                escape(
                    "  nearest: "
                    + " | ".join(", ".join(f"{t.token!r} {t.cosine:.2f}" for t in pos[:3]) for pos in event.positions)
                )
            )
        elif kind == "reading":
            self.say(escape("  reads as: " + " | ".join(repr(t) for t in event.positions) + f"; all: {event.whole!r}"))
        elif kind == "pareto_front":
            pass  # `promptgrad eval RUN` shows the front, each prompt scored on the test set
        elif kind == "hard_prompt":
            self.say(
                escape(
                    f"step {event.step}: best hard prompt {event.text!r} {event.ids} "
                    f"(loss {event.train_loss:.4f} on held-out training pairs, {event.nats_per_token:.2f} nats/token)"
                )
            )
        elif kind == "checkpoint":
            pass
        elif kind == "tracker_failed":
            self.say(escape(f"report_to {event.tracker}: {event.message}"))
        elif kind == "finished":
            how = "stopped" if event.stopped else "stopped early" if event.stopped_early else "finished"
            rule = f" ({event.accuracy_rule})" if event.accuracy_rule else ""
            result = (
                ""
                if event.test_loss is None
                else f": test loss {event.test_loss:.4f}, accuracy {event.accuracy:.1%}{rule}"
            )
            if event.best_step is not None and not event.stopped:
                result = f" with the prompt of step {event.best_step}, the best on the validation pairs{result}"
            resume = (
                "; resume with: promptgrad train --resume " + str(Path(event.prompt_path).parent)
                if event.stopped and event.prompt_path
                else ""
            )
            self.say(escape(f"{how} at step {event.step}{result}; prompt saved to {event.prompt_path}{resume}"))
            start = self.start
            if (
                not event.stopped
                and event.test_loss is not None
                and start is not None
                and start.test_loss is not None
                and event.test_loss > start.test_loss
            ):
                self.say(
                    escape(
                        f"the learned prompt ends WORSE than its start: test loss {event.test_loss:.4f} against "
                        f"{start.test_loss:.4f} for the prompt it started from; a lower lr or fewer steps may keep "
                        f"what the start had"
                    )
                )
        elif kind == "failed":
            message = event.message
            if event.traceback and "traceback in" not in message:  # no run folder to keep it: keep it here
                with tempfile.NamedTemporaryFile("w", prefix="promptgrad-traceback-", suffix=".txt", delete=False) as f:
                    f.write(event.traceback)
                message += f"; traceback in {f.name}"
            if event.traceback:
                message += " (this is a bug in promptgrad; please report it with the traceback)"
            print(f"promptgrad: error: {message}", file=sys.stderr)
            self.exit_status = 2 if event.user_error else 1
