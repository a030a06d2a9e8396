"""A sweep: one ordinary run of `promptgrad train` per point of a grid of settings, resumable.

    promptgrad sweep NAME --grid task=capitals,currencies --grid seed=0,1,2 [--KEY VALUE ...] [--jobs N]
    promptgrad sweep NAME --grid task=tasks/a.toml,tasks/b.toml ...   (task files: recorded by absolute path)

writes runs_dir/NAME/:

    sweep.toml              the grid and the settings every run shares; a later command must ask for the
                            same sweep (or say --resume, which reads them from here)
    capitals-seed0/ ...     one ordinary run folder per grid point, named from its grid values
    logs/capitals-seed0.log each run's output (a run folder holds only promptgrad's own files)
    .lock                   held by the one sweep process going through the grid (an OFD lock, as a run's)
    submitit/               the engine's job files, with --engine submitit (sweep_engine.py)

The sweep folder, each run folder in it and `logs/` are opened without following a link (files.Folder):
a run folder or `logs/` replaced by a link to a folder elsewhere is refused in one line before any run
starts, and a restart's clean-up removes files only through the run folder's own descriptor.

What is done is read from each run folder's own record (run_folder.summarize): a finished run is kept
and never opened for writing, a run with a checkpoint is resumed (`promptgrad train --resume`), any
other is started afresh. Each run is a subprocess `python -m promptgrad train ...`, so a crash is that
run's failure, and the sweep goes on. The local pool runs one run per GPU at a time (CUDA_VISIBLE_DEVICES),
or on a CPU one after the other, or `--jobs N` at once with the cores split between them.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptgrad.config import TrainConfig, check_name, control_characters, default_of
from promptgrad.errors import UserError
from promptgrad.files import READ_WRITE, Folder
from promptgrad.numbers import DamagedNumber, read_plain
from promptgrad.store.run_folder import (
    CHECKPOINT,
    CONFIG,
    FILES,
    SWEEP_SPEC,
    RunFolder,
    is_directory,
    is_locked,
    is_regular,
    lock_holder,
    summarize,
    whole_file_lock,
)
from promptgrad.store.run_folder import LOCK as RUN_LOCK

SPEC, LOGS, LOCK = SWEEP_SPEC, "logs", ".lock"
ENGINE_FOLDER = "submitit"
NOT_GRIDDED = {
    "name": "the sweep names each run from its grid values",
    "runs_dir": "the sweep's runs all go in runs_dir/NAME",
}


# ---- the grid ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One run of the sweep: its folder's name and every setting given for it (the shared ones and its
    grid values), as the run will record them."""

    name: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    name: str
    folder: Path  # runs_dir/NAME
    axes: dict[str, list[Any]]  # setting -> its values, in the order given (the first varies slowest)
    fixed: dict[str, Any]  # the settings every run shares
    points: list[Point]

    def spec(self) -> dict[str, Any]:
        """What sweep.toml holds: what the runs are, not how they are run (jobs, engine)."""
        return {"grid": self.axes, "settings": self.fixed}


def flag_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def parse_axis(text: str) -> tuple[str, list[str]]:
    """`seed=0,1,2` -> ("seed", ["0", "1", "2"]); `\\,` is a comma inside a value (a template such as
    `{x}\\, {y}`). The values are checked later, by TrainConfig."""
    key, equals, values = text.partition("=")
    key = key.strip().replace("-", "_")
    settings = TrainConfig.settings()
    if not equals or not key:
        raise UserError(f"--grid {text!r} is not KEY=VALUE,VALUE,...; e.g. --grid seed=0,1,2")
    if key not in settings:
        raise UserError(f"--grid {key}: no such setting; known settings: {', '.join(settings)}")
    if key in NOT_GRIDDED:
        raise UserError(f"--grid {key}: {key} cannot be gridded ({NOT_GRIDDED[key]})")
    if isinstance(default_of(settings[key][1]), list):
        raise UserError(
            f"--grid {key}: {key} holds a list of texts, which a grid cannot vary; give it as a shared "
            f"setting ({flag_name(key)} TEXT, repeated) or make one sweep per list"
        )
    return key, [value.replace("\\,", ",") for value in re.split(r"(?<!\\),", values)]


