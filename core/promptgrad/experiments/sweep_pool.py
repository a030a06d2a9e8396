"""The local pool of a sweep: each run's next step as a subprocess `python -m promptgrad train`, on this
machine's devices, and the sweep's display.

One run per GPU at a time (the child sees only its GPU: CUDA_VISIBLE_DEVICES), all GPUs for one run
under --device-map auto, or on a CPU one run after the other, or `--jobs N` at once with the cores split
between them (each run's `threads`). A child's crash is that run's failure: the pool records why (the
`promptgrad: error:` line of its log) and goes on. Children stay in the sweep's process group, so a
terminal's ctrl+c reaches them as it reaches a lone run, and a kill of the group ends them all.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from promptgrad.errors import UserError
from promptgrad.experiments.sweep import LOGS, Action, Point, Sweep, clear_for_restart, open_folder, train_command
from promptgrad.files import read_bytes
from promptgrad.signals import NAMES, detach_from_terminal, on_signals
from promptgrad.store.run_folder import METRICS, EventFollower, summarize

POLL_SECONDS = 0.25  # how often the pool looks at its runs (their exit, their latest step)


# ---- one run as a subprocess --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a run of the sweep ended: finished, kept (finished before), stopped (with a checkpoint), failed
    or refused; `detail` is its result or what went wrong."""

    name: str
    state: str
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.state in ("finished", "kept")


def log_path(sweep: Sweep, point: Point) -> Path:
    return sweep.folder / LOGS / f"{point.name}.log"


@dataclass
class Launched:
    point: Point
    process: subprocess.Popen
    log: Path
    log_start: int  # where this attempt's output begins in the log


def launch(
    sweep: Sweep,
    point: Point,
    action: Action,
    env: dict[str, str] | None = None,
    threads: int = 0,
    sweep_lock: int | None = None,
) -> Launched:
    """Start the run's next step as `python -m promptgrad train`, its output appended to its log. The child
    stays in the sweep's process group, so a terminal's ctrl+c reaches it as it reaches a lone run. It
    inherits the descriptor of the sweep's lock (`sweep_lock`): the lock is then held while the run lives,
    so a sweep killed alone and started again at once, before the run has taken its own folder's lock,
    is refused instead of starting the same run a second time. The sweep folder, the run folder and logs/
    are opened here (again: a job may start long after the sweep looked) without following a link, and
    the clean-up and the log go through their descriptors."""
    command = train_command(sweep, point, action, threads)
    path = log_path(sweep, point)
    with open_folder(sweep.folder) as folder:
        try:
            with folder.sub(point.name) as run:  # a link in the run folder's place is refused, never written through
                started_before = run.exists("config.toml")
        except FileNotFoundError:
            started_before = False
        if action.kind == "start" and started_before:
            clear_for_restart(sweep.folder / point.name, folder)
        with folder.sub(LOGS, create=True) as logs:
            log_file = logs.open_append(path.name)
    with log_file as log:
        start = log.seek(0, os.SEEK_END)
        how = {
            "resume": f"resuming ({action.why})",
            "start": f"starting afresh ({action.why})" if action.why else "starting",
        }[action.kind]
        log.write(
            f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} promptgrad sweep {sweep.name}: {how}\n{shlex.join(command)}\n".encode()
        )
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            pass_fds=() if sweep_lock is None else (sweep_lock,),
        )
    return Launched(point, process, path, start)


def outcome_of(sweep: Sweep, launched: Launched) -> Outcome:
    """How the run ended: its folder's record says whether it finished or stopped; a failure's reason is
    the `promptgrad: error:` line of its output (or its last line)."""
    code, name = launched.process.returncode, launched.point.name
    summary = summarize(sweep.folder / name)
    if code == 0 and summary.state == "finished":
        result = f": test loss {summary.final_test_loss:.4f}" if summary.final_test_loss is not None else ""
        return Outcome(name, "finished", f"at step {summary.step}{result}")
    if code == 0 and summary.state == "stopped":
        return Outcome(name, "stopped", f"at step {summary.step}, with a checkpoint")
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return Outcome(name, "failed", f"({how}): {last_error(launched.log, launched.log_start)}; log {launched.log}")


