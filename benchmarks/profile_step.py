"""Where a training step's time goes: torch.profiler over a few steps of promptgrad's loop and of the
original-style loop (see loops.py), on the same batches, the most expensive operators first.

    python benchmarks/profile_step.py [--model smollm2-135m-instruct-q4_1] [--batch-size 16] [--steps 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loops import OriginalLoop, Problem, PromptgradLoop  # noqa: E402

from promptgrad.config import BUNDLED_DATA, BUNDLED_MODEL, TrainConfig  # noqa: E402
from promptgrad.model.precision import cpu_description, resolve_device  # noqa: E402
from promptgrad.quiet import quiet_libraries  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=BUNDLED_MODEL)
    p.add_argument("--data", default=BUNDLED_DATA)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rows", type=int, default=12, help="operators listed per loop")
    args = p.parse_args(argv)
    quiet_libraries()
    defaults = TrainConfig().resolved()  # the default job: the antonyms task's template and hand-written prompts
    device = resolve_device("auto")
    problem = Problem.load(
        args.model,
        args.data,
        defaults.problem.template,
        defaults.problem.prompt_len,
        args.batch_size,
        defaults.learning.seed,
        device,
    )
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    print(f"model {args.model} on {device} ({where}), torch {torch.__version__}, fp32")
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []
    )
    for loop in (PromptgradLoop(problem, problem.fp32), OriginalLoop(problem, None, "original-fp32")):
        loop.forward_backward(0)  # warm-up
        with torch.profiler.profile(activities=activities) as profile:
            for k in range(args.steps):
                loop.step(k, 1e-2)
        print(f"\n{loop.name}: {args.steps} steps of {args.batch_size} pairs")
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