def plan(name: str, runs_dir: str | Path, axes: dict[str, list[Any]], fixed: dict[str, Any]) -> Sweep:
    """The sweep's runs, each one's settings checked by TrainConfig (every setting's own validation)
    before anything runs; values as the run will record them (numbers typed, local paths absolute), so
    `lr=0.01` and `lr=1e-2` are the same sweep, and a relative path means the same file from anywhere."""
    if not name:
        raise UserError("the sweep's NAME is empty; give it a name (its folder is runs_dir/NAME)")
    if problem := check_name(name):
        raise UserError(problem.replace("name must", "the sweep's NAME must"))
    if not axes:
        raise UserError(
            "give at least one --grid KEY=VALUE,VALUE,... (e.g. --grid seed=0,1,2); promptgrad train runs one run"
        )
    for key, why in NOT_GRIDDED.items():
        if key in fixed:
            raise UserError(f"{flag_name(key)} is not a setting of a sweep: {why}")
        if key in axes:  # sweep.toml's [grid] is read back here too, not only --grid
            raise UserError(f"--grid {key}: {key} cannot be gridded ({why})")
    for key, values in axes.items():
        if not values:  # `seed = []` in sweep.toml: a grid of no runs
            raise UserError(f"--grid {key} has no values; give at least one: --grid {key}=A,B")
        for value in values:
            check_text(value, f"--grid {key}")
    for key, value in fixed.items():
        check_text(value, flag_name(key))
    for key in axes:
        if key in fixed:
            raise UserError(
                f"{key} is both gridded and given as {flag_name(key)}; drop {flag_name(key)} (the grid gives its values)"
            )
    resolved: list[dict[str, Any]] = []
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values))
        try:
            config = TrainConfig().replace(**fixed, **point).resolved()
        except UserError as e:
            where = (
                f"--grid {e.field}={point[e.field]}" if e.field in point else (flag_name(e.field) if e.field else "")
            )
            raise UserError(f"{where}: {e}" if where else str(e), e.field) from None
        resolved.append({key: config.get(key) for key in [*fixed, *point]})
    canonical_axes = {key: list(dict.fromkeys(r[key] for r in resolved)) for key in axes}
    for key, values in axes.items():
        if len(canonical_axes[key]) != len(values):
            raise UserError(f"--grid {key} gives the same value twice ({', '.join(map(str, values))}); give each once")
    canonical_fixed = {key: resolved[0][key] for key in fixed}
    points = [Point(run_name({k: r[k] for k in axes}), r) for r in resolved]
    names = [p.name for p in points]
    for reserved in (LOGS, ENGINE_FOLDER):
        if reserved in names:
            raise UserError(
                f"a run of this grid would be named {reserved!r}, the name of the sweep's own folder; "
                f"change the grid's order or values"
            )
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UserError(
            f"two runs of this grid would both be named {twice!r}; give values that differ in letters or digits"
        )
    return Sweep(name, Path(runs_dir) / name, canonical_axes, canonical_fixed, points)


def check_text(value: Any, where: str) -> None:
    """A grid value or shared setting holds no control character but a newline or a tab (which a template
    may hold): an escape would reach the terminal in every line that names it, a NUL cannot be a flag."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str) and (control := control_characters(text, allowed="\n\t")):
            raise UserError(f"{where} {text!r} holds the control character {control[0]!r}; give the value without it")


def run_name(values: dict[str, Any]) -> str:
    """A readable, deterministic folder name from a point's grid values: `capitals-seed0-lr0.01`. A text
    value stands alone (a task, a model, a mode); a number follows its setting's name. A value that is
    not a plain name (a path, words) is cut to its last part, with a short hash of it so that two
    values never share a name."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            parts.append(f"{key}_{'true' if value else 'false'}")
        elif isinstance(value, str):
            text = value.rstrip("/").rsplit("/", 1)[-1].removesuffix(".toml")  # a task file by its name
            plain = re.sub(r"[^A-Za-z0-9._+]+", "_", text).strip("._")[:40] or key
            if plain != value:
                plain += "-" + hashlib.sha1(value.encode()).hexdigest()[:6]
            parts.append(plain)
        else:
            parts.append(f"{key}{flag_text(value)}")
    return "-".join(parts)


def flag_text(value: Any) -> str:
    """A setting's value as a flag gives it (and reads it back exactly: repr of a float)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


# ---- sweep.toml and the sweep's lock ----------------------------------------------------------------


def open_folder(folder: Path, create: bool = False) -> Folder:
    """The sweep's folder, runs_dir/NAME: runs_dir as the user gave it, NAME never a link."""
    return Folder.at(folder, create=create, link_ok=False)


def save_spec(sweep: Sweep, folder: Folder) -> None:
    import tomli_w

    header = (
        f"# promptgrad sweep {sweep.name}: one run per point of [grid], each with [settings];\n"
        f"# promptgrad sweep {sweep.name} --resume goes on with it\n"
    )
    folder.write_atomic(SPEC, (header + tomli_w.dumps(sweep.spec())).encode(), overwrite=False)


