"""The messages the app's parts send each other; each is a small dataclass.

The training thread and the run-folder poller never touch widgets: they hand the core's events to the
main screen as `RunEvents`, and the screen updates the panes on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from promptgrad.events import Event


@dataclass
class RunEvents(Message):
    """Events from the core, in order: from the training worker (live) or replayed from metrics.jsonl."""

    events: list[Event]
    live: bool  # True: this app is running the training; False: replaying or following a run folder

