"""Tasks, declared rather than coded: the bundled library, and a user's own task files.

`data/tasks.toml` (shipped as promptgrad.data) holds one table per bundled task: its data file (rebuilt by
a script in data/ from an openly licensed source), a default template, the hand-written prompts a person
would write, and where the pairs came from under which licence. A *task file* is a user's own task, one
TOML file with the same keys at its top level (docs/tasks.md):

    description = "a word -> the word capitalised"
    data = "capitalize.jsonl"            # relative to this file's folder, or absolute
    template = "{prompt} {x} -> {y}"
    baselines = [" Capitalize each word:"]
    x_column = "word"                    # optional: the data's columns, when not x and y
    y_column = "capitalised"

`--task NAME` or `--task PATH.toml` fills the settings a task brings (data, columns, template,
baseline_text) wherever the run left them at their defaults (config.py's TrainConfig.resolved); the
resolved values are what the run folder records, so a run never depends on the task file again.
`promptgrad tasks` lists the bundled tasks and the task files of a folder; the TUI's picker too.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from promptgrad.errors import UserError
from promptgrad.files import read_text  # never through a link, never blocking on a FIFO

REGISTRY = "tasks.toml"
TASK_FILE_SUFFIX = ".toml"
TASKS_DIR = "tasks"  # the folder of task files `promptgrad tasks` and the TUI's picker list, in the working directory

# The accuracy settings (config.py) a task file may set in its [scoring] table, as the run's settings of
# the same names; none is declared yet. Add a setting's name here once config.py declares it (its value
# is then checked as that setting's, and applied where the run left the setting at its default).
SCORING_SETTINGS: tuple[str, ...] = ()

REQUIRED_KEYS = ("data", "template", "baselines")
OPTIONAL_KEYS = ("description", "x_column", "y_column", "source", "licence", "scoring")


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    data: str  # a bundled task: relative to the data package; a task file: an absolute path
    template: str
    baselines: tuple[str, ...]  # hand-written prompts, the first the one a person would try first
    source: str
    licence: str
    build: str = ""  # the script that rebuilds a bundled task's data
    file: str = ""  # the task file it was read from, absolute ("" for a bundled task)
    x_column: str = "x"
    y_column: str = "y"
    scoring: tuple[tuple[str, Any], ...] = ()  # (setting, value) from a task file's [scoring] table

    @property
    def path(self) -> Path:
        return data_folder() / self.data  # an absolute `data` stays itself

    @property
    def data_setting(self) -> str:
        """What the data setting holds for this task: a bundled task's name, a task file's data path."""
        return self.data if self.file else self.name

    def settings(self) -> dict[str, Any]:
        """The settings this task brings, by their names in config.py."""
        return {
            "data": self.data_setting,
            "x_column": self.x_column,
            "y_column": self.y_column,
            "template": self.template,
            "baseline_text": list(self.baselines),
            **dict(self.scoring),
        }


def data_folder() -> Path:
    return Path(str(resources.files("promptgrad.data")))


@functools.cache
def bundled_tasks() -> dict[str, Task]:
    """Every bundled task by name, in the registry's order."""
    registry = tomllib.loads((data_folder() / REGISTRY).read_text(encoding="utf-8"))
    return {
        name: Task(
            name,
            t["description"],
            t["data"],
            t["template"],
            tuple(t["baselines"]),
            t["source"],
            t["licence"],
            t["build"],
        )
        for name, t in registry.items()
    }


def is_task_file(value: str) -> bool:
    """A task setting that names a task file (a path ending .toml) rather than a bundled task."""
    return value.endswith(TASK_FILE_SUFFIX)


def task_named(name: str) -> Task:
    tasks = bundled_tasks()
    if name not in tasks:
        raise UserError(
            f"there is no bundled task {name!r}; the tasks: {', '.join(tasks)} (promptgrad tasks shows them), "
            f"or a task file of your own (a path ending {TASK_FILE_SUFFIX}, docs/tasks.md)",
            "task",
        )
    return tasks[name]


def find_task(value: str) -> Task:
    """The task a `task` setting names: a task file (a path ending .toml) or a bundled task."""
    return read_task_file(Path(value)) if is_task_file(value) else task_named(value)


# ---- task files --------------------------------------------------------------------------------------


