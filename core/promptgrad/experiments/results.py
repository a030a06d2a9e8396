"""The final results of run folders, side by side: what `promptgrad report` tabulates and plots.

    collect(["runs/sweep"])    every run folder found under the paths, read (never trusting its files)
      .runs                    each finished run: its settings, its prompts' final scores, its loss curve
      .left_out                each run folder not in the table (unfinished, failed, damaged), and why
      .groups                  runs that differ only by seed: per prompt the mean, its spread (sd) and the 95%
                               interval of the mean over the seeds (over_seeds.py); the learned prompt against
                               each baseline pair by pair (each run's pair_scores.jsonl, paired.py), over seeds
      .markdown() .csv() .json()

A run's result is its Evaluation events on the whole test set (n_pairs == the run's test pairs): the
learned prompt's at the run's last step, and for each other prompt (hand-written, untrained, majority,
k-shot, ...) its latest one (a baseline does not change while the prompt learns). Intervals (95%
bootstrap over the test pairs) are None in runs made before them, and majority has no test loss (it is
not a language model); both are shown as such, never as zero.

Runs are grouped by everything that defines them (config.py's defines-run settings) except the seed,
plus the rest of the learning settings (steps or epochs, early stopping) and the data's hash
(facts.json): two runs in a group are the same experiment repeated with another seed, and their
spread is what another seed would change. Every file is read through run_folder.py's readers (a link
or a FIFO planted in a folder is refused, never followed or waited on).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from promptgrad.config import TrainConfig, is_bundled
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Failed, Finished, Started, Step
from promptgrad.model.soft_prompt import start_description
from promptgrad.readout.over_seeds import mean_interval_over_seeds
from promptgrad.readout.paired import PairedComparison, compare, read_pair_scores
from promptgrad.store.run_facts import RunFacts
from promptgrad.store.run_folder import CONFIG, METRICS, PAIR_SCORES, RunFolder, RunSummary, read_events, summarize

MAX_DEPTH = 4  # runs_dir/NAME/<run> and a little more; a report never walks a whole disk
PROMPT_ORDER = ("learned", "hand-written", "k-shot", "untrained", "majority")  # rows in this order, others after
Progress = Callable[[str, int, int], None]  # (what, done, total)
TASK_SETTINGS = (
    "task",
    "data",
    "data_sha256",
    "x_column",
    "y_column",
    "template",
    "baseline_text",
)  # what a task brings


# ---- one run ---------------------------------------------------------------------------------------

PROMPT_TEXT_IS_A_RESULT = ("majority",)  # its text is the answer it found, which differs by seed: not a name


def prompt_key(evaluation: Evaluation) -> tuple[str, str]:
    """Which prompt an evaluation scored: its kind, and the wording that names it (a hand-written one's, "3-shot")."""
    return evaluation.prompt, "" if evaluation.prompt in PROMPT_TEXT_IS_A_RESULT else evaluation.text


@dataclass(frozen=True)
class RunResult:
    """A finished run, as the report needs it."""

    path: Path
    name: str
    seed: int
    task: str  # the data's name: a bundled task's, or the data file's stem
    model: str
    settings: dict[str, Any]  # result_settings(), and data_sha256 (None for a run from before facts.json)
    n_test: int
    scores: list[Evaluation]  # one per prompt, on the whole test set
    training_loss: list[tuple[int, float]]  # (step, training loss of its batch)
    learned_test_loss: list[
        tuple[int, int, float]
    ]  # (step, pairs scored, test loss) of each evaluation of the learned prompt
    skipped_lines: list[int] = field(default_factory=list)  # lines of metrics.jsonl that were not events
    template: str = ""
    # the learned prompt against each other prompt, pair by pair (paired.py), keyed as scores are (prompt_key)
    comparisons: dict[tuple[str, str], PairedComparison] = field(default_factory=dict)
    paired_problem: str = ""  # why there are no comparisons: no pair_scores.jsonl (older runs), or it is damaged

    def score(self, key: tuple[str, str]) -> Evaluation | None:
        return next((s for s in self.scores if prompt_key(s) == key), None)


@dataclass(frozen=True)
class LeftOut:
    path: Path
    why: str


def result_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings a run's result depends on, but the seed: those that define the run (config.py's
    declarations), and the rest of how it learns (its length in steps or epochs, its early stopping),
    which may differ between two runs of one definition; not where it ran or how often it was watched."""
    return {
        name: config.get(name)
        for name, (group, f) in TrainConfig.settings().items()
        if (f.metadata["defines_run"] or group == "learning") and name != "seed"
    }


def task_name(config: TrainConfig) -> str:
    data = config.problem.data
    return data if is_bundled(data) else Path(data).stem or data


def data_sha256(path: Path) -> str | None:
    try:
        return RunFacts.load(path).data.sha256
    except UserError:  # older runs have no facts.json; their data is then known by its name only
        return None


def named_start(score: Evaluation, config: TrainConfig) -> Evaluation:
    """A run from before the start prompt was named wrote prompt="untrained", text="": the text its init
    gives now (soft_prompt.start_description), so old and new runs of one group share one row."""
    if score.prompt == "untrained" and not score.text:
        return replace(score, text=start_description(config.problem.init))
    return score


def run_comparisons(path: Path, n_test: int) -> tuple[dict[tuple[str, str], PairedComparison], str]:
    """The learned prompt against each other prompt from the run's pair_scores.jsonl (read through
    files.py: never a link or a FIFO), or why there are none."""
    try:
        scores = read_pair_scores(path / PAIR_SCORES)
    except FileNotFoundError:
        return {}, f"no {PAIR_SCORES} (a run from before per-pair results)"
    except (UserError, OSError) as e:
        return {}, f"{PAIR_SCORES} not read: {e if isinstance(e, UserError) else e.strerror or e}"
    learned = scores.get(("learned", ""))
    if learned is None or len(learned) != n_test:
        return {}, f"{PAIR_SCORES} holds no learned prompt on all {n_test} test pairs"
    out = {}
    try:
        for (prompt, text), pairs in scores.items():
            if (prompt, text) != ("learned", ""):
                key = (prompt, "" if prompt in PROMPT_TEXT_IS_A_RESULT else text)
                out[key] = compare(learned, pairs, PromptRow(prompt, text, [], None, None).label)
    except UserError as e:
        return {}, f"{PAIR_SCORES}: {e}"
    return out, ""


def why_unfinished(summary: RunSummary) -> str:
    at = f"step {summary.step} of {summary.total_steps}"
    if summary.state == "failed":
        failed = [e for e in read_events(summary.path / METRICS)[0] if isinstance(e, Failed)]
        return f"failed at {at}" + (
            f": {failed[-1].message.splitlines()[0][:200]}" if failed and failed[-1].message else ""
        )
    return {
        "running": f"still running ({at}; a process holds its lock)",
        "stopped": f"stopped at {at}",
        "started": f"unfinished ({at}, no end recorded)",
        "empty": f"no events in its {METRICS}",
        "damaged": f"damaged: {summary.problem}",
    }.get(summary.state, summary.state)


def read_run(path: Path) -> RunResult | LeftOut:
    """A finished run's result, or why it is left out. Nothing is executed, no link followed (RunFolder.open
    refuses a planted link or special file; metrics.jsonl is read by its typed reader, which never follows one)."""
    summary = summarize(path)
    if summary.state != "finished":
        return LeftOut(path, why_unfinished(summary))
    try:
        config = RunFolder.open(path).config()
        events, bad = read_events(path / METRICS)
    except (UserError, OSError) as e:
        return LeftOut(path, f"damaged: {e if isinstance(e, UserError) else e.strerror or e}")
    started = next((e for e in reversed(events) if isinstance(e, Started)), None)  # a resumed run's last start
    finished = next((e for e in reversed(events) if isinstance(e, Finished)), None)
    if started is None or finished is None:
        return LeftOut(path, f"damaged: {METRICS} lacks its {'started' if started is None else 'finished'} event")
    scores: dict[tuple[str, str], Evaluation] = {}
    learned: list[tuple[int, int, float]] = []
    for score in (named_start(e, config) for e in events if isinstance(e, Evaluation)):
        if score.prompt == "learned" and score.test_loss is not None:
            learned.append((score.step, score.n_pairs, score.test_loss))
        if score.n_pairs == started.n_test and (score.prompt != "learned" or score.step == finished.step):
            scores[prompt_key(score)] = score  # the latest on the whole test set
    if ("learned", "") not in scores:
        return LeftOut(
            path,
            f"no evaluation of the learned prompt on all {started.n_test} test pairs at its last step "
            f"({finished.step})",
        )
    order = {name: i for i, name in enumerate(PROMPT_ORDER)}
    ranked = sorted(
        scores.values(), key=lambda s: order.get(s.prompt, len(order))
    )  # stable: wordings stay in run order
    settings = {**result_settings(config), "data_sha256": data_sha256(path)}
    training_loss = [(e.step, e.loss) for e in events if isinstance(e, Step)]
    comparisons, paired_problem = run_comparisons(path, started.n_test)
    return RunResult(
        path,
        path.name,
        config.learning.seed,
        task_name(config),
        config.problem.model,
        settings,
        started.n_test,
        ranked,
        training_loss,
        learned,
        bad,
        config.problem.template,
        comparisons,
        paired_problem,
    )


def find_run_folders(paths: list[Path]) -> tuple[list[Path], list[LeftOut]]:
    """Run folders (those with a config.toml) at or below each path, MAX_DEPTH levels down at most, never
    through a symbolic link: a link met on the way is listed as left out, not followed."""
    found: list[Path] = []
    links: list[LeftOut] = []
    for top in paths:
        if "\x00" in str(top):
            raise UserError(f"{str(top)!r} holds a NUL byte (\\x00), which no file name may hold; remove it")
        if not top.is_dir():
            raise UserError(f"{top} is not a folder; give run folders or folders that hold them (runs/, runs/SWEEP)")
        stack = [(top, 0)]
        while stack:
            folder, depth = stack.pop()
            if os.path.lexists(folder / CONFIG):
                found.append(folder)
                continue  # a run folder holds no other run
            if depth == MAX_DEPTH:
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError:
                continue
            for entry in entries:
                if entry.is_symlink():
                    if entry.is_dir():  # a link to a file (a FIFO, anything) is simply not a folder of runs
                        links.append(LeftOut(Path(entry.path), "a symbolic link; a report never follows one"))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), depth + 1))
    unique = list(dict.fromkeys(os.path.normpath(p) for p in found))
    return [Path(p) for p in unique], links


# ---- aggregation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """One number over the runs of a group: mean, standard deviation (n-1; None for one run), the 95%
    interval of the mean over the seeds (Student t, over_seeds.py; None for one run), one run's own 95%
    bootstrap interval over its test pairs (low, high; one run only), and the mean half-width of the runs'
    own intervals (the test-pair noise of one run; None where a run recorded none)."""

    mean: float
    sd: float | None
    n: int
    low: float | None
    high: float | None
    half_width: float | None
    mean_low: float | None = None
    mean_high: float | None = None

    @staticmethod
    def of(
        values: list[float],
        intervals: list[tuple[float | None, float | None]],
        bounds: tuple[float, float] = (-math.inf, math.inf),
    ) -> Spread:
        sd = statistics.stdev(values) if len(values) > 1 else None
        whole = [(lo, hi) for lo, hi in intervals if lo is not None and hi is not None]
        half = statistics.fmean((hi - lo) / 2 for lo, hi in whole) if whole and len(whole) == len(intervals) else None
        low, high = whole[0] if len(values) == 1 and whole else (None, None)
        of_mean = mean_interval_over_seeds(values, bounds=bounds)
        return Spread(
            statistics.fmean(values),
            sd,
            len(values),
            low,
            high,
            half,
            of_mean and of_mean.low,
            of_mean and of_mean.high,
        )

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% CI the table shows: of the mean over seeds, or for one seed that run's bootstrap."""
        if self.mean_low is not None and self.mean_high is not None:
            return self.mean_low, self.mean_high
        return (self.low, self.high) if self.low is not None and self.high is not None else None