def last_error(log: Path, start: int) -> str:
    try:
        lines = [
            line.strip() for line in read_bytes(log)[start:].decode("utf-8", "replace").splitlines() if line.strip()
        ]
    except OSError:
        return "its log cannot be read"
    errors = [line for line in lines if "promptgrad: error:" in line]
    text = errors[-1].split("promptgrad: error:", 1)[1].strip() if errors else (lines[-1] if lines else "no output")
    return text[:300]


class RunWatch:
    """A running run's progress, read from its metrics.jsonl as it grows (the same record a viewer reads)."""

    def __init__(self, run: Path):
        self.follower = EventFollower(run / METRICS)
        self.step, self.total = 0, 0

    def poll(self) -> bool:
        """Read what is new; whether the step moved."""
        try:
            events, _, _ = self.follower.poll()
        except (OSError, UserError):
            return False
        before = self.step
        for event in events:
            if event.kind == "started":
                self.total, self.step = event.total_steps, event.start_step
            elif event.kind == "step":
                self.step = event.step
            elif event.kind == "extended":
                self.total = event.total_steps
        return self.step != before


# ---- the display ------------------------------------------------------------------------------------------


class SweepReport:
    """A line per run start and end, counted ("run 3/12 capitals-seed1: started"); each running run's step
    as a bar on a terminal, or as a line every tenth of its steps in a log."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.live = self.console.is_terminal
        if not self.live:
            self.console.width = 200
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.bars: dict[str, Any] = {}
        self.shown: dict[str, int] = {}

    def __enter__(self) -> SweepReport:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        try:
            (self.progress.console if self.live else self.console).print(escape(text), highlight=False)
        except OSError:  # the terminal went away before its SIGHUP: go on without it
            detach_from_terminal()

    def step(self, name: str, watch: RunWatch) -> None:
        if self.live:
            if name not in self.bars:
                self.bars[name] = self.progress.add_task(name, total=watch.total or None)
            self.progress.update(self.bars[name], completed=watch.step, total=watch.total or None)
        elif watch.total and watch.step - self.shown.get(name, 0) >= max(1, watch.total // 10):
            self.shown[name] = watch.step
            self.say(f"  {name}: step {watch.step}/{watch.total}")

    def ended(self, name: str) -> None:
        if name in self.bars:
            self.progress.remove_task(self.bars.pop(name))
        self.shown.pop(name, None)


# ---- the local pool ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """Where one run at a time goes: a GPU (its CUDA_VISIBLE_DEVICES), all of them, or a share of the CPU."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    threads: int = 0  # CPU threads for the run (0: its own setting)


