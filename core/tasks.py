"""The bundled task library: relations a researcher may ask a model about, declared rather than coded.

`data/tasks.toml` (shipped as promptgrad.data) holds one table per task: its data file (rebuilt by a
script in data/ from an openly licensed source), a default template, the hand-written prompts a person
would write, and where the pairs came from under which licence. `--task NAME` fills the settings data,
template and baseline_text from it wherever they are left empty; `promptgrad tasks` lists them.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from promptgrad.errors import UserError

REGISTRY = "tasks.toml"


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    data: str  # the data file, relative to the data package
    template: str
    baselines: tuple[str, ...]  # hand-written prompts, the first the one a person would try first
    source: str
    licence: str
    build: str  # the script that rebuilds the data

    @property
    def path(self) -> Path:
        return data_folder() / self.data


def data_folder() -> Path:
    return Path(str(resources.files("promptgrad.data")))


@functools.cache
def bundled_tasks() -> dict[str, Task]:
    """Every bundled task by name, in the registry's order."""
    registry = tomllib.loads((data_folder() / REGISTRY).read_text(encoding="utf-8"))
    return {name: Task(name, t["description"], t["data"], t["template"], tuple(t["baselines"]), t["source"], t["licence"],
                       t["build"]) for name, t in registry.items()}


@dataclass(frozen=True)
class TaskPreview:
    n_pairs: int
    pairs: list  # the first few Pair, to show


def task_preview(task: Task, n: int = 5) -> TaskPreview:
    """How many pairs a task has and its first `n`, read from its file (no model, no split)."""
    from promptgrad.pairs import load_pairs

    pairs = load_pairs(task.name)
    return TaskPreview(len(pairs), pairs[:n])


def task_named(name: str) -> Task:
    tasks = bundled_tasks()
    if name not in tasks:
        raise UserError(f"there is no bundled task {name!r}; the tasks: {', '.join(tasks)} (promptgrad tasks shows them)", "task")
    return tasks[name]
