"""The messages the app's parts send each other; each is a small dataclass.

The training thread, the probe thread and the run-folder poller never touch widgets: they hand what
they have to the main screen as messages, and the screen updates the panes on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from promptgrad.events import Event
from promptgrad.train.probe import ProbeAnswer


@dataclass
class RunEvents(Message):
    """Events from the core, in order: from the training worker (live) or replayed from metrics.jsonl."""

    events: list[Event]
    live: bool  # True: this app is running the training; False: replaying or following a run folder


@dataclass
class ProbeAnswered(Message):
    """What the probe made of an input (or why it could not answer)."""

    answer: ProbeAnswer | None
    error: str | None
