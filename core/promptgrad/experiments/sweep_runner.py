"""Running a planned sweep (sweep.py plans it): check the sweep folder and every run folder against its
grid point, then run what is left on the local pool (sweep_pool.py) or as submitit jobs (sweep_engine.py),
and summarise. Apart from the plan, so that the plan never imports the engines that run it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.experiments.sweep import (
    ENGINE_FOLDER,
    Sweep,
    check_folders,
    check_runs_match,
    lock_sweep,
    next_action,
    open_folder,
    open_sweep,
)
from promptgrad.experiments.sweep_engine import make_executor, require_submitit, run_submitit
from promptgrad.experiments.sweep_pool import Outcome, SweepReport, local_slots, run_local, visible_gpus


def resume_hint(sweep: Sweep, runs_dir: str, engine: str) -> str:
    where = "" if runs_dir == TrainConfig.settings()["runs_dir"][1].default else f" --runs-dir {shlex.quote(runs_dir)}"
    how = " --engine submitit" if engine == "submitit" else ""
    return f"promptgrad sweep {shlex.quote(sweep.name)} --resume{where}{how}"


def run_sweep(
    name: str,
    grid: list[str] | None,
    fixed: dict[str, Any],
    *,
    resume: bool = False,
    jobs: int | None = None,
    engine: str = "local",
    engine_folder: Path | None = None,
    engine_cluster: str = "auto",
    engine_options: list[str] | None = None,
    console: Console | None = None,
) -> int:
    """`promptgrad sweep`: plan, check, run what is left, summarise. Exit status 0 when every run has
    finished, 1 when some failed or stopped, 130 when a signal stopped the sweep."""
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    fixed = dict(fixed)
    runs_dir = str(fixed.pop("runs_dir", TrainConfig.settings()["runs_dir"][1].default))
    if engine == "submitit":
        require_submitit()  # before anything is written
    sweep = open_sweep(name, runs_dir, grid, fixed, resume)
    folder = open_folder(sweep.folder)
    try:
        lock = lock_sweep(folder)
    except BaseException:
        folder.close()
        raise
    try:
        check_folders(sweep, folder)
        check_runs_match(sweep)
        if engine == "submitit" and engine_folder is None:  # its default place is in the sweep folder: no link there
            folder.sub(ENGINE_FOLDER, create=True).close()
        actions = [
            (index, point, next_action(sweep.folder / point.name)) for index, point in enumerate(sweep.points, 1)
        ]
        for _, point, action in actions:
            if action.kind == "busy":  # a run left running by an earlier sweep killed alone, or a train --resume
                raise UserError(
                    f"run {sweep.folder / point.name} is {action.why}; then go on with: "
                    f"{resume_hint(sweep, runs_dir, engine)}"
                )
        executor = None
        if engine == "submitit":  # set up before anything is shown: submitit checks the options
            executor = make_executor(
                engine_folder or sweep.folder / ENGINE_FOLDER, engine_cluster, engine_options or [], jobs, sweep.name
            )
        with SweepReport(console) as report:
            kept = [Outcome(p.name, "kept", a.why) for _, p, a in actions if a.kind == "kept"]
            refused = [Outcome(p.name, "refused", a.why) for _, p, a in actions if a.kind == "refused"]
            todo = [(i, p, a) for i, p, a in actions if a.kind in ("start", "resume")]
            counts = f"{len(kept)} finished before, " if kept else ""
            counts += f"{sum(a.kind == 'resume' for _, _, a in todo)} to resume, {sum(a.kind == 'start' for _, _, a in todo)} to start"
            if executor is not None:
                report.say(
                    f"sweep {sweep.name}: {len(sweep.points)} runs ({counts}) in {sweep.folder}; submitit "
                    f"({executor.cluster}), job files in {executor.folder}"
                )
                outcomes, stopped_by = run_submitit(executor, sweep, todo, report)
            else:
                slots, how = local_slots(sweep, jobs, visible_gpus() if todo else [], len(os.sched_getaffinity(0)))
                report.say(f"sweep {sweep.name}: {len(sweep.points)} runs ({counts}) in {sweep.folder}; {how}")
                outcomes, stopped_by = run_local(sweep, todo, slots, report, lock)
            return summarise(sweep, kept + refused + outcomes, stopped_by, resume_hint(sweep, runs_dir, engine), report)
    finally:
        os.close(lock)
        folder.close()


def summarise(sweep: Sweep, outcomes: list[Outcome], stopped_by: str, hint: str, report: SweepReport) -> int:
    done = [o for o in outcomes if o.done]
    counted = f"{len(done)} of {len(sweep.points)} runs finished"
    if stopped_by:
        report.say(
            f"sweep {sweep.name} stopped ({stopped_by}): {counted}; the runs it stopped saved a checkpoint; "
            f"go on with: {hint}"
        )
        return 130
    left = [o for o in outcomes if not o.done]
    if not left:
        report.say(f"sweep {sweep.name}: {counted}; run folders in {sweep.folder}")
        return 0
    report.say(f"sweep {sweep.name}: {counted}; {len(left)} not:")
    for o in left:
        report.say(f"  {o.name}: {o.state} {o.detail}")
    report.say(f"go on with: {hint}")
    return 1
