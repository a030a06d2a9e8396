"""How quickly promptgrad-tui answers, measured where a user sees it: at the terminal.

The app runs on a pseudo-terminal, as in an SSH session; this script types into it and timestamps what
the app writes back (it never asks the app itself). Two figures:

  first point   ctrl+r -> the first point drawn on the loss chart (step 1's training loss, whose legend
                entry appears with it; the baselines are scored right after step 1), and -> the first
                training step the status line shows
  key latency   during training, ctrl+n (next pane) -> the first frame that shows the new pane's title,
                repeated; reported as median, p95 and max

    python benchmarks/tui_latency.py                          # the bundled SmolLM2-135M-Instruct (Q4_1), 100x30
    python benchmarks/tui_latency.py --model PATH --presses 40 --size 160x48

The model cache should be warm (run `promptgrad train --steps 1` once first): de-quantising the bundled
model the first time takes longer than everything measured here.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import random
import re
import signal
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from promptgrad.config import BUNDLED_MODEL, TrainConfig  # noqa: E402
from promptgrad.model.precision import cpu_description  # noqa: E402

TITLES = {"config": "Configuration", "chart": "Loss", "predictions": "Predictions", "nearest": "Nearest"}
ORDER = list(TITLES)


class Terminal:
    """The app on a pseudo-terminal; everything it writes, with the time it arrived."""

    def __init__(self, argv: list[str], columns: int, rows: int, env: dict[str, str]):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ.update(env)
            os.execv(argv[0], argv)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.chunks: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.chunks.append((time.monotonic(), data))

    def type(self, keys: bytes) -> float:
        at = time.monotonic()
        os.write(self.fd, keys)
        return at

    def wait_for(self, pattern: str, since: float, timeout: float) -> float:
        """When text matching `pattern` (a regular expression) first appeared in what the app wrote after
        `since`. Each chunk is searched once (with the end of the one before, for matches across two), so
        the waiting takes little CPU from the app it measures."""
        needle, deadline = re.compile(pattern.encode()), time.monotonic() + timeout
        done, tail = 0, b""
        while time.monotonic() < deadline:
            with self.lock:
                fresh = self.chunks[done:]
            for at, data in fresh:
                done += 1
                if at < since:
                    continue
                if needle.search(tail + data):
                    return at
                tail = (tail + data)[-256:]
            time.sleep(0.005)
        raise TimeoutError(f"{pattern!r} did not appear within {timeout} s")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                time.sleep(0.1)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=BUNDLED_MODEL)
    p.add_argument("--data", default="antonyms")
    p.add_argument("--size", default="100x30", help="COLUMNSxROWS; below 120 columns the panes are tabs")
    p.add_argument("--presses", type=int, default=100)
    p.add_argument("--steps", type=int, default=400, help="long enough to outlast the measurement")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    columns, rows = map(int, args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="tui-latency-"))
    config = folder / "run.toml"
    # the antonyms task's template and hand-written prompts, whatever --data holds: the figures are latencies
    TrainConfig(
        task="antonyms",
        model=args.model,
        data=args.data,
        steps=args.steps,
        name="latency",
        runs_dir=str(folder / "runs"),
        checkpoint_every=0,
        checkpoint_minutes=0,
    ).save(config)
    argv = [sys.executable, "-m", "promptgrad_tui.app", "--config", str(config)]
    terminal = Terminal(argv, columns, rows, {"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)})
    load_before = os.getloadavg()  # the machine may be shared: the figures mean little without its load
    try:
        terminal.wait_for("Configuration", 0, timeout=120)
        time.sleep(1.0)
        started = terminal.type(b"\x12")  # ctrl+r
        first_eval = terminal.wait_for(" train EMA", started, timeout=300) - started  # its legend entry
        first_step = (
            terminal.wait_for(r"step [1-9][0-9]*/", started, timeout=600) - started
        )  # the first the screen shows
        time.sleep(2.0)
        pane = "chart" if columns < 120 else "config"  # a narrow screen shows the chart once a run starts
        latencies = []
        for _ in range(args.presses):
            pane = ORDER[(ORDER.index(pane) + 1) % len(ORDER)]
            pressed = terminal.type(b"\x0e")  # ctrl+n
            latencies.append(terminal.wait_for(TITLES[pane], pressed, timeout=30) - pressed)
            time.sleep(0.3 + random.random() * 0.4)  # presses at a person's pace, not in step with the redraw timer
        with terminal.lock:
            shown = re.findall(
                rb"([0-9]+\.[0-9]) ex/s", b"".join(data for at, data in terminal.chunks if at >= pressed - 5)
            )
        rate = (
            float(shown[-1]) if shown else float("nan")
        )  # what the status line said at the end: training speed meanwhile
    finally:
        load_after = os.getloadavg()
        terminal.close()
    figures = {
        "load_average_1_5_15_min": {"before": load_before, "after": load_after},
        "cpu": cpu_description(),
        "model": args.model,
        "size": args.size,
        "first_evaluation_s": first_eval,
        "first_step_s": first_step,
        "key_latency_ms": {
            "median": 1000 * statistics.median(latencies),
            "p95": 1000 * percentile(latencies, 0.95),
            "max": 1000 * max(latencies),
            "n": len(latencies),
        },
        "examples_per_s_during": rate,
    }
    print(f"promptgrad-tui on {figures['cpu']}, model {args.model}, terminal {args.size}")
    print(
        f"ctrl+r -> first point on the chart (step 1's training loss): {first_eval:.1f} s; -> first step: {first_step:.1f} s"
    )
    k = figures["key_latency_ms"]
    print(
        f"ctrl+n -> new pane on screen, during training, {k['n']} presses: median {k['median']:.0f} ms, "
        f"p95 {k['p95']:.0f} ms, max {k['max']:.0f} ms; training went on at {rate:.1f} examples/s"
    )
    print(
        f"load average (1, 5, 15 min) before: {' '.join(f'{v:.2f}' for v in load_before)}, after: "
        f"{' '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} CPUs (this process's own run adds about 1-2)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
