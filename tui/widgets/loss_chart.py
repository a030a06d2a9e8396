"""The loss chart: training loss per step (raw and smoothed), the learned prompt's test loss on the
evaluation subset and on the whole test set, the hand-written and the untrained prompt's test loss as
reference lines, and other runs overlaid for comparison.

Readable without colour: every series has its own marker character, and the legend sits in a line of
its own above the plot, never on the data. Events only append to the series and mark the chart stale;
the screen calls `redraw()` on a timer, so a fast run costs at most one plot a second, built in a
worker thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from promptgrad.events import Evaluation, Event, Extended, Started, Step

SMOOTHING = 0.9  # weight of the running average in the EMA of the training loss
MAX_POINTS = 600  # more points than this are thinned before plotting; a terminal shows far fewer
# series: (marker, colour, legend text); markers are ASCII so that LANG=C terminals show them too
TRAIN, EMA, SUBSET, FULL, HAND, UNTRAINED = (".", "gray", "train"), ("braille", "cyan", "train EMA"), \
    ("o", "orange", "test (subset)"), ("@", "red", "test (all pairs)"), ("-", "green", "hand-written"), \
    ("~", "magenta", "untrained")
OVERLAY_MARKERS = ("x", "+", "*", "%", "&")
RICH = {"gray": "grey50", "orange": "dark_orange", "teal": "dark_cyan"}  # plotext colour names rich spells otherwise
OVERLAY_COLORS = ("blue", "yellow", "white", "violet", "teal")


def thinned(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    if len(xs) <= limit:
        return list(xs), list(ys)  # copies: the build runs in another thread while events append
    stride = -(-len(xs) // limit)
    return xs[::stride] + xs[-1:], ys[::stride] + ys[-1:]


@dataclass
class Curves:
    """What one run contributes to the chart."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    subset_steps: list[int] = field(default_factory=list)  # the learned prompt on the evaluation subset
    subset_loss: list[float] = field(default_factory=list)
    full_steps: list[int] = field(default_factory=list)  # ... and on the whole test set
    full_loss: list[float] = field(default_factory=list)
    hand_written: float | None = None  # on the whole test set once measured there, else on the subset
    untrained: float | None = None
    n_test: int = 0  # pairs in the whole test set (from the Started event)

    def add(self, event: Event) -> None:
        if isinstance(event, Started):
            self.n_test = event.n_test
            if event.start_step:  # resumed: the steps logged after its checkpoint are done again
                self.truncate(event.start_step)
        elif isinstance(event, Step):
            if self.steps and event.step <= self.steps[-1]:
                self.truncate(event.step - 1)
            average = event.loss if not self.smoothed else SMOOTHING * self.smoothed[-1] + (1 - SMOOTHING) * event.loss
            self.steps.append(event.step)
            self.train_loss.append(event.loss)
            self.smoothed.append(average)
        elif isinstance(event, Evaluation) and event.test_loss is not None:
            whole = event.n_pairs == self.n_test
            if event.prompt == "hand-written" and (self.hand_written is None or whole):
                self.hand_written = event.test_loss
            elif event.prompt == "untrained" and (self.untrained is None or whole):
                self.untrained = event.test_loss
            elif event.prompt == "learned":
                steps, losses = (self.full_steps, self.full_loss) if whole else (self.subset_steps, self.subset_loss)
                steps.append(event.step)
                losses.append(event.test_loss)

    def truncate(self, step: int) -> None:
        """Forget everything after `step`: a resumed run goes on from its checkpoint."""
        for xs, *ys in ((self.steps, self.train_loss, self.smoothed), (self.subset_steps, self.subset_loss),
                        (self.full_steps, self.full_loss)):
            keep = sum(1 for s in xs if s <= step)
            for series in (xs, *ys):
                del series[keep:]

    @staticmethod
    def of(events: list[Event]) -> Curves:
        curves = Curves()
        for event in events:
            curves.add(event)
        return curves


class BuiltPlot(PlotextPlot):
    """Shows a figure built elsewhere. PlotextPlot builds the whole figure in render(), on the UI thread:
    tens of milliseconds of Python at 160 columns, more while the training thread wants the GIL, and
    again at every repaint (the cursor moving in or out of the pane). LossChart builds it in a worker
    thread instead and hands the text over; render() only returns it."""

    built: Text | None = None

    def render(self):
        return self.built if self.built is not None else Text("")