@dataclass(frozen=True)
class PromptRow:
    prompt: str
    text: str
    seeds: list[int]
    loss: Spread | None  # None: the prompt has no LM loss (majority)
    accuracy: Spread

    @property
    def label(self) -> str:
        if self.prompt == "k-shot" and self.text:
            return self.text  # "3-shot"
        if self.prompt == "untrained" and self.text:
            return self.text  # "untrained (random)", "start: run runs/first"
        return f"{self.prompt} {self.text!r}" if self.text else self.prompt


@dataclass(frozen=True)
class Delta:
    """The learned prompt's mean minus the best other prompt's mean (lowest loss, highest accuracy)."""

    loss: float | None
    loss_baseline: str
    accuracy: float | None
    accuracy_baseline: str


@dataclass(frozen=True)
class Difference:
    """Learned minus a baseline, over the runs that have per-pair results: the mean of the runs'
    differences, their sd, and the 95% interval: for one run its paired bootstrap, for several the t
    interval of the mean over seeds."""

    mean: float
    sd: float | None
    low: float
    high: float

    @staticmethod
    def of(
        values: list[float], one_run: tuple[float, float], bounds: tuple[float, float] = (-math.inf, math.inf)
    ) -> Difference:
        of_mean = mean_interval_over_seeds(values, bounds=bounds)
        low, high = (of_mean.low, of_mean.high) if of_mean else one_run if len(values) == 1 else (math.nan, math.nan)
        return Difference(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, low, high)


