"""Does early stopping help held-out loss? Soft prompts trained for many passes over a small set of
labelled pairs from bundled tasks, with and without a validation split, scored on the same test pairs.

  all-train   today's behaviour: every labelled training pair trained on for `--epochs` passes; the
              last prompt is the result
  early       `--val-fraction 0.2 --stop-patience 3`: a fifth of those pairs held out as a validation
              split (never the test pairs), scored every `--eval-every` steps; training stops after 3
              scores without a lower validation loss, and the best prompt on it is the result

Both run promptgrad's own loop (`promptgrad.train.loop.train`, as `promptgrad train` does) into a
temporary runs folder with the same seed, so on the same test pairs; the early variant trains on fewer
pairs, the price of choosing on held-out ones. `--train-size` (64) keeps the labelled pairs few, the
regime where a prompt overfits within minutes on 2 CPU cores. The test loss is the final one on the
whole test set. The lowest test loss seen at any evaluation during a run is shown too: what a stop that
peeked at the test pairs could have had (an oracle, not a method). The readouts (sample predictions,
nearest tokens, what the model reads in the prompt) are left out: seconds each, no part in the result.

    python benchmarks/early_stopping.py                        # capitals, countries-fr; seeds 0, 1 (~25 min on 2 cores)
    python benchmarks/early_stopping.py --tasks capitals --seeds 0 --epochs 5   # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from promptgrad.config import BUNDLED_MODEL, TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Failed, Finished, Started, Validation
from promptgrad.model.precision import cpu_description, resolve_device
from promptgrad.quiet import quiet_libraries
from promptgrad.train.loop import TrainingRun, train

VARIANTS = ("all-train", "early")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=BUNDLED_MODEL)
    p.add_argument("--tasks", default="capitals,countries-fr", help="bundled tasks, comma-separated")
    p.add_argument("--seeds", default="0,1", help="seeds (the split, the initial prompt, the batches), comma-separated")
    p.add_argument(
        "--epochs", type=float, default=20.0, help="passes over the training pairs (the early variant may stop sooner)"
    )
    p.add_argument(
        "--train-size",
        type=int,
        default=64,
        help="labelled pairs to learn from (0: all the task's training "
        "pairs); the early variant holds its validation share out of these",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--stop-patience", type=int, default=3)
    p.add_argument(
        "--eval-every", type=int, default=4, help="steps between validation (and test) scores (4: an epoch of 64 pairs)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: on a machine others share, no fight over the cores)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting for both variants, as promptgrad train takes it (repeatable), e.g. --set lr=0.01",
    )
    p.add_argument("--json", help="also write the rows and the summary to this file")
    return p.parse_args(argv)


@dataclass
class Row:
    task: str
    seed: int
    variant: str
    n_train: int
    n_validation: int
    n_test: int
    steps: int  # steps trained
    total_steps: int  # steps the run was given
    kept_step: int  # the step whose prompt is the result
    test_loss: float
    accuracy: float
    best_seen_test_loss: float  # the lowest test loss at any evaluation during the run (an oracle)
    best_seen_step: int
    seconds: float


def run_one(task: str, seed: int, variant: str, args: argparse.Namespace, runs_dir: str, label: str) -> Row:
    settings = dict(
        task=task,
        model=args.model,
        seed=seed,
        epochs=args.epochs,
        train_size=args.train_size,
        batch_size=args.batch_size,
        eval_every=args.eval_every,
        eval_size=0,
        checkpoint_every=0,
        checkpoint_minutes=0.0,
        num_predictions=0,
        nearest_k=0,
        device=args.device,
        threads=args.threads,
        runs_dir=runs_dir,
        name=f"{task}-{seed}-{variant}",
    )
    settings.update(dict(item.split("=", 1) for item in args.set))
    if variant == "early":
        settings.update(val_fraction=args.val_fraction, stop_patience=args.stop_patience)
    started = time.perf_counter()
    seen: list[tuple[float, int]] = []
    start = end = None
    for event in train(TrainConfig(**settings)):
        if isinstance(event, Started):
            start = event
            print(
                f"{label}: {event.n_train} training / {event.n_validation} validation / {event.n_test} test pairs, "
                f"{event.total_steps} steps",
                flush=True,
            )
        elif isinstance(event, Evaluation) and event.prompt == "learned":
            seen.append((event.test_loss, event.step))
            print(
                f"{label}: step {event.step}/{start.total_steps}: test loss {event.test_loss:.4f}, accuracy {event.accuracy:.1%}",
                flush=True,
            )
        elif isinstance(event, Validation):
            print(
                f"{label}: step {event.step}/{start.total_steps}: validation loss {event.loss:.4f} (best {event.best_loss:.4f} "
                f"at step {event.best_step}{', stopping' if event.stopping else ''})",
                flush=True,
            )
        elif isinstance(event, Failed):
            sys.exit(f"{label} failed: {event.message}")
        elif isinstance(event, Finished):
            end = event
    kept = end.best_step if end.best_step is not None else end.step
    seen[-1] = (seen[-1][0], kept)  # the last look scores the result: the prompt of the kept step
    best_loss, best_step = min(seen)
    return Row(
        task,
        seed,
        variant,
        start.n_train,
        start.n_validation,
        start.n_test,
        end.step,
        start.total_steps,
        kept,
        end.test_loss,
        end.accuracy,
        best_loss,
        best_step,
        time.perf_counter() - started,
    )


def spread(values: list[float]) -> float:
    """Half the range over the seeds (with two seeds, each lies this far from their mean)."""
    return (max(values) - min(values)) / 2


def summary(rows: list[Row]) -> list[dict]:
    out = []
    for task in dict.fromkeys(r.task for r in rows):
        for variant in VARIANTS:
            mine = [r for r in rows if r.task == task and r.variant == variant]
            if mine:
                losses, accs = [r.test_loss for r in mine], [r.accuracy for r in mine]
                out.append(
                    {
                        "task": task,
                        "variant": variant,
                        "seeds": len(mine),
                        "test_loss": statistics.mean(losses),
                        "test_loss_spread": spread(losses),
                        "accuracy": statistics.mean(accs),
                        "accuracy_spread": spread(accs),
                        "steps": statistics.mean(r.steps for r in mine),
                        "seconds": statistics.mean(r.seconds for r in mine),
                    }
                )
    return out


def print_tables(rows: list[Row]) -> list[dict]:
    print(
        "\ntask           seed  variant    train/val/test  steps  kept  test loss  accuracy  lowest test loss seen (step)  seconds"
    )
    for r in rows:
        oracle = f"{r.best_seen_test_loss:.4f} ({r.best_seen_step})"
        print(
            f"{r.task:<14} {r.seed:>4}  {r.variant:<9}  {r.n_train:>4}/{r.n_validation:>3}/{r.n_test:>3}  {r.steps:>4}/{r.total_steps:<4}"
            f"{r.kept_step:>5}  {r.test_loss:>9.4f}  {r.accuracy:>8.1%}  {oracle:>28}  {r.seconds:>7.0f}"
        )
    table = summary(rows)
    seeds = ",".join(sorted({str(r.seed) for r in rows}))
    print(f"\nmean ± half the range over seeds {seeds}")
    print("task           variant    test loss          accuracy          steps  seconds")
    for s in table:
        print(
            f"{s['task']:<14} {s['variant']:<9}  {s['test_loss']:.4f} ± {s['test_loss_spread']:.4f}   "
            f"{s['accuracy']:6.1%} ± {s['accuracy_spread']:5.1%}   {s['steps']:5.0f}  {s['seconds']:7.0f}"
        )
    pairs = [
        (a, b)
        for a in rows
        for b in rows
        if a.variant == "all-train" and b.variant == "early" and (a.task, a.seed) == (b.task, b.seed)
    ]
    if pairs:
        deltas = [b.test_loss - a.test_loss for a, b in pairs]
        acc = [b.accuracy - a.accuracy for a, b in pairs]
        lower = sum(d < 0 for d in deltas)
        print(
            f"\nearly - all-train, per task and seed: test loss {' '.join(f'{d:+.4f}' for d in deltas)} (mean {statistics.mean(deltas):+.4f}; "
            f"lower in {lower} of {len(deltas)}); accuracy {' '.join(f'{d:+.1%}' for d in acc)} (mean {statistics.mean(acc):+.1%}); "
            f"steps {sum(b.steps for _, b in pairs)} against {sum(a.steps for a, _ in pairs)}"
        )
    return table


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    if bad := [item for item in args.set if "=" not in item]:
        sys.exit(f"early_stopping.py: error: --set takes KEY=VALUE, got {bad[0]!r}")
    print(
        f"model {args.model} on {device} ({where}), torch {torch.__version__}; tasks {', '.join(tasks)}; seeds "
        f"{', '.join(map(str, seeds))}; {args.epochs:g} epochs of train_size {args.train_size}, batch {args.batch_size}; early: val_fraction {args.val_fraction}, stop_patience "
        f"{args.stop_patience}, scored every {args.eval_every} steps; other settings promptgrad's defaults"
        + (f" but {', '.join(args.set)}" if args.set else ""),
        flush=True,
    )
    TrainingRun.readout = lambda self: iter(())  # presentation only (see the docstring), seconds a look
    rows: list[Row] = []
    plan = [(task, seed, variant) for task in tasks for seed in seeds for variant in VARIANTS]
    with tempfile.TemporaryDirectory(prefix="promptgrad-early-stopping-") as runs_dir:
        try:
            for i, (task, seed, variant) in enumerate(plan, 1):
                rows.append(
                    run_one(task, seed, variant, args, runs_dir, f"[{i}/{len(plan)}] {task} seed {seed} {variant}")
                )
        except KeyboardInterrupt:
            print(f"\ninterrupted after {len(rows)} of {len(plan)} runs; the table holds those", flush=True)
        except UserError as e:  # a bad --set, say
            sys.exit(f"early_stopping.py: error: {e}")
    table = print_tables(rows) if rows else []
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": [asdict(r) for r in rows], "summary": table}, f, indent=1)
    if len(rows) < len(plan):
        sys.exit(130)


if __name__ == "__main__":
    main()
