"""The prepared device check: everything worth measuring in the few minutes a GPU is lent, written into one
folder. Run it through benchmarks/gpu_check.sh (which makes promptgrad importable from a copied tree).

    python benchmarks/gpu_check.py --out DIR            # on a GPU: under 8 minutes
    python benchmarks/gpu_check.py --out DIR --tiny     # anywhere: the same steps at a tiny shape, seconds (CI)

What it writes to DIR:
  device.json        the device, driver, CUDA and torch versions, the CPU, what precision auto picks
  checks.json        benchmarks/device_checks.py on the device in its compute dtype (loss against Hugging
                     Face's, prefix cache, a training step, resume, evaluation, GCG scoring, host syncs)
  peaks.json         the best matrix product measured, fp32 and bf16
  speed.json/.txt    benchmarks/speed.py at the gpt2-large shape in bf16, batch 64: promptgrad against the
                     original-style loop (fp32, bf16 autocast) and PEFT's prompt tuning, FLOP/s against the peak
  epoch.json         seconds per epoch of the bundled antonyms' training split at the original experiment's
                     settings (gpt2-large shape, bf16, batch 64), promptgrad against the original loop in bf16
  summary.md         all of the above in a few lines, for the GPU table of docs/results.md
  log.txt            what it printed

The models are random weights of the named shapes (benchmarks/shapes.py): speed does not depend on the
weights' values; losses and accuracies in speed.json mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from promptgrad.config import TrainConfig  # noqa: E402
from promptgrad.model.precision import choose_precision, cpu_description, native_bf16, resolve_device  # noqa: E402
from promptgrad.quiet import quiet_libraries  # noqa: E402


def device_info(device: torch.device) -> dict:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_description(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name,
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            native_bf16=native_bf16(device),
        )
        try:
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit", "--format=csv"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia_smi"] = f"not run: {e}"
    info["auto_precision_gpt2_large"] = choose_precision("auto", device, 1280).__dict__
    return info


def epoch_seconds(model: str, data: str, batch_size: int, device: torch.device, max_steps: int) -> dict:
    """Seconds for one epoch of the training split (timed over up to `max_steps` steps, scaled to the epoch),
    promptgrad's step in bf16 against the original loop under bf16 autocast; same batches."""
    import speed
    from loops import OriginalLoop, Problem, timed_steps

    defaults = TrainConfig().resolved()  # the default job: the antonyms task's template and hand-written prompts
    problem = Problem.load(
        model, data, defaults.problem.template, defaults.problem.prompt_len, batch_size, defaults.learning.seed, device
    )
    steps_per_epoch = math.ceil(len(problem.split.train) / batch_size)
    steps = min(steps_per_epoch, max_steps)
    result = {
        "train_pairs": len(problem.split.train),
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "timed_steps": steps,
    }
    precision = choose_precision("auto", device, problem.fp32.hidden_size).precision  # as `train` would decide
    loops = (
        ("promptgrad", lambda: speed.build("promptgrad", problem, precision)[0]),
        ("original-bf16-autocast", lambda: OriginalLoop(problem, torch.bfloat16, "original-bf16")),
    )
    for name, make in loops:  # one loop's model copy at a time
        seconds, examples, _ = timed_steps(make(), steps, lambda k: 1e-3, device)
        result[name] = {"seconds_per_epoch": seconds / steps * steps_per_epoch, "examples_per_s": examples / seconds}
    result["promptgrad_speedup"] = (
        result["original-bf16-autocast"]["seconds_per_epoch"] / result["promptgrad"]["seconds_per_epoch"]
    )
    return result


