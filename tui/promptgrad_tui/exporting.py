"""Exporting the learned prompt (ctrl+y): copied into a fresh file renamed into place, never written
through a link or into a FIFO at the destination, and an existing file only replaced when confirmed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from promptgrad.errors import UserError
from promptgrad.files import atomic_write, not_regular, read_bytes
from promptgrad.store.run_folder import PROMPT
from promptgrad_tui.dialogs import ConfirmScreen, PathPrompt


class Exporting:
    """Mixin of MainScreen."""

    def action_export(self) -> None:
        if self.run_dir is None:
            return
        source = Path(self.run_dir) / PROMPT
        prompt = PathPrompt(
            "Export the learned prompt",
            f"copy {source} to this file or folder; empty: show where it is",
            placeholder=f"~/{Path(self.run_dir).name}-{PROMPT}",
            check=lambda target: self.export_problem(source, target),
        )
        self.app.push_screen(prompt, lambda target: self.export_prompt(source, target))

    @staticmethod
    def destination(source: Path, target: str) -> Path:
        destination = Path(target).expanduser()
        if destination.is_dir() and not destination.is_symlink():
            destination = destination / f"{source.parent.name}-{PROMPT}"
        return destination

    def export_problem(self, source: Path, target: str) -> str | None:
        """What stands in the way of exporting to `target`, said in the dialog, which stays open."""
        try:
            read_bytes(source)
        except FileNotFoundError:
            return f"{source} does not exist yet: a run writes it at each checkpoint and at the end"
        except UserError as e:
            return str(e)
        except OSError as e:
            return f"cannot read {source}: {e.strerror or e}"
        if not target:
            return None
        destination = self.destination(source, target)
        if not destination.parent.is_dir():
            return f"folder {destination.parent} does not exist; make it first or pick another"
        if os.path.lexists(destination) and not stat.S_ISREG(os.lstat(destination).st_mode):
            return str(
                not_regular(destination, "a symbolic link" if destination.is_symlink() else "not a regular file")
            )
        return None

    def export_prompt(self, source: Path, target: str | None, overwrite: bool = False) -> None:
        if target is None:
            return
        if not target:
            self.say(f"The learned prompt is {source.resolve()}", title="Prompt", timeout=15)
            return
        destination = self.destination(source, target)
        if os.path.lexists(destination) and not overwrite:
            question = f"{destination} exists. Overwrite it with the prompt of {source.parent.name}?"
            self.app.push_screen(
                ConfirmScreen("Overwrite?", question, default=False),
                lambda yes: self.export_prompt(source, target, overwrite=True) if yes else None,
            )
            return
        try:  # a new file renamed into place: never written through a link or into a FIFO planted there
            atomic_write(destination, read_bytes(source), overwrite=False)
        except (UserError, OSError) as e:
            self.say(
                str(e) if isinstance(e, UserError) else f"cannot export: {e.strerror or e}",
                title="Export failed",
                severity="error",
            )
            return
        self.say(f"Exported the prompt to {destination}", title="Prompt exported")
