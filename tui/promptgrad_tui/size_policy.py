"""What the main screen gives up as the terminal gets smaller, in order: below 30 rows the results strip
folds to one line (z unfolds it, and folds it again at any size) and the chart's legend to one line of
markers and keys; below 60x18 nothing is drawn but a line saying what size is needed (the run goes on)."""

from __future__ import annotations

from textual.widgets import Static

MIN_COLUMNS, MIN_ROWS = 60, 18
COMPACT_ROWS = 30  # below this the results strip is folded unless the user unfolded it (z)


class SizePolicy:
    """Mixin of MainScreen."""

    strip_choice: bool | None = None  # the user's z: True folded, False unfolded; None: by the terminal's height

    def apply_size_policy(self) -> None:
        width, height = self.size
        too_small = width < MIN_COLUMNS or height < MIN_ROWS
        notice = self.query_one("#too-small", Static)
        notice.display = too_small
        if too_small:
            notice.update(
                f"promptgrad-tui needs at least {MIN_COLUMNS} columns and {MIN_ROWS} rows; this terminal has "
                f"{width}x{height}. Make it larger: a run goes on meanwhile (ctrl+q stops it and quits)."
            )
        folded = self.strip_choice if self.strip_choice is not None else height < COMPACT_ROWS
        self.results.set_folded(folded)

    def action_fold_results(self) -> None:
        """z: fold the results strip to one line, or unfold it (kept at any terminal size from then on)."""
        self.strip_choice = not self.results.folded
        self.apply_size_policy()
