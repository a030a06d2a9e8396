"""Does training inside promptgrad-tui run as fast as the command line? The same run, alternately in both.

The TUI trains in a background thread beside its event loop; this script starts the same configuration
with `promptgrad train` and with promptgrad-tui on a pseudo-terminal (ctrl+r, no keys after that), in
turns, and reads each run's training speed from its own metrics.jsonl (the last step's examples/s, a
running average over steps, evaluation excluded). It prints both and their ratio per round.

    python benchmarks/tui_throughput.py                 # the bundled SmolLM2-135M-Instruct (Q4_1), 30 steps, 2 rounds
    python benchmarks/tui_throughput.py --steps 60 --rounds 3
    python benchmarks/tui_throughput.py --probe         # the TUI run also answers the probe box once

Keys pressed during training cost the run more: see tui_latency.py, whose figure is taken while a key
is pressed every half second.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_latency import Terminal  # noqa: E402

from promptgrad.config import BUNDLED_MODEL, TrainConfig  # noqa: E402
from promptgrad.events import Step  # noqa: E402
from promptgrad.model.precision import cpu_description  # noqa: E402
from promptgrad.store.run_folder import RunFolder  # noqa: E402


def speed(run: Path) -> float:
    return [e for e in RunFolder.open(run).events() if isinstance(e, Step)][-1].examples_per_s


def in_cli(config: Path, runs: Path) -> float:
    subprocess.run(
        [sys.executable, "-m", "promptgrad", "train", "--config", str(config), "--runs-dir", str(runs)],
        check=True,
        capture_output=True,
    )
    return speed(runs / "throughput")


def in_tui(config: Path, runs: Path, steps: int, probe: bool) -> float:
    TrainConfig.load(config).replace(runs_dir=str(runs)).save(config.with_name("tui.toml"))
    argv = [sys.executable, "-m", "promptgrad_tui.app", "--config", str(config.with_name("tui.toml"))]
    terminal = Terminal(argv, 100, 30, {"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"})
    try:
        terminal.wait_for("Configuration", 0, timeout=120)
        time.sleep(1.0)
        started = terminal.type(b"\x12")  # ctrl+r
        if probe:  # try the prompt once, early in the run: f2 goes to the probe box
            terminal.wait_for(r"step ([3-9]|[1-9][0-9]+)/", started, timeout=600)
            asked = terminal.type(b"\x1bOQ")
            time.sleep(0.5)
            terminal.type(b"hot\r")
            terminal.wait_for("learned:", asked, timeout=120)
        terminal.wait_for(rf"step {steps}/", started, timeout=1800)
    finally:
        terminal.close()  # SIGTERM: the run is finished by then; the TUI exits
    return speed(runs / "throughput")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=BUNDLED_MODEL)
    p.add_argument("--data", default="antonyms")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--probe", action="store_true", help="in the TUI, ask the probe box once, from step 3 on")
    args = p.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="tui-throughput-"))
    config = folder / "run.toml"
    # no evaluation or checkpoint during the steps: the figure is training speed alone
    # the antonyms task's template and hand-written prompts, whatever --data holds: the figure is a speed
    TrainConfig(
        task="antonyms",
        model=args.model,
        data=args.data,
        steps=args.steps,
        name="throughput",
        eval_every=0,
        checkpoint_every=0,
        checkpoint_minutes=0,
    ).save(config)
    print(
        f"{args.model}, {args.steps} steps{', probe asked once in the TUI' if args.probe else ''}, on {cpu_description()}",
        flush=True,
    )
    for round_ in range(1, args.rounds + 1):
        cli = in_cli(config, folder / f"cli-{round_}")
        tui = in_tui(config, folder / f"tui-{round_}", args.steps, args.probe)
        print(
            f"round {round_}: command line {cli:.1f} examples/s, TUI {tui:.1f} examples/s, TUI/CLI {tui / cli:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