@dataclass(frozen=True)
class PairedRow:
    """The learned prompt against one baseline, pair by pair in each run (paired.py), summarised over seeds."""

    prompt: str
    text: str
    label: str
    seeds: list[int]
    n_pairs: list[int]  # test pairs compared in each run
    accuracy: Difference
    loss: Difference | None  # None: the baseline has no loss (majority)
    mcnemar_p: list[float]  # each run's exact McNemar p-value, in the order of `seeds`
    learned_only_right: int  # summed over the runs
    baseline_only_right: int


@dataclass(frozen=True)
class Group:
    """Runs that differ only by seed."""

    task: str
    model: str
    settings: dict[str, Any]
    runs: list[RunResult]
    rows: list[PromptRow]
    delta: Delta
    paired: list[PairedRow] = field(default_factory=list)

    @property
    def template(self) -> str:
        return self.settings.get("template") or self.runs[0].template

    @property
    def n_test(self) -> list[int]:
        """The test pairs of each run, distinct values in order (runs of one data share one count)."""
        return sorted({run.n_test for run in self.runs})

    def setting(self, name: str) -> Any:
        return self.model if name == "model" else self.settings.get(name)


def shown_value(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(map(repr, value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name  # a local model or data folder: its name says enough in a table
    return "–" if value is None else str(value)


def sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order (lr 0.003 before 0.01 before 0.1), anything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return 0, value
    return 1, json.dumps(value, default=str)


def group_key(run: RunResult) -> str:
    return json.dumps([run.task, run.model, run.settings], sort_keys=True, default=str)


def prompt_rows(runs: list[RunResult]) -> list[PromptRow]:
    keys = list(dict.fromkeys(prompt_key(s) for run in runs for s in run.scores))
    order = {name: i for i, name in enumerate(PROMPT_ORDER)}
    keys.sort(key=lambda k: order.get(k[0], len(order)))
    rows = []
    for key in keys:
        have = [(run, run.score(key)) for run in runs if run.score(key) is not None]
        losses = [(run, s) for run, s in have if s.test_loss is not None]
        loss = (
            Spread.of([s.test_loss for _, s in losses], [(s.loss_low, s.loss_high) for _, s in losses], (0.0, math.inf))
            if len(losses) == len(have)
            else None
        )  # a loss for some runs only would not be a mean over the seeds
        accuracy = Spread.of(
            [s.accuracy for _, s in have], [(s.accuracy_low, s.accuracy_high) for _, s in have], (0.0, 1.0)
        )
        rows.append(PromptRow(key[0], key[1], [run.seed for run, _ in have], loss, accuracy))
    return rows


def paired_rows(runs: list[RunResult], rows: list[PromptRow]) -> list[PairedRow]:
    """Each baseline's paired comparisons over the runs that have them, in the order of the table's rows."""
    out = []
    for row in rows:
        key = (row.prompt, row.text)
        have = [(run, run.comparisons[key]) for run in runs if key in run.comparisons]
        if not have or key == ("learned", ""):
            continue
        comparisons = [c for _, c in have]
        first = comparisons[0]
        accuracy = Difference.of(
            [c.accuracy_difference for c in comparisons],
            (first.accuracy_interval.low, first.accuracy_interval.high),
            (-1.0, 1.0),
        )
        loss = None
        if all(c.loss_difference is not None for c in comparisons):
            loss = Difference.of(
                [c.loss_difference for c in comparisons], (first.loss_interval.low, first.loss_interval.high)
            )
        out.append(
            PairedRow(
                row.prompt,
                row.text,
                row.label,
                [run.seed for run, _ in have],
                [c.n_pairs for c in comparisons],
                accuracy,
                loss,
                [c.mcnemar_p for c in comparisons],
                sum(c.learned_only_right for c in comparisons),
                sum(c.baseline_only_right for c in comparisons),
            )
        )
    return out


def delta_of(rows: list[PromptRow]) -> Delta:
    learned = next(r for r in rows if (r.prompt, r.text) == ("learned", ""))
    others = [r for r in rows if r is not learned]
    by_loss = min((r for r in others if r.loss is not None), key=lambda r: r.loss.mean, default=None)
    by_accuracy = max(others, key=lambda r: r.accuracy.mean, default=None)
    loss = learned.loss.mean - by_loss.loss.mean if by_loss and learned.loss else None
    accuracy = learned.accuracy.mean - by_accuracy.accuracy.mean if by_accuracy else None
    return Delta(loss, by_loss.label if by_loss else "", accuracy, by_accuracy.label if by_accuracy else "")


@dataclass
class Results:
    runs: list[RunResult]
    left_out: list[LeftOut]
    groups: list[Group] = field(default_factory=list)
    varying: list[str] = field(default_factory=list)  # settings whose values differ between groups

    @staticmethod
    def of(runs: list[RunResult], left_out: list[LeftOut]) -> Results:
        by_key: dict[str, list[RunResult]] = {}
        for run in runs:
            by_key.setdefault(group_key(run), []).append(run)
        groups = []
        for members in by_key.values():
            members.sort(key=lambda r: (r.seed, str(r.path)))
            rows = prompt_rows(members)
            first = members[0]
            groups.append(
                Group(
                    first.task, first.model, first.settings, members, rows, delta_of(rows), paired_rows(members, rows)
                )
            )

        def differ(among: list[Group], name: str) -> bool:
            return len({json.dumps(g.setting(name), default=str) for g in among}) > 1

        varying = []
        for name in ["model", *(groups[0].settings if groups else ())]:
            if (
                name in TASK_SETTINGS
            ):  # differ with the task (its column says which): shown where one task's groups differ
                if any(differ([g for g in groups if g.task == task], name) for task in {g.task for g in groups}):
                    varying.append(name)
            elif differ(groups, name):
                varying.append(name)
        groups.sort(key=lambda g: (g.task, [sort_key(g.setting(n)) for n in varying]))
        return Results(runs, left_out, groups, varying)

    # ---- as tables ----------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One plain record per group x prompt: what report.csv holds, and report.json's groups' rows."""
        out = []
        for number, group in enumerate(self.groups, 1):
            for row in group.rows:
                record: dict[str, Any] = {"group": number, "task": group.task, "model": group.model}
                record.update({name: group.setting(name) for name in self.varying if name not in ("model", "template")})
                record.update(
                    {
                        "template": group.template,
                        "n_test": " ".join(map(str, group.n_test)),
                        "prompt": row.prompt,
                        "text": row.text,
                        "n_seeds": len(row.seeds),
                        "seeds": " ".join(map(str, row.seeds)),
                    }
                )
                for metric, spread in (("loss", row.loss), ("accuracy", row.accuracy)):
                    for part in ("mean", "sd", "mean_low", "mean_high", "low", "high", "half_width"):
                        record[f"{metric}_{part}"] = getattr(spread, part) if spread else None
                paired = next((c for c in group.paired if (c.prompt, c.text) == (row.prompt, row.text)), None)
                record["paired_seeds"] = " ".join(map(str, paired.seeds)) if paired else ""
                for metric in ("accuracy", "loss"):  # learned minus this baseline, pair by pair (paired.py)
                    difference = getattr(paired, metric) if paired else None
                    for part in ("mean", "sd", "low", "high"):
                        record[f"learned_minus_{metric}_{part}"] = getattr(difference, part) if difference else None
                record["mcnemar_p"] = " ".join(f"{p:.6g}" for p in paired.mcnemar_p) if paired else ""
                learned = (row.prompt, row.text) == ("learned", "")
                delta = group.delta
                record.update(
                    {
                        "delta_loss_vs_best_baseline": delta.loss if learned else None,
                        "best_baseline_by_loss": delta.loss_baseline if learned else "",
                        "delta_accuracy_vs_best_baseline": delta.accuracy if learned else None,
                        "best_baseline_by_accuracy": delta.accuracy_baseline if learned else "",
                    }
                )
                out.append(record)
        return out

    def csv(self) -> str:
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["group"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: spreadsheet_cell(json.dumps(v) if isinstance(v, list) else ("" if v is None else v))
                    for k, v in row.items()
                }
            )
        return buffer.getvalue()

    def json(self) -> str:
        runs = [
            {
                "path": str(r.path),
                "name": r.name,
                "seed": r.seed,
                "task": r.task,
                "model": r.model,
                "settings": r.settings,
                "n_test": r.n_test,
                "group": next(i for i, g in enumerate(self.groups, 1) if any(r is x for x in g.runs)),
                "scores": [asdict(s) for s in r.scores],
                "skipped_metrics_lines": r.skipped_lines,
                "paired": [asdict(c) for c in r.comparisons.values()],
                "paired_problem": r.paired_problem,
            }
            for r in self.runs
        ]
        groups = [
            {
                "group": i,
                "task": g.task,
                "model": g.model,
                "template": g.template,
                "n_test": g.n_test,
                "settings": g.settings,
                "seeds": [r.seed for r in g.runs],
                "runs": [str(r.path) for r in g.runs],
                "delta": asdict(g.delta),
                "paired": [asdict(p) for p in g.paired],
            }
            for i, g in enumerate(self.groups, 1)
        ]
        document = {
            "legend": LEGEND,
            "varying_settings": self.varying,
            "rows": self.rows(),
            "groups": groups,
            "runs": runs,
            "left_out": [{"path": str(x.path), "why": x.why} for x in self.left_out],
        }
        return json.dumps(plain(document), indent=1, ensure_ascii=False, allow_nan=False, default=str) + "\n"

    def table(self) -> tuple[list[str], list[list[str]]]:
        """The Markdown table's header and cells (the terminal shows the same cells)."""
        header = [
            "task",
            *self.varying,
            "prompt",
            "seeds",
            "test loss",
            "loss 95% CI of mean",
            "accuracy",
            "accuracy 95% CI of mean",
            "Δ loss vs best baseline",
            "Δ accuracy vs best baseline",
        ]
        cells = []
        for group in self.groups:
            for row in group.rows:
                learned = (row.prompt, row.text) == ("learned", "")
                delta = group.delta
                cells.append(
                    [
                        group.task,
                        *(shown_value(group.setting(n)) for n in self.varying),
                        short(row.label),
                        f"{len(row.seeds)} ({', '.join(map(str, row.seeds))})",
                        spread_text(row.loss, "{:.3f}"),
                        interval_text(row.loss, "{:.3f}"),
                        spread_text(row.accuracy, "{:.1%}"),
                        interval_text(row.accuracy, "{:.1%}"),
                        f"{delta.loss:+.3f} vs {short(delta.loss_baseline)}"
                        if learned and delta.loss is not None
                        else "",
                        f"{delta.accuracy * 100:+.1f} pts vs {short(delta.accuracy_baseline)}"
                        if learned and delta.accuracy is not None
                        else "",
                    ]
                )
        return header, cells

    def paired_table(self) -> tuple[list[str], list[list[str]]]:
        """The paired comparisons' header and cells: learned minus each baseline, per group."""
        header = [
            "task",
            *self.varying,
            "baseline",
            "seeds",
            "Δ accuracy (points) [95% CI]",
            "Δ test loss [95% CI]",
            "right: learned only / baseline only",
            "McNemar p (per seed)",
        ]
        cells = []
        for group in self.groups:
            for c in group.paired:
                loss = c.loss
                cells.append(
                    [
                        group.task,
                        *(shown_value(group.setting(n)) for n in self.varying),
                        short(c.label),
                        f"{len(c.seeds)} ({', '.join(map(str, c.seeds))})",
                        f"{100 * c.accuracy.mean:+.1f} [{100 * c.accuracy.low:+.1f}, {100 * c.accuracy.high:+.1f}]",
                        "–" if loss is None else f"{loss.mean:+.3f} [{loss.low:+.3f}, {loss.high:+.3f}]",
                        f"{c.learned_only_right} / {c.baseline_only_right}",
                        ", ".join(f"{p:.2g}" for p in c.mcnemar_p),
                    ]
                )
        return header, cells

    def group_lines(self, shown=str) -> list[str]:
        """What each group is: model, template, test pairs per run, seeds; and why a run has no paired comparison.
        `shown` writes each value that came from a run folder (md_cell for Markdown: never HTML)."""
        lines = []
        for number, group in enumerate(self.groups, 1):
            setting = ", ".join(f"{n}={shown_value(group.setting(n))}" for n in self.varying if n != "model")
            lines.append(
                f"- group {number}: {shown(group.task)}{f' ({shown(setting)})' if setting else ''}: model "
                f"{shown(group.model)}, template {shown(repr(group.template))}, "
                f"{'/'.join(map(str, group.n_test))} test pairs per run, "
                f"seeds {', '.join(str(r.seed) for r in group.runs)}"
            )
            lines += [
                f"  - seed {r.seed} ({shown(r.name)}): no paired comparison: {shown(r.paired_problem)}"
                for r in group.runs
                if r.paired_problem
            ]
        return lines

    def markdown(self) -> str:
        header, cells = self.table()
        lines = [
            "# promptgrad report",
            "",
            f"{len(self.runs)} finished run(s) in {len(self.groups)} group(s) of runs that differ only by seed"
            + (f"; settings that differ between groups: {', '.join(self.varying)}" if self.varying else "")
            + (f"; {len(self.left_out)} run folder(s) left out (below)" if self.left_out else "")
            + ".",
            "",
            "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(header),
        ]
        lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in cells]
        lines += ["", *(f"- {item}" for item in LEGEND)]
        lines += ["", "## Groups", "", *self.group_lines(md_cell)]
        paired_header, paired_cells = self.paired_table()
        if paired_cells:
            lines += [
                "",
                "## Paired comparisons: learned minus each baseline on the same test pairs",
                "",
                "| " + " | ".join(paired_header) + " |",
                "|" + " --- |" * len(paired_header),
            ]
            lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in paired_cells]
            lines += ["", *(f"- {item}" for item in PAIRED_LEGEND)]
        if self.left_out:
            lines += ["", "## Left out", "", *(f"- {md_code(str(x.path))}: {md_cell(x.why)}" for x in self.left_out)]
        return "\n".join(lines) + "\n"