def summary(out: Path, info: dict, checks: dict, speed_rows: list[dict], peaks: dict, epoch: dict, shape: str) -> str:
    lines = [
        f"# Device check: {info.get('name', info['device'])}",
        "",
        f"torch {info['torch']}, CUDA {info.get('cuda', '-')}, CPU {info['cpu']}",
        "",
        "| check | ok | measured |",
        "| --- | --- | --- |",
    ]
    for name, result in checks.items():
        shown = {k: v for k, v in result.items() if k not in ("ok", "traceback", "losses")}
        lines.append(f"| {name} | {'yes' if result.get('ok') else '**no**'} | {json.dumps(shown)[:160]} |")
    lines += [
        "",
        f"Speed at the {shape} shape (random weights), bf16 peak {peaks.get('bf16', 0) / 1e12:.1f} TFLOP/s, "
        f"fp32 {peaks.get('fp32', 0) / 1e12:.1f}:",
        "",
        "| variant | examples/s | promptgrad is | TFLOP/s | of peak |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    base = speed_rows[0]["examples_per_s"] if speed_rows else float("nan")
    for row in speed_rows:
        tflops = row.get("flop_per_s", float("nan")) / 1e12
        lines.append(
            f"| {row['variant']} ({row['precision']}) | {row['examples_per_s']:.1f} | {base / row['examples_per_s']:.2f}x | "
            f"{tflops:.1f} | {row.get('fraction_of_peak', float('nan')):.0%} |"
        )
    if epoch:
        lines += [
            "",
            f"One epoch of {epoch['train_pairs']} pairs at batch {epoch['batch_size']}: promptgrad "
            f"{epoch['promptgrad']['seconds_per_epoch']:.2f} s, the original loop in bf16 autocast "
            f"{epoch['original-bf16-autocast']['seconds_per_epoch']:.2f} s ({epoch['promptgrad_speedup']:.1f}x).",
        ]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to write everything into")
    p.add_argument("--tiny", action="store_true", help="a tiny shape and a few steps: seconds, on any machine (CI)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default="antonyms")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quiet_libraries()
    log = io.StringIO()

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")

    device = resolve_device(args.device)
    shape = "shape:tiny" if args.tiny else "shape:gpt2-large"
    batch = 8 if args.tiny else 64
    started = time.monotonic()
    info = device_info(device)
    (out / "device.json").write_text(json.dumps(info, indent=2))
    say(f"device: {info.get('name', info['device'])}; torch {info['torch']}; CPU {info['cpu']}")

    # 1. the checks, in the device's compute dtype (bf16 where it has it)
    from device_checks import run_all
    from shapes import shape_model

    dtype = torch.bfloat16 if (device.type == "cuda" and native_bf16(device)) else torch.float32
    checks = run_all(shape_model("shape:tiny" if args.tiny else "shape:gpt2", device, dtype), out / "check-runs")
    (out / "checks.json").write_text(json.dumps(checks, indent=2, default=str))
    say("checks: " + ", ".join(f"{k} {'ok' if v.get('ok') else 'FAILED'}" for k, v in checks.items()))

    # 2. matrix-product peaks, 3. the speed benchmark, 4. an epoch: each guarded so one failure leaves the rest
    from loops import matmul_peak

    peaks = {name: matmul_peak(device, d) for name, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    (out / "peaks.json").write_text(json.dumps(peaks, indent=2))
    say("peaks: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items()))
    speed_rows: list[dict] = []
    try:
        import speed

        # promptgrad in the precision auto picks (bf16 on a GPU with bf16), then the alternatives
        variants = (
            "promptgrad,original-fp32,original-bf16,peft-bf16,peft-fp32"
            if device.type == "cuda"
            else "promptgrad,original-fp32,original-bf16,peft-fp32"
        )
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            speed.main(
                [
                    "--model",
                    shape,
                    "--data",
                    args.data,
                    "--batch-size",
                    str(batch),
                    "--steps",
                    "3" if args.tiny else "10",
                    "--test-pairs",
                    "16" if args.tiny else "128",
                    "--variants",
                    variants,
                    "--device",
                    str(device.type),
                    "--json",
                    str(out / "speed.json"),
                ]
            )
        (out / "speed.txt").write_text(printed.getvalue())
        say(printed.getvalue())
        speed_rows = json.loads((out / "speed.json").read_text())["results"]
    except Exception:
        say("speed benchmark failed:\n" + traceback.format_exc())
    epoch: dict = {}
    try:
        epoch = epoch_seconds(shape, args.data, batch, device, 3 if args.tiny else 40)
        (out / "epoch.json").write_text(json.dumps(epoch, indent=2))
        say(f"epoch: {json.dumps(epoch)}")
    except Exception:
        say("epoch timing failed:\n" + traceback.format_exc())
    say(summary(out, info, checks, speed_rows, peaks, epoch, shape))
    say(f"device check done in {time.monotonic() - started:.0f} s; results in {out}")
    (out / "log.txt").write_text(log.getvalue())
    return 0 if all(v.get("ok") for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
