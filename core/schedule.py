"""Learning-rate schedule: linear warm-up, then constant or cosine decay to zero, and how it extends.

A pure function of the step (and of the extensions recorded in the checkpoint), so a resumed run needs
no scheduler state to continue exactly.

Extending a run (resuming it with more steps, or fewer) never makes the learning rate jump up, as
nanoGPT keeps its decay length apart from the number of iterations for the same reason: from the step
it is resumed at, the learning rate goes on from the value it has there and decays along a cosine to
zero at the new last step. A constant schedule stays constant, and a run still warming up keeps its
warm-up and decays over the new length. A finished cosine run has decayed to zero, so extending it
changes little; to train its prompt further, start a new run from it (init `run:<folder>`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int, schedule: str) -> float:
    if warmup_steps and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class Extension:
    """From `start` on, decay from `lr` (the rate the schedule had at `start`) to zero at `end`."""

    start: int
    end: int
    lr: float


@dataclass(frozen=True)
class Schedule:
    peak: float
    warmup_steps: int
    kind: str  # constant | cosine
    total_steps: int  # the length the run was started with
    extensions: tuple[Extension, ...] = field(default=())

    @property
    def end(self) -> int:
        """The last step: the start's total, or the end of the latest extension."""
        return self.extensions[-1].end if self.extensions else self.total_steps

    def at(self, step: int) -> float:
        """The learning rate of the step that follows `step` steps done (0-based)."""
        if self.extensions and step >= self.extensions[-1].start:
            ext = self.extensions[-1]
            if self.kind == "constant":
                return ext.lr
            return ext.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - ext.start) / max(1, ext.end - ext.start))))
        earlier = Schedule(self.peak, self.warmup_steps, self.kind, self.total_steps, self.extensions[:-1])
        if self.extensions:  # a step before the latest extension follows the schedule as it was then
            return earlier.at(step)
        return learning_rate(step, self.total_steps, self.peak, self.warmup_steps, self.kind)

    def extended(self, at_step: int, new_end: int) -> Schedule:
        """The schedule of a run resumed at `at_step` that is now to end at `new_end`."""
        if new_end == self.end:
            return self
        if not self.extensions and at_step < self.warmup_steps:
            return Schedule(self.peak, self.warmup_steps, self.kind, new_end)  # nothing decayed yet
        return Schedule(self.peak, self.warmup_steps, self.kind, self.total_steps,
                        (*self.extensions, Extension(at_step, new_end, self.at(at_step))))

    def to_state(self) -> dict:
        return {"total_steps": self.total_steps, "extensions": [[e.start, e.end, e.lr] for e in self.extensions]}

    @staticmethod
    def from_state(peak: float, warmup_steps: int, kind: str, state: dict) -> Schedule:
        return Schedule(peak, warmup_steps, kind, int(state["total_steps"]),
                        tuple(Extension(int(s), int(e), float(lr)) for s, e, lr in state["extensions"]))
