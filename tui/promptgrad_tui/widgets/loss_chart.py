"""The loss chart: training loss per step (raw and smoothed), the learned prompt's test loss on the
evaluation subset and on the whole test set, its loss on the validation pairs (with val_fraction), the
hand-written and the untrained prompt's test loss as reference lines, and other runs overlaid for comparison.

Readable without colour: every series has its own marker character, and the legend sits in lines of
its own above the plot, never on the data, each entry's marker beside its label. The reference lines are
drawn first and the test points last, so where series cross the measurements stay visible. Steps are
whole numbers on the x-axis; each series can be switched off and on by a key (t, a, s, f, v, h, u, c) while
the chart has the cursor. Events only append to the series and mark the chart stale; the screen calls
`redraw()` on a timer, so a fast run costs at most one plot a second, built in a worker thread; a
resize rebuilds it at the new size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from promptgrad.events import Evaluation, Event, Extended, Started, Step, Validation

SMOOTHING = 0.9  # weight of the running average in the EMA of the training loss (about the last 10 steps)
COMPACT_CHART_ROWS = 16  # a chart pane shorter than this gets its legend on one line (markers and keys)
MIN_PLOT_ROWS = 5  # a plot shorter than this is not drawn: a line says what it needs
MAX_POINTS = 600  # more points than this are thinned before plotting; a terminal shows far fewer
# series: (marker, colour, legend text); markers are ASCII so that LANG=C terminals show them too
TRAIN, EMA, SUBSET, FULL, HAND, UNTRAINED = (
    (".", "gray", "train"),
    ("braille", "cyan", "train EMA"),
    ("o", "orange", "test (subset)"),
    ("@", "red", "test (all pairs)"),
    ("-", "green", "hand-written"),
    ("~", "magenta", "untrained"),
)
VALID = ("v", "blue", "validation")
# the key that switches each series off and on, by its legend text ("compared" stands for the overlays)
TOGGLES = {
    "t": "train",
    "a": "train EMA",
    "s": "test (subset)",
    "f": "test (all pairs)",
    "v": "validation",
    "h": "hand-written",
    "u": "untrained",
    "c": "compared",
}
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
    smoothed: list[float] = field(default_factory=list)  # the EMA, bias-corrected (see `add`)
    ema_raw: list[float] = field(default_factory=list)  # the EMA before the correction, started at 0
    subset_steps: list[int] = field(default_factory=list)  # the learned prompt on the evaluation subset
    subset_loss: list[float] = field(default_factory=list)
    full_steps: list[int] = field(default_factory=list)  # ... and on the whole test set
    full_loss: list[float] = field(default_factory=list)
    valid_steps: list[int] = field(default_factory=list)  # the learned prompt on the validation pairs (val_fraction)
    valid_loss: list[float] = field(default_factory=list)
    hand_written: float | None = (
        None  # the first hand-written prompt's: on the whole test set once measured there, else on the subset
    )
    hand_written_text: str | None = None  # which wording that is (a run may compare several; the chart shows the first)
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
            # an EMA started at 0 and divided by 1 - SMOOTHING**n (Adam's bias correction): the average of
            # the steps so far, weighted to the recent ones. Started at the first loss instead, it held step
            # 1's 10.7 for a long while (6.3 at step 10 while the steps read 3-4)
            raw = SMOOTHING * (self.ema_raw[-1] if self.ema_raw else 0.0) + (1 - SMOOTHING) * event.loss
            self.steps.append(event.step)
            self.train_loss.append(event.loss)
            self.ema_raw.append(raw)
            self.smoothed.append(raw / (1 - SMOOTHING ** len(self.ema_raw)))
        elif isinstance(event, Evaluation) and event.test_loss is not None:
            whole = event.n_pairs == self.n_test
            if (
                event.prompt == "hand-written"
                and self.hand_written_text in (None, event.text)
                and (self.hand_written is None or whole)
            ):
                self.hand_written, self.hand_written_text = event.test_loss, event.text
            elif event.prompt == "untrained" and (self.untrained is None or whole):
                self.untrained = event.test_loss
            elif event.prompt == "learned":
                steps, losses = (self.full_steps, self.full_loss) if whole else (self.subset_steps, self.subset_loss)
                steps.append(event.step)
                losses.append(event.test_loss)
        elif isinstance(event, Validation):
            self.valid_steps.append(event.step)
            self.valid_loss.append(event.loss)

    def truncate(self, step: int) -> None:
        """Forget everything after `step`: a resumed run goes on from its checkpoint."""
        for xs, *ys in (
            (self.steps, self.train_loss, self.smoothed, self.ema_raw),
            (self.subset_steps, self.subset_loss),
            (self.full_steps, self.full_loss),
            (self.valid_steps, self.valid_loss),
        ):
            keep = sum(1 for s in xs if s <= step)
            for series in (xs, *ys):
                del series[keep:]

    @staticmethod
    def of(events: list[Event]) -> Curves:
        curves = Curves()
        for event in events:
            curves.add(event)
        return curves


def step_ticks(right: int, width: int) -> list[int]:
    """Whole-number steps for the x-axis, as many as fit (a label every ~12 columns), on round values,
    ending at the last step."""
    wanted = max(2, min(right, width // 12))
    raw = right / wanted
    magnitude = 10 ** max(0, len(str(int(raw))) - 1)
    stride = max(1, next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))
    ticks = list(range(0, right + 1, stride))
    if ticks[-1] != right:  # the last step labelled, in place of a round tick too close to it
        ticks = ticks[:-1] + [right] if right - ticks[-1] < stride / 2 else ticks + [right]
    return ticks


def legend_lines(entries: list[Text], width: int) -> Text:
    """The legend's entries packed into lines of `width`, an entry never split from its marker."""
    lines: list[Text] = [Text()]
    for entry in entries:
        if lines[-1].cell_len and lines[-1].cell_len + 2 + entry.cell_len > width:
            lines.append(Text())
        if lines[-1].cell_len:
            lines[-1].append("  ")
        lines[-1].append_text(entry)
    return Text("\n").join(lines)