def visible_gpus() -> list[str]:
    """The ids of the GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


def local_slots(sweep: Sweep, jobs: int | None, gpus: list[str], cores: int) -> tuple[list[Slot], str]:
    """One slot per GPU (or per --jobs of them; all GPUs in one slot for --device-map auto, which splits
    a model over them), else --jobs slots (default 1) sharing the CPU's cores; and a line saying so."""
    settings = [p.settings for p in sweep.points]
    on_cpu = not gpus or all(s.get("device") == "cpu" for s in settings)
    if not on_cpu:
        if any(s.get("device_map") == "auto" for s in settings):
            return [
                Slot("GPUs " + ",".join(gpus), {"CUDA_VISIBLE_DEVICES": ",".join(gpus)})
            ], f"one run at a time over all {len(gpus)} GPUs (--device-map auto)"
        chosen = gpus[: jobs or len(gpus)]
        capped = f" (--jobs {jobs}: one run per GPU, and there are {len(gpus)})" if jobs and jobs > len(gpus) else ""
        return [
            Slot(f"GPU {g}", {"CUDA_VISIBLE_DEVICES": g}) for g in chosen
        ], f"one run per GPU at a time, on {len(chosen)} GPU{'s' if len(chosen) > 1 else ''}{capped}"
    n = jobs or 1
    if n == 1:
        return [Slot("CPU")], "one run at a time on the CPU"
    threads = 0 if any("threads" in s for s in settings) else max(1, cores // n)
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    share = f", {threads} of {cores} cores each" if threads else ""
    crowded = (
        f"; warning: --jobs {n} is more than the {cores} cores here, so the runs share cores (none faster, "
        f"all slower; --jobs {cores} or fewer is best)"
        if n > cores
        else ""
    )
    return [Slot(f"CPU {i}", env, threads) for i in range(n)], f"{n} runs at a time on the CPU{share}{crowded}"


def run_local(
    sweep: Sweep,
    todo: list[tuple[int, Point, Action]],
    slots: list[Slot],
    report: SweepReport,
    sweep_lock: int | None = None,
) -> tuple[list[Outcome], str]:
    """Run `todo` on the slots, each run's next step as a subprocess; returns the outcomes and the name
    of the signal that stopped the sweep ("" if none came). A signal (ctrl+c, SIGTERM, SIGHUP) starts
    no further runs and is passed on to the running ones as SIGTERM, which a run takes as ctrl+c (a
    checkpoint, then exit), once: a terminal's ctrl+c has reached them already, and a second SIGINT would
    abort them."""
    pending, free = deque(todo), list(range(len(slots)))
    running: dict[int, tuple[int, Launched, RunWatch]] = {}  # slot -> (index, run, its progress)
    outcomes: list[Outcome] = []
    stopping = {"by": ""}
    total = len(sweep.points)

    def on_signal(signum: int) -> None:
        if stopping["by"]:
            return
        stopping["by"] = NAMES.get(signum, str(signum))
        report.say(
            f"{stopping['by']}: stopping the running runs (each saves a checkpoint); a second ctrl+c aborts them"
        )
        for _, launched, _ in list(running.values()):
            launched.process.send_signal(signal.SIGTERM)

    with on_signals(on_signal):
        try:
            while (pending and not stopping["by"]) or running:
                while pending and free and not stopping["by"]:
                    index, point, action = pending.popleft()
                    slot = free.pop(0)
                    try:
                        launched = launch(sweep, point, action, slots[slot].env, slots[slot].threads, sweep_lock)
                    except (UserError, OSError) as e:  # its folder refused (a planted link), its log unwritable
                        free.append(slot)
                        outcomes.append(Outcome(point.name, "failed", f"(not started): {e}"))
                        report.say(f"run {index}/{total} {point.name}: failed (not started): {e}")
                        continue
                    running[slot] = (index, launched, RunWatch(sweep.folder / point.name))
                    how = (
                        f"resumed ({action.why})"
                        if action.kind == "resume"
                        else "started" + (f" afresh ({action.why})" if action.why else "")
                    )
                    where = f" on {slots[slot].label}" if len(slots) > 1 or slots[slot].label.startswith("GPU") else ""
                    report.say(f"run {index}/{total} {point.name}: {how}{where}")
                    if stopping["by"]:  # a signal came while it was being started
                        launched.process.send_signal(signal.SIGTERM)
                for slot, (index, launched, watch) in list(running.items()):
                    ended = launched.process.poll() is not None
                    if watch.poll() or ended:
                        report.step(launched.point.name, watch)
                    if ended:
                        del running[slot]
                        free.append(slot)
                        report.ended(launched.point.name)
                        outcome = outcome_of(sweep, launched)
                        outcomes.append(outcome)
                        report.say(f"run {index}/{total} {outcome.name}: {outcome.state} {outcome.detail}")
                time.sleep(POLL_SECONDS)
        finally:  # a bug here must not orphan runs mid-step: stop them cleanly and wait
            for _, launched, _ in running.values():
                launched.process.send_signal(signal.SIGTERM)
            for _, launched, _ in running.values():
                launched.process.wait()
    return outcomes, stopping["by"]