def load_spec(folder: Path) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    path = folder / SPEC
    try:
        with open_folder(folder) as opened:
            data = opened.read_bytes(SPEC)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text; it was changed after promptgrad wrote it") from None
        spec = tomllib.loads(text)
    except FileNotFoundError:
        raise UserError(f"{folder} holds no sweep ({SPEC} is missing); start it with --grid KEY=VALUE,...") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path} is not valid TOML ({e}); it was changed after promptgrad wrote it") from None
    grid, settings = spec.get("grid"), spec.get("settings", {})
    if not (isinstance(grid, dict) and all(isinstance(v, list) for v in grid.values()) and isinstance(settings, dict)):
        raise UserError(f"{path} has no [grid] table of lists; it was changed after promptgrad wrote it")
    try:
        return read_plain(grid, "[grid]"), read_plain(settings, "[settings]")
    except DamagedNumber as e:
        raise UserError(f"{path} is damaged: {e}; it was changed after promptgrad wrote it") from None


def difference(saved: dict[str, Any], asked: dict[str, Any]) -> str:
    """The first way two sweep specs differ, in words."""
    if list(saved["grid"].items()) != list(asked["grid"].items()):
        shown = [
            " ".join(f"--grid {k}={','.join(map(flag_text, v))}" for k, v in spec["grid"].items())
            for spec in (saved, asked)
        ]
        return f"its grid is {shown[0]}, this command's {shown[1]}"
    old, new = saved["settings"], asked["settings"]
    for key in dict.fromkeys([*old, *new]):
        if old.get(key) != new.get(key):
            shown = lambda value: repr(value) if isinstance(value, str) else flag_text(value)
            show = lambda spec: f"{flag_name(key)} {shown(spec[key])}" if key in spec else f"no {flag_name(key)}"
            return f"it has {show(old)}, this command {show(new)}"
    return ""


def lock_sweep(folder: Folder) -> int:
    """Take the sweep's one-writer lock (two sweeps of one grid would start the same runs twice)."""
    fd = folder.open_fd(LOCK, READ_WRITE)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, whole_file_lock(fcntl.F_WRLCK))
    except OSError:  # held by the sweep, or by a run it started (each inherits the lock), still alive
        os.close(fd)

        def running(run: Path) -> bool:
            try:
                return is_directory(run) and is_locked(run)
            except (UserError, OSError):
                return False

        alive = [p.name for p in sorted(folder.path.iterdir()) if running(p)]
        runs = f" (its runs {', '.join(alive[:5])} still running)" if alive else ""
        raise UserError(
            f"sweep {folder.path} is being run by {lock_holder(folder.path / LOCK)}{runs}; wait for it to end "
            f"or stop it (kill -TERM stops it cleanly), then go on with --resume"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} (promptgrad sweep {folder.path.name})".encode(), 0)
    return fd


def check_folders(sweep: Sweep, folder: Folder) -> None:
    """Refuse, before any run starts, a run folder or logs/ that is not a folder of its own here (a link
    to a folder elsewhere would have the run, its clean-up or its log written there)."""
    for name in (LOGS, *(p.name for p in sweep.points)):
        try:
            folder.sub(name).close()
        except FileNotFoundError:
            continue
        except UserError as e:
            what = "its runs' logs" if name == LOGS else "a run folder"
            raise UserError(
                f"{e} ({what} of sweep {sweep.name}; move the real folder back in its place, then go on with the sweep)"
            ) from None


def open_sweep(name: str, runs_dir: str | Path, grid: list[str] | None, fixed: dict[str, Any], resume: bool) -> Sweep:
    """The sweep this command asks for, its folder made (or found) and sweep.toml written (or checked):
    with --resume, as sweep.toml says; otherwise the grid and settings given, which must be those of
    sweep.toml if there is one."""
    folder = Path(runs_dir) / name
    if resume:
        if grid or fixed:
            given = ", ".join([*(f"--grid {g}" for g in grid or []), *map(flag_name, fixed)])
            raise UserError(
                f"--resume goes on with the grid and settings in {folder / SPEC}; drop {given} (or leave out "
                f"--resume to check them against it)"
            )
        return plan(name, runs_dir, *load_spec(folder))
    axes: dict[str, list[str]] = {}
    for text in grid or []:
        key, values = parse_axis(text)
        if key in axes:
            raise UserError(f"--grid {key} is given twice; give all its values in one: --grid {key}=A,B,C")
        axes[key] = values
    sweep = plan(name, runs_dir, axes, fixed)
    try:
        existing = open_folder(folder)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        with existing:
            if existing.exists(SPEC):
                saved = dict(zip(("grid", "settings"), load_spec(folder)))
                if saved != sweep.spec() or list(saved["grid"]) != list(sweep.axes):
                    raise UserError(
                        f"{folder / SPEC} records another sweep ({difference(saved, sweep.spec())}); go on with "
                        f"it as it was started: promptgrad sweep {name} --resume, or give this one another NAME"
                    )
                return sweep
            if any(p not in (LOGS, ENGINE_FOLDER, LOCK) for p in existing.listdir()):
                what = "a run folder" if existing.exists("config.toml") else "a folder that is not a sweep"
                raise UserError(f"{folder} is {what}; give the sweep another NAME")
    with open_folder(folder, create=True) as made:
        save_spec(sweep, made)
    return sweep


