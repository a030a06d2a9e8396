"""The modal screens: a path prompt that completes, a yes/no question, how far to take a resumed run,
the message log, a failure that must not fade, and the help text. Each closes with escape."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Markdown, Static

from promptgrad.config import check_lr


class PathSuggester(Suggester):
    """Completes a path from the folder it is in: `runs/li` -> `runs/live/`. Relative paths are taken
    from `base` first (runs/), then from the working folder."""

    def __init__(self, base: str = "") -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.base = base

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, self.base)


def complete_path(value: str, base: str = "") -> str | None:
    """`value` completed with the first entry of its folder that starts like it (a folder gets its /)."""
    typed = Path(value).expanduser()
    folder, stem = (typed, "") if (not value or value.endswith("/")) else (typed.parent, typed.name)
    for root in ([Path(base)] if base and not typed.is_absolute() else []) + [Path(".")]:
        where = folder if folder.is_absolute() else root / folder
        try:
            names = sorted(n for n in os.listdir(where) if n.startswith(stem) and not n.startswith("."))
        except OSError:
            continue
        if names:
            return value[: len(value) - len(stem)] + names[0] + ("/" if (where / names[0]).is_dir() else "")
    return None


class PathPrompt(ModalScreen[str | None]):
    """Ask for a path; tab completes it; dismiss with what was typed (enter) or None (escape). `check(text)`,
    if given, says what is wrong with a path (None: fine): the prompt then stays open with the error under it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("tab", "complete", "Complete", priority=True)]

    def __init__(
        self,
        title: str,
        hint: str,
        value: str = "",
        placeholder: str = "",
        base: str = "",
        check: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.title_text, self.hint, self.value, self.placeholder, self.base = title, hint, value, placeholder, base
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            yield Input(self.value, placeholder=self.placeholder, suggester=PathSuggester(self.base), id="path")
            yield Static(self.hint, classes="dialog-hint")
            yield Static("tab completes · enter: ok · escape: cancel", classes="dialog-hint")
            yield Static("", id="path-error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problem = self.check(event.value.strip()) if self.check else None
        if problem:
            self.query_one("#path-error", Static).update(Text(problem))
            return
        self.dismiss(event.value.strip())

    def action_complete(self) -> None:
        field = self.query_one(Input)
        suggestion = complete_path(field.value, self.base)
        if suggestion:
            field.value = suggestion
            field.cursor_position = len(suggestion)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y says yes, n or escape no, enter the `default` (no, where yes would lose
    something: overwriting a file, quitting a run)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        Binding("enter", "default", "Default"),
    ]

    def __init__(self, title: str, question: str, default: bool = True) -> None:
        super().__init__()
        self.title_text, self.question, self.default = title, question, default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            yield Static(Text(self.question))
            enter = "yes" if self.default else "no"
            yield Static(f"y: yes · n / escape: no · enter: {enter}", classes="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def action_default(self) -> None:
        self.dismiss(self.default)


@dataclass(frozen=True)
class ResumeChoice:
    """What the steps dialog decided: go on to `steps`, the added ones with a new peak learning rate
    `extend_lr` if given; or `branch`: a new run from the run's prompt instead."""

    steps: int = 0
    extend_lr: float | None = None
    branch: bool = False


class StepsDialog(ModalScreen[ResumeChoice | None]):
    """How far a resumed run should go: its own total, or more (an extension), never below where it is.
    A finished run whose learning rate has decayed to 0 (`new_peak`: the peak to suggest) is said to be
    so before any step is spent: its added steps need a new peak learning rate, or the user branches."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+b", "branch", "Branch")]

    def __init__(self, run: str, step: int, total: int, finished: bool, new_peak: float | None = None) -> None:
        super().__init__()
        self.run, self.step, self.total, self.finished, self.new_peak = run, step, total, finished, new_peak

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = f"Resume {self.run}"
            where = "finished" if self.finished else "stopped"
            if self.new_peak is not None:
                yield Static(
                    Text(
                        f"This run has finished: its learning rate is 0 (decayed at step {self.step}), so more "
                        f"steps alone would not change its prompt. Extend with a new peak learning rate, or "
                        f"branch (ctrl+b: a new run from its prompt).",
                        style="bold",
                    )
                )
            yield Static(f"{where} at step {self.step} of {self.total}. Go on to step:")
            suggested = self.total if not self.finished else self.total * 2
            yield Input(str(suggested), id="steps", type="integer")
            if self.new_peak is not None:
                yield Static("New peak learning rate of the added steps:")
                yield Input(f"{self.new_peak:g}", id="extend-lr", type="number")
                yield Static(
                    "a short warm-up to it, then decay to 0 at the new last step · tab: next field · "
                    "enter: extend · ctrl+b: branch · escape: cancel",
                    classes="dialog-hint",
                )
            else:
                yield Static(
                    "more steps than it had extend it: the learning rate goes on decaying from where it is, "
                    "it never jumps up · enter: resume · ctrl+b: branch · escape: cancel",
                    classes="dialog-hint",
                )
            yield Static("", id="steps-error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            steps = int(self.query_one("#steps", Input).value)
        except ValueError:
            steps = -1
        lowest = self.step + 1 if self.finished else self.step
        if steps < max(1, lowest):
            reason = "it has finished" if self.finished else "it is there already"
            self.query_one("#steps-error", Static).update(
                f"give at least {max(1, lowest)} steps: {reason} at step {self.step}"
            )
            return
        extend_lr = None
        if self.new_peak is not None:
            problem, extend_lr = peak_problem(self.query_one("#extend-lr", Input).value)
            if problem:
                self.query_one("#steps-error", Static).update(problem)
                return
        self.dismiss(ResumeChoice(steps, extend_lr))

    def action_branch(self) -> None:
        self.dismiss(ResumeChoice(branch=True))

    def action_cancel(self) -> None:
        self.dismiss(None)


def peak_problem(text: str) -> tuple[str | None, float | None]:
    """What is wrong with a typed peak learning rate (None: fine), and the rate."""
    try:
        value = float(text)
    except ValueError:
        return f"the new peak learning rate must be a number, e.g. 0.03, got {text!r}", None
    problem = check_lr(value)
    return (problem.replace("lr must", "the new peak learning rate must", 1) if problem else None), value


@dataclass(frozen=True)
class LoggedMessage:
    at: float
    severity: str
    title: str
    text: str

    def line(self) -> Text:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        mark = {"error": "ERROR", "warning": "warn "}.get(self.severity, "info ")
        return Text.assemble((f"{stamp} {mark} ", "dim"), (f"{self.title}: " if self.title else "", "bold"), self.text)


class MessageLogScreen(ModalScreen[None]):
    """Every message the app has shown, with its time, newest last."""

    BINDINGS = [Binding("escape,ctrl+l,q", "dismiss", "Close")]

    def __init__(self, messages: list[LoggedMessage]) -> None:
        super().__init__()
        self.messages = list(messages)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="messages") as box:
            box.border_title = f"Messages ({len(self.messages)}) · escape closes"
            if not self.messages:
                yield Static("No messages yet.", classes="dialog-hint")
            for message in self.messages:
                yield Static(message.line(), classes=f"message -{message.severity}")

    def on_mount(self) -> None:
        self.query_one("#messages").scroll_end(animate=False)


class ErrorScreen(ModalScreen[None]):
    """A failure that must not fade: its message and, for a bug, the whole traceback, until escape."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, title: str, message: str, details: str = "") -> None:
        super().__init__()
        self.title_text, self.message, self.details = title, message, details

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="error") as box:
            box.border_title = self.title_text + " · escape closes"
            yield Static(Text(self.message), classes="error-message")
            if self.details:
                yield Static(Text(self.details), classes="error-details")
            yield Static(
                "the traceback is also in the run folder's traceback.txt; ctrl+l lists all messages",
                classes="dialog-hint",
            )


HELP = """\
# promptgrad-tui

Learns a prompt for a frozen language model and shows it learning. **escape**, **?** or **f1** closes this help.

| key | does |
|---|---|
| **ctrl+r** | start a run with the configuration in the form (asks first if a run is on screen) |
| **ctrl+t** | stop the run: finish the step, save a checkpoint |
| **ctrl+g** | resume or extend a run folder (pick it, then how many steps; a finished run whose learning rate has decayed to 0 asks for a new peak, or branches with **ctrl+b**) |
| **ctrl+b** | branch: a new run that starts from the shown run's prompt (init run:…) |
| **ctrl+o** | browse runs/ (a sweep's runs as SWEEP/RUN): **j**/**k** or arrows move, **/** filters, **s**/**S** sort, **enter** opens, **space** marks runs to overlay on the chart, **d** deletes into runs/.trash (**u** undoes), **r** renames, **f5** shows the marked runs' report table (means over seeds) |
| **f3** | pick a bundled task from a list, each previewed (pairs, template, hand-written prompts) |
| **f2** | try an input with the prompt being learned, beside the hand-written one |
| **ctrl+y** | export the learned prompt (prompt.safetensors) |
| **ctrl+n** | next pane; **f6**-**f9** jump to one from anywhere; **1**-**4** (and alt+1-4, option+1-4 on a Mac) outside text fields; **escape** leaves a text field; **tab** / **shift+tab** move between fields |
| **z** | fold the results strip to one line, or unfold it |
| **enter** | on a prediction row: the pair whole (input, expected, the whole answer) |
| **f4** | copy the result (a hard prompt's text, or the results strip) to the clipboard |
| **t a s f h u c** | on the chart: switch a series off and on (train, average, subset and whole-set test, hand-written, untrained, compared runs); a short chart's one-line legend shows each marker with this key |
| **ctrl+l** | the message log: every message, with its time |
| **ctrl+p** | the command palette: every action by name |
| **f1**, **?** | this help (? where the cursor is not in a text field) |
| **ctrl+q**, **q** | quit (q where the cursor is not in a text field; during a run q asks first); a run is stopped cleanly first |

**Configuration**: every setting of a run; a bad value is flagged under its field and blocks the start.
It is locked while a run goes on. The model field completes smollm2-135m-instruct-q4_1 (the bundled model) and gpt2 … gpt2-xl (press **→**)
and takes any Hugging Face id or local path; a path that does not exist is flagged at once.

**Loss**: training loss per step (·) and its average (line: an exponential moving average, 0.9, bias-corrected, so it
follows a short run from step 1), test loss on the evaluation subset
(o) and on the whole test set at the end (@), the hand-written prompt's (-) and the untrained prompt's
(~) test loss; runs marked in the browser are overlaid (x, +, *). Below the hand-written line, the
learned prompt wins.

**Predictions**: fixed test pairs (input and expected always whole) and the answer the model writes with the prompt
so far (cut with … where long; **enter** shows it whole), marked ✓
by the rule that scores accuracy (the target, case as written, then no more letters of its last word); the box under
them tries any input you type, while training goes on, without changing the run.

**Nearest tokens**: for each prompt position, the vocabulary tokens closest by cosine similarity
(scroll sideways with ← → when they do not all fit).

A run stops cleanly on SIGTERM or SIGHUP (a dropped SSH session) too; resume it with ctrl+g.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
