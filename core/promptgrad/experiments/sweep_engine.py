"""`promptgrad sweep --engine submitit`: each run of a sweep as a job of submitit, on Slurm or on this machine.

submitit (the optional extra `promptgrad[slurm]`) pickles a callable per job and runs it where the
scheduler puts it: on a Slurm cluster where `srun` is on the PATH, otherwise (or with
`--engine-cluster local`) as a local process, which tests the same path on one machine. The job is
`SweepJob`: it decides the run's next step when it starts (sweep.next_action: kept, resumed from its
checkpoint, or started), runs `python -m promptgrad train` as the local pool does, and returns how
it ended. When submitit signals the job before its time limit (or a preemption, where the cluster
signals those), `__submitit_checkpoint__` stops the run cleanly (a checkpoint, as on ctrl+c) and
hands submitit the same job to requeue, which then resumes the run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from promptgrad.errors import UserError
from promptgrad.experiments.sweep import Action, Point, Sweep, next_action
from promptgrad.experiments.sweep_pool import Launched, Outcome, RunWatch, SweepReport, launch, outcome_of
from promptgrad.signals import NAMES, on_signals
from promptgrad.store.run_folder import is_locked

DEFAULT_TIMEOUT_MIN = 24 * 60  # submitit's own default is 5 minutes (2 locally): too short for most runs
STOP_SECONDS = 120  # how long a stopped run may take to write its checkpoint before the sweep stops waiting


def require_submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("--engine submitit needs submitit: pip install 'promptgrad[slurm]'") from None
    return submitit


class SweepJob:
    """One run of a sweep as a submitit job (pickled with the sweep's plan; no process state)."""

    def __init__(self, sweep: Sweep, point: Point):
        self.sweep, self.point = sweep, point
        self.launched: Launched | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "point": self.point, "launched": None}

    def __call__(self) -> Outcome:
        action = next_action(self.sweep.folder / self.point.name)  # decided now: a requeued job resumes
        if action.kind not in ("start", "resume"):
            return Outcome(self.point.name, "kept" if action.kind == "kept" else "refused", action.why)
        self.launched = launch(self.sweep, self.point, action)
        while self.launched.process.poll() is None:
            try:
                self.launched.process.wait()
            except KeyboardInterrupt:  # submitit's local cancel: stop the run cleanly, as ctrl+c would
                self.launched.process.send_signal(signal.SIGTERM)
        return outcome_of(self.sweep, self.launched)

    def __submitit_checkpoint__(self, *args: Any, **kwargs: Any):
        """Before a time limit (or a preemption): the run saves a checkpoint and ends; the same job is
        requeued and resumes it."""
        from submitit.helpers import DelayedSubmission

        if self.launched is not None and self.launched.process.poll() is None:
            self.launched.process.send_signal(signal.SIGTERM)
            try:
                self.launched.process.wait(STOP_SECONDS)
            except Exception:
                pass
        return DelayedSubmission(SweepJob(self.sweep, self.point))


def option_value(text: str) -> Any:
    """An --engine-option value as submitit expects it: a whole number, a number, true/false, or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def make_executor(folder: Path, cluster: str, options: list[str], jobs: int | None, name: str):
    submitit = require_submitit()
    parameters: dict[str, Any] = {"timeout_min": DEFAULT_TIMEOUT_MIN, "name": f"promptgrad-{name}"}
    if jobs:
        parameters["slurm_array_parallelism"] = jobs
    for text in options:
        key, equals, value = text.partition("=")
        if not equals:
            raise UserError(f"--engine-option {text!r} is not KEY=VALUE, e.g. --engine-option slurm_partition=gpu")
        parameters[key.strip()] = option_value(value.strip())
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=None if cluster == "auto" else cluster)
        executor.update_parameters(**parameters)
    except (ValueError, NameError, AssertionError, RuntimeError, TypeError) as e:
        raise UserError(
            f"submitit refused the engine's settings: {str(e).splitlines()[0][:200]} (see submitit's "
            f"AutoExecutor.update_parameters; --engine-option KEY=VALUE)"
        ) from None
    return executor


def run_submitit(
    executor, sweep: Sweep, todo: list[tuple[int, Point, Action]], report: SweepReport
) -> tuple[list[Outcome], str]:
    """Submit a job per run of `todo` and wait for them all, showing each one's steps as the local pool
    does; a signal cancels the jobs (each run saves a checkpoint) and waits for their folders to be free."""
    total, stopping = len(sweep.points), {"by": ""}
    submitted = []
    if todo:
        with executor.batch():  # one job array on Slurm
            submitted = [(index, point, executor.submit(SweepJob(sweep, point))) for index, point, _ in todo]
    for index, point, job in submitted:
        report.say(f"run {index}/{total} {point.name}: submitted as job {job.job_id}")
    waiting = {point.name: (index, point, job, RunWatch(sweep.folder / point.name)) for index, point, job in submitted}
    outcomes: list[Outcome] = []

    def on_signal(signum: int) -> None:
        if not stopping["by"]:
            stopping["by"] = NAMES.get(signum, str(signum))
            report.say(f"{stopping['by']}: cancelling {len(waiting)} jobs (each run saves a checkpoint)")
            for _, _, job, _ in list(waiting.values()):
                job.cancel(check=False)

    with on_signals(on_signal):
        while waiting:
            for name, (index, point, job, watch) in list(waiting.items()):
                ended = job.done()
                if watch.poll() or ended:
                    report.step(name, watch)
                if ended:
                    del waiting[name]
                    report.ended(name)
                    outcome = job_outcome(point, job)
                    outcomes.append(outcome)
                    report.say(f"run {index}/{total} {name}: {outcome.state} {outcome.detail}")
            time.sleep(1.0)
        if stopping["by"]:  # a cancelled job may end before the run it started has written its checkpoint
            deadline = time.monotonic() + STOP_SECONDS
            while time.monotonic() < deadline and any(is_locked(sweep.folder / p.name) for _, p, _ in todo):
                time.sleep(0.2)
    return outcomes, stopping["by"]


def job_outcome(point: Point, job) -> Outcome:
    try:
        return job.result()
    except Exception as e:  # the job itself failed (cancelled, killed, out of time): submitit says why
        text = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
        return Outcome(point.name, "failed", f"job {job.job_id} ({job.state}): {text}; its log in {job.paths.stderr}")
