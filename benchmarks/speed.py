"""Throughput benchmark: the same prompt, data, batches' size and steps, trained side by side in one process by

  promptgrad        promptgrad's own training step, in the precision `--precision auto` picks here
  original-fp32     the original experiment's loop (right padding, full logits, per-example splicing)
  original-bf16     the same under torch.autocast(bfloat16), as the original ran
  peft-fp32         Hugging Face PEFT prompt tuning (prompt in front of the text), fp32
  peft-bf16         the same under torch.autocast(bfloat16)
  (promptgrad-fp32, promptgrad-bf16: promptgrad with its precision forced; promptgrad-noprefix: without
  the cached template prefix, an ablation; add them with --variants)

For each: examples/s over the timed steps (one untimed warm-up pass first), the ratio promptgrad/variant,
the test loss and greedy accuracy of the prompt it learned (all scored by the same fp32 scorer on the same
test pairs, none trained on), the FLOPs its model work executes per example (torch.utils.flop_counter,
padding included) and the FLOP/s that achieves against a measured matrix-product peak of the device in the
variant's compute dtype.

    python benchmarks/speed.py                       # bundled SmolLM2-135M-Instruct (Q4_1), CPU here, GPU if present
    python benchmarks/speed.py --model gpt2-large --batch-size 32 --steps 30   # on a GPU box
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere

from loops import Loop, OriginalLoop, PeftLoop, Problem, PromptgradLoop, counted_flops, matmul_peak, timed_steps  # noqa: E402

from promptgrad.config import BUNDLED_DATA, BUNDLED_MODEL, TrainConfig  # noqa: E402
from promptgrad.model.models import FrozenModel  # noqa: E402
from promptgrad.model.precision import DTYPES, choose_precision, cpu_description, resolve_device  # noqa: E402
from promptgrad.quiet import quiet_libraries  # noqa: E402
from promptgrad.readout.evaluation import score_prompt  # noqa: E402
from promptgrad.train.schedule import learning_rate  # noqa: E402

ALL = [
    "promptgrad",
    "promptgrad-fp32",
    "promptgrad-bf16",
    "promptgrad-noprefix",
    "original-fp32",
    "original-bf16",
    "peft-fp32",
    "peft-bf16",
]
DEFAULT = ["promptgrad", "original-fp32", "original-bf16", "peft-fp32", "peft-bf16"]


def parse_args(argv=None) -> argparse.Namespace:
    defaults = TrainConfig().resolved()  # the default job: the antonyms task's template and hand-written prompts
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=BUNDLED_MODEL)
    p.add_argument("--data", default=BUNDLED_DATA)
    p.add_argument("--template", default=defaults.problem.template)
    p.add_argument("--prompt-len", type=int, default=defaults.problem.prompt_len)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=defaults.learning.lr)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--test-pairs", type=int, default=256, help="test pairs the learned prompts are scored on")
    p.add_argument("--device", default="auto")
    p.add_argument("--variants", default=",".join(DEFAULT), help=f"comma-separated, from {', '.join(ALL)}")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (one extra untimed pass per loop)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--seed", type=int, default=defaults.learning.seed)
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in ALL]
    if unknown or not args.variants:
        p.error(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ALL)}")
    if "promptgrad" not in args.variants:
        args.variants.insert(0, "promptgrad")  # the ratios are against it
    return args


def with_dtype(frozen: FrozenModel, dtype: torch.dtype) -> FrozenModel:
    if dtype == frozen.dtype:
        return frozen
    return FrozenModel(frozen.name, copy.deepcopy(frozen.model).to(dtype), frozen.tokenizer, frozen.device, dtype)


def build(variant: str, problem: Problem, auto_precision: str) -> tuple[Loop, str]:
    """The loop for a variant, and its compute dtype's name."""
    kind, _, precision = variant.partition("-")
    if kind == "promptgrad":
        cached = precision != "noprefix"
        precision = precision if precision in DTYPES else auto_precision
        return PromptgradLoop(problem, with_dtype(problem.fp32, DTYPES[precision]), variant, cached), precision
    autocast = torch.bfloat16 if precision == "bf16" else None
    cls = OriginalLoop if kind == "original" else PeftLoop
    return cls(problem, autocast, variant), precision


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_libraries()
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    problem = Problem.load(args.model, args.data, args.template, args.prompt_len, args.batch_size, args.seed, device)
    auto = choose_precision("auto", device, problem.fp32.hidden_size)
    auto_precision = auto.precision
    fp32, initial = problem.fp32, problem.initial
    test = problem.split.test[: args.test_pairs]
    lr_at = lambda k: learning_rate(k, args.steps, args.lr, args.warmup_steps, "cosine")  # noqa: E731
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    print(
        f"model {args.model} on {device} ({where}), "
        f"torch {torch.__version__}; batch {args.batch_size}, {args.steps} timed steps, lr {args.lr}; "
        f"scored on {len(test)} test pairs; promptgrad's auto precision here: {auto_precision} ({auto.reason})",
        flush=True,
    )

    peaks = {name: matmul_peak(device, DTYPES[name]) for name in ("fp32", "bf16")}
    print("matrix-product peak: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items()), flush=True)

    hand = problem.hand_written(" antonyms", test)
    untrained = score_prompt(fp32, problem.encoder(), test, initial, 64)
    print(
        f"hand-written ' antonyms': test loss {hand.test_loss:.4f}, accuracy {hand.accuracy:.1%}; "
        f"untrained prompt: {untrained.test_loss:.4f}, {untrained.accuracy:.1%}",
        flush=True,
    )

    results, flops = [], {}
    for variant in args.variants:
        loop, precision = build(variant, problem, auto_precision)
        kind = variant if variant == "promptgrad-noprefix" else variant.partition("-")[0]
        if not args.no_flops and kind not in flops:
            # the same work in any dtype: count it once, in fp32 where the device only emulates bf16
            fast = precision == "fp32" or device.type == "cuda"
            counter = loop if fast else build(f"{kind}-fp32", problem, auto_precision)[0]
            flops[kind] = counted_flops(counter, args.steps)
        print(f"{variant}: training {args.steps} steps ...", flush=True)
        t0 = time.perf_counter()
        seconds, examples, losses = timed_steps(loop, args.steps, lr_at, device)
        score = score_prompt(fp32, problem.encoder(loop.scoring_template), test, loop.vectors().to(device), 64)
        row = {
            "variant": variant,
            "precision": precision,
            "seconds": seconds,
            "examples": examples,
            "examples_per_s": examples / seconds,
            "train_loss_last": losses[-1],
            "test_loss": score.test_loss,
            "accuracy": score.accuracy,
            "wall_s": time.perf_counter() - t0,
        }
        if kind in flops:
            row["flops_per_example"] = flops[kind] / examples
            row["flop_per_s"] = flops[kind] / seconds
            row["fraction_of_peak"] = row["flop_per_s"] / peaks[precision]
        results.append(row)
        print(
            f"  {row['examples_per_s']:.2f} examples/s, test loss {score.test_loss:.4f}, accuracy {score.accuracy:.1%}",
            flush=True,
        )
        del loop

    base = results[0]["examples_per_s"]
    print()
    header = f"{'variant':<16}{'examples/s':>11}{'promptgrad x':>14}{'test loss':>11}{'accuracy':>10}{'GFLOP/ex':>10}{'GFLOP/s':>9}{'of peak':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        f = (
            f"{r['flops_per_example'] / 1e9:>10.2f}{r['flop_per_s'] / 1e9:>9.1f}{r['fraction_of_peak']:>9.1%}"
            if "flop_per_s" in r
            else ""
        )
        print(
            f"{r['variant']:<16}{r['examples_per_s']:>11.2f}{base / r['examples_per_s']:>13.2f}x"
            f"{r['test_loss']:>11.4f}{r['accuracy']:>10.1%}{f}"
        )
    print(f"{'hand-written':<16}{'':>11}{'':>14}{hand.test_loss:>11.4f}{hand.accuracy:>10.1%}")
    print(f"{'untrained':<16}{'':>11}{'':>14}{untrained.test_loss:>11.4f}{untrained.accuracy:>10.1%}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "device": str(device),
                    "peaks": peaks,
                    "hand_written": dataclasses.asdict(hand),
                    "untrained": dataclasses.asdict(untrained),
                    "results": results,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