class BuiltPlot(PlotextPlot):
    """Shows a figure built elsewhere. PlotextPlot builds the whole figure in render(), on the UI thread:
    tens of milliseconds of Python at 160 columns, more while the training thread wants the GIL, and
    again at every repaint (the cursor moving in or out of the pane). LossChart builds it in a worker
    thread instead and hands the text over; render() only returns it."""

    built: Text | None = None
    built_size: tuple[int, int] = (0, 0)  # the size it was built for

    def render(self):
        return self.built if self.built is not None else Text("")

    def on_resize(self) -> None:
        """The chart follows the terminal's size: built again at a new size. Shown again at the size it was
        built for (a pane switch on a narrow screen), it is not: a build then would compete with the
        switch for the interpreter."""
        chart = self.parent
        if isinstance(chart, LossChart) and tuple(self.size) != self.built_size and self.size.width >= 8:
            chart.stale = True
            self.call_after_refresh(chart.redraw)


class LossChart(Vertical):
    """The chart pane: the legend, then the plot."""

    can_focus = True
    BORDER_TITLE = "Loss"
    BINDINGS = [Binding(key, f"toggle('{label}')", f"{label} on/off", show=False) for key, label in TOGGLES.items()]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden: set[str] = set()  # series switched off by their key
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

    def action_toggle(self, label: str) -> None:
        self.hidden.symmetric_difference_update({label})
        self.stale = True
        self.redraw()

    def legend_entries(self, compact: bool = False) -> list[Text]:
        """One entry per series present: its marker, its label, and the key that switches it (dim when off);
        `compact` (a short pane): the marker and the key only, so that the legend takes one line."""
        if compact:
            return self.compact_entries()
        c, keys, entries = self.curves, {label: key for key, label in TOGGLES.items()}, []
        for marker, colour, label in self.present_series():
            off = label in self.hidden
            text = f"{label} {c.hand_written_text!r}" if label == "hand-written" and c.hand_written_text else label
            entries.append(
                Text.assemble(
                    ("━" if marker == "braille" else marker * 2, "dim" if off else RICH.get(colour, colour)),
                    (f" {text}", "dim" if off else ""),
                    (f" ({keys[label]}{' off' if off else ''})", "dim"),
                )
            )
        for i, name in enumerate(self.overlays):
            colour, off = OVERLAY_COLORS[i % len(OVERLAY_COLORS)], "compared" in self.hidden
            entries.append(
                Text.assemble(
                    (OVERLAY_MARKERS[i % len(OVERLAY_MARKERS)] * 2, "dim" if off else RICH.get(colour, colour)),
                    (f" {name}", "dim" if off else ""),
                    (" (c off)" if off else "", "dim"),
                )
            )
        return entries

    def present_series(self) -> list[tuple[str, str, str]]:
        """(marker, colour, label) of each series that has something to draw, in the legend's order."""
        c = self.curves
        shown = [
            (TRAIN, c.steps),
            (EMA, c.steps),
            (SUBSET, c.subset_steps),
            (FULL, c.full_steps),
            (VALID, c.valid_steps),
            (HAND, c.hand_written is not None),
            (UNTRAINED, c.untrained is not None),
        ]
        return [series for series, present in shown if present]

    def compact_entries(self) -> list[Text]:
        keys, entries = {label: key for key, label in TOGGLES.items()}, []
        for marker, colour, label in self.present_series():
            style = "dim" if label in self.hidden else RICH.get(colour, colour)
            entries.append(Text.assemble(("━" if marker == "braille" else marker * 2, style), f" {keys[label]}"))
        if self.overlays:
            entries.append(
                Text.assemble(
                    *(
                        (
                            OVERLAY_MARKERS[i % len(OVERLAY_MARKERS)],
                            "dim"
                            if "compared" in self.hidden
                            else RICH.get(OVERLAY_COLORS[i % len(OVERLAY_COLORS)], ""),
                        )
                        for i in range(len(self.overlays))
                    ),
                    " c",
                )
            )
        return entries + [Text("(keys; f1 names them)", style="dim")] if entries else entries

    def legend(self, width: int = 10_000, compact: bool = False) -> Text:
        entries = self.legend_entries(compact)
        return (
            legend_lines(entries, width)
            if entries
            else Text("no data yet: ctrl+r starts a run, ctrl+o opens one", style="dim")
        )

    def series(self, right: int) -> list[tuple[str, list, list, str, str]]:
        """What to plot, as (scatter|plot, xs, ys, marker, colour), copied (the build runs in another thread),
        in drawing order: the reference lines first, the test points last, so that later series, drawn on
        top, are the measurements."""
        c, out, hidden = self.curves, [], self.hidden
        for (marker, colour, label), value in ((HAND, c.hand_written), (UNTRAINED, c.untrained)):
            if value is not None and label not in hidden:
                out.append(("plot", [0, right], [value, value], marker, colour))
        for i, other in enumerate(self.overlays.values() if "compared" not in hidden else ()):
            marker, colour = OVERLAY_MARKERS[i % len(OVERLAY_MARKERS)], OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
            if other.steps:  # on its own steps: a shorter run ends where it ended
                out.append(("plot", *thinned(other.steps, other.smoothed), marker, colour))
            if other.subset_steps or other.full_steps:
                out.append(
                    (
                        "scatter",
                        other.subset_steps + other.full_steps,
                        other.subset_loss + other.full_loss,
                        marker,
                        colour,
                    )
                )
        for (marker, colour, label), xs, ys, kind in (
            (TRAIN, c.steps, c.train_loss, "scatter"),
            (EMA, c.steps, c.smoothed, "plot"),
            (VALID, c.valid_steps, c.valid_loss, "scatter"),
            (SUBSET, c.subset_steps, c.subset_loss, "scatter"),
            (FULL, c.full_steps, c.full_loss, "scatter"),
        ):
            if xs and label not in hidden:
                out.append((kind, *thinned(xs, ys), marker, colour))
        return out

    def redraw(self) -> None:
        """Called on a timer: if anything changed, rebuild the figure, in a worker thread."""
        if not self.stale or not self.is_mounted:
            return
        plot = self.query_one(BuiltPlot)
        if not plot.display or plot.size.width < 8 or plot.size.height < 1:
            return  # not on screen (another tab): built once it is shown (on_resize)
        self.stale = False
        # a short pane (a small terminal): the legend on one line, markers and keys only, the rows to the plot
        compact = self.size.height < COMPACT_CHART_ROWS
        legend = self.legend(max(20, self.query_one(".legend", Static).size.width or self.size.width - 2), compact)
        if compact and legend.plain.count("\n"):
            legend = legend.split("\n")[0]
        if plot.size.height < MIN_PLOT_ROWS:  # a figure this short is a frame with no room inside: say so instead
            self.show_built(
                plot,
                Text(
                    f"the chart needs {MIN_PLOT_ROWS} rows here, it has {plot.size.height}: a taller "
                    f"terminal, or z folds the results strip",
                    style="italic",
                ),
                tuple(plot.size),
            )
            return
        if legend != self.shown_legend:  # an update relays the screen out: only when the legend changes
            self.query_one(".legend", Static).update(legend)
            self.shown_legend = legend
        c, others = self.curves, list(self.overlays.values())
        right = max(
            [
                self.total_steps,
                1,
                *c.steps[-1:],
                *c.subset_steps[-1:],
                *c.full_steps[-1:],
                *c.valid_steps[-1:],
                *(o.steps[-1] for o in others if o.steps),
            ]
        )
        self.build(
            plot,
            self.series(right),
            right,
            plot.size.width,
            plot.size.height,
            plot._get_plotext_theme_name(self.app.theme),
        )

    @work(thread=True, exclusive=True, group="chart", exit_on_error=False)
    def build(self, plot: BuiltPlot, series: list, right: int, width: int, height: int, theme: str) -> None:
        with self.building:  # one build at a time: an older worker may still be finishing
            if get_current_worker().is_cancelled:
                return  # a newer build was asked for meanwhile
            plt = plot.plt
            plt.clear_data()
            # plotext caps a figure at the terminal size it saw when it was made: a terminal resized
            # from 80 to 160 columns kept an 80-column chart
            plt._limit_size(
                False, False
            )  # (the figure object has no public name for it; plotext.limitsize sets the same)
            plt.plotsize(width, height)
            plt.theme(theme)
            plt.xlabel("step")
            plt.ylabel("loss (nats/token)")
            plt.xlim(0, right)
            plt.xticks(step_ticks(right, width))
            for kind, xs, ys, marker, colour in series:
                (plt.scatter if kind == "scatter" else plt.plot)(xs, ys, marker=marker, color=colour)
            text = Text.from_ansi(plt.build(), no_wrap=True, overflow="crop")  # never wrapped: the axis row stays
        try:
            self.app.call_from_thread(self.show_built, plot, text, (width, height))
        except RuntimeError:
            pass  # the app closed meanwhile

    def show_built(self, plot: BuiltPlot, text: Text, size: tuple[int, int]) -> None:
        plot.built, plot.built_size = text, size
        self.builds += 1
        plot.refresh()