# ---- what each run needs next ------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What a run needs next: kept (finished before), resume (from its checkpoint), start (afresh),
    refused (damaged) or busy (being written by another process); `why` says what the folder held."""

    kind: str
    why: str = ""


def next_action(run: Path) -> Action:
    """Read from the run folder's own record, without opening it for writing."""
    if os.path.lexists(run) and not is_directory(run):  # a link planted in its place: never written through
        return Action("refused", "not a folder of its own (a symbolic link or a file); move the real run folder back")
    if not os.path.lexists(run / CONFIG):
        return Action("start")
    summary = summarize(run)
    if summary.state == "finished":
        return Action("kept", f"finished at step {summary.step}")
    if summary.state == "running":
        return Action("busy", f"being written by {lock_holder(run / '.lock')}; wait for it to end or stop it")
    if summary.state == "damaged":
        return Action("refused", f"damaged ({summary.problem}); move it away to run it again")
    if is_regular(run / CHECKPOINT):
        return Action("resume", f"{summary.state} at step {summary.step}")
    return Action("start", f"{summary.state} with no checkpoint to resume from")


AS_DECIDED = {"precision": "auto"}  # a run records what `auto` became, so its recorded value may differ from the grid's


def mismatch(run: Path, point: Point) -> str:
    """How the run folder's recorded settings (its config.toml) differ from its grid point, in words; ""
    when they agree or the folder holds no readable config (next_action says why that folder is refused).
    A folder is only kept, resumed or counted as this point's run if it is that run: not one of another
    seed copied in, nor one made before sweep.toml was edited."""
    if not os.path.lexists(run / CONFIG):
        return ""
    try:
        recorded = RunFolder.open(run).config()
    except (UserError, OSError):
        return ""
    for key, value in point.settings.items():
        if AS_DECIDED.get(key) == value:
            continue
        if recorded.get(key) != value:
            show = lambda v: repr(v) if isinstance(v, (str, list)) else flag_text(v)
            return f"its {CONFIG} has {key} {show(recorded.get(key))}, its grid point {key} {show(value)}"
    return ""


def check_runs_match(sweep: Sweep) -> None:
    """Refuse the whole sweep, in one line, when a run folder is not the run of its grid point: keeping it
    would count another run's result as this point's, resuming it would train the wrong run on."""
    differ = [(point, why) for point in sweep.points if (why := mismatch(sweep.folder / point.name, point))]
    if differ:
        point, why = differ[0]
        more = f" (and {len(differ) - 1} other run folder(s) differ too)" if len(differ) > 1 else ""
        raise UserError(
            f"run folder {sweep.folder / point.name} is not the run of its grid point: {why}{more}; "
            f"move it away to run it afresh, or put {sweep.folder / SPEC} back as it was"
        )


def clear_for_restart(run: Path, sweep_folder: Folder | None = None) -> None:
    """A run that never checkpointed starts afresh in its folder: promptgrad's own files are removed
    (under the folder's lock, through the descriptor of the run folder opened without following a link,
    itself opened through the sweep folder's, so a folder linked in from elsewhere loses nothing);
    anything else there is left alone."""
    folder = RunFolder.open_for_writing(run, within=sweep_folder)
    try:
        for name in FILES:
            if name != RUN_LOCK:
                folder.folder.unlink(name)
    finally:
        folder.release()


def train_command(sweep: Sweep, point: Point, action: Action, threads: int = 0) -> list[str]:
    """The `promptgrad train` command line for a run's next step; flags as `--key=value`, so that a value
    that starts with a dash stays a value."""
    command = [sys.executable, "-m", "promptgrad", "train"]
    if action.kind == "resume":
        command += ["--resume", str((sweep.folder / point.name).absolute())]
    else:
        for key, value in point.settings.items():
            command += (
                [f"{flag_name(key)}={text}" for text in value]
                if isinstance(value, list)
                else [f"{flag_name(key)}={flag_text(value)}"]
            )
        command += [f"--name={point.name}", f"--runs-dir={sweep.folder.absolute()}"]
    if threads:
        command.append(f"--threads={threads}")
    return command


# ---- the whole command ------------------------------------------------------------------------------------
