"""The task picker (f3): the bundled tasks in a list, the one under the cursor previewed beside it
(what it is, how many pairs, five of them, its template and hand-written prompts, where the pairs come
from), so a task is chosen by looking, not by typing a path. Enter picks it; escape closes."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from promptgrad.config import TrainConfig, default_of
from promptgrad.errors import UserError
from promptgrad.run_folder import RunFolder
from promptgrad.soft_prompt import parse_init
from promptgrad.tasks import Task, bundled_tasks, task_preview


def preview_text(task: Task) -> Text:
    preview = task_preview(task, 5)
    text = Text()
    text.append(f"{task.name}", style="bold")
    text.append(f": {task.description}\n{preview.n_pairs:,} pairs, e.g.\n")
    for pair in preview.pairs:
        text.append(f"  {pair.x} → {pair.y}\n")
    text.append("template ", style="dim")
    text.append(f"{task.template!r}\n")
    text.append("hand-written ", style="dim")
    text.append(", ".join(repr(b) for b in task.baselines) + "\n")
    text.append("source ", style="dim")
    text.append(f"{task.source}\n")
    text.append("licence ", style="dim")
    text.append(f"{task.licence}")
    return text


INIT_DEFAULT = default_of(TrainConfig.settings()["init"][1])  # what a picked task's init is reset to


def init_of_another_task(init: str, task: str) -> str | None:
    """What the run an `init` of run:<folder> starts from learned, when that is not `task` ("task
    antonyms", "its own data"), so a task picked after a branch does not silently start from another
    task's prompt; None when `init` is no run, or a run of this very task."""
    try:
        kind, folder = parse_init(init)
    except UserError:
        return None  # the form flags a bad init itself
    if kind != "run":
        return None
    try:
        learned = RunFolder.open(Path(folder).expanduser()).config().problem.task
    except (UserError, OSError):
        return "a run folder that cannot be read"
    if learned == task:
        return None
    return f"task {learned}" if learned else "its own data"


class TaskPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="task-picker") as box:
            box.border_title = "Tasks · enter picks one · escape closes"
            with Horizontal():
                yield OptionList(*(Option(name, id=name) for name in bundled_tasks()), id="task-list")
                with VerticalScroll(id="task-preview-box"):
                    yield Static("", id="task-preview")
            yield Static("the task's data, template and hand-written prompts replace those fields in the form; "
                         "change any of them after", classes="dialog-hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        names = list(bundled_tasks())
        options.highlighted = names.index(self.current) if self.current in names else 0
        options.focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.query_one("#task-preview", Static).update(preview_text(bundled_tasks()[event.option.id]))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)
