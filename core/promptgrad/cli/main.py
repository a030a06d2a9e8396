"""The headless command line: `promptgrad train | eval | predict | nearest`.

It consumes the same event stream as the TUI (promptgrad.train.loop.train) and adds only presentation:
a progress bar on a terminal, plain lines under nohup. Bad input is one line on stderr and exit 2.

Each subcommand imports what it needs inside its function: importing the training loop brings torch and
transformers (6.1 s measured on a 2-core EPYC), against 0.3 s for `promptgrad --help`, a one-line error
or `promptgrad tasks`. The import graph stays without a cycle either way (tests/test_architecture.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
from pathlib import Path

from rich.console import Console

from promptgrad.config import TrainConfig, default_of, describe
from promptgrad.errors import UserError, environment_problem
from promptgrad.quiet import quiet_libraries


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage over several lines; we say what was wrong
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_settings(parser: argparse.ArgumentParser, config_class: type[TrainConfig] = TrainConfig) -> None:
    """One flag per declared setting, in its group, with the declaration's help, choices and default."""
    for group, kind in config_class.group_types().items():
        arguments = parser.add_argument_group(f"{kind.__doc__.strip()} [{group}]")
        for f in dataclasses.fields(kind):
            if isinstance(default_of(f), list):  # several texts: the flag is repeated
                arguments.add_argument(
                    "--" + f.name.replace("_", "-"),
                    dest=f.name,
                    default=None,
                    action="append",
                    metavar="TEXT",
                    help=describe(f).replace("%", "%%"),
                )
                continue
            choices = f.metadata["choices"] or (("true", "false") if isinstance(f.default, bool) else ())
            metavar = "{" + ",".join(choices) + "}" if choices else type(f.default).__name__.upper()
            arguments.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                default=None,
                metavar=metavar,
                help=describe(f).replace("%", "%%"),
            )