class LossChart(Vertical):
    """The chart pane: a one-line legend, then the plot."""

    can_focus = True
    BORDER_TITLE = "Loss"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.overlays: dict[str, Curves] = {}
        self.building = threading.Lock()
        self.builds = 0  # figures shown so far
        self.shown_legend: Text | None = None
        self.reset()

    def compose(self) -> ComposeResult:
        yield Static("", classes="legend")
        yield BuiltPlot()

    def reset(self) -> None:
        self.curves = Curves()
        self.total_steps = 0
        self.stale = True

    # the run's own series, as the screen and the tests read them
    @property
    def steps(self) -> list[int]:
        return self.curves.steps

    @property
    def test_steps(self) -> list[int]:
        return self.curves.subset_steps + self.curves.full_steps

    @property
    def hand_written(self) -> float | None:
        return self.curves.hand_written

    def add(self, event: Event) -> None:
        self.curves.add(event)
        if isinstance(event, (Started, Extended)):
            self.total_steps = event.total_steps
        self.stale = True

    def truncate(self, step: int) -> None:
        self.curves.truncate(step)
        self.stale = True

    def set_overlays(self, overlays: dict[str, Curves]) -> None:
        self.overlays = overlays
        self.stale = True

    def legend(self) -> Text:
        parts: list[tuple[str, str] | str] = []
        c = self.curves
        shown = [(TRAIN, c.steps), (EMA, c.steps), (SUBSET, c.subset_steps), (FULL, c.full_steps),
                 (HAND, c.hand_written is not None), (UNTRAINED, c.untrained is not None)]
        for (marker, colour, label), present in shown:
            if present:
                parts += [("━" if marker == "braille" else marker * 2, RICH.get(colour, colour)), f" {label}  "]
        for i, name in enumerate(self.overlays):
            colour = OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
            parts += [(OVERLAY_MARKERS[i % len(OVERLAY_MARKERS)] * 2, RICH.get(colour, colour)), f" {name}  "]
        return Text.assemble(*parts) if parts else Text("no data yet: ctrl+r starts a run, ctrl+o opens one", style="dim")

    def on_resize(self) -> None:
        self.stale = True
        self.redraw()

    def series(self, right: int) -> list[tuple[str, list, list, str, str]]:
        """What to plot, as (scatter|plot, xs, ys, marker, colour), copied: the build runs in another thread."""
        c, out = self.curves, []
        for i, other in enumerate(self.overlays.values()):
            marker, colour = OVERLAY_MARKERS[i % len(OVERLAY_MARKERS)], OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
            if other.steps:
                out.append(("plot", *thinned(other.steps, other.smoothed), marker, colour))
            if other.subset_steps or other.full_steps:
                out.append(("scatter", other.subset_steps + other.full_steps, other.subset_loss + other.full_loss, marker, colour))
        if c.steps:
            out.append(("scatter", *thinned(c.steps, c.train_loss), *TRAIN[:2]))
            out.append(("plot", *thinned(c.steps, c.smoothed), *EMA[:2]))
        if c.subset_steps:
            out.append(("scatter", list(c.subset_steps), list(c.subset_loss), *SUBSET[:2]))
        if c.full_steps:
            out.append(("scatter", list(c.full_steps), list(c.full_loss), *FULL[:2]))
        for (marker, colour, _), value in ((HAND, c.hand_written), (UNTRAINED, c.untrained)):
            if value is not None:
                out.append(("plot", [0, right], [value, value], marker, colour))
        return out

    def redraw(self) -> None:
        """Called on a timer: if anything changed, rebuild the figure, in a worker thread."""
        if not self.stale or not self.is_mounted:
            return
        plot = self.query_one(BuiltPlot)
        if not plot.display or plot.size.width < 8 or plot.size.height < 4:
            return  # not on screen (another tab): built once it is shown (on_resize)
        self.stale = False
        legend = self.legend()
        if legend != self.shown_legend:  # an update relays the screen out: only when a series appears
            self.query_one(".legend", Static).update(legend)
            self.shown_legend = legend
        c, others = self.curves, list(self.overlays.values())
        right = max([self.total_steps, 1, *c.steps[-1:], *c.subset_steps[-1:], *c.full_steps[-1:],
                     *(o.steps[-1] for o in others if o.steps)])
        self.build(plot, self.series(right), right, plot.size.width, plot.size.height,
                   plot._get_plotext_theme_name(self.app.theme))

    @work(thread=True, exclusive=True, group="chart", exit_on_error=False)
    def build(self, plot: BuiltPlot, series: list, right: int, width: int, height: int, theme: str) -> None:
        with self.building:  # one build at a time: an older worker may still be finishing
            if get_current_worker().is_cancelled:
                return  # a newer build was asked for meanwhile
            plt = plot.plt
            plt.clear_data()
            plt.plotsize(width, height)
            plt.theme(theme)
            plt.xlabel("step")
            plt.ylabel("loss (nats/token)")
            plt.xlim(0, right)
            for kind, xs, ys, marker, colour in series:
                (plt.scatter if kind == "scatter" else plt.plot)(xs, ys, marker=marker, color=colour)
            text = Text.from_ansi(plt.build())
        try:
            self.app.call_from_thread(self.show_built, plot, text)
        except RuntimeError:
            pass  # the app closed meanwhile

    def show_built(self, plot: BuiltPlot, text: Text) -> None:
        plot.built = text
        self.builds += 1
        plot.refresh()
