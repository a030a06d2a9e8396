"""promptgrad-tui: watch and steer a prompt being learned, from the keyboard, over SSH.

    promptgrad-tui                      the form, pre-filled with the defaults; ctrl+r starts the run
    promptgrad-tui runs/NAME            view a run folder (followed while another process writes it)
    promptgrad-tui --config run.toml    pre-fill the form from a config file

This file holds the App (its command palette, the message log every message is kept in, quitting,
SIGTERM/SIGHUP) and `main`; the screen is main_screen.py, what its keys do one concern a file beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.quiet import quiet_libraries
from promptgrad.signals import on_signals
from promptgrad.store.run_folder import RunFolder
from promptgrad_tui.dialogs import LoggedMessage
from promptgrad_tui.main_screen import MainScreen


class PromptgradApp(App):
    CSS_PATH = "promptgrad.tcss"
    TITLE = "promptgrad"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, config: TrainConfig | None = None, run_dir: str | None = None) -> None:
        super().__init__()
        self.main_screen = MainScreen(config, run_dir)
        self.messages: list[LoggedMessage] = []

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def on_mount(self) -> None:
        self.loop = asyncio.get_running_loop()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: str = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every message is kept in the log (ctrl+l), and shown as it is: never read as markup."""
        self.messages.append(LoggedMessage(time.time(), severity, title, message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        for title, help_text, callback in (
            ("Start a run", "ctrl+r: with the configuration in the form", main.action_start),
            ("Stop the run", "ctrl+t: finish the step, save a checkpoint", main.action_stop),
            ("Resume or extend a run", "ctrl+g: pick a run folder, then how many steps", main.action_resume),
            ("Branch from the shown run", "ctrl+b: a new run starting from its prompt", main.action_branch),
            ("Browse runs", "ctrl+o: open a run, mark runs to compare on the chart", main.action_browse),
            ("Pick a task", "f3: the bundled tasks, each previewed", main.action_pick_task),
            ("Try an input", "f2: the learned prompt's answer beside the hand-written one's", main.action_probe),
            ("Export the prompt", "ctrl+y: copy prompt.safetensors", main.action_export),
            ("Next pane", "ctrl+n", main.action_next_pane),
            ("Messages", "ctrl+l: every message with its time", main.action_messages),
            ("Help", "f1 or ?: keys and panes", main.action_help),
        ):
            yield SystemCommand(title, help_text, callback)

    async def action_quit(self) -> None:
        """Quitting during a run stops it (finish the step, save a checkpoint) and then quits."""
        screen = self.main_screen
        if screen.running and not screen.quit_when_stopped:
            screen.quit_when_stopped = True
            screen.action_stop()
            self.notify("Quitting once the run has finished its step and saved a checkpoint")
            return
        screen.stop_event.set()
        self.exit()

    def on_stop_signal(self, signum: int) -> None:
        """SIGTERM (kill, a scheduler) or SIGHUP (the SSH session dropped; the terminal is already detached):
        stop the run the way ctrl+t does, finish the step and save, then quit. Called by the signal
        handler on the main thread, so it only hands the work to the event loop."""
        self.main_screen.stop_event.set()
        loop = getattr(self, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self.run_worker(self.action_quit(), name="quit on signal"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promptgrad-tui", description="Watch and steer a prompt being learned.")
    parser.add_argument(
        "run_dir", nargs="?", metavar="RUN_DIR", help="a run folder to view (followed while it is written)"
    )
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings to pre-fill the form with")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.load(Path(args.config)) if args.config else None
        if args.run_dir:
            RunFolder.open(args.run_dir).config()  # a folder that cannot be read is one line here, not a crash later
    except UserError as e:
        print(f"promptgrad-tui: error: {e}", file=sys.stderr)
        return 2
    quiet_libraries()  # a library writing to the terminal would scribble over the screen
    app = PromptgradApp(config, args.run_dir)
    # handlers of our own, not the event loop's: those fall back to the default (die) when the loop
    # closes, and a dropped SSH session can deliver a second SIGHUP while the run is still saving
    with on_signals(app.on_stop_signal, (signal.SIGTERM, signal.SIGHUP)):
        app.run()
        if not app.main_screen.training_ended.is_set():  # closed mid-run: the run finishes its step and saves
            app.main_screen.stop_event.set()
            print("promptgrad-tui: waiting for the run to finish its step and save a checkpoint...", file=sys.stderr)
            app.main_screen.training_ended.wait()
    return app.return_code or 0  # non-zero when the app crashed (Textual printed the traceback)


if __name__ == "__main__":
    sys.exit(main())
