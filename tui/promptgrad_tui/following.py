"""Viewing run folders: the browser (ctrl+o), overlays to compare, and following a folder another
process is writing (by byte offset, so a resume that cuts the file back is noticed)."""

from __future__ import annotations

from pathlib import Path

from promptgrad.errors import UserError
from promptgrad.store.run_folder import METRICS, EventFollower, RunFolder, is_locked
from promptgrad_tui.browser import BrowserChoice, RunBrowser
from promptgrad_tui.widgets.loss_chart import Curves

FOLLOW_SECONDS = 1.0  # how often a viewed run folder is checked for new events
MAX_OVERLAYS = 5


class Following:
    """Mixin of MainScreen."""

    def action_browse(self) -> None:
        browser = RunBrowser(
            self.runs_dir, "Runs · enter opens one · space marks runs to compare", self.run_dir, self.compared
        )
        self.app.push_screen(browser, self.browsed)

    def browsed(self, choice: BrowserChoice | None) -> None:
        if choice is None:
            return
        if choice.path is not None and self.running:  # the run on screen stays: the picked one is overlaid
            self.compare(tuple(dict.fromkeys([*choice.compare, choice.path])))
            self.say(
                f"A run is going on: {Path(choice.path).name} is overlaid on the chart instead of opened",
                title="Compare",
            )
            return
        self.compare(choice.compare)
        if choice.path is not None:
            self.view_run(choice.path)

    def compare(self, paths: tuple[str, ...]) -> None:
        paths = tuple(p for p in paths if p != self.run_dir)[:MAX_OVERLAYS]
        self.compared = paths
        overlays = {}
        for path in paths:
            try:
                overlays[Path(path).name] = Curves.of(RunFolder.open(path).events())
            except UserError:
                continue
        self.chart.set_overlays(overlays)
        if overlays:
            self.say(f"Overlaid on the chart: {', '.join(overlays)}", title="Compare")

    def keep_comparable(self, config) -> None:
        """Overlays of runs on another task (or other data) than the run now shown go: their losses are on
        other pairs, and left on the chart they read as this task's."""

        def same_task(path: str) -> bool:
            try:
                other = RunFolder.open(path).config().problem
            except UserError:
                return False
            return (other.task, other.data) == (config.problem.task, config.problem.data)

        kept = tuple(p for p in self.compared if same_task(p))
        if kept != self.compared:
            dropped = [Path(p).name for p in self.compared if p not in kept]
            self.compared = kept
            self.chart.set_overlays(
                {name: curves for name, curves in self.chart.overlays.items() if name not in dropped}
            )
            self.say(f"No longer overlaid (another task): {', '.join(dropped)}", title="Compare")

    def view_run(self, path: str | None) -> None:
        if not path or self.running:
            return
        candidate = Path(path).expanduser()
        if not (candidate / "config.toml").exists() and (Path(self.runs_dir) / path / "config.toml").exists():
            candidate = Path(self.runs_dir) / path  # a bare name means a folder under runs/
        try:
            folder = RunFolder.open(candidate)
            config = folder.config()
        except UserError as e:
            self.say(str(e), title="Cannot open", severity="error")
            return
        self.stop_following()
        self.reset_panes(folder.path.name)
        self.form.load(config.replace(name=""))  # its settings; no name, so ctrl+r makes a new run
        self.keep_comparable(config)
        self.run_dir = str(folder.path)  # this folder, whatever its records say they were written as
        self.status.set_phase("viewing")
        self.followed, self.follower, self.bad_lines = folder, EventFollower(folder.path / METRICS), set()
        self.follow()
        if self.followed is not None:
            self.follow_timer = self.set_interval(FOLLOW_SECONDS, self.follow)

    def follow(self) -> None:
        """Show the events appended to the viewed run's metrics.jsonl since the last look (by byte offset,
        so a resume that cuts the file back and writes on between two looks is noticed)."""
        if self.followed is None:
            return
        try:
            events, bad, reset = self.follower.poll()
            locked = is_locked(self.followed.path)
        except (UserError, OSError) as e:  # a file someone planted (a FIFO, a link): stop looking at it
            self.say(
                str(e) if isinstance(e, UserError) else f"cannot read {self.followed.path}: {e.strerror or e}",
                title="Cannot follow the run",
                severity="error",
                timeout=30,
            )
            self.stop_following()
            return
        if reset:  # a resume cut the file back: show it again from the start
            self.reset_panes(self.followed.path.name)
            self.run_dir = str(self.followed.path)
        new_bad = [n for n in bad if n not in self.bad_lines]
        if new_bad:
            self.bad_lines.update(new_bad)
            lines = ", ".join(map(str, new_bad[:5])) + (" ..." if len(new_bad) > 5 else "")
            self.say(
                f"{self.followed.path / METRICS}: line(s) {lines} are not well-formed events and were skipped",
                title="Damaged lines",
                severity="warning",
                timeout=15,
            )
        self.replay(events, live=False)
        if locked and not self.running:
            self.status.set_phase("viewing (being written)")

    def stop_following(self) -> None:
        if self.follow_timer is not None:
            self.follow_timer.stop()
        self.followed, self.follower, self.follow_timer = None, None, None