LEGEND = [
    "test loss: mean cross-entropy per target token on the run's test pairs (never trained on); mean over the "
    "group's seeds ± their standard deviation (n-1), or the one run's value; – for a prompt with no LM loss (majority).",
    "accuracy: greedy exact match of the whole target; mean ± standard deviation over the seeds, as for the loss.",
    "95% CI of mean: for several seeds, the Student t interval of the mean over the seeds (mean ± t(0.975, n-1) "
    "sd/√n; cut to 0-100% for an accuracy, at 0 for a loss), where the mean of many seeds would lie; each seed draws its own split, start and batches, so it holds "
    "that noise and the test pairs' both. For one seed, that run's 95% bootstrap interval over its test pairs "
    "(the test-pair noise only); – where the run recorded none (runs made before intervals were added). The mean "
    "half-width of the runs' own bootstrap intervals is in report.csv/json (loss_half_width, accuracy_half_width).",
    "seeds: how many runs of the group scored this prompt, and their seeds. A group is the runs that differ only by "
    "seed (same task, data, model, steps and every other setting that defines a run).",
    "Δ vs best baseline (on the learned row): the learned prompt's mean minus the best other prompt's mean "
    "(lowest test loss; highest accuracy, in percentage points); a negative Δ loss and a positive Δ accuracy "
    "mean the learned prompt is better.",
]


