"""Learning-rate schedule: linear warm-up, then constant or cosine decay to zero, and how it extends.

A pure function of the step (and of the extensions recorded in the checkpoint), so a resumed run needs
no scheduler state to continue exactly.

Extending a run (resuming it with more steps, or fewer) never makes the learning rate jump up, as
nanoGPT keeps its decay length apart from the number of iterations for the same reason: from the step
it is resumed at, the learning rate goes on from the value it has there and decays along a cosine to
zero at the new last step. A constant schedule stays constant, and a run still warming up keeps its
warm-up and decays over the new length.

A finished cosine run has decayed to zero, so going on from where it is would train at learning rate 0
and change nothing. Its added steps can instead get a schedule of their own (`restarted`: a new peak,
a short warm-up to it, then the same cosine to zero at the new last step, as SGDR's warm restarts do),
recorded in the checkpoint like any extension, so a resumed run still follows it exactly; or the prompt
can start a new run (init `run:<folder>`).
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
    """From `start` on, decay from `lr` to zero at `end`: `lr` is the rate the schedule had at `start`, or,
    for a restart, a new peak, reached after `warmup` steps of linear warm-up."""

    start: int
    end: int
    lr: float
    warmup: int = 0

    def at(self, step: int, kind: str) -> float:
        done = step - self.start
        if done < self.warmup:
            return self.lr * (done + 1) / self.warmup
        if kind == "constant":
            return self.lr
        progress = (done - self.warmup) / max(1, self.end - self.start - self.warmup)
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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
            return self.extensions[-1].at(step, self.kind)
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
        last = self.extensions[-1] if self.extensions else None
        if last is not None and at_step < last.start + last.warmup:  # a restart still warming up: nothing decayed yet
            return Schedule(
                self.peak,
                self.warmup_steps,
                self.kind,
                self.total_steps,
                (*self.extensions[:-1], Extension(last.start, new_end, last.lr, last.warmup)),
            )
        return Schedule(
            self.peak,
            self.warmup_steps,
            self.kind,
            self.total_steps,
            (*self.extensions, Extension(at_step, new_end, self.at(at_step))),
        )

    def restarted(self, at_step: int, new_end: int, peak: float, warmup_limit: int) -> Schedule:
        """The schedule of a run resumed at `at_step` whose added steps, to `new_end`, get a new `peak`:
        a warm-up of at most `warmup_limit` steps and no more than a tenth of them (most of the added
        steps are then spent near the peak and decaying, not climbing to it), then the run's own kind
        (cosine decay to zero at `new_end`, or constant)."""
        warmup = min(warmup_limit, (new_end - at_step) // 10)
        return Schedule(
            self.peak,
            self.warmup_steps,
            self.kind,
            self.total_steps,
            (*self.extensions, Extension(at_step, new_end, peak, warmup)),
        )

    def decayed(self, step: int) -> bool:
        """Whether the learning rate has reached zero at `step` (a cosine schedule at its end): more steps
        that go on from here would all be taken at learning rate 0."""
        return self.at(step) <= 1e-12 * max([self.peak, *(e.lr for e in self.extensions)])

    def to_state(self) -> dict:
        return {
            "total_steps": self.total_steps,
            "extensions": [[e.start, e.end, e.lr, e.warmup] for e in self.extensions],
        }

    @staticmethod
    def from_state(peak: float, warmup_steps: int, kind: str, state: dict) -> Schedule:
        return Schedule(
            peak,
            warmup_steps,
            kind,
            int(state["total_steps"]),
            tuple(
                Extension(int(s), int(e), float(lr), int(warmup[0]) if warmup else 0)  # older: no warm-up
                for s, e, lr, *warmup in state["extensions"]
            ),
        )
