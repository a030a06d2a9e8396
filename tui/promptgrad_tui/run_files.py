"""Deleting and renaming run folders from the run browser. A deleted run is moved, never removed: into a
trash folder within runs/ (runs/.trash/, which the browser does not list), from where undo puts it
back; emptying the trash is left to the user (`rm -r runs/.trash`). Both are renames within runs/, so
they are instant and all or nothing."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from promptgrad.errors import UserError
from promptgrad.store.run_folder import is_locked

TRASH = ".trash"


@dataclass(frozen=True)
class Trashed:
    """A run moved to the trash: where it was, where it is now."""

    original: Path
    trashed: Path


def check_free(run: Path, on_screen: str | None) -> None:
    """A run being written (by this app or another process) or shown on screen is not moved from under it."""
    if is_locked(run):
        raise UserError(f"{run} is being written by a run: stop it first (ctrl+t)")
    if on_screen is not None and Path(on_screen).resolve() == run.resolve():
        raise UserError(f"{run} is the run on screen: open another one first (enter on it)")


def trash(run: Path, runs_dir: str | Path, on_screen: str | None = None) -> Trashed:
    """Move a run folder into runs_dir/.trash/ (a sweep's run keeps its sweep in its new name)."""
    check_free(run, on_screen)
    root = Path(runs_dir)
    name = run.relative_to(root).as_posix().replace("/", "__") if run.is_relative_to(root) else run.name
    (root / TRASH).mkdir(exist_ok=True)
    target = root / TRASH / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while target.exists():  # two deletions of the same name within a second
        target, suffix = target.with_name(f"{target.name}-{suffix}"), suffix + 1
    os.rename(run, target)
    return Trashed(run, target)


def restore(trashed: Trashed) -> Path:
    """Undo a deletion: the folder goes back where it was, unless a new run took that name meanwhile."""
    if trashed.original.exists():
        raise UserError(f"{trashed.original} exists again: the deleted run stays in {trashed.trashed}")
    os.rename(trashed.trashed, trashed.original)
    return trashed.original


def check_name(name: str) -> str | None:
    """What is wrong with a new name for a run folder (None: fine)."""
    if not name.strip():
        return "type a name"
    if "/" in name or name in (".", "..") or name.startswith("."):
        return "a run's name is one folder name: no '/', not starting with '.'"
    return None


def rename(run: Path, name: str, on_screen: str | None = None) -> Path:
    """Rename a run folder within the folder it is in (runs/, or its sweep's folder)."""
    check_free(run, on_screen)
    problem = check_name(name)
    if problem:
        raise UserError(problem)
    target = run.with_name(name.strip())
    if target.exists():
        raise UserError(f"{target} exists: pick another name")
    os.rename(run, target)
    return target
