"""The loss chart: training loss per step (raw and smoothed), test loss at each evaluation of the
learned prompt, and the hand-written prompt's test loss as a reference line.

Events only append to the series and mark the chart stale; the screen calls `redraw()` on a timer, so a
fast run costs one plot every few tenths of a second however many steps arrive.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

from promptgrad.events import Evaluation

SMOOTHING = 0.9  # weight of the running average in the EMA of the training loss
MAX_POINTS = 600  # more points than this are thinned before plotting; a terminal shows far fewer


def thinned(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    if len(xs) <= limit:
        return xs, ys
    stride = -(-len(xs) // limit)
    return xs[::stride] + xs[-1:], ys[::stride] + ys[-1:]


class LossChart(PlotextPlot):
    can_focus = True
    BORDER_TITLE = "Loss"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        self.steps: list[int] = []
        self.train_loss: list[float] = []
        self.smoothed: list[float] = []
        self.test_steps: list[int] = []
        self.test_loss: list[float] = []
        self.hand_written: float | None = None
        self.total_steps = 0
        self.stale = True

    def add_step(self, step: int, loss: float) -> None:
        if self.steps and step <= self.steps[-1]:  # a resumed run repeats the steps after its checkpoint
            self.truncate(step - 1)
        average = loss if not self.smoothed else SMOOTHING * self.smoothed[-1] + (1 - SMOOTHING) * loss
        self.steps.append(step)
        self.train_loss.append(loss)
        self.smoothed.append(average)
        self.stale = True

    def add_evaluation(self, event: Evaluation) -> None:
        if event.test_loss is None:
            return
        if event.prompt == "hand-written":
            self.hand_written = event.test_loss
        elif event.prompt == "learned":
            self.test_steps.append(event.step)
            self.test_loss.append(event.test_loss)
        self.stale = True

    def truncate(self, step: int) -> None:
        """Forget everything after `step`: a resumed run goes on from its checkpoint."""
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.train_loss[keep:], self.smoothed[keep:]
        keep = sum(1 for s in self.test_steps if s <= step)
        del self.test_steps[keep:], self.test_loss[keep:]
        self.stale = True

    def redraw(self) -> None:
        if not self.stale:
            return
        self.stale = False
        plt = self.plt
        plt.clear_data()
        plt.xlabel("step")
        right = max([self.total_steps, 1, *self.steps[-1:], *self.test_steps[-1:]])
        plt.xlim(0, right)
        if self.steps:
            xs, ys = thinned(self.steps, self.train_loss)
            plt.plot(xs, ys, label="train", color="gray", marker="braille")
            xs, ys = thinned(self.steps, self.smoothed)
            plt.plot(xs, ys, label="train (EMA)", color="cyan", marker="braille")
        if self.test_steps:
            plt.plot(self.test_steps, self.test_loss, label="test", color="orange", marker="dot")
        if self.hand_written is not None:
            plt.plot([0, right], [self.hand_written] * 2, label="hand-written", color="green", marker="braille")
        self.refresh()