def build_parser(config_class: type[TrainConfig] = TrainConfig) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="promptgrad", description="Backpropagate into a prompt of a frozen causal LM.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser(
        "train",
        help="learn a prompt; settings from --config TOML, then --key value overrides",
        description="Learn a prompt. Settings come from the defaults, or --config FILE, or the "
        "run folder on --resume; each flag below overrides one.",
    )
    train.add_argument(
        "--config",
        type=Path,
        help="TOML file of settings (the names below, with underscores; flat or "
        "one table per group, as a run folder's config.toml)",
    )
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this folder from its checkpoint")
    train.add_argument(
        "--extend-lr",
        type=float,
        metavar="LR",
        help="with --resume and more --steps: the added steps get a new peak learning rate (a short "
        "warm-up to it, then the run's schedule to the new last step); a finished cosine run, whose "
        "learning rate has decayed to 0, needs it (or a branch: a new run with --init run:RUN)",
    )
    add_settings(train, config_class)

    ev = commands.add_parser(
        "eval", help="test loss and accuracy (95%% intervals) of a run's prompt beside the baselines"
    )
    ev.add_argument(
        "run", type=Path, nargs="+", help="one run folder, or several on the same data (soft and hard, say)"
    )
    ev.add_argument(
        "--text",
        action="append",
        metavar="WORDS",
        help="also score this wording in the prompt's place, e.g. ' words with opposite meanings:' (repeatable)",
    )
    ev.add_argument(
        "--data",
        metavar="FILE",
        help="score on every pair of this file (a .jsonl/.csv/.parquet file, a "
        "save_to_disk folder or a dataset name, with the run's columns) "
        "instead of the run's own test pairs",
    )
    ev.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="compute in this precision instead of the one the run recorded (fp32 evaluates a bf16 run "
        "on a machine that only emulates bf16; its scores then differ slightly from the run's own)",
    )
    ev.add_argument("--json", type=Path, metavar="FILE", help="also write the table to FILE as JSON (values unrounded)")
    ev.add_argument("--csv", type=Path, metavar="FILE", help="also write the table to FILE as CSV (values unrounded)")
    ev.add_argument(
        "--include-training-pairs",
        action="store_true",
        help="with --data: score the file's pairs the run trained on (or chose its prompt by) too; by "
        "default they are left out, and eval says how many",
    )
    ev.add_argument(
        "--pairs",
        type=Path,
        metavar="FILE",
        help="also write each scored pair's answer, rightness and loss "
        "under every row's prompt to FILE, one JSON object a line "
        "(the format of a run's pair_scores.jsonl)",
    )
    predict = commands.add_parser("predict", help="greedy predictions of a run's prompt for some inputs")
    predict.add_argument("run", type=Path)
    predict.add_argument("words", nargs="+")
    explain = commands.add_parser(
        "explain", help="the model's own reading of each prompt vector, and how far to trust it"
    )
    explain.add_argument("run", type=Path)
    explain.add_argument("--samples", type=int, default=200, help="real word tokens read back to check the method")
    export = commands.add_parser(
        "export", help="write a run's prompt for use elsewhere (peft: a PEFT prompt-tuning adapter)"
    )
    export.add_argument("run", type=Path)
    export.add_argument(
        "--format",
        choices=("peft",),
        default="peft",
        help="peft: an adapter for PeftModel.from_pretrained (a template that starts with {prompt}, "
        "a model whose tokenizer adds no BOS token)",
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder for the adapter"
    )
    tasks = commands.add_parser(
        "tasks", help="the bundled tasks and your task files: pairs, examples, template, hand-written prompts, source"
    )
    tasks.add_argument(
        "name", nargs="?", help="one task (a bundled name or a .toml task file), shown with more of its pairs"
    )
    tasks.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="also list the task files (*.toml) in this folder (default: ./tasks, where there is one; docs/tasks.md)",
    )
    nearest = commands.add_parser("nearest", help="the vocabulary tokens nearest to each prompt vector")
    nearest.add_argument("run", type=Path)
    nearest.add_argument("-k", type=int, default=5, help="how many tokens per position (at least 1)")
    report = commands.add_parser(
        "report",
        help="one table (Markdown, CSV, JSON) and plots of finished runs: means, spreads "
        "and intervals over seeds, learned prompt vs baselines",
        description="Tabulate and plot the final results of finished runs, grouping runs that "
        "differ only by seed; unfinished, failed and damaged runs are listed and left out.",
    )
    report.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="run folders, or folders holding them (runs/, a sweep folder), searched a few levels down",
    )
    report.add_argument(
        "--out",
        type=Path,
        default=Path("report"),
        metavar="DIR",
        help="where to write report.md, report.csv, report.json and plots/*.svg (default: ./report)",
    )
    sweep = commands.add_parser(
        "sweep",
        help="many runs: one per point of a grid of settings (tasks x seeds x ...), "
        "resumable, on this machine's GPUs or CPU, or as Slurm jobs",
        description="Run promptgrad train once per point of a grid, each an ordinary run folder in "
        "runs_dir/NAME; the same command again (or --resume) goes on: finished runs "
        "are kept, runs with a checkpoint resumed, the others started.",
    )
    sweep.add_argument("sweep_name", metavar="NAME", help="the sweep's folder under runs_dir")
    sweep.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2,...",
        help="a setting and its values, split at commas; \\, is a comma inside a value "
        "(repeatable; each run takes one value of each)",
    )
    sweep.add_argument(
        "--resume", action="store_true", help="go on with the sweep as runs_dir/NAME/sweep.toml records it"
    )
    sweep.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="runs at once: on a CPU N (default 1, the cores split between "
        "them), on GPUs at most one per GPU (default all GPUs)",
    )
    sweep.add_argument(
        "--engine",
        choices=("local", "submitit"),
        default="local",
        help="local: this machine's pool; submitit: a job per run (Slurm where srun is found, else local "
        "processes); needs pip install 'promptgrad[slurm]'",
    )
    sweep.add_argument(
        "--engine-folder", type=Path, metavar="DIR", help="submitit's job files (default runs_dir/NAME/submitit)"
    )
    sweep.add_argument(
        "--engine-cluster",
        choices=("auto", "slurm", "local"),
        default="auto",
        help="where submitit runs the jobs (auto: Slurm if srun is on the PATH, else local processes)",
    )
    sweep.add_argument(
        "--engine-option",
        action="append",
        metavar="KEY=VALUE",
        help="a submitit job parameter, e.g. slurm_partition=gpu, gpus_per_node=1, timeout_min=240 (repeatable)",
    )
    add_settings(sweep, config_class)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every subcommand fails the same way: bad input and what the machine refuses are one line (exit
    2), a peer of a distributed run gone is one line (exit 1, from the run's own report), a second
    ctrl+c is one line (exit 130), and a bug is one line with its traceback kept in a file (exit 1)."""
    args = build_parser().parse_args(argv)
    try:
        return {
            "train": run_train,
            "eval": run_eval,
            "predict": run_predict,
            "nearest": run_nearest,
            "explain": run_explain,
            "tasks": run_tasks,
            "export": run_export,
            "report": run_report,
            "sweep": run_sweep,
        }[args.command](args)
    except UserError as e:
        print(f"promptgrad: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "promptgrad: aborted (ctrl+c twice); files written so far are whole, the last checkpoint included",
            file=sys.stderr,
        )
        return 130
    except Exception as e:
        problem = environment_problem(e)
        if problem is not None:
            print(f"promptgrad: error: {problem}", file=sys.stderr)
            return 2
        import tempfile
        import traceback

        with tempfile.NamedTemporaryFile("w", prefix="promptgrad-traceback-", suffix=".txt", delete=False) as f:
            f.write(traceback.format_exc())
        print(
            f"promptgrad: error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}; traceback in {f.name} "
            f"(this is a bug in promptgrad; please report it with the traceback)",
            file=sys.stderr,
        )
        return 1


# ---- train ------------------------------------------------------------------------------------


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: a run folder's (on --resume) or a config file's or the defaults, then the flags."""
    overrides = {name: getattr(args, name) for name in TrainConfig.settings() if getattr(args, name, None) is not None}
    if args.resume:
        from promptgrad.store.run_folder import RunFolder

        base = RunFolder.open(args.resume).config()
        if args.config:
            raise UserError(
                "give either --resume RUN (its settings come from the run folder) or --config FILE, not both"
            )
    else:
        base = TrainConfig.load(args.config) if args.config else TrainConfig()
    if "steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = 0  # --steps N means N steps, even where the base counted epochs
    return base.replace(**overrides)


def run_train(args: argparse.Namespace) -> int:
    config = resolve_config(args).resolved()  # the task's settings filled in: refused here, before any folder is made
    quiet_libraries()
    from promptgrad.cli.progress import TrainingReport
    from promptgrad.signals import detach_from_terminal, stop_on_signals
    from promptgrad.train.loop import train

    stop = threading.Event()

    def on_signal(name: str) -> None:
        print(f"\n{name}: stopping after this step and saving a checkpoint (ctrl+c again aborts)...", file=sys.stderr)

    # under accelerate launch / torchrun only rank 0 reports (and writes the run folder)
    console = Console(quiet=int(os.environ.get("RANK", "0")) != 0)
    with stop_on_signals(stop, on_signal), TrainingReport(console) as report:
        report.begin(config.problem)
        for event in train(config, stop, resume=args.resume, extend_lr=args.extend_lr):
            try:
                report.show(event)
            except OSError:  # the terminal went away (EIO, EPIPE) before its SIGHUP: carry on without it
                detach_from_terminal()
        return report.exit_status


# ---- eval, predict, nearest -------------------------------------------------------------------


def open_run(path: Path, precision: str | None = None, test_data: str | None = None):
    """A run's session and prompt (session.open_run), with the libraries' chatter quieted first."""
    from promptgrad.train.session import open_run as open_run_session

    quiet_libraries()
    return open_run_session(path, precision, test_data)


SAME_TEST_PAIRS = ("model", "data", "x_column", "y_column", "test_fraction", "seed")  # settings that fix the test split


MAX_FRONT_ROWS = 8  # Pareto-front prompts of a hard run scored by eval (each one costs a pass over the test set)


@dataclasses.dataclass(frozen=True)
class HardPrompt:
    """A hard run's prompt as its prompt.safetensors metadata records it (learners/search/hard_learner.py writes it)."""

    ids: list[int]
    text: str
    method: str
    fluency: float
    front: list  # FrontPoint


def hard_prompt_of(metadata: dict[str, str], path: Path, vocab_size: int) -> HardPrompt | None:
    """The hard prompt in a run's metadata, checked (None for a soft run): damaged metadata is one line."""
    import json
    import math

    from promptgrad.events import FrontPoint, typed

    if "hard_prompt_ids" not in metadata:
        return None
    try:
        ids = typed(list[int], json.loads(metadata["hard_prompt_ids"]), "hard_prompt_ids")
        text = typed(str, metadata["hard_prompt_text"], "hard_prompt_text")
        fluency = float(metadata.get("fluency") or 0)
        front = typed(list[FrontPoint], json.loads(metadata.get("pareto_front") or "[]"), "pareto_front")
        if not math.isfinite(fluency) or fluency < 0:
            raise ValueError("fluency is not a weight")
        for token_ids in [ids, *(p.ids for p in front)]:
            if not token_ids or not all(0 <= i < vocab_size for i in token_ids):
                raise ValueError(f"token ids {token_ids[:8]} are not ids of the model's {vocab_size} tokens")
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        raise UserError(
            f"{path}/prompt.safetensors has damaged hard-prompt metadata ({str(e)[:100]}); "
            f"it was changed after promptgrad wrote it"
        ) from None
    return HardPrompt(ids, text, metadata.get("method", "?"), fluency, front)


@dataclasses.dataclass(frozen=True)
class EvalRow:
    """One line of `promptgrad eval`'s table: as printed, and as --json and --csv write it (unrounded)."""

    prompt: str
    test_loss: float | None  # None: the majority answer, which is not a language model
    loss_low: float | None
    loss_high: float | None
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    nats_per_token: float | None
    n_pairs: int
    # a baseline row: the paired comparison (paired.py) of the first run's learned prompt against it; None elsewhere
    learned_minus_accuracy: float | None = None
    learned_minus_accuracy_low: float | None = None
    learned_minus_accuracy_high: float | None = None
    learned_minus_loss: float | None = None
    learned_minus_loss_low: float | None = None
    learned_minus_loss_high: float | None = None
    mcnemar_p: float | None = None

    @staticmethod
    def of(name: str, score, nats: float | None, comparisons: list | None = None) -> EvalRow:
        """From a PromptScore (evaluation.py) or a MajorityScore (baselines.py), which has no loss; with the
        first paired comparison (learned, PairedComparison) whose baseline is this row, if any."""
        loss = getattr(score, "loss_interval", None)
        row = EvalRow(
            name,
            getattr(score, "test_loss", None),
            loss and loss.low,
            loss and loss.high,
            score.accuracy,
            score.accuracy_interval.low,
            score.accuracy_interval.high,
            nats,
            score.n_pairs,
        )
        c = next((c for _, c in comparisons or [] if c.baseline == name), None)
        if c is None:
            return row
        loss = c.loss_interval
        return dataclasses.replace(
            row,
            learned_minus_accuracy=c.accuracy_difference,
            learned_minus_accuracy_low=c.accuracy_interval.low,
            learned_minus_accuracy_high=c.accuracy_interval.high,
            learned_minus_loss=c.loss_difference,
            learned_minus_loss_low=loss and loss.low,
            learned_minus_loss_high=loss and loss.high,
            mcnemar_p=c.mcnemar_p,
        )

    def cells(self) -> tuple[str, str, str]:
        """Test loss, accuracy and nats/token as the terminal shows them."""
        from promptgrad.readout.intervals import accuracy_text, interval_of, loss_text

        return (
            loss_text(self.test_loss, interval_of(self.loss_low, self.loss_high), places=4),
            accuracy_text(self.accuracy, interval_of(self.accuracy_low, self.accuracy_high)),
            "–" if self.nats_per_token is None else f"{self.nats_per_token:.2f}",
        )


def paired_comparisons(learned: list[tuple], baselines: list[tuple], test: list) -> list[tuple]:
    """(learned row's name, PairedComparison) of each learned prompt against each baseline row, from the
    per-pair results the scorer kept (PromptScore.pairs; the majority answer's rightness per test pair,
    MajorityScore.right, with no loss); rows without them are not compared."""
    from promptgrad.readout.paired import PairOutcome, compare

    def per_pair(score) -> tuple:
        if getattr(score, "pairs", ()):
            return score.pairs
        right = getattr(score, "right", ())
        return tuple(
            PairOutcome("majority", score.answer, p.x, p.y, score.answer, r, None, 0) for p, r in zip(test, right)
        )

    return [
        (name, compare(score.pairs, per_pair(other), other_name))
        for name, score, _ in learned
        if score.pairs
        for other_name, other, _ in baselines
        if per_pair(other)
    ]


def comparison_table(comparisons: list[tuple], n_pairs: int):
    """The paired comparisons as the terminal shows them."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(
            f"learned minus each baseline on the same {n_pairs} pairs (paired; paired.py): "
            f"[95% paired bootstrap], McNemar's exact test on the pairs where they disagree"
        )
    )
    for column in (
        "learned",
        "baseline",
        "Δ accuracy (points)",
        "Δ test loss",
        "right: learned only / baseline only",
        "McNemar p",
    ):
        table.add_column(column)
    for name, c in comparisons:
        accuracy = (
            f"{100 * c.accuracy_difference:+.1f} [{100 * c.accuracy_interval.low:+.1f}, "
            f"{100 * c.accuracy_interval.high:+.1f}]"
        )
        loss = (
            "–"
            if c.loss_difference is None
            else f"{c.loss_difference:+.4f} [{c.loss_interval.low:+.3f}, {c.loss_interval.high:+.3f}]"
        )
        table.add_row(
            Text(name.strip()),
            Text(c.baseline),
            accuracy,
            loss,
            f"{c.learned_only_right} / {c.baseline_only_right}",
            f"{c.mcnemar_p:.3g}",
        )
    return table


def write_eval_table(
    path: Path, title: str, rows: list[EvalRow], as_csv: bool, comparisons: list | None = None
) -> None:
    """The table as JSON ({"title", "rows": [...], "paired": [...]}) or CSV (a header, then a line a row; no
    value: empty; the paired comparison against the first learned prompt in each baseline's row)."""
    import csv
    import io
    import json

    from promptgrad.files import atomic_write

    records = [dataclasses.asdict(row) for row in rows]
    if as_csv:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=[f.name for f in dataclasses.fields(EvalRow)], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        data = text.getvalue()
    else:
        paired = [{"learned": name, **dataclasses.asdict(c)} for name, c in comparisons or []]
        data = json.dumps({"title": title, "rows": records, "paired": paired}, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path.expanduser(), data.encode("utf-8"))


def check_output_folder(path: Path | None, flag: str) -> None:
    """A file that cannot be written is said before minutes of scoring, not after them; and an output
    never lands in a run folder, its own or another's (--csv RUN/metrics.jsonl would erase the run's
    history): a run folder holds only the files its run writes."""
    if path is None:
        return
    path = path.expanduser()
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: there is no folder {path.parent}; give a file in an existing folder")
    if os.path.isdir(path):
        raise UserError(
            f"{flag} {path} is a folder; give the name of a file to write (say {flag} {path / ('eval' + path.suffix)})"
        )
    if (run := run_folder_around(path)) is not None:
        raise UserError(
            f"{flag} {path} is inside run folder {run}, which holds only its run's own files; write it "
            f"elsewhere (say {flag} {path.name})"
        )


def run_folder_around(path: Path) -> Path | None:
    """The run folder that holds `path` (at any depth, through a linked folder too), or None."""
    from promptgrad.store.run_facts import FACTS
    from promptgrad.store.run_folder import CONFIG, LOCK, METRICS

    def is_run(folder: Path) -> bool:  # a config.toml alone may be the user's own (--config FILE)
        return os.path.lexists(folder / CONFIG) and any(os.path.lexists(folder / n) for n in (METRICS, FACTS, LOCK))

    for parent in dict.fromkeys((path.parent.absolute(), Path(os.path.realpath(path.parent)))):
        for folder in (parent, *parent.parents):
            if is_run(folder):
                return folder
    return None


def run_eval(args: argparse.Namespace) -> int:
    """Test loss and accuracy with their 95% bootstrap intervals, on the same test pairs, of each run's
    prompt (soft vectors, or the tokens of a hard prompt when its metadata has `hard_prompt_ids`, with the
    rest of its Pareto front) beside the hand-written one and any `--text` wordings, the k-shot
    demonstrations and the majority answer (both drawn from the run's training pairs, so not with --data);
    and each text prompt's own fluency in nats/token. `args.run` is one run folder or a list of them (say
    a soft and a hard run of the same model and data). --json and --csv also write the table."""
    from rich.table import Table
    from rich.text import Text

    from promptgrad.learners.search.fluency import text_nats_per_token
    from promptgrad.model.template import Template, TemplateEncoder
    from promptgrad.readout.answer_rule import AnswerRule
    from promptgrad.readout.baselines import no_majority_reason, score_majority
    from promptgrad.readout.evaluation import score_prompt
    from promptgrad.store.run_facts import RunFacts
    from promptgrad.store.run_folder import RunFolder

    paths = args.run if isinstance(args.run, list) else [args.run]
    test_data = getattr(args, "data", None)
    json_file, csv_file = getattr(args, "json", None), getattr(args, "csv", None)
    pairs_file = getattr(args, "pairs", None)
    check_output_folder(json_file, "--json")
    check_output_folder(csv_file, "--csv")
    check_output_folder(pairs_file, "--pairs")
    if json_file and csv_file and os.path.abspath(json_file.expanduser()) == os.path.abspath(csv_file.expanduser()):
        raise UserError(f"--json and --csv both name {json_file}; the CSV would replace the JSON: give two files")
    session, _ = open_run(paths[0], getattr(args, "precision", None), test_data)
    frozen, test, batch_size = session.frozen, session.split.test, session.eval_batch_size
    rule = AnswerRule.of(session.config)  # the first run's: runs compared on the same pairs judge them alike only then
    notes = []  # one line each, printed under the table: what was scored and what was not, and why
    if test_data:
        from promptgrad.train.session import held_out_of

        test, said = held_out_of(test, paths, getattr(args, "include_training_pairs", False))
        notes.append(said)

    def scored_text(name: str, text: str, field: str | None = None):
        vectors, encoder = session.text_prompt(text, field)
        return (
            name,
            score_prompt(frozen, encoder, test, vectors, batch_size, rule=rule),
            text_nats_per_token(frozen, encoder, text),
        )

    labels = []  # each row's (prompt, text) in pair_scores.jsonl's terms (the Evaluation events' labels)

    rows, learned = [], []  # learned: each run's own prompt, compared pair by pair with each baseline below
    for path in paths:
        run = RunFolder.open(path)
        config = run.config()
        differs = [k for k in SAME_TEST_PAIRS if config.get(k) != session.config.get(k)]
        if differs:
            raise UserError(
                f"{path} differs from {paths[0]} in {', '.join(differs)}: its test pairs are not the same ones"
            )
        if AnswerRule.of(config) != rule:
            raise UserError(
                f"{path} judges answers {AnswerRule.of(config).describe()}, {paths[0]} {rule.describe()}: evaluate "
                f"them one at a time (their accuracies are not comparable)"
            )
        if not test_data:
            session.facts.data.check_same_as(RunFacts.load(run.path).data, str(run.path))
        prompt, metadata = run.load_prompt()
        where = f"  [{path}]" if len(paths) > 1 else ""
        template = Template.parse(config.problem.template)  # each run in its own template
        hard = hard_prompt_of(metadata, run.path, frozen.embedding.weight.shape[0])
        if hard is not None:  # the tokens themselves, as pasting the text would give them
            lam = f", lambda {hard.fluency:g}" if hard.fluency else ""
            vectors, encoder = session.token_prompt(hard.ids, template)
            nats = text_nats_per_token(frozen, encoder, hard.text)
            rows.append(
                (
                    f"hard ({hard.method}{lam}) {hard.text!r}{where}",
                    score_prompt(frozen, encoder, test, vectors, batch_size, rule=rule),
                    nats,
                )
            )
            learned.append(rows[-1])
            labels.append(("learned", str(path) if len(paths) > 1 else ""))
            for point in [p for p in hard.front if p.ids != hard.ids][:MAX_FRONT_ROWS]:
                vectors, encoder = session.token_prompt(point.ids, template)
                rows.append(
                    (
                        f"  front: {point.text!r} (held-out {point.train_loss:.3f})",
                        score_prompt(frozen, encoder, test, vectors, batch_size, rule=rule),
                        point.nats_per_token,
                    )
                )
                labels.append(("front", point.text))
        else:
            from promptgrad.train.session import check_prompt_fits

            check_prompt_fits(run.path, prompt, config.problem.prompt_len, frozen.hidden_size)
            encoder = TemplateEncoder(template, frozen.tokenizer, prompt.shape[0])
            rows.append(
                (
                    "soft (learned vectors)" + where,
                    score_prompt(frozen, encoder, test, prompt.to(frozen.device), batch_size, rule=rule),
                    None,
                )
            )
            learned.append(rows[-1])
            labels.append(("learned", str(path) if len(paths) > 1 else ""))
    first_baseline = len(rows)
    for text in getattr(args, "text", None) or []:
        rows.append(scored_text(f"text {text!r}", text))
        labels.append(("text", text))
    for text in session.config.problem.baseline_text:
        rows.append(scored_text(f"hand-written {text!r}", text, "baseline_text"))
        labels.append(("hand-written", text))
    if (k_shot := session.k_shot_prompt()) is not None:
        name, vectors, encoder = k_shot
        wording = session.config.problem.baseline_text[0]
        rows.append(
            (
                f"k-shot {name}: demonstrations, then {wording!r}",
                score_prompt(frozen, encoder, test, vectors, batch_size, rule=rule),
                None,
            )
        )
        labels.append(("k-shot", name))
    if session.split.train:
        majority = score_majority(session.split.train, test, rule)
        if majority is not None:
            rows.append((f"majority answer {majority.answer!r}", majority, None))
            labels.append(("majority", majority.answer))
        else:
            notes.append(no_majority_reason(session.split.train))
    comparisons = paired_comparisons(learned, rows[first_baseline:], test)
    table_rows = [EvalRow.of(name, score, nats, comparisons) for name, score, nats in rows]
    where = paths[0] if len(paths) == 1 else f"{len(paths)} runs"
    pairs = f"{len(test)} pairs of {test_data}" if test_data else f"{len(test)} test pairs never trained on"
    title = f"{where}: {pairs}, computed in {session.facts.precision}; accuracy on text, {rule.describe()}; [95% bootstrap intervals]"
    table = Table(title=Text(title))
    for column in ("prompt", "test loss", "accuracy", "nats/token"):
        table.add_column(column)
    for row in table_rows:
        table.add_row(Text(row.prompt), *row.cells())
    console = Console()
    if not console.is_terminal:  # piped or logged: don't fold a prompt's text over lines
        console.width = max(console.width, 140)
    console.print(table)
    if comparisons:
        console.print(comparison_table(comparisons, len(test)))
    if test_data:
        console.print(Text("no k-shot or majority baseline: with --data the run's training pairs are not read"))
    for note in notes:
        console.print(Text(note))
    for path, as_csv in ((json_file, False), (csv_file, True)):
        if path is not None:
            write_eval_table(path, title, table_rows, as_csv, comparisons)
    if pairs_file is not None:
        write_pair_scores(
            pairs_file, test, [(label, text, score) for (label, text), (_, score, _) in zip(labels, rows)]
        )
    return 0


def write_pair_scores(path: Path, test: list, scored: list) -> None:
    """`eval --pairs FILE`: each row's per-pair results, in the format of a run's pair_scores.jsonl
    (run_folder.py); the majority answer's with its answer, no loss and no tokens."""
    from promptgrad.files import atomic_write
    from promptgrad.store.run_folder import pair_scores_text

    lines = []
    for label, text, score in scored:
        if label == "majority":
            lines += [
                {
                    "prompt": label,
                    "text": text,
                    "x": p.x,
                    "y": p.y,
                    "answer": score.answer,
                    "right": right,
                    "loss": None,
                    "tokens": 0,
                }
                for p, right in zip(test, score.right)
            ]
        else:
            lines += [{"prompt": label, "text": text, **vars(pair)} for pair in score.pairs]
    atomic_write(path.expanduser(), pair_scores_text(lines).encode("utf-8"))


def run_predict(args: argparse.Namespace) -> int:
    """The whole answer the model writes greedily for each input, in the run's template up to {y} (the
    answer in its place); for an input that is an x of the run's data, the expected answer and ✓ or ✗ by
    the accuracy rule (answer_rule.py)."""
    from promptgrad.readout.answer_rule import AnswerRule
    from promptgrad.readout.evaluation import judged_answers

    session, prompt = open_run(args.run)
    judged = judged_answers(
        session.frozen,
        session.encoder,
        args.words,
        prompt,
        session.eval_batch_size,
        session.split,
        AnswerRule.of(session.config),
    )
    template = session.config.problem.template
    head = template[: template.index("{y}")].replace("{prompt}", "[prompt]")  # the model reads no further than {y}
    for x, one in zip(args.words, judged):
        line = head.replace("{x}", x) + one.answer.text
        if one.expected:
            ys = " or ".join(dict.fromkeys(repr(y) for y, _ in one.expected))
            sides = "/".join(dict.fromkeys(side for _, side in one.expected))
            line += f"   {'✓' if one.right else '✗'} expected {ys} ({sides} pair)"
        print(line)
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Patchscopes-style: each learned vector, alone and all together, in an identity context; beside it
    the nearest token by cosine, and the rate at which real tokens read back as themselves there."""
    from rich.table import Table
    from rich.text import Text

    from promptgrad.readout.explain import IDENTITY_WORDS, read_back, read_prompt
    from promptgrad.readout.nearest_tokens import nearest_tokens

    if args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    session, prompt = open_run(args.run)
    frozen = session.frozen
    reading = read_prompt(frozen, prompt)
    nearest = nearest_tokens(prompt, frozen.embedding.weight, frozen.tokenizer, 1)
    check = read_back(frozen, args.samples)
    table = Table(
        title=Text(
            f"{args.run}: what the model reads in each prompt vector (context: "
            f"'{IDENTITY_WORDS[0]} -> {IDENTITY_WORDS[0]}' lines, then the vector and '->')"
        )
    )
    for column in ("position", "the model reads", "nearest token (cosine)"):
        table.add_column(column)
    for position, (text, near) in enumerate(zip(reading.positions, nearest)):
        table.add_row(str(position), Text(repr(text)), Text(f"{near[0].token!r} {near[0].cosine:.2f}"))
    table.add_row("all", Text(repr(reading.whole)), "")
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(table)
    trust = "" if check.rate >= 0.5 else " -- too low to read much into the readings above"
    console.print(
        Text(
            f"real-token read-back: {check.rate:.0%} of {check.n} single word tokens put in the same slot read "
            f"back as themselves{trust}"
        )
    )
    if check.misses:
        console.print(Text("  misses, e.g.: " + ", ".join(f"{w!r} -> {r!r}" for w, r in check.misses[:5])))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """The run's prompt as a PEFT prompt-tuning adapter (export.py says when that is exact, and refuses otherwise)."""
    from promptgrad.integrations.export import export_peft

    quiet_libraries()  # PEFT triggers a transformers FutureWarning (is_gradient_checkpointing)
    out = export_peft(args.run, args.out)
    print(
        f"wrote a PEFT prompt-tuning adapter to {out}: PeftModel.from_pretrained(model, {str(out)!r}), then "
        f"generate(..., use_cache=False), one text per call: {out / 'README.md'} shows the code and the run's scores"
    )
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    """The bundled task library, or one task with more of its pairs."""
    from rich.table import Table
    from rich.text import Text

    from promptgrad.problem.pairs import task_preview
    from promptgrad.problem.tasks import TASKS_DIR, bundled_tasks, find_task, task_files_in

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    if args.name:
        task = find_task(args.name)
        preview = task_preview(task, 10)
        console.print(
            Text(
                f"{task.name}: {task.description}; {preview.n_pairs} pairs"
                + (f" (task file {task.file})" if task.file else "")
            )
        )
        console.print(Text(f"template: {task.template!r}; hand-written: {', '.join(repr(b) for b in task.baselines)}"))
        made = f"; rebuilt by {task.build}" if task.build else f"; data {task.data}"
        console.print(Text(f"source: {task.source or '(not given)'}; licence: {task.licence or '(not given)'}{made}"))
        for pair in preview.pairs:
            console.print(Text(f"  {pair.x} -> {pair.y}"))
        return 0
    folder = args.dir if args.dir is not None else Path(TASKS_DIR)
    if args.dir is not None and not folder.is_dir():
        raise UserError(f"--dir {folder} is not a folder; give the folder that holds your task files (*.toml)")
    files = task_files_in(folder)
    mine = f" and {len(files)} task file(s) in {folder}" if files else ""
    table = Table(
        title=Text(
            f"{len(bundled_tasks())} bundled tasks{mine} (promptgrad train --task NAME or PATH; promptgrad "
            f"tasks NAME for more)"
        )
    )
    for column in ("task", "pairs", "examples", "template", "hand-written", "source"):
        table.add_column(column)
    left_out = [listed.problem for listed in files if listed.task is None]
    for task in [*bundled_tasks().values(), *(f.task for f in files if f.task)]:
        try:
            preview = task_preview(task, 2)
        except UserError as e:  # a task file whose data cannot be read: said below, the others listed
            left_out.append(f"task file {task.file}: {e}")
            continue
        table.add_row(
            Text(os.path.relpath(task.file) if task.file else task.name),
            str(preview.n_pairs),
            Text("; ".join(f"{p.x} -> {p.y}" for p in preview.pairs)),
            Text(repr(task.template)),
            Text(", ".join(repr(b) for b in task.baselines)),
            Text(task.source),
        )
    console.print(table)
    for problem in left_out:
        console.print(Text(f"left out: {problem}"))
    return 0


def run_nearest(args: argparse.Namespace) -> int:
    from rich.console import Console

    from promptgrad.cli.progress import nearest_table
    from promptgrad.readout.nearest_tokens import nearest_tokens

    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    session, prompt = open_run(args.run)
    positions = nearest_tokens(prompt, session.frozen.embedding.weight, session.frozen.tokenizer, args.k)
    Console().print(nearest_table(positions))
    return 0


# ---- report ------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    """The final results of the finished runs under the paths (results.py), written as report.md, report.csv,
    report.json and plots (plots.py) into --out, the table printed; runs left out are listed, one line each."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table
    from rich.text import Text

    from promptgrad.experiments.plots import draw
    from promptgrad.experiments.report_folder import check_destination, write_report
    from promptgrad.experiments.results import collect

    out: Path = args.out
    check_destination(out)  # a link, a run folder, another tool's report: refused before the runs are read
    console, errors = Console(), Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )
    tasks: dict[str, int] = {}

    def advance(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(what, total=total)
        progress.update(tasks[what], completed=done)

    try:
        with progress:
            results = collect(args.paths, advance)
            plots = draw(results, advance)
    except KeyboardInterrupt:
        print("promptgrad: report stopped (ctrl+c); nothing was written", file=sys.stderr)
        return 130
    tables = {"report.md": results.markdown(), "report.csv": results.csv(), "report.json": results.json()}
    report = write_report(out, {name: text.encode() for name, text in tables.items()}, plots)
    written = report.paths
    header, cells = results.table()
    table = Table(
        title=Text(
            f"{len(results.runs)} finished run(s) in {len(results.groups)} group(s) (legend: {out / 'report.md'})"
        )
    )
    for column in header:
        table.add_column(Text(column))
    for row in cells:
        table.add_row(*map(Text, row))
    console.print(table)
    paired_header, paired_cells = results.paired_table()
    if paired_cells:  # from the runs' pair_scores.jsonl
        paired = Table(title=Text("paired: learned minus each baseline on the same test pairs (legend: report.md)"))
        for column in paired_header:
            paired.add_column(Text(column))
        for row in paired_cells:
            paired.add_row(*map(Text, row))
        console.print(paired)
    for line in results.group_lines():
        console.print(Text(line))
    for left in results.left_out:
        console.print(Text(f"left out: {left.path}: {left.why}"))
    for run in results.runs:  # damaged lines (a number out of range, a wrong type) are skipped, and named here once
        if run.skipped_lines:
            lines = ", ".join(map(str, run.skipped_lines[:5])) + (" ..." if len(run.skipped_lines) > 5 else "")
            console.print(Text(f"skipped: {run.path / 'metrics.jsonl'} line(s) {lines}: damaged, not events"))
    console.print(f"wrote {escape(', '.join(map(str, written)))}", highlight=False)
    if report.replaced:
        console.print(f"(replaced the earlier report in {escape(str(out))})", highlight=False)
    return 0


# ---- sweep --------------------------------------------------------------------------------------


def run_sweep(args: argparse.Namespace) -> int:
    """A grid of runs (sweep.py): the settings given are shared by every run, --grid ones vary."""
    from promptgrad.experiments.sweep_runner import run_sweep as sweep

    if args.name is not None:
        raise UserError(
            "--name is not a setting of a sweep: it names each run from its grid values (NAME names the sweep)"
        )
    fixed = {name: getattr(args, name) for name in TrainConfig.settings() if getattr(args, name, None) is not None}
    quiet_libraries()
    return sweep(
        args.sweep_name,
        args.grid,
        fixed,
        resume=args.resume,
        jobs=args.jobs,
        engine=args.engine,
        engine_folder=args.engine_folder,
        engine_cluster=args.engine_cluster,
        engine_options=args.engine_option,
    )


if __name__ == "__main__":
    sys.exit(main())