PAIRED_LEGEND = [
    "Each run's pair_scores.jsonl holds every test pair's result under every prompt; on the same pairs, the learned "
    "prompt's accuracy minus the baseline's (in points) and test loss minus the baseline's (a negative Δ loss and "
    "a positive Δ accuracy favour the learned prompt).",
    "95% CI: for one seed, a paired bootstrap over the run's test pairs (each resample draws the same pairs for both "
    "prompts); for several seeds, the Student t interval of the mean of the runs' differences (accuracy's cut to "
    "±100 points).",
    "right: learned only / baseline only: the pairs on which the two disagree, summed over the seeds; McNemar p: "
    "each run's exact two-sided McNemar test on those pairs (binomial, half each way if neither is more accurate).",
]


def plain(value: Any) -> Any:
    """`value` as strict JSON holds it: a diverged run's NaN or inf loss becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def spread_text(spread: Spread | None, form: str) -> str:
    if spread is None:
        return "–"
    return form.format(spread.mean) + (f" ± {form.format(spread.sd)}" if spread.sd is not None else "")


def interval_text(spread: Spread | None, form: str) -> str:
    """The 95% CI of the mean over seeds, or one seed's own bootstrap interval (Spread.interval)."""
    if spread is None or spread.interval is None:
        return "–"
    low, high = spread.interval
    return f"[{form.format(low)}, {form.format(high)}]"


