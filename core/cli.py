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

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.quiet import quiet_libraries


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage over several lines; we say what was wrong
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="promptgrad", description="Backpropagate into a prompt of a frozen causal LM.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="learn a prompt; settings from --config TOML, then --key value overrides")
    train.add_argument("--config", type=Path, help="TOML file of settings (the keys below, with underscores)")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this folder from its checkpoint")
    for field in dataclasses.fields(TrainConfig):
        train.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=None, metavar=type(field.default).__name__.upper(),
                           help=f"default: {field.default!r}")

    ev = commands.add_parser("eval", help="test loss and accuracy of a run's prompt beside the hand-written one")
    ev.add_argument("run", type=Path, nargs="+", help="one run folder, or several on the same data (soft and hard, say)")
    predict = commands.add_parser("predict", help="greedy predictions of a run's prompt for some inputs")
    predict.add_argument("run", type=Path)
    predict.add_argument("words", nargs="+")
    nearest = commands.add_parser("nearest", help="the vocabulary tokens nearest to each prompt vector")
    nearest.add_argument("run", type=Path)
    nearest.add_argument("-k", type=int, default=5)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": run_train, "eval": run_eval, "predict": run_predict, "nearest": run_nearest}[args.command](args)
    except UserError as e:
        print(f"promptgrad: error: {e}", file=sys.stderr)
        return 2


# ---- train ------------------------------------------------------------------------------------

def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: a run folder's (on --resume) or a config file's or the defaults, then the flags."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    if args.resume:
        from promptgrad.run_folder import RunFolder

        base = RunFolder.open(args.resume).config()
        if args.config:
            raise UserError("give either --resume RUN (its settings come from the run folder) or --config FILE, not both")
    else:
        base = TrainConfig.load(args.config) if args.config else TrainConfig()
    if "steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = 0  # --steps N means N steps, even where the base counted epochs
    return TrainConfig.from_dict({**base.to_dict(), **overrides})


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

def open_run(path: Path):
    """A run's session, built with the precision the run recorded, and its prompt."""
    from promptgrad.run_folder import RunFolder
    from promptgrad.session import open_session

    run = RunFolder.open(path)
    prompt, metadata = run.load_prompt()
    quiet_libraries()
    config = run.config()
    if config.precision == "auto":  # a folder from before precision was recorded in config.toml
        config = config.replace(precision=metadata.get("precision", "auto"))
    session = open_session(config)
    if prompt.shape[0] != config.prompt_len:
        raise UserError(f"{run.path}/prompt.safetensors has {prompt.shape[0]} positions but the run's config says {config.prompt_len}")
    return session, prompt.to(session.frozen.device)


SAME_TEST_PAIRS = ("model", "data", "x_column", "y_column", "test_fraction", "seed")  # settings that fix the test split


def run_eval(args: argparse.Namespace) -> int:
    """Test loss and accuracy, on the same test pairs, of each run's prompt (soft vectors, or the tokens of
    a hard prompt when its metadata has `hard_prompt_ids`) beside the hand-written one. `args.run` is one
    run folder or a list of them (say a soft and a hard run of the same model and data)."""
    import json

    import torch
    from rich.table import Table
    from rich.text import Text

    from promptgrad.evaluation import score_prompt
    from promptgrad.run_folder import RunFolder
    from promptgrad.template import Template, TemplateEncoder

    paths = args.run if isinstance(args.run, list) else [args.run]
    session, _ = open_run(paths[0])
    frozen, test, batch_size = session.frozen, session.split.test, session.eval_batch_size
    rows = []
    for path in paths:
        run = RunFolder.open(path)
        config = run.config()
        differs = [k for k in SAME_TEST_PAIRS if getattr(config, k) != getattr(session.config, k)]
        if differs:
            raise UserError(f"{path} differs from {paths[0]} in {', '.join(differs)}: its test pairs are not the same ones")
        prompt, metadata = run.load_prompt()
        if "hard_prompt_ids" in metadata:  # the tokens themselves, as pasting the text would give them
            ids = json.loads(metadata["hard_prompt_ids"])
            with torch.no_grad():
                prompt = frozen.embedding(torch.tensor(ids, device=frozen.device)).float()
            name = f"hard ({metadata.get('method', '?')}) {metadata['hard_prompt_text']!r}"
        else:
            name = "soft (learned vectors)"
        encoder = TemplateEncoder(Template.parse(config.template), frozen.tokenizer, prompt.shape[0])
        score = score_prompt(frozen, encoder, test, prompt.to(frozen.device), batch_size)
        rows.append((name + (f"  [{path}]" if len(paths) > 1 else ""), score))
    baseline, baseline_encoder = session.baseline_prompt()
    rows.append((f"hand-written {session.config.baseline_text!r}", score_prompt(frozen, baseline_encoder, test, baseline, batch_size)))
    where = paths[0] if len(paths) == 1 else f"{len(paths)} runs"
    table = Table(title=Text(f"{where}: {len(test)} test pairs never trained on, computed in {session.precision.precision}"))
    for column in ("prompt", "test loss", "accuracy"):
        table.add_column(column)
    for name, score in rows:
        table.add_row(Text(name), f"{score.test_loss:.4f}", f"{score.accuracy:.1%}")  # Text: a prompt may hold "[...]"
    console = Console()
    if not console.is_terminal:  # piped or logged: don't fold a prompt's text over lines
        console.width = max(console.width, 120)
    console.print(table)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from promptgrad.evaluation import greedy_words

    session, prompt = open_run(args.run)
    words = greedy_words(session.frozen, session.encoder, args.words, prompt, session.eval_batch_size)
    template = session.config.template
    for x, y in zip(args.words, words):
        print(template.replace("{prompt}", "[prompt]").replace("{x}", x).replace("{y}", f"-> {y}"))
    return 0


def run_nearest(args: argparse.Namespace) -> int:
    from promptgrad.nearest_tokens import nearest_tokens
    from promptgrad.report import nearest_table
    from rich.console import Console

    session, prompt = open_run(args.run)
    positions = nearest_tokens(prompt, session.frozen.embedding.weight, session.frozen.tokenizer, args.k)
    Console().print(nearest_table(positions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
