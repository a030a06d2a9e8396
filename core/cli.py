"""The headless command line: `promptgrad train | eval | predict | nearest`.

It consumes the same event stream as the TUI (promptgrad.training.train) and adds only presentation:
a progress bar on a terminal, plain lines under nohup. Bad input is one line on stderr and exit 2.
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
                arguments.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, action="append",
                                       metavar="TEXT", help=describe(f).replace("%", "%%"))
                continue
            choices = f.metadata["choices"] or (("true", "false") if isinstance(f.default, bool) else ())
            metavar = "{" + ",".join(choices) + "}" if choices else type(f.default).__name__.upper()
            arguments.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=metavar,
                                   help=describe(f).replace("%", "%%"))


def build_parser(config_class: type[TrainConfig] = TrainConfig) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="promptgrad", description="Backpropagate into a prompt of a frozen causal LM.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="learn a prompt; settings from --config TOML, then --key value overrides",
                                description="Learn a prompt. Settings come from the defaults, or --config FILE, or the "
                                            "run folder on --resume; each flag below overrides one.")
    train.add_argument("--config", type=Path, help="TOML file of settings (the names below, with underscores; flat or "
                                                    "one table per group, as a run folder's config.toml)")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this folder from its checkpoint")
    add_settings(train, config_class)

    ev = commands.add_parser("eval", help="test loss and accuracy of a run's prompt beside the hand-written one")
    ev.add_argument("run", type=Path, nargs="+", help="one run folder, or several on the same data (soft and hard, say)")
    ev.add_argument("--text", action="append", metavar="WORDS",
                    help="also score this wording in the prompt's place, e.g. ' words with opposite meanings:' (repeatable)")
    ev.add_argument("--data", metavar="FILE", help="score on every pair of this file (a .jsonl/.csv/.parquet file, a "
                                                   "save_to_disk folder or a dataset name, with the run's columns) "
                                                   "instead of the run's own test pairs")
    ev.add_argument("--precision", choices=("fp32", "bf16"),
                    help="compute in this precision instead of the one the run recorded (fp32 evaluates a bf16 run "
                         "on a machine that only emulates bf16; its scores then differ slightly from the run's own)")
    predict = commands.add_parser("predict", help="greedy predictions of a run's prompt for some inputs")
    predict.add_argument("run", type=Path)
    predict.add_argument("words", nargs="+")
    explain = commands.add_parser("explain", help="the model's own reading of each prompt vector, and how far to trust it")
    explain.add_argument("run", type=Path)
    explain.add_argument("--samples", type=int, default=200, help="real word tokens read back to check the method")
    export = commands.add_parser("export", help="write a run's prompt for use elsewhere (peft: a PEFT prompt-tuning adapter)")
    export.add_argument("run", type=Path)
    export.add_argument("--format", choices=("peft",), default="peft",
                        help="peft: an adapter for PeftModel.from_pretrained (a template that starts with {prompt}, "
                             "a model whose tokenizer adds no BOS token)")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder for the adapter")
    tasks = commands.add_parser("tasks", help="the bundled tasks: pairs, examples, template, hand-written prompts, source")
    tasks.add_argument("name", nargs="?", help="one task, shown with more of its pairs")
    nearest = commands.add_parser("nearest", help="the vocabulary tokens nearest to each prompt vector")
    nearest.add_argument("run", type=Path)
    nearest.add_argument("-k", type=int, default=5, help="how many tokens per position (at least 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every subcommand fails the same way: bad input and what the machine refuses are one line (exit
    2), a peer of a distributed run gone is one line (exit 1, from the run's own report), a second
    ctrl+c is one line (exit 130), and a bug is one line with its traceback kept in a file (exit 1)."""
    args = build_parser().parse_args(argv)
    try:
        return {"train": run_train, "eval": run_eval, "predict": run_predict, "nearest": run_nearest,
                "explain": run_explain, "tasks": run_tasks, "export": run_export}[args.command](args)
    except UserError as e:
        print(f"promptgrad: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promptgrad: aborted (ctrl+c twice); files written so far are whole, the last checkpoint included", file=sys.stderr)
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
        print(f"promptgrad: error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}; traceback in {f.name} "
              f"(this is a bug in promptgrad; please report it with the traceback)", file=sys.stderr)
        return 1


# ---- train ------------------------------------------------------------------------------------

