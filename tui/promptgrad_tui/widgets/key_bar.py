"""The key bar at the bottom: the main keys, greyed out where they do nothing now.

Textual's Footer rebuilds itself whenever the focused widget changes (its bindings may differ), and the
rebuild changes the layout, so every move of the cursor between panes repainted the whole screen:
tens of milliseconds at 160 columns, a few hundred while training competes for the CPU. This bar is one
line of text, redrawn only when what the keys can do changes (a run starts or ends, a run is shown).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

# in the order shown; when the terminal is too narrow, keys go from the end of DROP first (f1 Help stays)
DROP = ("palette", "messages", "next_pane", "pick_task", "probe", "quit", "resume")
KEYS = [
    ("ctrl+r", "^r", "Start", "start"),
    ("ctrl+t", "^t", "Stop", "stop"),
    ("ctrl+g", "^g", "Resume", "resume"),
    ("ctrl+o", "^o", "Runs", "browse"),
    ("f3", "f3", "Task", "pick_task"),
    ("f2", "f2", "Try", "probe"),
    ("ctrl+n", "^n", "Pane", "next_pane"),
    ("ctrl+l", "^l", "Log", "messages"),
    ("f1", "f1", "Help", "help"),
    ("ctrl+q", "^q", "Quit", "quit"),
    ("ctrl+p", "^p", "Palette", "palette"),
]


class KeyBar(Static):
    def show_keys(self, check_action) -> None:
        """`check_action(action)`: True (active), None (greyed out: not now) or False (hidden)."""
        self.check_action = check_action
        self.fit()

    def on_resize(self) -> None:
        if hasattr(self, "check_action"):
            self.fit()

    def fit(self) -> None:
        """The keys that fit the width, never a key cut in half: the least needed go first (DROP)."""
        width, dropped = self.size.width or 80, []
        while True:
            parts: list[tuple[str, str] | str] = []
            for _, label, description, action in KEYS:
                state = True if action in ("palette", "quit") else self.check_action(action, ())
                if state is False or action in dropped:
                    continue
                style = "bold" if state else "dim"
                parts += [(f" {label}", style + " reverse" if state else style), (f" {description} ", style)]
            text = Text.assemble(*parts)
            if text.cell_len <= width or len(dropped) == len(DROP):
                break
            dropped.append(DROP[len(dropped)])
        self.update(text, layout=False)  # one line high (#keys): no relayout needed