def md_cell(text: str) -> str:
    """A cell's text that cannot end the cell or the row early, nor become HTML (a task or prompt named
    `<script>` is shown as text by any Markdown viewer, never run)."""
    text = html.escape(text, quote=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\n", " ").replace("\r", " ")


def md_code(text: str) -> str:
    """A path as a Markdown code span (shown as typed, never HTML), or escaped text where a backtick or a
    line break in it would end the span or the list item early."""
    return f"`{text}`" if not any(c in text for c in "`\n\r") else md_cell(text)


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (OWASP's CSV injection rule): text
    that starts with = + - @, a tab or a carriage return gets a leading single quote. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


# ---- collecting ------------------------------------------------------------------------------------


def collect(paths: list[str | Path], progress: Progress | None = None) -> Results:
    """The results of every run folder at or below `paths`; `progress(what, done, total)` is called after
    each folder (a KeyboardInterrupt there, or raised by it, stops the collection)."""
    folders, left_out = find_run_folders([Path(p) for p in paths])
    runs = []
    for done, folder in enumerate(folders, 1):
        result = read_run(folder)
        (left_out if isinstance(result, LeftOut) else runs).append(result)
        if progress:
            progress("reading run folders", done, len(folders))
    if not runs:
        states = (
            f" ({len(folders)} run folder(s), none finished: {'; '.join(f'{x.path.name}: {x.why}' for x in left_out[:3])}"
            f"{' ...' if len(left_out) > 3 else ''})"
            if folders
            else " (no run folder there: none holds a config.toml)"
        )
        raise UserError(
            f"nothing to report under {', '.join(map(str, paths))}{states}; give folders that hold finished runs"
        )
    return Results.of(runs, left_out)
