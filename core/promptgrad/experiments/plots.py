"""The report's plots (results.py's numbers), drawn with matplotlib into SVG files, one pair per task:

    compare-<task>.svg   accuracy and test loss of the learned prompt beside each baseline, per group of
                         runs (the settings that vary), bars the mean over seeds, error bars their spread
    loss-<task>.svg      each run's training loss per step, and its learned prompt's test loss where it
                         was evaluated (dots; the last one on the whole test set)

Figures are drawn on the Agg canvas without pyplot, so no global state is touched and a thread (the
TUI's) may draw them too. Text stays text in the SVG (svg.fonttype none: searchable, and the tests read
it), a prompt's "$" is never taken for mathtext, and files carry no date, so one report gives one file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable

from promptgrad.experiments.results import Group, Results, shown_value

Progress = Callable[[str, int, int], None]  # (what, done, total)
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "promptgrad", "text.parse_math": False, "font.size": 9}
COLOURS = {"learned": "tab:blue", "untrained": "tab:gray", "majority": "tab:green", "k-shot": "tab:purple"}
OTHER_COLOURS = ("tab:orange", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def file_stem(task: str) -> str:
    """A file name for a task's plots: the task's own name when it is a plain one, else its plain part and
    a short hash of the whole name, so `x y` and `x-y` never share a file (nor overwrite each other's)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", task).strip("-.") or "task"
    return stem if stem == task else f"{stem}-{hashlib.sha1(task.encode()).hexdigest()[:8]}"


def colours_of(labels: list[str], prompts: dict[str, str]) -> dict[str, str]:
    """A colour per prompt label: the fixed one of its kind, or the next of the others (hand-written ones)."""
    out, others = {}, iter(OTHER_COLOURS * (len(labels) // len(OTHER_COLOURS) + 1))
    for label in labels:
        out[label] = COLOURS.get(prompts[label]) or next(others)
    return out


def svg_of(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buffer.getvalue()


def comparison(results: Results, task: str, groups: list[Group]) -> bytes:
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(row.label for g in groups for row in g.rows))
    colours = colours_of(labels, {row.label: row.prompt for g in groups for row in g.rows})
    width = 0.8 / max(len(g.rows) for g in groups)
    figure = Figure(figsize=(max(7.0, 1.2 + 1.6 * len(groups) * 2), 4.2), layout="constrained")
    accuracy_axes, loss_axes = figure.subplots(1, 2)
    for x, group in enumerate(groups):
        for j, row in enumerate(group.rows):
            at = x + (j - (len(group.rows) - 1) / 2) * width
            colour = colours[row.label]
            accuracy_axes.bar(
                at,
                row.accuracy.mean * 100,
                width,
                color=colour,
                label=row.label,
                yerr=None if row.accuracy.sd is None else row.accuracy.sd * 100,
                capsize=3,
            )
            if row.loss is not None:
                loss_axes.bar(at, row.loss.mean, width, color=colour, label=row.label, yerr=row.loss.sd, capsize=3)
    ticks = [", ".join(f"{n}={shown_value(g.setting(n))}" for n in results.varying) or task for g in groups]
    ticks = [
        f"{tick}\n{len(g.runs)} seed(s), {'/'.join(map(str, g.n_test))} test pairs each"
        for tick, g in zip(ticks, groups)
    ]
    for axes, title in (
        (accuracy_axes, "accuracy (%), greedy exact match"),
        (loss_axes, "test loss (nats/target token)"),
    ):
        axes.set_title(title)
        axes.set_xticks(range(len(groups)), ticks)
        axes.grid(axis="y", alpha=0.3)
        axes.set_ylim(bottom=0)
    handles = {}
    for axes in (accuracy_axes, loss_axes):
        for handle, label in zip(*axes.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncols=min(3, len(handles)), fontsize=8
    )
    figure.suptitle(
        f"{task}: learned prompt vs baselines on the test pairs ({groups[0].model.rsplit('/', 1)[-1]}); "
        f"bars: mean over seeds, error bars: standard deviation over seeds (95% CIs: report.md)"
    )
    return svg_of(figure)


def loss_curves(results: Results, task: str, groups: list[Group]) -> bytes:
    """One colour per group (its seeds alike), so the legend stays one line a group however many seeds."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    palette = (
        "tab:blue",
        "tab:orange",
        "tab:green",
        "tab:red",
        "tab:purple",
        "tab:brown",
        "tab:pink",
        "tab:gray",
        "tab:olive",
        "tab:cyan",
    )
    for number, group in enumerate(groups):
        colour = palette[number % len(palette)]
        setting = ", ".join(f"{n}={shown_value(group.setting(n))}" for n in results.varying)
        seeds = ", ".join(str(run.seed) for run in group.runs)
        for i, run in enumerate(group.runs):
            label = f"training loss, {setting + ', ' if setting else ''}seed(s) {seeds}" if i == 0 else None
            if run.training_loss:
                steps, losses = zip(*run.training_loss)
                axes.plot(steps, losses, color=colour, linewidth=1, alpha=0.8, label=label)
            if run.learned_test_loss:
                steps, _, losses = zip(*run.learned_test_loss)
                axes.plot(steps, losses, "o", color=colour, markersize=4)
    dots = Line2D(
        [],
        [],
        marker="o",
        linestyle="",
        color="black",
        markersize=4,
        label="learned prompt's test loss (the last on the whole test set)",
    )
    axes.set_xlabel("step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("loss (nats/target token)")
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    figure.legend([*handles, dots], [*labels, dots.get_label()], loc="outside lower center", ncols=2, fontsize=7)
    axes.set_title(
        f"{task}: training loss per step (lines, one per run) and the learned prompt's test loss (dots)", fontsize=9
    )
    return svg_of(figure)


def draw(results: Results, progress: Progress | None = None) -> dict[str, bytes]:
    """Every plot of the report: file name -> SVG bytes."""
    import matplotlib

    tasks: dict[str, list[Group]] = {}
    for group in results.groups:
        tasks.setdefault(group.task, []).append(group)
    files: dict[str, bytes] = {}
    with matplotlib.rc_context(STYLE):
        for done, (task, groups) in enumerate(tasks.items(), 1):
            stem, extra = file_stem(task), 1
            while f"compare-{stem}.svg" in files:  # a task named like another's hashed name: never overwrite it
                extra += 1
                stem = f"{file_stem(task)}-{extra}"
            files[f"compare-{stem}.svg"] = comparison(results, task, groups)
            files[f"loss-{stem}.svg"] = loss_curves(results, task, groups)
            if progress:
                progress("drawing plots", done, len(tasks))
    return files
