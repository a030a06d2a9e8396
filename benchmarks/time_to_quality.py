"""Time to quality: wall-clock training time until the learned prompt's test loss is 40% below the
hand-written prompt's, for promptgrad's default settings against the original experiment's recipe.

  promptgrad      promptgrad's defaults (TrainConfig): Adam lr 3e-2, 10 warm-up steps then cosine decay
                  over 100 steps, batch 32, random mean/std init, precision auto
  original-bf16   the original recipe: the original-style loop (see loops.py), Adam lr 1e-3 constant,
                  batch 64, bf16 autocast, the same random mean/std init
  original-fp32   the same recipe without autocast (on a CPU without fast bf16 this is its faster form)

Each trains on the same training pairs and is scored by the same fp32 scorer on the same test pairs. The
clock counts training steps only; evaluations are not counted for anyone. promptgrad is scored every
`--eval-every` steps and its time is taken at the first evaluation at or under the target (an upper
bound). A baseline runs until it reaches the target or until its training time passes
`--budget-factor` times promptgrad's; then it is scored once more and reported as not reached, which
shows the ratio is at least that factor.

    python benchmarks/time_to_quality.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loops import OriginalLoop, Problem, PromptgradLoop, synchronize  # noqa: E402
from speed import with_dtype  # noqa: E402

from promptgrad.config import BUNDLED_DATA, BUNDLED_MODEL, TrainConfig  # noqa: E402
from promptgrad.model.precision import DTYPES, choose_precision, cpu_description, resolve_device  # noqa: E402
from promptgrad.quiet import quiet_libraries  # noqa: E402
from promptgrad.readout.evaluation import PromptScore, score_prompt  # noqa: E402
from promptgrad.train.schedule import learning_rate  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=BUNDLED_MODEL)
    p.add_argument("--data", default=BUNDLED_DATA)
    p.add_argument("--target", type=float, default=0.40, help="fraction below the hand-written test loss to reach")
    p.add_argument("--test-pairs", type=int, default=256)
    p.add_argument("--eval-every", type=int, default=10, help="promptgrad steps between evaluations")
    p.add_argument("--budget-factor", type=float, default=5.0)
    p.add_argument("--baseline-evals", type=int, default=8, help="evaluations spread over a baseline's time budget")
    p.add_argument("--baselines", default="original-bf16,original-fp32")
    p.add_argument("--device", default="auto")
    p.add_argument("--json")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_libraries()
    defaults = TrainConfig().resolved()  # the default job: the antonyms task's template and hand-written prompts
    device = resolve_device(args.device)
    problem = Problem.load(
        args.model,
        args.data,
        defaults.problem.template,
        defaults.problem.prompt_len,
        defaults.learning.batch_size,
        defaults.learning.seed,
        device,
    )
    precision = choose_precision(defaults.machine.precision, device, problem.fp32.hidden_size).precision
    fp32 = problem.fp32
    test = problem.split.test[: args.test_pairs]
    hand = problem.hand_written(defaults.problem.baseline_text[0], test)
    target = (1 - args.target) * hand.test_loss
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    print(
        f"model {args.model} on {device} ({where}); promptgrad's auto precision here: {precision}; hand-written test loss {hand.test_loss:.4f} on {len(test)} test pairs; "
        f"target {target:.4f} ({args.target:.0%} below)",
        flush=True,
    )

    def score(loop) -> PromptScore:
        return score_prompt(fp32, problem.encoder(loop.scoring_template), test, loop.vectors().to(device), 64)

    def run(loop, lr_at, max_steps: int | None, budget_s: float | None, eval_at) -> dict:
        """Train until the target is met (checked when eval_at(step, seconds) says so) or out of steps/time."""
        seconds, examples, step, curve = 0.0, 0, 0, []
        loop.forward_backward(0)  # warm-up, untimed, as in speed.py
        last_eval_s = 0.0
        while True:
            t0 = time.perf_counter()
            loop.step(step, lr_at(step))
            synchronize(device)
            seconds += time.perf_counter() - t0
            examples += loop.batch_examples(step)
            step += 1
            out_of_steps = max_steps is not None and step >= max_steps
            out_of_time = budget_s is not None and seconds >= budget_s
            if eval_at(step, seconds - last_eval_s) or out_of_steps or out_of_time:
                s = score(loop)
                last_eval_s = seconds
                curve.append({"step": step, "train_seconds": seconds, "test_loss": s.test_loss, "accuracy": s.accuracy})
                print(
                    f"  {loop.name}: step {step}, {seconds:.0f} s training, test loss {s.test_loss:.4f}, "
                    f"accuracy {s.accuracy:.1%}",
                    flush=True,
                )
                if s.test_loss <= target or out_of_steps or out_of_time:
                    return {
                        "recipe": loop.name,
                        "reached": s.test_loss <= target,
                        "steps": step,
                        "train_seconds": seconds,
                        "examples_per_s": examples / seconds,
                        "test_loss": s.test_loss,
                        "accuracy": s.accuracy,
                        "curve": curve,
                    }

    ours = PromptgradLoop(problem, with_dtype(fp32, DTYPES[precision]), f"promptgrad ({precision})")
    print(
        f"{ours.name}: lr {defaults.learning.lr} {defaults.learning.schedule}, warm-up {defaults.learning.warmup_steps}, batch {defaults.learning.batch_size}, "
        f"{defaults.learning.steps} steps",
        flush=True,
    )
    mine = run(
        ours,
        lambda k: learning_rate(
            k, defaults.learning.steps, defaults.learning.lr, defaults.learning.warmup_steps, defaults.learning.schedule
        ),
        defaults.learning.steps,
        None,
        lambda step, since: step % args.eval_every == 0,
    )
    results = [mine]
    if not mine["reached"]:
        print(
            f"promptgrad did not reach the target in its {defaults.learning.steps} default steps; the baselines get "
            f"{args.budget_factor:g} x its whole training time",
            flush=True,
        )
    budget = args.budget_factor * mine["train_seconds"]
    for name in [b.strip() for b in args.baselines.split(",") if b.strip()]:
        autocast = torch.bfloat16 if name.endswith("bf16") else None
        loop = OriginalLoop(dataclasses.replace(problem, batch_size=64), autocast, name)
        print(
            f"{name}: lr 1e-3 constant, batch 64, budget {budget:.0f} s of training "
            f"({args.budget_factor:g} x promptgrad's {mine['train_seconds']:.0f} s)",
            flush=True,
        )
        results.append(
            run(loop, lambda k: 1e-3, None, budget, lambda step, since: since >= budget / args.baseline_evals)
        )

    print()
    print(
        f"{'recipe':<22}{'reached':>8}{'steps':>7}{'train s':>9}{'ex/s':>8}{'test loss':>11}{'accuracy':>10}{'time ratio':>12}"
    )
    for r in results:
        ratio = r["train_seconds"] / mine["train_seconds"]
        ratio_text = f"{ratio:.1f}x" if r["reached"] else f">{ratio:.1f}x"
        print(
            f"{r['recipe']:<22}{'yes' if r['reached'] else 'no':>8}{r['steps']:>7}{r['train_seconds']:>9.0f}"
            f"{r['examples_per_s']:>8.2f}{r['test_loss']:>11.4f}{r['accuracy']:>10.1%}{ratio_text:>12}"
        )
    print(f"{'hand-written':<22}{'':>8}{'':>7}{'':>9}{'':>8}{hand.test_loss:>11.4f}{hand.accuracy:>10.1%}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"args": vars(args), "hand_written": dataclasses.asdict(hand), "target": target, "results": results},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