def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: a run folder's (on --resume) or a config file's or the defaults, then the flags."""
    overrides = {name: getattr(args, name) for name in TrainConfig.settings() if getattr(args, name, None) is not None}
    if args.resume:
        from promptgrad.run_folder import RunFolder

        base = RunFolder.open(args.resume).config()
        if args.config:
            raise UserError("give either --resume RUN (its settings come from the run folder) or --config FILE, not both")
    else:
        base = TrainConfig.load(args.config) if args.config else TrainConfig()
    if "steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = 0  # --steps N means N steps, even where the base counted epochs
    return base.replace(**overrides)


def run_train(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    quiet_libraries()
    from promptgrad.report import TrainingReport
    from promptgrad.signals import detach_from_terminal, stop_on_signals
    from promptgrad.training import train

    stop = threading.Event()

    def on_signal(name: str) -> None:
        print(f"\n{name}: stopping after this step and saving a checkpoint (ctrl+c again aborts)...", file=sys.stderr)

    # under accelerate launch / torchrun only rank 0 reports (and writes the run folder)
    console = Console(quiet=int(os.environ.get("RANK", "0")) != 0)
    with stop_on_signals(stop, on_signal), TrainingReport(console) as report:
        for event in train(config, stop, resume=args.resume):
            try:
                report.show(event)
            except OSError:  # the terminal went away (EIO, EPIPE) before its SIGHUP: carry on without it
                detach_from_terminal()
        return report.exit_status


# ---- eval, predict, nearest -------------------------------------------------------------------

def open_run(path: Path, precision: str | None = None, test_data: str | None = None):
    """A run's session and prompt (session.open_run), with the libraries' chatter quieted first."""
    from promptgrad.session import open_run as open_run_session

    quiet_libraries()
    return open_run_session(path, precision, test_data)


SAME_TEST_PAIRS = ("model", "data", "x_column", "y_column", "test_fraction", "seed")  # settings that fix the test split


MAX_FRONT_ROWS = 8  # Pareto-front prompts of a hard run scored by eval (each one costs a pass over the test set)


@dataclasses.dataclass(frozen=True)
class HardPrompt:
    """A hard run's prompt as its prompt.safetensors metadata records it (hard_search.py writes it)."""

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
        raise UserError(f"{path}/prompt.safetensors has damaged hard-prompt metadata ({str(e)[:100]}); "
                        f"it was changed after promptgrad wrote it") from None
    return HardPrompt(ids, text, metadata.get("method", "?"), fluency, front)