def read_task_file(path: Path) -> Task:
    """A task file, read and checked: every problem is one line naming the file and the key."""

    path = Path(os.path.abspath(path.expanduser()))
    try:
        values = tomllib.loads(read_text(path))
    except FileNotFoundError:
        raise UserError(
            f"task file {path} does not exist; give the path of a .toml task file (docs/tasks.md) or a "
            f"bundled task's name (promptgrad tasks lists them)",
            "task",
        ) from None
    except (IsADirectoryError, NotADirectoryError):
        raise UserError(
            f"task file {path} is not a file; give the path of a .toml task file (docs/tasks.md)", "task"
        ) from None
    except OSError as e:
        raise UserError(f"cannot read task file {path}: {e.strerror or e}", "task") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"task file {path} is not valid TOML: {e}", "task") from None
    return task_from_values(values, path)


def task_from_values(values: dict[str, Any], path: Path) -> Task:
    where = f"task file {path}"
    for key, value in values.items():
        if key in REQUIRED_KEYS or key in OPTIONAL_KEYS:
            continue
        table = (
            f" (a task file declares one task with its keys at the top level: drop the [{key}] line)"
            if isinstance(value, dict)
            else ""
        )
        raise UserError(
            f"{where}: unknown key {key!r}{table}; its keys: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}", "task"
        )
    for key in REQUIRED_KEYS:
        if key not in values:
            example = {
                "data": 'data = "pairs.jsonl"',
                "template": 'template = "{prompt} {x} -> {y}"',
                "baselines": 'baselines = [" Capitalize each word:"]',
            }[key]
            raise UserError(f"{where} has no {key}; add a line such as {example} (docs/tasks.md)", "task")
    text = {
        key: text_value(values, key, where)
        for key in ("data", "template", "description", "x_column", "y_column", "source", "licence")
    }
    check_template_of(text["template"], where)
    return Task(
        path.stem,
        text["description"],
        data_path(text["data"], path, where),
        text["template"],
        baselines_of(values["baselines"], where),
        text["source"],
        text["licence"],
        file=str(path),
        x_column=text["x_column"] or "x",
        y_column=text["y_column"] or "y",
        scoring=scoring_of(values.get("scoring", {}), where),
    )


def text_value(values: dict[str, Any], key: str, where: str) -> str:
    value = values.get(key, "")
    if not isinstance(value, str):
        raise UserError(f"{where}: {key} must be text (in quotes), got {value!r}", "task")
    if key in REQUIRED_KEYS and not value.strip():
        raise UserError(f"{where}: {key} is empty", "task")
    return value


def check_template_of(template: str, where: str) -> None:
    # the template knows its own rules; imported here because it brings torch (2.7 s), and --help reads the task list
    from promptgrad.model.template import Template

    try:
        Template.parse(template)
    except UserError as e:
        raise UserError(f"{where}: {e}", "task") from None


def data_path(data: str, path: Path, where: str) -> str:
    """The data, absolute: a relative path is read from the task file's folder, not the working directory."""
    resolved = Path(os.path.abspath(path.parent / Path(data).expanduser()))
    if not resolved.exists():
        raise UserError(
            f"{where}: data {data!r} does not exist (looked for {resolved}; a relative path is read from "
            f"the task file's folder)",
            "task",
        )
    return str(resolved)


def baselines_of(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise UserError(
            f'{where}: baselines must be a list of hand-written prompts, e.g. [" Capitalize each word:"], '
            f"got {value!r}",
            "task",
        )
    empty = [i for i, text in enumerate(value) if not text.strip()]
    if empty:
        raise UserError(f"{where}: baselines {empty[0] + 1} is empty; give the words of a hand-written prompt", "task")
    return tuple(value)


def scoring_of(value: Any, where: str) -> tuple[tuple[str, Any], ...]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: scoring must be a table ([scoring] with one setting a line), got {value!r}", "task")
    for key in value:
        if key not in SCORING_SETTINGS:
            known = f"one of {', '.join(SCORING_SETTINGS)}" if SCORING_SETTINGS else "none is declared yet"
            raise UserError(f"{where}: scoring.{key} is not an accuracy setting a task may set ({known})", "task")
    return tuple(value.items())


# ---- a folder of task files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedTaskFile:
    """A task file found in a folder: its task, or what is wrong with it (a listing shows both)."""

    path: Path
    task: Task | None
    problem: str = ""


def task_files_in(folder: Path) -> list[ListedTaskFile]:
    """Every *.toml task file directly in `folder`, by name; none if the folder does not exist."""
    if not folder.is_dir():
        return []
    listed = []
    for path in sorted(folder.glob("*" + TASK_FILE_SUFFIX)):
        try:
            listed.append(ListedTaskFile(path, read_task_file(path)))
        except UserError as e:
            listed.append(ListedTaskFile(path, None, str(e)))
    return listed
