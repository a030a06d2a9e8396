"""The task picker (f3): the bundled tasks and your task files in a list, the one under the cursor
previewed beside it (what it is, how many pairs, five of them, its template and hand-written prompts,
where the pairs come from), so a task is chosen by looking, not by typing a path. Enter picks it; escape
closes.

Task files (*.toml, docs/tasks.md) are listed from the working directory's tasks/ folder (the folder
`promptgrad tasks` lists too) and from the folder of the task file the form names, if it names one; a
file that is not a valid task is listed with what is wrong with it, and cannot be picked."""

from __future__ import annotations

import os
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
from promptgrad.model.soft_prompt import parse_init
from promptgrad.problem.pairs import task_preview
from promptgrad.problem.tasks import TASKS_DIR, ListedTaskFile, Task, bundled_tasks, is_task_file, task_files_in
from promptgrad.store.run_folder import RunFolder


def preview_text(task: Task) -> Text:
    text = Text()
    text.append(f"{task.name}", style="bold")
    text.append(f": {task.description}\n" if task.description else "\n")
    if task.file:
        text.append("task file ", style="dim")
        text.append(f"{task.file}\n")
    try:
        preview = task_preview(task, 5)
    except UserError as e:  # a task file's data that cannot be read
        text.append(f"its data cannot be read: {e}\n", style="red")
    else:
        text.append(f"{preview.n_pairs:,} pairs, e.g.\n")
        for pair in preview.pairs:
            text.append(f"  {pair.x} → {pair.y}\n")
    text.append("template ", style="dim")
    text.append(f"{task.template!r}\n")
    text.append("hand-written ", style="dim")
    text.append(", ".join(repr(b) for b in task.baselines) + "\n")
    text.append("source ", style="dim")
    text.append(f"{task.source or '(not given)'}\n")
    text.append("licence ", style="dim")
    text.append(f"{task.licence or '(not given)'}")
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


def listed_task_files(current: str) -> list[ListedTaskFile]:
    """The task files of ./tasks and of the folder of the task file `current` names, each once."""
    folders = [Path(TASKS_DIR)] + ([Path(current).expanduser().parent] if is_task_file(current) else [])
    seen: dict[str, ListedTaskFile] = {}
    for folder in folders:
        for listed in task_files_in(folder):
            seen.setdefault(os.path.abspath(listed.path), listed)
    return list(seen.values())


class TaskPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current
        # option id -> a task, or what is wrong with a task file (ids: a bundled name, a task file's absolute path)
        self.choices: dict[str, Task | str] = dict(bundled_tasks())
        for listed in listed_task_files(current):
            self.choices[os.path.abspath(listed.path)] = listed.task or listed.problem

    def compose(self) -> ComposeResult:
        with Vertical(id="task-picker") as box:
            box.border_title = "Tasks · enter picks one · escape closes"
            with Horizontal():
                yield OptionList(
                    *(Option(Path(key).name if is_task_file(key) else key, id=key) for key in self.choices),
                    id="task-list",
                )
                with VerticalScroll(id="task-preview-box"):
                    yield Static("", id="task-preview")
            yield Static(
                f"the task's data, template and hand-written prompts replace those fields in the form; change any "
                f"of them after; task files (*.toml, docs/tasks.md) are read from {TASKS_DIR}/ here",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        keys = list(self.choices)
        current = os.path.abspath(Path(self.current).expanduser()) if is_task_file(self.current) else self.current
        options.highlighted = keys.index(current) if current in keys else 0
        options.focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        choice = self.choices[event.option.id]
        shown = (
            preview_text(choice)
            if isinstance(choice, Task)
            else Text(f"{choice}\n(fix the file to pick it)", style="red")
        )
        self.query_one("#task-preview", Static).update(shown)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if isinstance(self.choices[event.option.id], Task):
            self.dismiss(event.option.id)
        else:
            self.app.bell()  # not a valid task: the preview says why

    def action_close(self) -> None:
        self.dismiss(None)