def run_eval(args: argparse.Namespace) -> int:
    """Test loss and accuracy, on the same test pairs, of each run's prompt (soft vectors, or the tokens of
    a hard prompt when its metadata has `hard_prompt_ids`, with the rest of its Pareto front) beside the
    hand-written one and any `--text` wordings; and each text prompt's own fluency in nats/token.
    `args.run` is one run folder or a list of them (say a soft and a hard run of the same model and data)."""
    from rich.table import Table
    from rich.text import Text

    from promptgrad.evaluation import score_prompt
    from promptgrad.search.fluency import text_nats_per_token
    from promptgrad.run_facts import RunFacts
    from promptgrad.run_folder import RunFolder
    from promptgrad.template import Template, TemplateEncoder

    paths = args.run if isinstance(args.run, list) else [args.run]
    test_data = getattr(args, "data", None)
    session, _ = open_run(paths[0], getattr(args, "precision", None), test_data)
    frozen, test, batch_size = session.frozen, session.split.test, session.eval_batch_size

    def scored_text(name: str, text: str, field: str | None = None):
        vectors, encoder = session.text_prompt(text, field)
        return name, score_prompt(frozen, encoder, test, vectors, batch_size), text_nats_per_token(frozen, encoder, text)

    rows = []
    for path in paths:
        run = RunFolder.open(path)
        config = run.config()
        differs = [k for k in SAME_TEST_PAIRS if config.get(k) != session.config.get(k)]
        if differs:
            raise UserError(f"{path} differs from {paths[0]} in {', '.join(differs)}: its test pairs are not the same ones")
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
            rows.append((f"hard ({hard.method}{lam}) {hard.text!r}{where}", score_prompt(frozen, encoder, test, vectors, batch_size), nats))
            for point in [p for p in hard.front if p.ids != hard.ids][:MAX_FRONT_ROWS]:
                vectors, encoder = session.token_prompt(point.ids, template)
                rows.append((f"  front: {point.text!r} (held-out {point.train_loss:.3f})",
                             score_prompt(frozen, encoder, test, vectors, batch_size), point.nats_per_token))
        else:
            from promptgrad.session import check_prompt_fits

            check_prompt_fits(run.path, prompt, config.problem.prompt_len, frozen.hidden_size)
            encoder = TemplateEncoder(template, frozen.tokenizer, prompt.shape[0])
            rows.append(("soft (learned vectors)" + where, score_prompt(frozen, encoder, test, prompt.to(frozen.device), batch_size), None))
    for text in getattr(args, "text", None) or []:
        rows.append(scored_text(f"text {text!r}", text))
    for text in session.config.problem.baseline_text:
        rows.append(scored_text(f"hand-written {text!r}", text, "baseline_text"))
    where = paths[0] if len(paths) == 1 else f"{len(paths)} runs"
    pairs = f"{len(test)} pairs of {test_data}" if test_data else f"{len(test)} test pairs never trained on"
    table = Table(title=Text(f"{where}: {pairs}, computed in {session.facts.precision}"))
    for column in ("prompt", "test loss", "accuracy", "nats/token"):
        table.add_column(column)
    for name, score, nats in rows:
        table.add_row(Text(name), f"{score.test_loss:.4f}", f"{score.accuracy:.1%}", "–" if nats is None else f"{nats:.2f}")
    console = Console()
    if not console.is_terminal:  # piped or logged: don't fold a prompt's text over lines
        console.width = max(console.width, 140)
    console.print(table)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """The whole answer the model writes greedily for each input, in the run's template."""
    from promptgrad.evaluation import greedy_answers

    session, prompt = open_run(args.run)
    answers = greedy_answers(session.frozen, session.encoder, args.words, prompt, session.eval_batch_size)
    template = session.config.problem.template
    for x, answer in zip(args.words, answers):
        print(template.replace("{prompt}", "[prompt]").replace("{x}", x).replace("{y}", f"-> {answer.text}"))
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Patchscopes-style: each learned vector, alone and all together, in an identity context; beside it
    the nearest token by cosine, and the rate at which real tokens read back as themselves there."""
    from rich.table import Table
    from rich.text import Text

    from promptgrad.explain import IDENTITY_WORDS, read_back, read_prompt
    from promptgrad.nearest_tokens import nearest_tokens

    if args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    session, prompt = open_run(args.run)
    frozen = session.frozen
    reading = read_prompt(frozen, prompt)
    nearest = nearest_tokens(prompt, frozen.embedding.weight, frozen.tokenizer, 1)
    check = read_back(frozen, args.samples)
    table = Table(title=Text(f"{args.run}: what the model reads in each prompt vector (context: "
                             f"'{IDENTITY_WORDS[0]} -> {IDENTITY_WORDS[0]}' lines, then the vector and '->')"))
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
    console.print(Text(f"real-token read-back: {check.rate:.0%} of {check.n} single word tokens put in the same slot read "
                       f"back as themselves{trust}"))
    if check.misses:
        console.print(Text("  misses, e.g.: " + ", ".join(f"{w!r} -> {r!r}" for w, r in check.misses[:5])))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """The run's prompt as a PEFT prompt-tuning adapter (export.py says when that is exact, and refuses otherwise)."""
    from promptgrad.export import export_peft

    quiet_libraries()  # PEFT triggers a transformers FutureWarning (is_gradient_checkpointing)
    out = export_peft(args.run, args.out)
    print(f"wrote a PEFT prompt-tuning adapter to {out}: PeftModel.from_pretrained(model, {str(out)!r})")
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    """The bundled task library, or one task with more of its pairs."""
    from rich.table import Table
    from rich.text import Text

    from promptgrad.tasks import bundled_tasks, task_named, task_preview

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    if args.name:
        task = task_named(args.name)
        preview = task_preview(task, 10)
        console.print(Text(f"{task.name}: {task.description}; {preview.n_pairs} pairs"))
        console.print(Text(f"template: {task.template!r}; hand-written: {', '.join(repr(b) for b in task.baselines)}"))
        console.print(Text(f"source: {task.source}; licence: {task.licence}; rebuilt by {task.build}"))
        for pair in preview.pairs:
            console.print(Text(f"  {pair.x} -> {pair.y}"))
        return 0
    table = Table(title=Text(f"{len(bundled_tasks())} bundled tasks (promptgrad train --task NAME; promptgrad tasks NAME for more)"))
    for column in ("task", "pairs", "examples", "template", "hand-written", "source"):
        table.add_column(column)
    for task in bundled_tasks().values():
        preview = task_preview(task, 2)
        table.add_row(Text(task.name), str(preview.n_pairs), Text("; ".join(f"{p.x} -> {p.y}" for p in preview.pairs)),
                      Text(repr(task.template)), Text(", ".join(repr(b) for b in task.baselines)), Text(task.source))
    console.print(table)
    return 0


def run_nearest(args: argparse.Namespace) -> int:
    from promptgrad.nearest_tokens import nearest_tokens
    from promptgrad.report import nearest_table
    from rich.console import Console

    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    session, prompt = open_run(args.run)
    positions = nearest_tokens(prompt, session.frozen.embedding.weight, session.frozen.tokenizer, args.k)
    Console().print(nearest_table(positions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
